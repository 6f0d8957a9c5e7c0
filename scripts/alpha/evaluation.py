"""Zero-shot benchmark evaluation: declarative task specs, prepared items, option scores, metrics.

A benchmark is data (``scripts/alpha/benchmarks/tasks/<task>.yaml``), as in lm-evaluation-harness::

    loader: culturenli             # a registered loader (alpha.benchmarks)
    options: {}                    # loader keyword defaults; config benchmarks.<name>.options override
    prompt_variants: false         # true: the loader takes ``variants`` and items carry ``variant``
    model_labels: null             # item field listing the labels the metric uses (default: all labels)
    columns: {}                    # item field -> metric column (e.g. question_id: question)
    label_columns: {E: p_entail}   # label -> column holding its probability (renormalised over model_labels)
    score: {chat: false, label_form: auto}
    metrics:                       # one table cell each
      - {column: CultureNLI US, metric: culturenli_macro_f1, where: {culture: US}}

The workflow runs three steps per benchmark, so that a new metric never needs a GPU again:

1. ``prepare``  (once per benchmark): loader -> ``items.parquet`` (item_id, question_id, prompt, labels and
   the whole item as JSON), quarantine and a report with the counts;
2. ``score``    (per model x benchmark, the GPU step): ``alpha.scoring.score_items``, one forward pass per
   prompt -> per-item option log-probabilities and probabilities (Parquet);
3. ``evaluate`` (CPU): items + scores -> the metric frame -> every registered metric of the task, in the
   configured variant -> one JSON per model x benchmark.
"""
from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from alpha import io
from alpha.benchmarks import get_loader, quarantine_counts
from alpha.benchmarks.atp import TABLE2_WINDOW
from alpha.metrics import UnknownMetricError, get_metric

log = logging.getLogger("alpha.evaluation")

TASKS_DIR = Path(__file__).parent / "benchmarks" / "tasks"
VARIANTS = ("reference", "compat")
TASK_KEYS = {"loader", "description", "options", "prompt_variants", "model_labels", "columns", "label_columns",
             "score", "metrics"}
METRIC_KEYS = {"column", "metric", "where", "params"}
SCORE_KEYS = {"chat", "label_form", "system"}

ITEMS_SCHEMA = pa.schema([
    ("item_id", pa.string()),
    ("question_id", pa.string()),
    ("prompt", pa.string()),
    ("labels", pa.list_(pa.string())),
    ("item", pa.string()),  # the loader's whole item dict as JSON (NaN kept as NaN)
])


class TaskSpecError(ValueError):
    """A task YAML that does not follow the format in the module docstring."""


@dataclass(frozen=True)
class MetricSpec:
    column: str
    metric: str
    where: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    loader: str
    description: str = ""
    options: dict = field(default_factory=dict)
    prompt_variants: bool = False
    model_labels: str | None = None
    columns: dict = field(default_factory=dict)
    label_columns: dict = field(default_factory=dict)
    score: dict = field(default_factory=dict)
    metrics: tuple[MetricSpec, ...] = ()

    @property
    def table_columns(self) -> list[str]:
        return [m.column for m in self.metrics]


def task_names() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def task_file(name: str) -> Path:
    return TASKS_DIR / f"{name}.yaml"


