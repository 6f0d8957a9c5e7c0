# Config validation and the named input helpers every stage uses (no lambdas in rules).
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, workflow.source_path("../config/schema.yaml"))


wildcard_constraints:
    dump=r"[A-Za-z0-9_.-]+",
    shard=r"\d+",
    shard_set=r"[A-Za-z0-9_-]+",
    model=r"[A-Za-z0-9_.-]+",
    benchmark=r"[A-Za-z0-9_-]+",


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
TEST_SPLITS = ("test_unseen_advertiser", "test_after_cutoff")  # alpha.samples.TEST_SPLITS (tested)
TASK_FAMILIES = ("TAG", "TAP", "TC", "TS")
TASK_NAMES = ("TAG", "TAP-G", "TAP-A", "TAP-R", "TC-A", "TC-G", "TC-R", "TS-E", "TS-B")


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


def _dumps_from_config():
    dumps = {}
    for i, entry in enumerate(config["ads"]["dumps"]):
        name = entry.get("name") or Path(entry["path"]).name.split(".")[0]
        if name in dumps:
            raise WorkflowError(f"ads.dumps[{i}]: dump name {name!r} is used twice; give each a unique name:")
        dumps[name] = entry
    return dumps


AD_DUMPS = DEMO_DUMPS if demo_enabled() else _dumps_from_config()
AD_MEDIA = DEMO_MEDIA if demo_enabled() else config["ads"]["media_verbalisation"]
EXTERNAL_SETS = {name: entry["path"] for name, entry in sorted(config["shards"]["external"].items())}
SHARD_SETS = config["shards"]["sets"]


def _check_shard_sets():
    problems = []
    for set_name, spec in SHARD_SETS.items():
        for key in spec["caps"]:
            if key not in TASK_FAMILIES + TASK_NAMES:
                known = ", ".join((*TASK_FAMILIES, *TASK_NAMES))
                problems.append(f"shards.sets.{set_name}.caps.{key}: not a task or family ({known})")
        for entry in spec.get("external", []):
            if entry["name"] not in EXTERNAL_SETS:
                problems.append(f"shards.sets.{set_name}.external: {entry['name']!r} is not defined under shards.external")
    if problems:
        raise WorkflowError("Invalid shard sets in the config:\n  " + "\n  ".join(problems))


_check_shard_sets()

if not AD_DUMPS:
    raise WorkflowError("ads.dumps is empty: list at least one dump file, or set demo.enabled: true.")
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
    # key order is fixed: Snakemake compares params by their text, so a reordered config must not rerun
    entry = AD_DUMPS[wildcards.dump]
    floor = entry.get("min_kept_share")
    return {
        "columns": dict(sorted(entry.get("columns", {}).items())),
        "encoding": entry.get("encoding"),
        "format": entry.get("format"),
        "layout": entry.get("layout", "auto"),
        "min_kept_share": config["ads"]["min_kept_share"] if floor is None else floor,
        "wide_regions": list(entry.get("wide_regions", [])),
    }


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
        *expand("results/train/{model}/metrics.json", model=FINETUNED),
        "results/train_tasks.csv",
        *get_table_outputs(),
    ]


def get_pair_shards():
    return expand("results/pairs/shards/{shard}.parquet", shard=range(config["pairs"]["n_shards"]))


def get_task_inputs(wildcards):
    """The per-ad tables every task builder reads, and the library code that defines the tasks."""
    return {
        "ads": "results/ads/ads.parquet",
        "segments": "results/ads/segments.parquet",
        "splits": "results/tasks/splits.parquet",
        "code": [workflow.source_path(f"../scripts/alpha/{m}.py") for m in ("tasks", "prompts", "samples")],
    }


def get_sample_files():
    return ["results/tasks/samples/ads.parquet"] + expand(
        "results/tasks/samples/pairs/{shard}.parquet", shard=range(config["pairs"]["n_shards"])
    )


def _shard_set_external(set_name):
    return sorted(SHARD_SETS[set_name].get("external", []), key=lambda entry: entry["name"])


