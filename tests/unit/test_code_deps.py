"""alpha.workflow.code_deps: a rule's code inputs are the entry script's transitive imports inside alpha."""
from pathlib import Path

import pytest

from alpha.workflow.code_deps import CodeDepsError, code_for, imported_modules

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_transitive_imports_lazy_imports_packages_and_relative_imports(tmp_path):
    root = _tree(tmp_path, {
        "scripts/entry.py": "import json\nfrom alpha.stage import first\n",
        "scripts/alpha/__init__.py": "",
        "scripts/alpha/stage/__init__.py": "",
        "scripts/alpha/stage/first.py": "def f():\n    from alpha.core import io  # lazy\n    return io\n",
        "scripts/alpha/stage/second.py": "X = 1\n",  # never imported: not an input
        "scripts/alpha/core/__init__.py": "from . import helpers\n",
        "scripts/alpha/core/io.py": "from .helpers import NAME\n",
        "scripts/alpha/core/helpers.py": "NAME = 'x'\n",
    })
    got = code_for("scripts/entry.py", root, root / "scripts", relative_to=root)
    assert got == [
        "scripts/alpha/__init__.py",
        "scripts/alpha/core/__init__.py",
        "scripts/alpha/core/helpers.py",
        "scripts/alpha/core/io.py",
        "scripts/alpha/stage/__init__.py",
        "scripts/alpha/stage/first.py",
        "scripts/entry.py",
    ]
    # relative to another working directory: still relative, never absolute
    assert code_for("scripts/entry.py", root, root / "scripts", relative_to=root / "scripts")[0] == "alpha/__init__.py"


def test_from_package_import_name_counts_submodules_only(tmp_path):
    root = _tree(tmp_path, {
        "alpha/__init__.py": "",
        "alpha/pkg/__init__.py": "VALUE = 1\n",
        "alpha/pkg/sub.py": "",
        "user.py": "from alpha.pkg import VALUE, sub\n",
    })
    assert imported_modules(root, root / "user.py") == {"alpha.pkg", "alpha.pkg.sub"}


def test_an_import_of_a_missing_module_is_an_error(tmp_path):
    root = _tree(tmp_path, {"scripts/entry.py": "from alpha.gone import x\n", "scripts/alpha/__init__.py": ""})
    with pytest.raises(CodeDepsError, match="alpha.gone"):
        code_for("scripts/entry.py", root, root / "scripts", relative_to=root)
    with pytest.raises(CodeDepsError, match="does not exist"):
        code_for("scripts/nothing.py", root, root / "scripts", relative_to=root)


def _deps(script: str) -> set[str]:
    return set(code_for(f"scripts/{script}", ROOT, SCRIPTS, relative_to=ROOT))


def test_the_workflow_scripts_depend_on_what_they_run():
    ingest = _deps("ingest_dump.py")
    assert "scripts/alpha/ads/fingerprint.py" in ingest and "scripts/alpha/ads/fingerprint.py" in _deps("merge_ads.py")
    # scoring never reads the metric definitions: a metric change reruns no model
    assert not any("metrics" in path for path in _deps("score_benchmark.py"))
    assert "scripts/alpha/eval/metrics.py" in _deps("benchmark_metrics.py")
    assert "scripts/alpha/eval/metrics.py" not in _deps("prepare_benchmark.py")
    # the opinion side of the correlation uses the ATP reader and the ordinal distance
    opinion = _deps("opinion_similarity.py")
    assert {"scripts/alpha/eval/loaders/atp.py", "scripts/alpha/eval/distributions.py"} <= opinion
    # the demo benchmarks do not depend on the correlation analysis
    assert not any(path.startswith("scripts/alpha/correlation/") for path in _deps("demo_benchmarks.py"))


def test_production_code_never_imports_the_demo_generators():
    demo_scripts = {"demo_inputs.py", "demo_benchmarks.py", "demo_external.py", "build_tiny_model.py"}
    for script in sorted(p.name for p in SCRIPTS.glob("*.py")):
        if script in demo_scripts:
            continue
        demo = sorted(p for p in _deps(script) if p.startswith("scripts/alpha/demo/"))
        assert not demo, f"{script} imports {demo}"


def test_every_script_rule_lists_its_code_through_code_for():
    import re

    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule )", smk.read_text())[1:]:
            name = block.split(":")[0].removeprefix("rule ")
            assert "source_path(\"../scripts/alpha" not in block, name
            script = re.search(r'script:\n\s+"\.\./(scripts/\w+\.py)"', block)
            if script:
                assert f'code=code_for("{script.group(1)}")' in block, name
