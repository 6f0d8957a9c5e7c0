"""`snakemake --profile slurm ...`, literally, from a clone: `make slurm-profile` links
profiles/slurm into the user's Snakemake config directory, where a bare profile name resolves."""
import os
import subprocess

from workflow_helpers import ROOT, SNAKEMAKE, copy_workflow


def test_bare_profile_name_resolves_after_make_slurm_profile(tmp_path):
    config_home = tmp_path / "xdg"
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(config_home))
    link = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "slurm-profile", f"SNAKEMAKE_CONFIG_DIR={config_home}/snakemake"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    assert link.returncode == 0, link.stdout + link.stderr
    assert (config_home / "snakemake/slurm").resolve() == (ROOT / "profiles/slurm").resolve()

    workdir = copy_workflow(tmp_path / "clone")
    before = subprocess.run([SNAKEMAKE, "all", "-n", "--profile", "slurm"], cwd=workdir, capture_output=True, text=True,
                            env=dict(os.environ, HOME=str(tmp_path / "nowhere"), XDG_CONFIG_HOME=str(tmp_path / "nowhere")))
    assert before.returncode != 0  # without the link, a bare `slurm` is not found
    proc = subprocess.run([SNAKEMAKE, "all", "-n", "--profile", "slurm"], cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Using profiles slurm" in proc.stderr
    assert "rule ingest_dump" in proc.stdout