def get_shard_set_external_files(wildcards):
    return [EXTERNAL_SETS[entry["name"]] for entry in _shard_set_external(wildcards.shard_set)]


def get_shard_set_spec(wildcards):
    # key-sorted: Snakemake compares params by their text
    spec = SHARD_SETS[wildcards.shard_set]
    return {
        "caps": dict(sorted(spec["caps"].items())),
        "external": [
            {"name": e["name"], "path": EXTERNAL_SETS[e["name"]], "ratio": e["ratio"]}
            for e in _shard_set_external(wildcards.shard_set)
        ],
        "n_shards": spec["n_shards"],
    }


# ---------------------------------------------------------------- model registry

MODELS = config["models"]
TINY_BASE = "results/models/tiny"  # registry base "tiny": built by rule build_tiny_model


def _check_models():
    problems = []
    for name, entry in MODELS.items():
        parent = entry.get("from")
        if parent is not None and (parent not in MODELS or "from" in MODELS[parent]):
            problems.append(f"models.{name}.from: {parent!r} is not a base model of the registry")
        recipe = entry.get("recipe")
        if recipe and not Path(recipe).exists():
            problems.append(f"models.{name}.recipe: {recipe} does not exist")
        unknown = set(entry.get("train", {})) - set(config["train"])
        if unknown:
            problems.append(f"models.{name}.train: unknown keys {sorted(unknown)} (known: {', '.join(config['train'])})")
    if problems:
        raise WorkflowError("Invalid model registry (models:) in the config:\n  " + "\n  ".join(problems))


_check_models()
FINETUNED = sorted(name for name, entry in MODELS.items() if "from" in entry)


def recipe_of(model):
    """The model's recipe with its registry `recipe_overrides` applied (e.g. an ablation's shard_set)."""
    import yaml

    recipe = yaml.safe_load(Path(MODELS[model]["recipe"]).read_text()) or {}
    return {**recipe, **MODELS[model].get("recipe_overrides", {})}


def is_lora(model):
    return bool(recipe_of(model).get("lora", False))


def recipe_override_args(model):
    """`--set key=value` arguments for train.py (values as YAML, shell-quoted), key-sorted."""
    import shlex

    import yaml

    overrides = MODELS[model].get("recipe_overrides", {})
    def as_yaml(value):
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

    return " ".join(f"--set {shlex.quote(f'{k}={as_yaml(v)}')}" for k, v in sorted(overrides.items()))


def base_model_path(model):
    """Weights a registry base model starts from: the built tiny model, a local folder, or a hub id."""
    base = MODELS[model]["base"]
    return TINY_BASE if base == "tiny" else base


def model_path(model):
    """The weights every evaluation reads: base weights, a full fine-tune, or a LoRA fine-tune merged."""
    if "from" not in MODELS[model]:
        return base_model_path(model)
    return f"results/train/{model}/merged" if is_lora(model) else f"results/train/{model}/model"


def chat_template_of(model):
    entry = MODELS[model]
    return entry.get("chat_template") or (MODELS[entry["from"]].get("chat_template") if "from" in entry else None)


def _local(path):
    # a hub id is resolved on the cluster; a folder (or a workflow output) is a real input
    return [path] if path.startswith("results/") or Path(path).exists() else []


def get_train_inputs(wildcards):
    entry = MODELS[wildcards.model]
    recipe = recipe_of(wildcards.model)
    if "deepspeed" not in recipe or "shard_set" not in recipe:
        raise WorkflowError(f"{entry['recipe']}: a recipe names its shard_set and deepspeed config")
    if recipe["shard_set"] not in SHARD_SETS:
        raise WorkflowError(f"{entry['recipe']}: shard_set {recipe['shard_set']!r} is not in shards.sets")
    return {
        "base": _local(base_model_path(entry["from"])),
        "shards": f"results/shards/{recipe['shard_set']}",
        "recipe": entry["recipe"],
        "deepspeed": recipe["deepspeed"],
        "code": [workflow.source_path(f"../scripts/alpha/{m}.py") for m in ("train", "chat", "launch")],
    }