def load_task(name: str, path: str | os.PathLike | None = None) -> TaskSpec:
    """The task spec ``name`` (from ``TASKS_DIR``, or ``path``); a malformed spec raises ``TaskSpecError``."""
    path = Path(path) if path else task_file(name)
    if not path.is_file():
        raise TaskSpecError(f"unknown benchmark task {name!r}: no {path}; known tasks: {', '.join(task_names())}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    where = f"{path}"
    unknown = set(raw) - TASK_KEYS
    if unknown:
        raise TaskSpecError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(TASK_KEYS)}")
    if "loader" not in raw or not raw.get("metrics"):
        raise TaskSpecError(f"{where}: a task names its loader and at least one metric")
    bad_score = set(raw.get("score") or {}) - SCORE_KEYS
    if bad_score:
        raise TaskSpecError(f"{where}: unknown score keys {sorted(bad_score)}; known: {sorted(SCORE_KEYS)}")
    metrics = []
    for k, entry in enumerate(raw["metrics"]):
        extra = set(entry) - METRIC_KEYS
        if extra or "column" not in entry or "metric" not in entry:
            raise TaskSpecError(f"{where}: metrics[{k}] needs column and metric (and optionally where, params); got {sorted(entry)}")
        metrics.append(MetricSpec(entry["column"], entry["metric"], dict(entry.get("where") or {}), dict(entry.get("params") or {})))
    columns = [m.column for m in metrics]
    if len(set(columns)) != len(columns):
        raise TaskSpecError(f"{where}: table columns repeat: {columns}")
    return TaskSpec(
        name=name, loader=raw["loader"], description=raw.get("description", ""), options=dict(raw.get("options") or {}),
        prompt_variants=bool(raw.get("prompt_variants", False)), model_labels=raw.get("model_labels"),
        columns=dict(raw.get("columns") or {}), label_columns=dict(raw.get("label_columns") or {}),
        score=dict(raw.get("score") or {}), metrics=tuple(metrics),
    )


def check_benchmark(name: str, task: TaskSpec, variant: str) -> list[str]:
    """Problems with running ``task`` in metric ``variant`` (empty when fine): unknown loader or metric,
    a metric without that variant."""
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


# ------------------------------------------------------------------------------------------- JSON

def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def item_json(item: Mapping[str, Any]) -> str:
    """An item as JSON text: keys sorted, NaN written as NaN (``json.loads`` reads it back)."""
    return json.dumps(item, default=_json_default, sort_keys=True, ensure_ascii=False, allow_nan=True)


def finite(value: Any) -> Any:
    """NaN / inf -> None, recursively, so result JSON is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        return finite(value.item())
    return value


# ------------------------------------------------------------------------------------------- prepare

def in_table2_window(start: str | None, end: str | None) -> bool:
    """Fielded entirely within March-August 2023 (Table 2); False without field dates."""
    return bool(start and end and start >= TABLE2_WINDOW[0] and end <= TABLE2_WINDOW[1])


def read_field_dates(value: Any) -> Any:
    """``field_dates`` given as a JSON / YAML file path is read; a mapping passes through."""
    if isinstance(value, (str, os.PathLike)):
        text = Path(value).read_text(encoding="utf-8")
        return json.loads(text) if str(value).endswith(".json") else yaml.safe_load(text)
    return value


def loader_options(task: TaskSpec, overrides: Mapping[str, Any] | None, variant: str | None) -> dict:
    options = {**task.options, **(overrides or {})}
    if "field_dates" in options:
        options["field_dates"] = read_field_dates(options["field_dates"])
    if task.prompt_variants:
        if variant not in VARIANTS:
            raise ValueError(f"task {task.name!r} builds its prompts per metric variant: give one of {VARIANTS}, not {variant!r}")
        options["variants"] = [variant]
    accepted = inspect.signature(get_loader(task.loader)).parameters
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise TypeError(f"loader {task.loader!r} takes no option(s) {unknown}; it takes {[p for p in accepted if p != 'path']}")
    return options


def prepare(task: TaskSpec, path: str | os.PathLike, overrides: Mapping[str, Any] | None, variant: str | None,
            items_out: str | os.PathLike, quarantine_out: str | os.PathLike, report_out: str | os.PathLike,
            benchmark: str | None = None) -> dict:
    """Run the task's loader on ``path`` and write items, quarantine (JSON Lines) and the report."""
    from alpha.scoring import write_results

    options = loader_options(task, overrides, variant)
    log.info("loading %s with loader %s from %s (options %s)", benchmark or task.name, task.loader, path, sorted(options))
    result = get_loader(task.loader)(path, **options)
    if not result.items:
        raise ValueError(
            f"benchmark {benchmark or task.name}: loader {task.loader!r} found no items in {path} "
            f"(quarantined: {quarantine_counts(result.quarantine) or 'none'}); check the path and the released layout"
        )
    ids = [str(item["item_id"]) for item in result.items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"benchmark {benchmark or task.name}: the loader returned duplicate item ids")
    rows = []
    for item in result.items:
        if "field_start" in item or "field_end" in item:
            item = {**item, "table2": in_table2_window(item.get("field_start"), item.get("field_end"))}
        rows.append(item)
    table = pa.Table.from_pydict({
        "item_id": ids,
        "question_id": [str(item.get("question_id", item["item_id"])) for item in rows],
        "prompt": [item["prompt"] for item in rows],
        "labels": [list(item["labels"]) for item in rows],
        "item": [item_json(item) for item in rows],
    }, schema=ITEMS_SCHEMA)
    write_results(items_out, table)  # atomic, fixed Parquet options: reruns are byte-identical
    Path(quarantine_out).parent.mkdir(parents=True, exist_ok=True)
    with open(quarantine_out, "w", encoding="utf-8") as fh:
        for q in result.quarantine:
            fh.write(item_json(q) + "\n")
    report = {
        "benchmark": benchmark or task.name, "task": task.name, "loader": task.loader, "variant": variant,
        "items": len(rows), "questions": len(set(table.column("question_id").to_pylist())),
        "quarantined": quarantine_counts(result.quarantine),
        "items_by_table2": dict(sorted(pd.Series([r.get("table2") for r in rows if "table2" in r]).value_counts().items()))
        if any("table2" in r for r in rows) else {},
        "loader_report": result.report,
    }
    io.write_json(report_out, finite(report))
    log.info("%d items, %d quarantined", len(rows), len(result.quarantine))
    return report


