"""README's generated blocks (rule graph, config reference) match the workflow and the schema."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow  # starts Snakemake: not part of make test-fast

ROOT = Path(__file__).resolve().parents[2]


def test_readme_is_up_to_date():
    proc = subprocess.run([sys.executable, "tests/tools/update_readme.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_gives_the_two_commands_and_the_cluster_command():
    text = (ROOT / "README.md").read_text()
    for command in ("make demo", "make test", "snakemake results/table1.csv --profile slurm --configfile config/paper.yaml",
                    "make slurm-profile"):
        assert command in text
    assert "not the paper's findings" in text
