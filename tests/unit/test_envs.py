"""Conda envs are checked statically (no conda channels here): every rule names an env, every
dependency is pinned, and each pin agrees with requirements.txt, the one source of versions."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^=<>!~ ]+)$")
CONDA_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)=([0-9][^=<>!~ ]*)$")


def requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = PIN.match(line)
            assert m, f"requirements.txt: {line!r} is not pinned with =="
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def env_files():
    files = sorted((ROOT / "envs").glob("*.yaml"))
    assert files, "no envs/*.yaml"
    return files


def test_every_env_dependency_is_pinned_and_matches_requirements():
    reqs = requirements()
    for path in env_files():
        env = yaml.safe_load(path.read_text())
        assert "conda-forge" in env["channels"], path
        for dep in env["dependencies"]:
            if isinstance(dep, dict):
                for pip_dep in dep["pip"]:
                    m = PIN.match(pip_dep)
                    assert m, f"{path.name}: pip dependency {pip_dep!r} is not pinned with =="
                    name = m.group(1).lower().replace("_", "-")
                    assert name in reqs, f"{path.name}: {name} is not in requirements.txt"
                    assert m.group(2) == reqs[name], f"{path.name}: {name}=={m.group(2)} but requirements.txt has {reqs[name]}"
            else:
                assert CONDA_PIN.match(dep), f"{path.name}: conda dependency {dep!r} is not pinned"


def test_python_pin_matches_the_interpreter_we_test_with():
    import sys

    for path in env_files():
        deps = yaml.safe_load(path.read_text())["dependencies"]
        assert f"python={sys.version_info.major}.{sys.version_info.minor}" in deps, path


def test_every_rule_names_an_existing_env_and_a_log():
    rules = 0
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        blocks = re.split(r"^(?=(?:rule|checkpoint) )", smk.read_text(), flags=re.M)[1:]
        for block in blocks:
            name = block.split()[1].rstrip(":")
            rules += 1
            conda = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", block, flags=re.M)
            assert conda, f"{smk.name}: rule {name} names no conda env"
            assert (smk.parent / conda.group(1)).resolve().exists(), f"rule {name}: {conda.group(1)} missing"
            assert re.search(r"^\s+log:", block, flags=re.M), f"{smk.name}: rule {name} has no log:"
    assert rules >= 5


def test_installed_versions_match_requirements():
    from importlib.metadata import version

    for name, pinned in requirements().items():
        installed = version(name)
        assert installed.split("+")[0] == pinned, f"{name}: installed {installed}, requirements.txt pins {pinned}"
