"""Reruns after code changes and after a move: each test works in a copy of the session's finished demo
run (results/ and .snakemake/ included, times preserved) and checks the scope with a dry run."""
import os
import shutil
from pathlib import Path

import pytest

from workflow_helpers import copy_workflow, jobs_in_dry_run

pytestmark = [pytest.mark.e2e, pytest.mark.workflow]


def copy_run(demo_run: Path, dest: Path) -> Path:
    """The whole finished project at another path, file and folder times kept (like `cp -a` or `mv`)."""
    shutil.copytree(demo_run, dest, symlinks=True)
    return dest


def edit(path: Path) -> None:
    """A code change that changes no behaviour (a comment): Snakemake must still see new code."""
    path.write_text(path.read_text() + "\n# edited by a rerun-scope test\n")


def test_a_moved_finished_run_has_nothing_to_do(demo_run, tmp_path):
    moved = copy_run(demo_run, tmp_path / "elsewhere" / "project")
    assert jobs_in_dry_run(moved) == set()


def test_a_second_clone_given_the_results_and_metadata_has_nothing_to_do(demo_run, tmp_path):
    # a fresh checkout: every code and config file is newer than the results it is given
    clone = copy_workflow(tmp_path / "clone")
    for path in clone.rglob("*"):
        os.utime(path)
    shutil.copytree(demo_run / "results", clone / "results", symlinks=True)
    shutil.copytree(demo_run / ".snakemake", clone / ".snakemake", symlinks=True,
                    ignore=shutil.ignore_patterns("locks", "incomplete", "log"))
    assert jobs_in_dry_run(clone) == set()


def test_editing_the_dedupe_fingerprint_reruns_ingestion_and_everything_downstream(demo_run, tmp_path):
    run = copy_run(demo_run, tmp_path / "run")
    edit(run / "scripts/alpha/ads/fingerprint.py")
    jobs = jobs_in_dry_run(run)
    assert {"ingest_dump", "merge_ads", "normalise_census", "embed_ads", "mine_pairs", "ad_tasks", "make_shards",
            "build_tiny_model", "train_model", "score_benchmark", "table1"} <= jobs
    # demo_inputs writes the dumps as temporary files (removed once ingested): re-ingesting regenerates them
    assert "demo_inputs" in jobs
    assert not jobs & {"demo_benchmarks", "demo_external", "prepare_benchmark"}


def test_editing_the_metrics_reruns_the_metrics_and_tables_never_scoring(demo_run, tmp_path):
    run = copy_run(demo_run, tmp_path / "run")
    edit(run / "scripts/alpha/eval/metrics.py")
    jobs = jobs_in_dry_run(run)
    assert "benchmark_metrics" in jobs and "table1" in jobs
    assert jobs <= {"benchmark_metrics", "table1", "table2", "ablation_table", "plot_table1", "elicitation_table"}


@pytest.mark.parametrize("module, rules", [
    ("behaviour", {"behaviour_similarity", "correlation_summary"}),
    ("opinion", {"opinion_similarity", "correlation_summary"}),
    ("summary", {"correlation_summary"}),
])
def test_editing_the_correlation_analysis_reruns_only_the_correlation_rules(demo_run, tmp_path, module, rules):
    run = copy_run(demo_run, tmp_path / "run")
    edit(run / f"scripts/alpha/correlation/{module}.py")
    assert jobs_in_dry_run(run) == rules


def test_editing_a_demo_generator_reruns_only_what_the_demo_feeds(demo_run, tmp_path):
    run = copy_run(demo_run, tmp_path / "run")
    edit(run / "scripts/alpha/demo/surveys.py")  # the demo's survey files (OpinionQA, GSS, ATP waves)
    jobs = jobs_in_dry_run(run)
    assert {"demo_benchmarks", "prepare_benchmark", "score_benchmark", "benchmark_metrics", "table1"} <= jobs
    assert not jobs & {"demo_inputs", "ingest_dump", "merge_ads", "embed_ads", "make_shards", "train_model",
                       "build_tiny_model", "behaviour_similarity"}
