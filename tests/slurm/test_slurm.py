"""The workflow through a real Slurm scheduler (tests/slurm/start_cluster.sh), with the slurm profile.

Where no cluster can be started (not root, not Debian, and no Slurm reachable) these tests are
skipped with the reason; with CI=true they must run, and a cluster that fails to start fails CI.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from workflow_helpers import SNAKEMAKE, copy_workflow, output_files, slurm_profile, snakemake

pytestmark = pytest.mark.slurm


def _jobs_in_sacct(name_prefix: str) -> list[tuple[str, str, str]]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-S", "now-2hours", "-o", "JobID,JobName,State,Comment%200"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [tuple(line.split("|")[:3]) + (line.split("|")[3],) for line in out.splitlines() if line]


@pytest.fixture(scope="session")
def slurm_run(slurm_background):
    """The default target through Slurm: started in the background with the local demo run (conftest),
    finished here. (workdir, completed process, start time)."""
    return slurm_background.wait(timeout=2400)


def test_workflow_runs_through_slurm_and_matches_the_local_run(slurm_run, demo_run):
    workdir, proc, _ = slurm_run
    local, remote = output_files(demo_run / "results"), output_files(workdir / "results")
    assert local.keys() == remote.keys()
    # every output byte for byte, trained weights and everything derived from them included (the LoRA
    # initialisation is seeded and its target modules sorted, so multi-process training through Slurm
    # gives the same bits as the local run)
    assert [name for name in local if local[name] != remote[name]] == []
    assert any(name.startswith("train/") for name in local) and "table1.csv" in local


def test_jobs_really_went_through_slurm(slurm_run):
    workdir, proc, _ = slurm_run
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", proc.stdout + proc.stderr))
    assert submitted, proc.stderr[-3000:]
    states = {job: state for job, _, state, _ in _jobs_in_sacct("")}
    assert {states.get(job) for job in submitted} == {"COMPLETED"}, {job: states.get(job) for job in submitted}
    logs = list((workdir / "results/logs/slurm").rglob("*.log"))
    log_dirs = {p.relative_to(workdir / "results/logs/slurm").parts[0] for p in logs}
    expected = {"rule_demo_inputs", "rule_merge_ads", "rule_normalise_census", "rule_delivery_figures",
                "rule_train_model", "rule_eval_train_tasks", "rule_prepare_benchmark", "rule_score_benchmark",
                "rule_correlation_summary"}
    assert expected <= log_dirs, log_dirs  # per-job Slurm logs, one folder per rule or job group
    assert any(d.startswith("group_ingest") for d in log_dirs), log_dirs
    assert any(d.startswith("group_metrics") for d in log_dirs), log_dirs
    assert {p.stem for p in logs} >= submitted


def test_killed_job_reruns_only_the_unfinished_part(slurm_cluster, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    profile = slurm_profile(tmp_path / "profile")
    # first build everything up to the merged ads table, then run the rest and cancel its first job
    snakemake(workdir, "--profile", str(profile), "results/ads/ads.parquet", timeout=900)
    settings = yaml.safe_load((workdir / "config/config.yaml").read_text())
    settings["census"]["batch_rows"] = 100  # smaller batches: the census job runs long enough to be cancelled
    (workdir / "slow_census.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    config = ["--configfile", "slow_census.yaml"]
    env = dict(os.environ, PATH=f"{Path(SNAKEMAKE).parent}:{os.environ['PATH']}")

    run = subprocess.Popen(
        [SNAKEMAKE, "results/figures/delivery", "--profile", str(profile), "--retries", "0", *config],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )
    cancelled = None
    deadline = time.time() + 300
    while cancelled is None and time.time() < deadline and run.poll() is None:
        out = subprocess.run(["squeue", "-h", "-o", "%i|%t|%k"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            job, state, comment = line.split("|", 2)
            if "normalise_census" in comment and state in ("R", "CF", "PD"):
                subprocess.run(["scancel", job], check=True)
                cancelled = job
                break
        time.sleep(0.1)
    output, _ = run.communicate(timeout=600)
    assert cancelled, f"never saw the normalise_census job in squeue:\n{output[-3000:]}"
    assert run.returncode != 0, output[-3000:]
    assert f"results/logs/slurm/rule_normalise_census/{cancelled}.log" in output  # the failure names the job's Slurm log
    assert not (workdir / "results/ads/segments.parquet").exists()

    rerun = snakemake(workdir, "results/figures/delivery", "--profile", str(profile), *config, timeout=900)
    ran = set(re.findall(r"^rule (\w+):", rerun.stdout + rerun.stderr, flags=re.M))
    assert {"normalise_census", "delivery_figures"} <= ran
    assert not ran & {"demo_inputs", "ingest_dump", "merge_ads"}, ran
    assert (workdir / "results/ads/segments.parquet").exists()
