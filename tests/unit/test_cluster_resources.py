"""Every rule's sbatch arguments on the paper config, rendered by the Slurm executor plugin's own
argument builder from the resources of a dry run (nothing is submitted)."""
import re
import shlex
from types import SimpleNamespace

import pytest
import yaml
from snakemake_executor_plugin_slurm.submit_string import get_submit_command

from workflow_helpers import ROOT, paper_standin_workflow, profile_without_conda, snakemake

LOCAL_RULES = {"all"}


class Resources(dict):
    __getattr__ = dict.__getitem__


def dry_run_jobs(workdir, profile, configfile, *extra):
    out = snakemake(workdir, "all", "-n", "--profile", str(profile), *extra, "--configfile", str(configfile)).stdout
    jobs = []
    for block in re.split(r"^\s*rule ", out, flags=re.M)[1:]:
        name = block.split(":", 1)[0].strip()
        res = re.search(r"^\s*resources: (.*)$", block, flags=re.M)
        threads = re.search(r"^\s*threads: (\d+)", block, flags=re.M)
        values = {}
        for item in res.group(1).split(", ") if res else []:
            key, _, value = item.partition("=")
            values[key] = int(value) if value.isdigit() else value
        jobs.append(SimpleNamespace(name=name, resources=Resources(values), threads=int(threads.group(1)) if threads else 1))
    return out, jobs


def sbatch_args(job):
    params = {
        "run_uuid": "RUN", "slurm_logfile": "results/logs/slurm/x/%j.log", "comment_str": f"rule_{job.name}",
        "account": f"-A {shlex.quote(job.resources['slurm_account'])}",
        "partition": f"-p {shlex.quote(job.resources['slurm_partition'])}", "workdir": "/work",
    }
    return get_submit_command(job, params)


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    workdir, configfile = paper_standin_workflow(tmp_path_factory.mktemp("paper"), n_dumps=24)
    profile = profile_without_conda(ROOT / "profiles/slurm", workdir / "profile-nocondasdm")
    return workdir, configfile, profile


def test_every_rule_gets_portable_resources_and_the_profile_placement(paper):
    workdir, configfile, profile = paper
    _, jobs = dry_run_jobs(workdir, profile, configfile)
    rules = {j.name for j in jobs} - LOCAL_RULES
    smk_rules = set(re.findall(r"^rule (\w+):", "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk")), flags=re.M))
    assert rules == smk_rules - LOCAL_RULES - {"demo_inputs", "demo_external"}  # the paper config reads real files
    for job in jobs:
        if job.name in LOCAL_RULES:
            continue
        args = sbatch_args(job)
        assert f"--mem {job.resources['mem_mb']}" in args, args
        assert f"-t {job.resources['runtime']}" in args, args
        assert "-A YOUR_ACCOUNT" in args and "-p YOUR_CPU_PARTITION" in args, args
        assert f"--cpus-per-task={job.threads}" in args and "--ntasks=1" in args, args
        assert job.resources["mem_mb"] >= 1000 and job.resources["runtime"] >= 5


def test_partition_and_account_come_only_from_the_profile():
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        assert "slurm_partition" not in text and "slurm_account" not in text, smk


def test_retries_scale_memory_and_runtime(paper):
    workdir, configfile, profile = paper
    _, first = dry_run_jobs(workdir, profile, configfile)
    # the dry run always shows attempt 1; the scaling function itself is checked on attempts 1..3
    text = (ROOT / "rules/common.smk").read_text()
    namespace = {}
    exec(text[text.index("def by_attempt"):text.index("def demo_enabled")], namespace)
    scaled = namespace["by_attempt"](4000)
    assert [scaled(None, attempt) for attempt in (1, 2, 3)] == [4000, 8000, 12000]
    assert all(j.resources["mem_mb"] for j in first)


def test_small_jobs_are_grouped_into_few_submissions(paper):
    workdir, configfile, profile = paper
    profile_yaml = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert any(str(c).startswith("ingest=") for c in profile_yaml["group-components"])
    out, jobs = dry_run_jobs(workdir, profile, configfile)
    n_ingest = sum(j.name == "ingest_dump" for j in jobs)
    per_group = int(next(str(c) for c in profile_yaml["group-components"] if str(c).startswith("ingest=")).split("=")[1])
    groups = len(re.findall(r"Group job ingest", out))
    assert n_ingest == 24 and groups == -(-n_ingest // per_group)
