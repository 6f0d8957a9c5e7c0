# Config validation and the named input helpers every stage uses (no lambdas in rules). The registry logic
# (models, benchmarks, shard sets, tables) lives in the library, alpha.workflow.registry, with unit tests.
import hashlib
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, workflow.source_path("../config/schema.yaml"))

# The one place the workflow itself imports the library: entry scripts find `alpha` beside them (Python puts
# a script's own folder first on sys.path, for `script:` rules, python and torchrun alike).
SCRIPTS_DIR = Path(workflow.basedir) / "scripts"
sys.path.insert(0, str(SCRIPTS_DIR))
from alpha.workflow import code_deps, registry  # noqa: E402


wildcard_constraints:
    dump=r"[A-Za-z0-9_.-]+",
    shard=r"\d+",
    part=r"\d+",
    shard_set=r"[A-Za-z0-9_-]+",
    model=r"[A-Za-z0-9_.-]+",
    benchmark=r"[A-Za-z0-9_-]+",


def code_for(script):
    """The entry script and every library file it imports (transitively), relative to the working directory:
    a rule reruns exactly when code it runs changes, and a moved checkout reruns nothing."""
    return code_deps.code_for(script, workflow.basedir, SCRIPTS_DIR)


def _raise_problems(what, problems):
    if problems:
        raise WorkflowError(f"{what}:\n  " + "\n  ".join(problems))


DEMO_ADS = "results/demo/ads"
DEMO_DUMPS = {
    "current": {"path": f"{DEMO_ADS}/ads_current.jsonl"},
    "legacy": {"path": f"{DEMO_ADS}/ads_legacy.jsonl"},
    "single": {"path": f"{DEMO_ADS}/ads_single.json"},
    "page": {"path": f"{DEMO_ADS}/ads_page.json"},
    "wide": {"path": f"{DEMO_ADS}/ads_wide.csv"},
    "export": {
        "path": f"{DEMO_ADS}/ads_export.csv",
        "demographics": f"{DEMO_ADS}/ads_export_demos.csv",
        "regions": f"{DEMO_ADS}/ads_export_regions.csv",
    },
}
DEMO_MEDIA = f"{DEMO_ADS}/media_verbalisation.jsonl"
DEMO_EXTERNAL = "results/demo/external/sharegpt.json"
DEMO_BENCHMARKS = "results/demo/benchmarks"  # rule demo_benchmarks writes the six released layouts here


def by_attempt(base):
    """A resource that grows with each Slurm retry (--retries): base, 2 x base, 3 x base ..."""

    def scaled(wildcards, attempt):
        return base * attempt

    return scaled


def demo_enabled():
    return config["demo"]["enabled"]


def _require_files(paths_by_key):
    missing = {key: path for key, path in paths_by_key.items() if path and not Path(path).exists()}
    if missing:
        lines = "\n".join(f"  {key}: {path}" for key, path in missing.items())
        raise WorkflowError(
            f"Input files named in the config do not exist:\n{lines}\n"
            "Fix the paths (config/paper.yaml holds placeholders) or set demo.enabled: true."
        )


def _dumps():
    if demo_enabled():
        return DEMO_DUMPS
    dumps, problems = registry.dumps_from_config(config)
    if problems:
        raise WorkflowError(problems[0])
    return dumps


AD_DUMPS = _dumps()
AD_MEDIA = DEMO_MEDIA if demo_enabled() else config["ads"]["media_verbalisation"]
EXTERNAL_SETS = registry.external_sets(config)
SHARD_SETS = config["shards"]["sets"]
_raise_problems("Invalid shard sets in the config", registry.shard_set_problems(config))
_require_files(
    {
        **{f"census.{k}": config["census"][k] for k in ("state_population", "sex_age", "pr_municipios")},
        **(
            {}
            if demo_enabled()
            else {
                f"ads.dumps[{name}].{key}": entry.get(key)
                for name, entry in AD_DUMPS.items()
                for key in ("path", "demographics", "regions")
            }
            | {"ads.media_verbalisation": AD_MEDIA}
        ),
        **{f"shards.external.{name}.path": path for name, path in EXTERNAL_SETS.items() if path != DEMO_EXTERNAL},
    }
)


def get_dump_files(wildcards):
    entry = AD_DUMPS[wildcards.dump]
    files = {"dump": entry["path"]}
    for key in ("demographics", "regions"):
        if entry.get(key):
            files[key] = entry[key]
    if AD_MEDIA:
        files["media"] = AD_MEDIA
    return files


def get_dump_params(wildcards):
    return registry.dump_params(config, AD_DUMPS[wildcards.dump])


