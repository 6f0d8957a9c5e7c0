"""Session fixtures: the embedded default run locally, and the local Slurm cluster with the same
workflow run through it. When the session holds Slurm tests, the Slurm run starts in the background
as soon as the local run starts, and the Slurm tests are moved to the end of the session, so the
local run, the end-to-end tests and the unit tests run beside it instead of after it (measured in
README, "make test")."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workflow_helpers import ROOT, BackgroundRun, copy_workflow, slurm_profile, snakemake

START = ROOT / "tests/slurm/start_cluster.sh"


def _slurm_reachable() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster():
    """A reachable Slurm: the one already running, or one started here (and stopped afterwards).
    Without root or Debian the Slurm tests skip with the reason; with CI=true they must run."""
    started_here = False
    if not _slurm_reachable():
        reason = None
        if os.geteuid() != 0:
            reason = "not root and no Slurm reachable: cannot start the local cluster"
        elif shutil.which("apt-get") is None:
            reason = "not a Debian machine and no Slurm reachable"
        if reason:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true but the Slurm cluster cannot be started: {reason}")
            pytest.skip(reason)
        proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            pytest.fail(f"start_cluster.sh failed:\n{proc.stdout}\n{proc.stderr}")
        started_here = True
    yield True
    if started_here:
        subprocess.run(["bash", str(ROOT / "tests/slurm/stop_cluster.sh")], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def slurm_background(slurm_cluster, tmp_path_factory):
    """The default target through the slurm profile (local account and partition), in the background."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm_run"))
    profile = slurm_profile(workdir / "test-profile")
    run = BackgroundRun(workdir, "--profile", str(profile), "all")
    yield run
    run.stop()


def pytest_collection_modifyitems(session, config, items):
    """Slurm tests last (stable order otherwise): they wait for the background Slurm run."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)


def _session_has_slurm_tests(session) -> bool:
    return any(item.get_closest_marker("slurm") for item in session.items)


def _started_slurm_run(request) -> bool:
    try:
        request.getfixturevalue("slurm_background")
    except (pytest.skip.Exception, pytest.fail.Exception):
        return False  # the Slurm tests report it themselves (the fixture's outcome is cached for them)
    return True


@pytest.fixture(scope="session")
def slurm_run_compared(request) -> bool:
    """Whether this session also runs the workflow through Slurm and compares it with `demo_run` byte for
    byte: that comparison then covers a second local run."""
    comparison = "test_workflow_runs_through_slurm_and_matches_the_local_run"
    return any(item.name == comparison for item in request.session.items) and _started_slurm_run(request)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, request) -> Path:
    """The embedded default, run once to completion with the local profile."""
    if _session_has_slurm_tests(request.session):
        _started_slurm_run(request)
    workdir = copy_workflow(tmp_path_factory.mktemp("demo_run"))
    snakemake(workdir, "all", timeout=2400)  # beside the Slurm run, the two share the machine's two cores
    return workdir