def train_geometry(model):
    return {**config["train"], **MODELS[model].get("train", {})}


def get_train_resource(key):
    def resource(wildcards, attempt):
        geometry = train_geometry(wildcards.model)
        if key == "tasks":
            return geometry["nodes"] * geometry["procs_per_node"]
        if key in ("mem_mb", "runtime"):
            return geometry[key] * attempt
        return geometry[key]

    return resource


def get_train_gres(wildcards):
    gpus = train_geometry(wildcards.model)["gpus_per_node"]
    return f"gpu:{gpus}" if gpus else ""


def get_train_params(wildcards):
    """The launcher's geometry: ranks per node, and the srun step that starts one launcher per node."""
    g = train_geometry(wildcards.model)
    srun = (f"--nodes={g['nodes']} --ntasks={g['nodes']} --ntasks-per-node=1 "
            f"--cpus-per-task={g['cpus_per_task'] * g['procs_per_node']} --kill-on-bad-exit=1")
    if g["gpus_per_node"]:
        srun += f" --gres=gpu:{g['gpus_per_node']}"
    base = base_model_path(MODELS[wildcards.model]["from"])
    template = chat_template_of(wildcards.model)
    return {
        "nproc": g["procs_per_node"],
        "srun": srun,
        "threads_per_rank": g["cpus_per_task"],
        "base": base,
        "template": f"--chat-template {template}" if template else "",
        "overrides": recipe_override_args(wildcards.model),
    }


def get_merge_base(wildcards):
    return _local(base_model_path(MODELS[wildcards.model]["from"]))


def get_merge_base_id(wildcards):
    return base_model_path(MODELS[wildcards.model]["from"])


def get_model_weights(wildcards):
    return _local(model_path(wildcards.model))


def train_eval_models():
    """Every fine-tuned model and the base it starts from (paper 4.1: base vs fine-tuned)."""
    names = set(FINETUNED) | {MODELS[m]["from"] for m in FINETUNED}
    return sorted(names)


def get_train_eval_params(wildcards):
    return {
        "chat_template": chat_template_of(wildcards.model),
        "seed": config["seed"],
        **dict(sorted(config["train_eval"].items())),
    }


def get_model_dir(wildcards):
    return model_path(wildcards.model)


def get_eval_gres(wildcards):
    gpus = config["train_eval"]["gpus"]
    return f"gpu:{gpus}" if gpus else ""


# ---------------------------------------------------------------- benchmark registry and tables

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))  # the alpha package: task specs, metric registry
from alpha import evaluation as _evaluation, tables as _tables  # noqa: E402

BENCHMARKS = config["benchmarks"]
TABLE1_COLUMNS = list(_tables.TABLE1_COLUMNS)
TABLE2_COLUMN = _tables.TABLE2_VALUE


def _benchmark_task(name):
    return BENCHMARKS[name].get("task", name)


def _load_tasks():
    tasks, problems = {}, []
    for name, entry in BENCHMARKS.items():
        try:
            tasks[name] = _evaluation.load_task(_benchmark_task(name))
        except _evaluation.TaskSpecError as exc:
            problems.append(f"benchmarks.{name}.task: {exc}")
            continue
        problems += _evaluation.check_benchmark(name, tasks[name], entry["variant"])
    columns = {}
    for name, task in tasks.items():
        for column in task.table_columns:
            if column in columns:
                problems.append(f"benchmarks.{name}: table column {column!r} also comes from benchmarks.{columns[column]}")
            columns[column] = name
    if problems:
        raise WorkflowError("Invalid benchmark registry (benchmarks:) in the config:\n  " + "\n  ".join(problems))
    return tasks


TASKS = _load_tasks()


def _benchmark_files(name):
    """The benchmark's released files, and a field-dates file named in its options."""
    entry = BENCHMARKS[name]
    paths = [entry["path"]]
    if isinstance(entry["options"].get("field_dates"), str):
        paths.append(entry["options"]["field_dates"])
    return paths