def get_ingested(kind):
    suffix = {"ads": "parquet", "quarantine": "quarantine.parquet", "report": "report.json"}[kind]
    return expand("results/ads/dumps/{dump}.{suffix}", dump=list(AD_DUMPS), suffix=suffix)


def get_final_targets(wildcards):
    return [
        "results/ads/ads.parquet",
        "results/ads/ingest_report.json",
        "results/ads/segments.parquet",
        "results/ads/census_report.json",
        "results/figures/delivery",
        *get_pair_shards(),
        "results/tasks/test/report.json",
        *expand("results/shards/{shard_set}", shard_set=sorted(SHARD_SETS)),
        *expand("results/datasets/{shard_set}", shard_set=sorted(SHARD_SETS)),
        *expand("results/train/{model}/metrics.json", model=FINETUNED),
        "results/train_tasks.csv",
        *get_table_outputs(),
    ]


def get_pair_shards():
    return expand("results/pairs/shards/{shard}.parquet", shard=range(config["pairs"]["n_shards"]))


def get_task_inputs(wildcards):
    """The per-ad tables every task builder reads."""
    return {
        "ads": "results/ads/ads.parquet",
        "segments": "results/ads/segments.parquet",
        "splits": "results/tasks/splits.parquet",
    }


def get_sample_files():
    return ["results/tasks/samples/ads.parquet"] + expand(
        "results/tasks/samples/pairs/{shard}.parquet", shard=range(config["pairs"]["n_shards"])
    )


def get_shard_set_external_files(wildcards):
    return [EXTERNAL_SETS[entry["name"]] for entry in registry.shard_set_external(config, wildcards.shard_set)]


def get_shard_set_spec(wildcards):
    return registry.shard_set_spec(config, wildcards.shard_set)


# ---------------------------------------------------------------- model registry

MODELS = config["models"]
TINY_BASE = registry.TINY_BASE
_raise_problems("Invalid model registry (models:) in the config", registry.model_problems(config))
FINETUNED = registry.finetuned(config)


def model_path(model):
    return registry.model_path(config, model)


def chat_template_of(model):
    return registry.chat_template_of(config, model)


def _local(path):
    # a hub id is resolved on the cluster; a folder (or a workflow output) is a real input
    return [path] if path.startswith("results/") or Path(path).exists() else []


def get_train_inputs(wildcards):
    model = wildcards.model
    problems = registry.recipe_problems(config, model)
    if problems:
        raise WorkflowError(problems[0])
    recipe = registry.recipe_of(config, model)
    return {
        "base": _local(registry.base_model_path(config, MODELS[model]["from"])),
        "shards": f"results/shards/{recipe['shard_set']}",
        "recipe": MODELS[model]["recipe"],
        "deepspeed": recipe["deepspeed"],
        "code": sorted(set(code_for("scripts/train.py") + code_for("scripts/launch_node.py"))),
    }


def get_train_resource(key):
    def resource(wildcards, attempt):
        geometry = registry.train_geometry(config, wildcards.model)
        if key == "tasks":
            return geometry["nodes"] * geometry["procs_per_node"]
        if key in ("mem_mb", "runtime"):
            return geometry[key] * attempt
        return geometry[key]

    return resource


def get_train_gres(wildcards):
    gpus = registry.train_geometry(config, wildcards.model)["gpus_per_node"]
    return f"gpu:{gpus}" if gpus else ""


def get_train_params(wildcards):
    """The launcher's geometry: ranks per node, and the srun step that starts one launcher per node."""
    g = registry.train_geometry(config, wildcards.model)
    template = chat_template_of(wildcards.model)
    return {
        "nproc": g["procs_per_node"],
        "srun": registry.srun_args(g),
        "threads_per_rank": g["cpus_per_task"],
        "base": registry.base_model_path(config, MODELS[wildcards.model]["from"]),
        "template": f"--chat-template {template}" if template else "",
        "overrides": registry.recipe_override_args(config, wildcards.model),
    }


def get_merge_base(wildcards):
    return _local(get_merge_base_id(wildcards))


def get_merge_base_id(wildcards):
    return registry.base_model_path(config, MODELS[wildcards.model]["from"])


def get_model_weights(wildcards):
    return _local(model_path(wildcards.model))


def train_eval_models():
    return registry.train_eval_models(config)


def get_train_eval_params(wildcards):
    return {
        "chat_template": chat_template_of(wildcards.model),
        "seed": config["seed"],
        **dict(sorted(config["train_eval"].items())),
    }


def get_model_dir(wildcards):
    return model_path(wildcards.model)


def embed_parts(ext):
    return expand("results/embeddings/parts/{part}{ext}", part=range(config["pairs"]["embed_jobs"]), ext=ext)


