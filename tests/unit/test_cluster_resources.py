"""Every rule's sbatch arguments on the paper config, rendered by the Slurm executor plugin's own
argument builder from the resources of a dry run (nothing is submitted)."""
import re
import shlex
from types import SimpleNamespace

import pytest
import yaml
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

from workflow_helpers import ROOT, paper_standin_workflow, profile_without_conda, snakemake

LOCAL_RULES = {"all", "train_tasks_table", "table1", "table2", "plot_table1", "elicitation_table"}
GPU_RULES = {"train_model", "eval_train_tasks", "score_benchmark", "embed_ads"}
# not in the paper's DAG: it reads real files, trains no LoRA model and builds no tiny model; the
# ablation table needs ablation fine-tunes in the registry, the grounded evaluation is off by default
DEMO_ONLY_RULES = {"demo_inputs", "demo_external", "demo_benchmarks", "build_tiny_model", "merge_lora",
                   "ablation_table", "culturebank_grounded", "grounded_table"}


pytestmark = pytest.mark.workflow  # starts Snakemake: not part of make test-fast

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
    return get_submit_command(job, params) + set_gres_string(job)  # the plugin appends gres after the builder


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
    assert rules == smk_rules - LOCAL_RULES - DEMO_ONLY_RULES
    for job in jobs:
        if job.name in LOCAL_RULES or job.name in GPU_RULES:
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


def test_training_job_has_the_paper_geometry(paper):
    """4 nodes x 8 A100 80 GB = 32 ranks: one Slurm job per fine-tuned model, GPU partition from the profile."""
    workdir, configfile, profile = paper
    _, jobs = dry_run_jobs(workdir, profile, configfile)
    train = [j for j in jobs if j.name == "train_model"]
    assert len(train) == 4  # ALPHA-Llama-2 7B/13B/70B-chat and ALPHA-Llama-3-8B
    for job in train:
        args = shlex.split(sbatch_args(job))
        assert "--nodes=4" in args and "--ntasks=32" in args, args
        assert "--gres=gpu:8" in args, args
        assert "--cpus-per-task=12" in args, args
        assert args[args.index("--mem") + 1] == "900000" and args[args.index("-t") + 1] == "2880", args
        assert args[args.index("-p") + 1] == "YOUR_GPU_PARTITION" and args[args.index("-A") + 1] == "YOUR_ACCOUNT", args
        assert not any(a.startswith("--ntasks-per-gpu") for a in args), args  # torchrun places ranks on GPUs
        assert job.resources["mpi"] == "srun"


def test_training_launches_one_launcher_per_node(paper):
    workdir, configfile, profile = paper
    out = snakemake(workdir, "all", "-n", "-p", "--profile", str(profile), "--configfile", str(configfile)).stdout
    shells = [block for block in re.split(r"^\s*rule ", out, flags=re.M) if block.startswith("train_model:")]
    assert shells
    for block in shells:
        # inside the allocation: one srun task per node, each with the CPUs of its 8 ranks and the node's GPUs
        assert 'launch="srun --nodes=4 --ntasks=4 --ntasks-per-node=1 --cpus-per-task=96 --kill-on-bad-exit=1 --gres=gpu:8"' in block
        assert "scripts/launch_node.py --nproc-per-node 8 --" in block
        assert "--base meta-llama/" in block


def test_gpu_evaluation_gets_one_gpu(paper):
    workdir, configfile, profile = paper
    _, jobs = dry_run_jobs(workdir, profile, configfile)
    evals = [j for j in jobs if j.name == "eval_train_tasks"]
    assert evals
    for job in evals:
        args = shlex.split(sbatch_args(job))
        assert "--gres=gpu:1" in args and args[args.index("-p") + 1] == "YOUR_GPU_PARTITION", args


def test_embedding_jobs_each_get_a_gpu_on_the_gpu_partition(paper):
    workdir, configfile, profile = paper
    _, jobs = dry_run_jobs(workdir, profile, configfile)
    config = yaml.safe_load(configfile.read_text())
    embed = [j for j in jobs if j.name == "embed_ads"]
    assert len(embed) == config["pairs"]["embed_jobs"] > 1
    for job in embed:
        args = shlex.split(sbatch_args(job))
        assert f"--gres=gpu:{config['pairs']['embed_gpus']}" in args and args[args.index("-p") + 1] == "YOUR_GPU_PARTITION", args
    keywords = [j for j in jobs if j.name == "extract_keywords"]
    assert len(keywords) == config["tasks"]["keywords"]["jobs"] and all("gres" not in j.resources for j in keywords)


def test_benchmark_scoring_is_one_gpu_job_per_model_and_benchmark(paper):
    workdir, configfile, profile = paper
    out, jobs = dry_run_jobs(workdir, profile, configfile)
    config = yaml.safe_load(configfile.read_text())
    scoring = [j for j in jobs if j.name == "score_benchmark"]
    assert len(scoring) == len(config["models"]) * len(config["benchmarks"]) == 13 * 6
    gres = {}
    for job in scoring:
        args = shlex.split(sbatch_args(job))
        assert args[args.index("-p") + 1] == "YOUR_GPU_PARTITION", args
        gres[job.resources["gres"]] = gres.get(job.resources["gres"], 0) + 1
        assert f"--gres={job.resources['gres']}" in args, args
    # one GPU each, but four for the 70B base and fine-tune and two for Mixtral (models.<name>.eval_gpus)
    assert gres == {"gpu:1": 10 * 6, "gpu:4": 2 * 6, "gpu:2": 1 * 6}
    # metrics: CPU jobs, batched into few submissions
    per_group = int(next(str(c) for c in yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())["group-components"]
                         if str(c).startswith("metrics=")).split("=")[1])
    assert len(re.findall(r"Group job metrics", out)) == -(-78 // per_group)
