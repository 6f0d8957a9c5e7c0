"""Fixtures for end-to-end tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from workflow_helpers import copy_workflow, snakemake


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The embedded default, run once to completion with the local profile."""
    workdir = copy_workflow(tmp_path_factory.mktemp("demo_run"))
    snakemake(workdir, "all")
    return workdir