def keyword_parts(ext):
    return expand("results/tasks/keywords/parts/{part}{ext}", part=range(config["tasks"]["keywords"]["jobs"]), ext=ext)


def get_embed_gres(wildcards):
    gpus = config["pairs"]["embed_gpus"]
    return f"gpu:{gpus}" if gpus else ""


def get_eval_gres(wildcards):
    gpus = config["train_eval"]["gpus"]
    return f"gpu:{gpus}" if gpus else ""


# ---------------------------------------------------------------- benchmark registry and tables

BENCHMARKS = config["benchmarks"]
TABLE1_COLUMNS = list(registry.TABLE1_COLUMNS)
TABLE2_COLUMN = registry.TABLE2_VALUE
TASKS, _task_problems = registry.load_tasks(config)
_raise_problems("Invalid benchmark registry (benchmarks:) in the config", _task_problems)


def _benchmark_task(name):
    return registry.benchmark_task_name(config, name)


def _is_demo_benchmark(path):
    return path == DEMO_BENCHMARKS or path.startswith(f"{DEMO_BENCHMARKS}/")


def _task_file(name):
    # relative to the working directory, like every code input: a moved checkout reruns nothing
    return os.path.relpath(SCRIPTS_DIR / "alpha" / "eval" / "tasks" / f"{_benchmark_task(name)}.yaml")


_require_files(
    {
        f"benchmarks.{name}": path
        for name in BENCHMARKS
        for path in registry.benchmark_files(config, name)
        if not _is_demo_benchmark(path)
    }
)
if config["correlation"]["enabled"] and not _is_demo_benchmark(config["correlation"]["atp_waves"]):
    _require_files({"correlation.atp_waves": config["correlation"]["atp_waves"]})


def get_benchmark_inputs(wildcards):
    files = registry.benchmark_files(config, wildcards.benchmark)
    return {
        "files": sorted({DEMO_BENCHMARKS if _is_demo_benchmark(p) else p for p in files}),
        "task": _task_file(wildcards.benchmark),
    }


def get_benchmark_params(wildcards):
    entry = BENCHMARKS[wildcards.benchmark]
    return {
        "path": entry["path"],
        "task": _benchmark_task(wildcards.benchmark),
        # the variant changes the items only where prompts differ by variant (OpinionQA's compat prompts)
        "variant": entry["variant"] if TASKS[wildcards.benchmark].prompt_variants else None,
        "options": registry.sorted_deep(entry["options"]),
    }


def get_task_file(wildcards):
    return _task_file(wildcards.benchmark)


def get_score_params(wildcards):
    settings = {k: v for k, v in config["eval"].items() if k in ("batch_size", "max_tokens_per_batch", "on_too_long")}
    return {
        "task": _benchmark_task(wildcards.benchmark),
        "chat_template": chat_template_of(wildcards.model),
        # option orders only where the task has an option block: Yes/No tasks never rerun for this key
        **(
            {"permutations": config["eval"]["permutations"], "seed": config["seed"]}
            if _permutable(wildcards.benchmark)
            else {}
        ),
        **(
            {"mode": registry.benchmark_mode(config, wildcards.benchmark), "seed": config["seed"]}
            if registry.benchmark_mode(config, wildcards.benchmark) != "logprob"
            else {}
        ),
        **registry.sorted_deep(settings),
    }


def _permutable(benchmark):
    return (
        config["eval"]["permutations"] > 1
        and TASKS[benchmark].option_line is not None
        and registry.benchmark_mode(config, benchmark) == "logprob"
    )


def get_metric_params(wildcards):
    # eval.bootstrap lives here, not in get_score_params: changing it reruns the metrics and tables, never scoring
    return {
        "task": _benchmark_task(wildcards.benchmark),
        "variant": BENCHMARKS[wildcards.benchmark]["variant"],
        "bootstrap": _bootstrap_settings(),
    }


def _bootstrap_settings():
    """eval.bootstrap with the seed resolved (null: the top-level seed); None when n is 0 (no intervals)."""
    settings = config["eval"]["bootstrap"]
    if not settings["n"]:
        return None
    seed = config["seed"] if settings["seed"] is None else settings["seed"]
    return {"n": settings["n"], "seed": seed, "level": settings["level"]}


def get_score_gres(wildcards):
    gpus = MODELS[wildcards.model].get("eval_gpus", config["eval"]["gpus"])
    return f"gpu:{gpus}" if gpus else ""


def get_score_resource(key):
    def resource(wildcards, attempt):
        return config["eval"][key] * attempt

    return resource


def table_models():
    return registry.table_models(config)


