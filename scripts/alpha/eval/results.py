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
from alpha.eval.bootstrap import metric_fields as bootstrap_fields
from alpha.eval.items import read_items
from alpha.eval.metrics import get_metric
from alpha.eval.task_spec import TaskSpec

log = logging.getLogger("alpha.eval.results")


def _renormalised(logprobs: Sequence[float]) -> list[float]:
    lp = np.asarray(logprobs, dtype=np.float64)
    w = np.exp(lp - lp.max())
    return (w / w.sum()).tolist()


def _orders(scores: pd.DataFrame) -> list[int]:
    return sorted(int(o) for o in scores["order"].unique()) if "order" in scores.columns else [0]


def metric_frame(task: TaskSpec, items: Sequence[Mapping[str, Any]], scores: pd.DataFrame, order: int | None = None) -> pd.DataFrame:
    """One row per item: the item's fields (renamed by ``task.columns``), ``model_probs`` over the
    labels the metric uses (renormalised over them) and ``task.label_columns``. Items the scorer
    skipped (prompt too long) get NaN probabilities, which every metric excludes and counts.

    Scored in several option orders (``eval.permutations``), ``model_probs`` is the mean over the orders of
    each order's distribution (already mapped back to the original options), or one ``order``'s alone."""
    if order is not None and "order" in scores.columns:
        scores = scores[scores["order"] == order]
    by_id: dict[str, list] = {}
    for row in scores.itertuples(index=False):
        by_id.setdefault(row.item_id, []).append(row)
    missing = [item["item_id"] for item in items if item["item_id"] not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} items have no scores (first: {missing[:3]}): scores are stale; rerun scoring")
    renamed_to = set(task.columns.values())
    rows = []
    for item in items:
        scored_rows = by_id[item["item_id"]]
        labels = list(item["labels"])
        for scored in scored_rows:
            if list(scored.options) != labels:
                raise ValueError(f"item {item['item_id']}: scored labels {list(scored.options)} differ from the item's {labels}")
        used = list(item[task.model_labels]) if task.model_labels else labels
        unknown = [u for u in used if u not in labels]
        if unknown:
            raise ValueError(f"item {item['item_id']}: {task.model_labels} {unknown} are not among its labels {labels}")
        if any(scored.logprobs is None for scored in scored_rows):
            probs = [math.nan] * len(used)
        else:
            per_order = [_renormalised([list(scored.logprobs)[labels.index(u)] for u in used]) for scored in scored_rows]
            probs = per_order[0] if len(per_order) == 1 else np.mean(per_order, axis=0).tolist()
        # a renamed field replaces any field already called so (OpinionQA: question_id -> question, not the text)
        row = {k: v for k, v in item.items() if k not in renamed_to}
        row.update({new: item[old] for old, new in task.columns.items() if old in item})
        row["model_probs"] = probs
        for label, column in task.label_columns.items():
            row[column] = probs[used.index(label)] if label in used else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def order_sensitivity(values: Sequence[float | None]) -> float | None:
    """Mean absolute difference between the values of every two option orders (None if under two values)."""
    ok = [float(v) for v in values if v is not None and not math.isnan(v)]
    if len(ok) < 2:
        return None
    return float(np.mean([abs(a - b) for i, a in enumerate(ok) for b in ok[i + 1:]]))


def order_robustness(task: TaskSpec, variant: str, items: Sequence[Mapping[str, Any]], scores: pd.DataFrame) -> dict[str, dict]:
    """{table column: {"orders", "per_order", "order_sensitivity"}} when the items were scored in several
    option orders; {} otherwise. Each order's value is the metric on that order's distributions alone."""
    orders = _orders(scores)
    if len(orders) < 2:
        return {}
    per_order: dict[str, list] = {spec.column: [] for spec in task.metrics}
    for order in orders:
        frame = metric_frame(task, items, scores, order=order)
        if "variant" in frame.columns:
            frame = frame[frame["variant"] == variant]
        for spec in task.metrics:
            rows = select(frame, spec.where)
            value = None if rows.empty else get_metric(spec.metric, variant)(rows.reset_index(drop=True), **spec.params).value
            per_order[spec.column].append(value)
    return {column: {"orders": len(orders), "per_order": values, "order_sensitivity": order_sensitivity(values)}
            for column, values in per_order.items()}


def elicitation_counts(scores: pd.DataFrame) -> dict:
    """The mode and, for the sampled and verbalised modes, items excluded by reason and answers parsed."""
    if "invalid_reason" not in scores.columns:
        return {"mode": "logprob"}
    reasons = scores["invalid_reason"].dropna().value_counts()
    answers = int(scores["answers"].map(len).sum())
    parsed = int(scores["n_parsed"].sum())
    return {"mode": str(scores["mode"].iloc[0]) if len(scores) else None, "items": len(scores),
            "valid": int(len(scores) - reasons.sum()), "invalid": {str(k): int(v) for k, v in sorted(reasons.items())},
            "answers": answers, "parsed_answers": parsed, "unparsed_answers": answers - parsed}


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
             benchmark: str, model: str, bootstrap: Mapping[str, Any] | None = None) -> dict:
    """Every metric of ``task`` for one model: the result dict written next to the scores. With ``bootstrap``
    (``eval.bootstrap``: n, seed, level; n > 0) each metric entry also has its ``ci`` and its replicate values
    (``bootstrap``), drawn identically for every model of the same benchmark cell (``alpha.eval.bootstrap``)."""
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
        boot = bootstrap_fields(rows.reset_index(drop=True), spec.metric, variant, spec.params, benchmark, spec.column, bootstrap)
        if boot:
            log.info("%s / %s: %s %.0f%% CI [%s, %s] from %d of %d replicates over %d units (%s)", model, benchmark,
                     spec.column, 100 * boot["ci"]["level"], boot["ci"]["low"], boot["ci"]["high"], boot["ci"]["n_valid"],
                     boot["ci"]["n"], boot["ci"]["units"], boot["ci"]["unit"])
        log.info("%s / %s: %s = %.6f over %d items (excluded %s)", model, benchmark, spec.column, result.value,
                 result.n_items, result.excluded or "none")
        results.append({"column": spec.column, "where": spec.where, **result.as_row(), "excluded": result.excluded,
                        "per_group": result.per_group, "details": result.details, **boot})
    robustness = order_robustness(task, variant, items, scores)
    for entry in results:
        if entry["column"] in robustness:
            entry["orders"] = robustness[entry["column"]]
    elicited = "invalid_reason" in scores.columns
    n_skipped = 0 if elicited else int(scores.loc[scores["logprobs"].isna(), "item_id"].nunique())
    return finite({
        "model": model, "benchmark": benchmark, "task": task.name, "variant": variant,
        "items": len(items), "items_skipped_too_long": n_skipped, "option_orders": len(_orders(scores)),
        "elicitation": elicitation_counts(scores),
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
