"""The config's registries as pure functions over the (schema-validated) config dict: ad dumps, shard
sets, the model registry, the benchmark registry, table membership and the grounded evaluation.

``rules/common.smk`` calls these to build the DAG; every ``*_problems`` function returns the problems it
finds as text (empty when the config is fine) and the rules raise them as one ``WorkflowError``. Only
``yaml`` and the light task-spec reader are imported here, so building the DAG loads no data library;
checking a benchmark's loader and metric names (``check_benchmark``) imports the loader and metric
registries on first use.
"""
from __future__ import annotations

import copy
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from alpha.eval.columns import TABLE1_COLUMNS, TABLE2_VALUE  # noqa: F401  (the Snakefile reads them here)
from alpha.eval.task_spec import VARIANTS, TaskSpec, TaskSpecError, load_task
from alpha.tasks.names import FAMILIES as TASK_FAMILIES
from alpha.tasks.names import TASKS as TASK_NAMES

TINY_BASE = "results/models/tiny"  # registry base "tiny": built by rule build_tiny_model


def sorted_deep(value: Any) -> Any:
    """Nested mappings key-sorted: Snakemake compares params by their text, so a reordered config never reruns."""
    if isinstance(value, dict):
        return {str(k): sorted_deep(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list):
        return [sorted_deep(v) for v in value]
    return value


# ---------------------------------------------------------------- ad dumps


def dumps_from_config(config: Mapping) -> tuple[dict[str, dict], list[str]]:
    """{dump name: entry} from ``ads.dumps`` (a name defaults to the file name up to its first dot)."""
    dumps, problems = {}, []
    for i, entry in enumerate(config["ads"]["dumps"]):
        name = entry.get("name") or Path(entry["path"]).name.split(".")[0]
        if name in dumps:
            problems.append(f"ads.dumps[{i}]: dump name {name!r} is used twice; give each a unique name:")
            continue
        dumps[name] = entry
    if not config["ads"]["dumps"]:
        problems.append("ads.dumps is empty: list at least one dump file, or set demo.enabled: true.")
    return dumps, problems


def dump_params(config: Mapping, entry: Mapping) -> dict:
    """What rule ingest_dump reads of one dump entry (key order fixed: params are compared by their text)."""
    floor = entry.get("min_kept_share")
    return {
        "columns": dict(sorted(entry.get("columns", {}).items())),
        "encoding": entry.get("encoding"),
        "format": entry.get("format"),
        "layout": entry.get("layout", "auto"),
        "min_kept_share": config["ads"]["min_kept_share"] if floor is None else floor,
        "wide_regions": list(entry.get("wide_regions", [])),
    }


# ---------------------------------------------------------------- shard sets


def external_sets(config: Mapping) -> dict[str, str]:
    return {name: entry["path"] for name, entry in sorted(config["shards"]["external"].items())}


def shard_set_problems(config: Mapping) -> list[str]:
    problems = []
    known_external = external_sets(config)
    for set_name, spec in config["shards"]["sets"].items():
        for key in spec["caps"]:
            if key not in TASK_FAMILIES + TASK_NAMES:
                known = ", ".join((*TASK_FAMILIES, *TASK_NAMES))
                problems.append(f"shards.sets.{set_name}.caps.{key}: not a task or family ({known})")
        for entry in spec.get("external", []):
            if entry["name"] not in known_external:
                problems.append(f"shards.sets.{set_name}.external: {entry['name']!r} is not defined under shards.external")
    return problems


def shard_set_external(config: Mapping, set_name: str) -> list[dict]:
    return sorted(config["shards"]["sets"][set_name].get("external", []), key=lambda entry: entry["name"])


def shard_set_spec(config: Mapping, set_name: str) -> dict:
    """What rule make_shards reads of one shard set (key-sorted)."""
    spec = config["shards"]["sets"][set_name]
    paths = external_sets(config)
    return {
        "caps": dict(sorted(spec["caps"].items())),
        "external": [{"name": e["name"], "path": paths[e["name"]], "ratio": e["ratio"]}
                     for e in shard_set_external(config, set_name)],
        "n_shards": spec["n_shards"],
    }


def task_families(config: Mapping, shard_set: str) -> list[str]:
    return sorted({key.split("-")[0] for key in config["shards"]["sets"][shard_set]["caps"]})


# ---------------------------------------------------------------- model registry


def model_problems(config: Mapping) -> list[str]:
    models, problems = config["models"], []
    for name, entry in models.items():
        parent = entry.get("from")
        if parent is not None and (parent not in models or "from" in models[parent]):
            problems.append(f"models.{name}.from: {parent!r} is not a base model of the registry")
        recipe = entry.get("recipe")
        if recipe and not Path(recipe).exists():
            problems.append(f"models.{name}.recipe: {recipe} does not exist")
        unknown = set(entry.get("train", {})) - set(config["train"])
        if unknown:
            problems.append(f"models.{name}.train: unknown keys {sorted(unknown)} (known: {', '.join(config['train'])})")
    return problems


def finetuned(config: Mapping) -> list[str]:
    return sorted(name for name, entry in config["models"].items() if "from" in entry)


@lru_cache(maxsize=None)
def _read_recipe(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text()) or {}


def recipe_of(config: Mapping, model: str) -> dict:
    """The model's recipe with its registry ``recipe_overrides`` applied (e.g. an ablation's shard_set)."""
    entry = config["models"][model]
    return {**copy.deepcopy(_read_recipe(entry["recipe"])), **entry.get("recipe_overrides", {})}


def recipe_problems(config: Mapping, model: str) -> list[str]:
    recipe, path = recipe_of(config, model), config["models"][model]["recipe"]
    if "deepspeed" not in recipe or "shard_set" not in recipe:
        return [f"{path}: a recipe names its shard_set and deepspeed config"]
    if recipe["shard_set"] not in config["shards"]["sets"]:
        return [f"{path}: shard_set {recipe['shard_set']!r} is not in shards.sets"]
    return []


def is_lora(config: Mapping, model: str) -> bool:
    return bool(recipe_of(config, model).get("lora", False))


def recipe_override_args(config: Mapping, model: str) -> str:
    """``--set key=value`` arguments for train.py (values as YAML, shell-quoted), key-sorted."""

    def as_yaml(value):
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

    overrides = config["models"][model].get("recipe_overrides", {})
    return " ".join(f"--set {shlex.quote(f'{k}={as_yaml(v)}')}" for k, v in sorted(overrides.items()))


def base_model_path(config: Mapping, model: str) -> str:
    """Weights a registry base model starts from: the built tiny model, a local folder, or a hub id."""
    base = config["models"][model]["base"]
    return TINY_BASE if base == "tiny" else base


def model_path(config: Mapping, model: str) -> str:
    """The weights every evaluation reads: base weights, a full fine-tune, or a LoRA fine-tune merged."""
    if "from" not in config["models"][model]:
        return base_model_path(config, model)
    return f"results/train/{model}/merged" if is_lora(config, model) else f"results/train/{model}/model"


def chat_template_of(config: Mapping, model: str) -> str | None:
    models = config["models"]
    entry = models[model]
    return entry.get("chat_template") or (models[entry["from"]].get("chat_template") if "from" in entry else None)


def train_geometry(config: Mapping, model: str) -> dict:
    return {**config["train"], **config["models"][model].get("train", {})}


def srun_args(geometry: Mapping) -> str:
    """The srun step that starts one training launcher per node."""
    g = geometry
    srun = (f"--nodes={g['nodes']} --ntasks={g['nodes']} --ntasks-per-node=1 "
            f"--cpus-per-task={g['cpus_per_task'] * g['procs_per_node']} --kill-on-bad-exit=1")
    if g["gpus_per_node"]:
        srun += f" --gres=gpu:{g['gpus_per_node']}"
    return srun


def train_eval_models(config: Mapping) -> list[str]:
    """Every fine-tuned model and the base it starts from (paper 4.1: base vs fine-tuned)."""
    tuned = finetuned(config)
    return sorted(set(tuned) | {config["models"][m]["from"] for m in tuned})


# ---------------------------------------------------------------- benchmark registry


def benchmark_task_name(config: Mapping, name: str) -> str:
    return config["benchmarks"][name].get("task", name)


def benchmark_mode(config: Mapping, name: str) -> str:
    """How the benchmark reads the models' opinions: logprob (Table 1), sampled or verbalised."""
    return config["benchmarks"][name].get("mode", "logprob")


def logprob_tasks(config: Mapping, tasks: Mapping[str, TaskSpec]) -> dict[str, TaskSpec]:
    """The benchmarks whose cells fill Table 1 / Table 2 / the ablation (the logprob mode)."""
    return {name: task for name, task in tasks.items() if benchmark_mode(config, name) == "logprob"}


def elicitation_benchmarks(config: Mapping) -> list[str]:
    """Registry benchmarks in the sampled or verbalised mode (results/elicitation.csv, not Table 1)."""
    return sorted(name for name in config["benchmarks"] if benchmark_mode(config, name) != "logprob")


def check_benchmark(name: str, task: TaskSpec, variant: str) -> list[str]:
    """Problems with running ``task`` in metric ``variant`` (empty when fine): unknown loader or metric,
    a metric without that variant."""
    from alpha.eval.loaders import get_loader
    from alpha.eval.metrics import UnknownMetricError, get_metric

    problems = []
    try:
        get_loader(task.loader)
    except LookupError as exc:
        problems.append(f"benchmarks.{name}: {exc}")
    if variant not in VARIANTS:
        problems.append(f"benchmarks.{name}.variant: {variant!r} is not one of {', '.join(VARIANTS)}")
        return problems
    for m in task.metrics:
        try:
            get_metric(m.metric, variant)
        except UnknownMetricError as exc:
            problems.append(f"benchmarks.{name} ({task.name}, column {m.column!r}): {exc}")
    return problems


def load_tasks(config: Mapping) -> tuple[dict[str, TaskSpec], list[str]]:
    """Every registry benchmark's task spec, and the problems: malformed specs, unknown loaders or metrics,
    a table column claimed by two benchmarks."""
    tasks, problems = {}, []
    for name, entry in config["benchmarks"].items():
        try:
            tasks[name] = load_task(benchmark_task_name(config, name))
        except TaskSpecError as exc:
            problems.append(f"benchmarks.{name}.task: {exc}")
            continue
        problems += check_benchmark(name, tasks[name], entry["variant"])
    for name in elicitation_benchmarks(config):  # side by side in one table: one metric variant per task
        twins = [t for t in config["benchmarks"] if benchmark_mode(config, t) == "logprob"
                 and benchmark_task_name(config, t) == benchmark_task_name(config, name)]
        for twin in twins:
            if config["benchmarks"][twin]["variant"] != config["benchmarks"][name]["variant"]:
                problems.append(f"benchmarks.{name} (mode {benchmark_mode(config, name)}) uses variant "
                                f"{config['benchmarks'][name]['variant']!r} but its logprob twin benchmarks.{twin} uses "
                                f"{config['benchmarks'][twin]['variant']!r}: results/elicitation.csv compares them, give both one variant")
    columns: dict[str, str] = {}
    for name, task in tasks.items():
        if benchmark_mode(config, name) != "logprob":  # its cells go to the elicitation table, renamed by mode
            continue
        for column in task.table_columns:
            if column in columns:
                problems.append(f"benchmarks.{name}: table column {column!r} also comes from benchmarks.{columns[column]}")
            columns[column] = name
    return tasks, problems


def benchmark_files(config: Mapping, name: str) -> list[str]:
    """The benchmark's released files, and a field-dates file named in its options."""
    entry = config["benchmarks"][name]
    paths = [entry["path"]]
    if isinstance(entry["options"].get("field_dates"), str):
        paths.append(entry["options"]["field_dates"])
    return paths


def benchmarks_with(tasks: Mapping[str, TaskSpec], columns) -> list[str]:
    return sorted(name for name, task in tasks.items() if set(task.table_columns) & set(columns))


# ---------------------------------------------------------------- tables


def table_models(config: Mapping) -> list[tuple[str, str]]:
    """(registry name, row label) in registry order: the rows of Table 1 and Table 2 (models trained
    only for the ablation, ``in_tables: false``, are left out)."""
    return [(name, entry.get("label", name)) for name, entry in config["models"].items() if entry.get("in_tables", True)]


def ablation_rows(config: Mapping) -> list[tuple[str, dict]]:
    """The per-task ablation table's rows: every base that has a fine-tune trained on fewer than the four
    task families, then its fine-tunes (registry order), with what each was trained on."""
    models = config["models"]
    trained = {m: recipe_of(config, m)["shard_set"] for m in finetuned(config)}
    ablated = {models[m]["from"] for m, s in trained.items() if len(task_families(config, s)) < len(TASK_FAMILIES)}
    rows = []
    for name in models:
        if name in ablated:
            rows.append((name, {"Tasks": "none (base model)", "Shard set": ""}))
            rows += [(m, {"Tasks": " + ".join(task_families(config, trained[m])), "Shard set": trained[m]})
                     for m in models if models[m].get("from") == name]
    return rows


def out_of_tables_problems(config: Mapping) -> list[str]:
    in_ablation = {name for name, _ in ablation_rows(config)}
    nowhere = [name for name, entry in config["models"].items()
               if not entry.get("in_tables", True) and name not in in_ablation]
    if not nowhere:
        return []
    return [f"models {nowhere} have in_tables: false but are not part of the per-task ablation (a fine-tune "
            "on fewer than the four task families, or the base of one), so no table would show them: "
            "remove in_tables: false, or the models."]


# ---------------------------------------------------------------- grounded CultureBank evaluation


def grounded_problems(config: Mapping, tasks: Mapping[str, TaskSpec]) -> list[str]:
    grounded = config["eval"]["grounded"]
    if not grounded["enabled"]:
        return []
    problems = []
    if bool(grounded["judge_model"]) == bool(grounded["judge_url"]):
        problems.append("give exactly one of judge_model (a local causal LM) and judge_url (an OpenAI-compatible endpoint)")
    bench = grounded["benchmark"]
    if bench not in config["benchmarks"] or tasks[bench].loader != "culturebank":
        problems.append(f"benchmark {bench!r} is not a registry benchmark with the culturebank loader")
    judge = grounded["judge_model"]
    if judge and judge not in config["models"] and not Path(judge).is_dir():
        problems.append(f"judge_model {judge!r} is neither a registry model nor a local folder")
    return problems


def judge_dir(config: Mapping) -> str | None:
    judge = config["eval"]["grounded"]["judge_model"]
    if not judge:
        return None
    return model_path(config, judge) if judge in config["models"] else judge