def _benchmarks_with(columns):
    """Logprob-mode benchmarks with any of these table columns (the other modes fill results/elicitation.csv)."""
    return registry.benchmarks_with(registry.logprob_tasks(config, TASKS), columns)


def get_table_results(columns):
    def results(wildcards):
        return expand(
            "results/eval/{model}/{benchmark}.json",
            model=[name for name, _ in table_models()],
            benchmark=_benchmarks_with(columns),
        )

    return results


ABLATION_ROWS = registry.ablation_rows(config)


def get_ablation_results(wildcards):
    return expand(
        "results/eval/{model}/{benchmark}.json",
        model=[name for name, _ in ABLATION_ROWS],
        benchmark=_benchmarks_with(TABLE1_COLUMNS),
    )


def get_ablation_params(wildcards):
    return {
        "models": [[n, MODELS[n].get("label", n)] for n, _ in ABLATION_ROWS],
        "text": {n: text for n, text in ABLATION_ROWS},
    }


_raise_problems("Invalid model registry (models:) in the config", registry.out_of_tables_problems(config))

GROUNDED = config["eval"]["grounded"]
_raise_problems("Invalid eval.grounded in the config", registry.grounded_problems(config, TASKS))


def get_grounded_inputs(wildcards):
    judge = registry.judge_dir(config)
    return {
        "prepared": f"results/eval_items/{GROUNDED['benchmark']}.parquet",
        "weights": _local(model_path(wildcards.model)),
        "judge": _local(judge) if judge else [],
    }


def get_grounded_params(wildcards):
    judge = GROUNDED["judge_model"]
    return {
        "model_dir": model_path(wildcards.model),
        "chat_template": chat_template_of(wildcards.model),
        "judge_dir": registry.judge_dir(config),
        "judge_name": judge,
        "judge_template": chat_template_of(judge) if judge in MODELS else None,
        "seed": config["seed"],
        **registry.sorted_deep({k: v for k, v in GROUNDED.items() if k not in ("enabled", "judge_model")}),
    }


def get_correlation_waves(wildcards):
    path = config["correlation"]["atp_waves"]
    return DEMO_BENCHMARKS if _is_demo_benchmark(path) else path


def get_correlation_outputs():
    if not config["correlation"]["enabled"]:
        return []
    return ["results/correlation/summary.json", "results/figures/correlation"]


def get_table_outputs():
    outputs = get_correlation_outputs()
    if GROUNDED["enabled"]:
        outputs.append("results/culturebank_grounded.csv")
    if BENCHMARKS and ABLATION_ROWS:
        outputs.append("results/ablation.csv")
    if BENCHMARKS:
        outputs += ["results/table1.csv", "results/figures/table1.png"]
    if _benchmarks_with([TABLE2_COLUMN]):
        outputs.append("results/table2.csv")
    if registry.elicitation_benchmarks(config):
        outputs.append("results/elicitation.csv")
    return outputs


def _elicitation_benchmarks():
    """The sampled / verbalised entries and their logprob twins (same task), twins first."""
    elicited = registry.elicitation_benchmarks(config)
    tasks = {_benchmark_task(name) for name in elicited}
    twins = sorted(
        name
        for name in BENCHMARKS
        if _benchmark_task(name) in tasks and registry.benchmark_mode(config, name) == "logprob"
    )
    return twins + elicited


def get_elicitation_results(wildcards):
    return expand(
        "results/eval/{model}/{benchmark}.json",
        model=[name for name, _ in table_models()],
        benchmark=_elicitation_benchmarks(),
    )


def get_elicitation_params(wildcards):
    order = {mode: k for k, mode in enumerate(("logprob", "sampled", "verbalised"))}
    benchmarks = _elicitation_benchmarks()
    columns = [
        f"{column} [{registry.benchmark_mode(config, name)}]"
        for name in sorted(benchmarks, key=lambda n: (_benchmark_task(n), order[registry.benchmark_mode(config, n)], n))
        for column in TASKS[name].table_columns
    ]
    columns = sorted(columns, key=lambda c: (c.rsplit(" [", 1)[0], order[c.rsplit(" [", 1)[1][:-1]]))
    return {
        "models": [list(pair) for pair in table_models()],
        "modes": {name: registry.benchmark_mode(config, name) for name in benchmarks},
        "columns": columns,
    }


def get_table_params(wildcards):
    # rows follow the registry's order (the paper's), so reordering models rebuilds the tables, nothing else
    return {
        "models": [list(pair) for pair in table_models()],
        "cutoffs": {name: MODELS[name].get("knowledge_cutoff") for name in sorted(MODELS)},
        # fine-tune -> its registry base (from:): Table 1's paired differences (results/table1_delta.csv)
        "bases": {name: MODELS[name]["from"] for name in FINETUNED},
    }
