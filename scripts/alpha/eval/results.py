"""Step 3 of a benchmark (rule benchmark_metrics, CPU): prepared items + saved option scores -> the
metric frame -> every metric of the task in the configured variant -> one result dict per model x
benchmark; and the table cells over several results."""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from alpha.core.io import finite
from alpha.eval.items import read_items
from alpha.eval.metrics import get_metric
from alpha.eval.task_spec import TaskSpec

log = logging.getLogger("alpha.eval.results")


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