def read_items(path: str | os.PathLike) -> list[dict]:
    """The prepared items, each the loader's dict (``table2`` added for dated survey waves)."""
    import pyarrow.parquet as pq

    return [json.loads(text) for text in pq.read_table(path, columns=["item"]).column("item").to_pylist()]


# ------------------------------------------------------------------------------------------- score

def score(model_dir: str, items_path: str | os.PathLike, out: str | os.PathLike, *, task: TaskSpec,
          chat_template: str | None = None, batch_size: int = 16, max_tokens_per_batch: int | None = None,
          on_too_long: str = "raise", metadata: Mapping[str, str] | None = None) -> dict:
    """Score every prepared item of one benchmark with one model; per-item results as Parquet."""
    import pyarrow.parquet as pq

    from alpha.scoring import load_model, score_items, write_results

    table = pq.read_table(items_path, columns=["item_id", "prompt", "labels"])
    items = table.to_pylist()
    model, tokenizer = load_model(model_dir)
    settings = {"chat": bool(task.score.get("chat", False)), "label_form": task.score.get("label_form", "auto"),
                "system": task.score.get("system")}
    scored = score_items(model, tokenizer, items, batch_size=batch_size, max_tokens_per_batch=max_tokens_per_batch,
                         template=chat_template, on_too_long=on_too_long, **settings)
    forms = sorted({s.label_form for s in scored})
    meta = {**(metadata or {}), "chat": str(settings["chat"]).lower(), "label_form": settings["label_form"],
            "label_forms_read": ",".join(forms), "chat_template": str(chat_template)}
    write_results(out, scored, metadata=meta)
    skipped = sum(s.logprobs is None for s in scored)
    return {"items": len(scored), "skipped_too_long": skipped, "label_forms_read": forms}


# ------------------------------------------------------------------------------------------- metrics

def _renormalised(logprobs: Sequence[float]) -> list[float]:
    lp = np.asarray(logprobs, dtype=np.float64)
    w = np.exp(lp - lp.max())
    return (w / w.sum()).tolist()