def _is_demo_benchmark(path):
    return path == DEMO_BENCHMARKS or path.startswith(f"{DEMO_BENCHMARKS}/")


_require_files(
    {
        f"benchmarks.{name}": path
        for name in BENCHMARKS
        for path in _benchmark_files(name)
        if not _is_demo_benchmark(path)
    }
)
if config["correlation"]["enabled"] and not _is_demo_benchmark(config["correlation"]["atp_waves"]):
    _require_files({"correlation.atp_waves": config["correlation"]["atp_waves"]})


def get_benchmark_inputs(wildcards):
    files = _benchmark_files(wildcards.benchmark)
    task = _benchmark_task(wildcards.benchmark)
    loader_modules = ("__init__", "atp", "nominal", "opinionqa", "gss", "globalopinionqa", "culturebank", "culturenli")
    return {
        "files": sorted({DEMO_BENCHMARKS if _is_demo_benchmark(p) else p for p in files}),
        "task": str(_evaluation.task_file(task)),
        "code": [workflow.source_path(f"../scripts/alpha/benchmarks/{m}.py") for m in loader_modules]
        + [workflow.source_path("../scripts/alpha/evaluation.py")],
    }


def _sorted_deep(value):
    # Snakemake compares params by their text: nested mappings key-sorted, so a reordered config never reruns
    if isinstance(value, dict):
        return {str(k): _sorted_deep(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list):
        return [_sorted_deep(v) for v in value]
    return value


def get_benchmark_params(wildcards):
    entry = BENCHMARKS[wildcards.benchmark]
    return {
        "path": entry["path"],
        "task": _benchmark_task(wildcards.benchmark),
        # the variant changes the items only where prompts differ by variant (OpinionQA's compat prompts)
        "variant": entry["variant"] if TASKS[wildcards.benchmark].prompt_variants else None,
        "options": _sorted_deep(entry["options"]),
    }


def get_task_file(wildcards):
    return str(_evaluation.task_file(_benchmark_task(wildcards.benchmark)))


def get_score_params(wildcards):
    return {
        "task": _benchmark_task(wildcards.benchmark),
        "chat_template": chat_template_of(wildcards.model),
        **_sorted_deep({k: v for k, v in config["eval"].items() if k in ("batch_size", "max_tokens_per_batch", "on_too_long")}),
    }


def get_metric_params(wildcards):
    return {"task": _benchmark_task(wildcards.benchmark), "variant": BENCHMARKS[wildcards.benchmark]["variant"]}


def get_score_gres(wildcards):
    gpus = MODELS[wildcards.model].get("eval_gpus", config["eval"]["gpus"])
    return f"gpu:{gpus}" if gpus else ""


def get_score_resource(key):
    def resource(wildcards, attempt):
        return config["eval"][key] * attempt

    return resource


def table_models():
    """(registry name, row label) in registry order: the rows of Table 1 and Table 2 (models trained
    only for the ablation, ``in_tables: false``, are left out)."""
    return [(name, entry.get("label", name)) for name, entry in MODELS.items() if entry.get("in_tables", True)]


def _benchmarks_with(columns):
    return sorted(name for name, task in TASKS.items() if set(task.table_columns) & set(columns))


def get_table_results(columns):
    def results(wildcards):
        return expand(
            "results/eval/{model}/{benchmark}.json",
            model=[name for name, _ in table_models()],
            benchmark=_benchmarks_with(columns),
        )

    return results


def _task_families(shard_set):
    return sorted({key.split("-")[0] for key in SHARD_SETS[shard_set]["caps"]})


def ablation_rows():
    """The per-task ablation table's rows: every base that has a fine-tune trained on fewer than the four
    task families, then its fine-tunes (registry order), with what each was trained on."""
    trained = {m: recipe_of(m)["shard_set"] for m in FINETUNED}
    ablated = {MODELS[m]["from"] for m, s in trained.items() if len(_task_families(s)) < len(TASK_FAMILIES)}
    rows = []
    for name, entry in MODELS.items():
        if name in ablated:
            rows.append((name, {"Tasks": "none (base model)", "Shard set": ""}))
            rows += [(m, {"Tasks": " + ".join(_task_families(trained[m])), "Shard set": trained[m]})
                     for m in MODELS if MODELS[m].get("from") == name]
    return rows


def get_ablation_results(wildcards):
    return expand(
        "results/eval/{model}/{benchmark}.json",
        model=[name for name, _ in ablation_rows()],
        benchmark=_benchmarks_with(TABLE1_COLUMNS),
    )


def get_ablation_params(wildcards):
    rows = ablation_rows()
    return {"models": [[n, MODELS[n].get("label", n)] for n, _ in rows], "text": {n: text for n, text in rows}}


def _check_out_of_tables():
    in_ablation = {name for name, _ in ablation_rows()}
    nowhere = [name for name, entry in MODELS.items() if not entry.get("in_tables", True) and name not in in_ablation]
    if nowhere:
        raise WorkflowError(
            f"models {nowhere} have in_tables: false but are not part of the per-task ablation (a fine-tune "
            "on fewer than the four task families, or the base of one), so no table would show them: "
            "remove in_tables: false, or the models."
        )


_check_out_of_tables()


GROUNDED = config["eval"]["grounded"]


def _check_grounded():
    if not GROUNDED["enabled"]:
        return
    problems = []
    if bool(GROUNDED["judge_model"]) == bool(GROUNDED["judge_url"]):
        problems.append("give exactly one of judge_model (a local causal LM) and judge_url (an OpenAI-compatible endpoint)")
    bench = GROUNDED["benchmark"]
    if bench not in BENCHMARKS or TASKS[bench].loader != "culturebank":
        problems.append(f"benchmark {bench!r} is not a registry benchmark with the culturebank loader")
    judge = GROUNDED["judge_model"]
    if judge and judge not in MODELS and not Path(judge).is_dir():
        problems.append(f"judge_model {judge!r} is neither a registry model nor a local folder")
    if problems:
        raise WorkflowError("Invalid eval.grounded in the config:\n  " + "\n  ".join(problems))


_check_grounded()


def _judge_dir():
    judge = GROUNDED["judge_model"]
    return model_path(judge) if judge in MODELS else judge


def get_grounded_inputs(wildcards):
    judge = _judge_dir() if GROUNDED["judge_model"] else None
    return {
        "prepared": f"results/eval_items/{GROUNDED['benchmark']}.parquet",
        "weights": _local(model_path(wildcards.model)),
        "judge": _local(judge) if judge else [],
        "code": [workflow.source_path(f"../scripts/alpha/{m}.py") for m in ("grounded", "scoring", "chat")],
    }


def get_grounded_params(wildcards):
    judge = GROUNDED["judge_model"]
    return {
        "model_dir": model_path(wildcards.model),
        "chat_template": chat_template_of(wildcards.model),
        "judge_dir": _judge_dir() if judge else None,
        "judge_name": judge,
        "judge_template": chat_template_of(judge) if judge in MODELS else None,
        "seed": config["seed"],
        **_sorted_deep({k: v for k, v in GROUNDED.items() if k not in ("enabled", "judge_model")}),
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
    if BENCHMARKS and ablation_rows():
        outputs.append("results/ablation.csv")
    if BENCHMARKS:
        outputs += ["results/table1.csv", "results/figures/table1.png"]
    if _benchmarks_with([TABLE2_COLUMN]):
        outputs.append("results/table2.csv")
    return outputs


def get_table_params(wildcards):
    # rows follow the registry's order (the paper's), so reordering models rebuilds the tables, nothing else
    return {
        "models": [list(pair) for pair in table_models()],
        "cutoffs": {name: MODELS[name].get("knowledge_cutoff") for name in sorted(MODELS)},
    }
