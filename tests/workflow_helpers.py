"""End-to-end helpers: a private copy of the workflow and a way to run Snakemake in it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "envs", "config", "profiles", "report")
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    proc = subprocess.run(
        [SNAKEMAKE, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def jobs_in_dry_run(workdir: Path, *args: str) -> set[str]:
    """The rules a dry run would run (``all`` excluded)."""
    import re

    out = snakemake(workdir, "-n", "--quiet", "rules", *args)
    return set(re.findall(r"^(\w+)\s+\d+\s*$", out.stdout, flags=re.M)) - {"total", "all"}


def output_files(results: Path) -> dict[str, bytes]:
    """Every workflow output under results/, by relative path (logs and timings excluded: they hold times)."""
    return {
        str(p.relative_to(results)): p.read_bytes()
        for p in sorted(results.rglob("*"))
        if p.is_file() and p.relative_to(results).parts[0] not in ("logs", "benchmarks")
    }


def paper_standin_workflow(dest: Path, n_dumps: int = 200) -> tuple[Path, Path]:
    """A copy of the workflow with config/paper.yaml's placeholder paths replaced by empty stand-in
    files, and as many dump files as a paper-scale collection has (monthly dumps, 2019-2024).
    Returns (workdir, configfile). Enough for dry runs (DAG, resources, sbatch arguments)."""
    import yaml

    workdir = copy_workflow(dest)
    config = yaml.safe_load((workdir / "config/paper.yaml").read_text())
    standins = workdir / "standin"
    standins.mkdir()

    def standin(name: str) -> str:
        path = standins / name
        path.touch()
        return str(path.relative_to(workdir))

    dumps = []
    for entry in config["ads"]["dumps"]:
        entry = dict(entry)
        for key in ("path", "demographics", "regions"):
            if key in entry:
                entry[key] = standin(Path(entry[key]).name)
        dumps.append(entry)
    for i in range(len(dumps), n_dumps):
        dumps.append({"name": f"us_month_{i:03d}", "path": standin(f"us_month_{i:03d}.jsonl.gz")})
    config["ads"]["dumps"] = dumps
    config["ads"]["media_verbalisation"] = standin("media_verbalisation.jsonl")
    for entry in config["shards"]["external"].values():
        entry["path"] = standin(Path(entry["path"]).name)
    config["correlation"]["atp_waves"] = standin("pew_atp_waves")
    for name, entry in config["benchmarks"].items():
        entry["path"] = standin(f"benchmark_{name}")
        if isinstance(entry.get("options", {}).get("field_dates"), str):
            entry["options"]["field_dates"] = standin(f"benchmark_{name}_field_dates.yaml")
    configfile = workdir / "config/paper_standin.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir, configfile


def profile_without_conda(src: Path, dest: Path, **overrides) -> Path:
    """profiles/slurm with the conda deployment removed (conda channels are unreachable here)."""
    import yaml

    profile = yaml.safe_load((src / "config.yaml").read_text())
    profile.pop("software-deployment-method", None)
    profile.pop("conda-prefix", None)
    profile.update(overrides)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile))
    return dest


# The only keys in which the test profile differs from profiles/slurm/config.yaml: the local
# cluster's account and partition, and quicker status checks for jobs that take seconds.
LOCAL_ACCOUNT, LOCAL_PARTITION = "alpha", "debug"


def slurm_profile(dest: Path) -> Path:
    import yaml

    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    profile["default-resources"]["slurm_account"] = LOCAL_ACCOUNT
    profile["default-resources"]["slurm_partition"] = LOCAL_PARTITION
    for resources in profile.get("set-resources", {}).values():  # GPU rules: the local CPU partition
        resources["slurm_partition"] = LOCAL_PARTITION
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["seconds-between-status-checks"] = 2
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile))
    return dest


class BackgroundRun:
    """Snakemake running in the background; output goes to files (a pipe nobody reads would block it)."""

    def __init__(self, workdir: Path, *args: str):
        self.workdir, self.args, self.started = workdir, args, time.time()
        self.out, self.err = workdir / "snakemake.stdout", workdir / "snakemake.stderr"
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([SNAKEMAKE, *args], cwd=workdir, env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, text=True)

    def wait(self, timeout: int) -> tuple[Path, subprocess.CompletedProcess, float]:
        try:
            code = self.proc.wait(timeout=max(1, int(self.started + timeout - time.time())))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"snakemake {' '.join(self.args)} ran past {timeout} s")  # noqa: B904
        done = subprocess.CompletedProcess(self.proc.args, code, self.out.read_text(), self.err.read_text())
        if code != 0:
            raise AssertionError(f"snakemake {' '.join(self.args)} failed ({code}):\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}")
        return self.workdir, done, self.started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