def metric_frame(task: TaskSpec, items: Sequence[Mapping[str, Any]], scores: pd.DataFrame) -> pd.DataFrame:
    """One row per item: the item's fields (renamed by ``task.columns``), ``model_probs`` over the
    labels the metric uses (renormalised over them) and ``task.label_columns``. Items the scorer
    skipped (prompt too long) get NaN probabilities, which every metric excludes and counts."""
    by_id = {row.item_id: row for row in scores.itertuples(index=False)}
    missing = [item["item_id"] for item in items if item["item_id"] not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} items have no scores (first: {missing[:3]}): scores are stale; rerun scoring")
    renamed_to = set(task.columns.values())
    rows = []
    for item in items:
        scored = by_id[item["item_id"]]
        labels = list(item["labels"])
        if list(scored.options) != labels:
            raise ValueError(f"item {item['item_id']}: scored labels {list(scored.options)} differ from the item's {labels}")
        used = list(item[task.model_labels]) if task.model_labels else labels
        unknown = [u for u in used if u not in labels]
        if unknown:
            raise ValueError(f"item {item['item_id']}: {task.model_labels} {unknown} are not among its labels {labels}")
        if scored.logprobs is None:
            probs = [math.nan] * len(used)
        else:
            lp = list(scored.logprobs)
            probs = _renormalised([lp[labels.index(u)] for u in used])
        # a renamed field replaces any field already called so (OpinionQA: question_id -> question, not the text)
        row = {k: v for k, v in item.items() if k not in renamed_to}
        row.update({new: item[old] for old, new in task.columns.items() if old in item})
        row["model_probs"] = probs
        for label, column in task.label_columns.items():
            row[column] = probs[used.index(label)] if label in used else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def select(frame: pd.DataFrame, where: Mapping[str, Any]) -> pd.DataFrame:
    """Rows matching every ``where`` condition (a value, or a list of allowed values)."""
    keep = pd.Series(True, index=frame.index)
    for column, wanted in where.items():
        if column not in frame.columns:
            raise ValueError(f"where: no column {column!r} in the metric frame; has {sorted(frame.columns)}")
        allowed = wanted if isinstance(wanted, list) else [wanted]
        keep &= frame[column].isin(allowed)
    return frame[keep]


def evaluate(task: TaskSpec, variant: str, items_path: str | os.PathLike, scores_path: str | os.PathLike,
             benchmark: str, model: str) -> dict:
    """Every metric of ``task`` for one model: the result dict written next to the scores."""
    import pyarrow.parquet as pq

    items = read_items(items_path)
    scored = pq.read_table(scores_path)
    scores = scored.to_pandas()
    frame = metric_frame(task, items, scores)
    if "variant" in frame.columns:  # prompt variants: the items scored for this metric variant
        frame = frame[frame["variant"] == variant]
    results = []
    for spec in task.metrics:
        rows = select(frame, spec.where)
        metric = get_metric(spec.metric, variant)
        if rows.empty:  # e.g. Table 2 without a wave fielded March-August 2023: an empty cell, said in the log
            log.warning("%s / %s: no items match %s: %s is left empty", model, benchmark, spec.where, spec.column)
            results.append({"column": spec.column, "where": spec.where, "name": spec.metric, "family": metric.family,
                            "variant": variant, "value": None, "n_items": 0, "n_excluded": 0,
                            "excluded": {}, "per_group": {}, "details": {"no_items": True}})
            continue
        result = metric(rows.reset_index(drop=True), **spec.params)
        log.info("%s / %s: %s = %.6f over %d items (excluded %s)", model, benchmark, spec.column, result.value,
                 result.n_items, result.excluded or "none")
        results.append({"column": spec.column, "where": spec.where, **result.as_row(), "excluded": result.excluded,
                        "per_group": result.per_group, "details": result.details})
    n_skipped = int(scores["logprobs"].isna().sum())
    return finite({
        "model": model, "benchmark": benchmark, "task": task.name, "variant": variant,
        "items": len(items), "items_skipped_too_long": n_skipped,
        "scoring": {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                    for k, v in (scored.schema.metadata or {}).items()},
        "metrics": results,
    })


def table_cells(results: Iterable[Mapping[str, Any]]) -> dict[str, dict]:
    """{column: metric result} over several benchmark result dicts; a column claimed twice is an error."""
    cells: dict[str, dict] = {}
    for result in results:
        for metric in result["metrics"]:
            if metric["column"] in cells:
                raise ValueError(f"table column {metric['column']!r} comes from two benchmarks "
                                 f"({cells[metric['column']]['benchmark']} and {result['benchmark']})")
            cells[metric["column"]] = {**metric, "benchmark": result["benchmark"]}
    return cells
