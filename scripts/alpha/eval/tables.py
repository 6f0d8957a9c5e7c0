"""The paper's result tables from the per-(model, benchmark) metric JSONs (``alpha.eval.results.evaluate``).

Table 1: one row per registry model, the paper's twelve columns in the paper's order, values x 100 with
two decimals; a cell whose benchmark is not configured is left empty (the paper's "-"). Table 2:
OpinionQA-XL representativeness on the waves fielded March-August 2023, next to each model's knowledge
cut-off. Each table has a JSON sidecar recording, per column, the benchmark, metric, variant, items and
exclusions, so a number can always be traced to its definition; a metric family may not mix variants
within one table (``alpha.eval.metrics.check_variants``). Where the metric JSONs carry a bootstrap
(``eval.bootstrap``), each sidecar cell also has its ``ci`` (low/high on the value's scale, x 1).

Table 1 has two companions: ``table1_ci.csv`` (each cell's CI as "low–high", x 100) and ``table1_delta.csv``
/ ``.json``: per fine-tuned registry model, each cell minus its registry base (``from:``), with the paired
bootstrap CI of that difference (``alpha.eval.bootstrap.paired_delta``) and ``DELTA_MARK`` where it excludes 0.
"""
from __future__ import annotations

import csv
import os
from typing import Any, Iterable, Mapping, Sequence

from alpha.core import io
from alpha.eval.bootstrap import paired_delta
from alpha.eval.columns import TABLE1_COLUMNS, TABLE2_VALUE
from alpha.eval.metrics import MetricResult, check_variants
from alpha.eval.results import table_cells

MODEL_COLUMN = "Model"
GROUNDED_COLUMNS = ("CultureBank Reddit (grounded)", "CultureBank TikTok (grounded)")
TABLE2_COLUMNS = ("Knowledge Cut-off", TABLE2_VALUE)
SCALE = 100.0
BASE_COLUMN = "Base"
DELTA_MARK = "*"
DELTA_MARK_MEANING = "the paired bootstrap CI of (fine-tune - base) excludes 0"


def cell(value: float | None) -> str:
    """x 100, two decimals; empty for a missing or undefined value."""
    return "" if value is None else f"{value * SCALE:.2f}"


def _variants_by_family(cells_by_model: Mapping[str, Mapping[str, dict]], columns: Sequence[str]) -> dict[str, str]:
    used = [
        MetricResult(name=c["name"], family=c["family"], variant=c["variant"], value=0.0, n_items=0)
        for cells in cells_by_model.values() for column, c in cells.items() if column in columns
    ]
    return check_variants(used)


def build_table(models: Sequence[tuple[str, str]], results: Iterable[Mapping[str, Any]], columns: Sequence[str],
                text_columns: Sequence[str] = (), text: Mapping[str, Mapping[str, str]] | None = None) -> tuple[list[dict], dict]:
    """Rows (``Model``, ``text_columns``, then the metric ``columns``) and the sidecar, from metric result dicts.

    ``models``: (registry name, row label) in row order; ``text``: per model name, the text columns' values."""
    cells_by_model = _cells_by_model(models, results)
    variants = _variants_by_family(cells_by_model, columns)
    rows, sidecar_cells = [], {}
    for name, label in models:
        cells = cells_by_model[name]
        row = {MODEL_COLUMN: label, **{c: (text or {}).get(name, {}).get(c, "") for c in text_columns}}
        row.update({column: cell(cells[column]["value"]) if column in cells else "" for column in columns})
        rows.append(row)
        sidecar_cells[label] = {
            column: {**{k: cells[column][k] for k in ("benchmark", "name", "variant", "family", "value", "n_items",
                                                     "excluded", "where")},
                     **({"ci": _ci_low_high(cells[column]["ci"])} if cells[column].get("ci") else {})}
            for column in columns if column in cells
        }
    sidecar = {
        "scale": SCALE, "decimals": 2, "columns": [MODEL_COLUMN, *text_columns, *columns],
        "variants": variants, "models": {label: name for name, label in models}, "cells": sidecar_cells,
        "empty_cell": "benchmark not configured, or the metric is undefined (no items)",
    }
    return rows, sidecar


def _cells_by_model(models: Sequence[tuple[str, str]], results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict]]:
    by_model: dict[str, list] = {}
    for result in results:
        by_model.setdefault(result["model"], []).append(result)
    unknown = sorted(set(by_model) - {name for name, _ in models})
    if unknown:
        raise ValueError(f"results for models not in the registry: {unknown}")
    return {name: table_cells(by_model.get(name, [])) for name, _ in models}


def _ci_low_high(ci: Mapping[str, Any]) -> dict:
    """A cell's CI for a table sidecar: everything the metric JSON records but the replicates."""
    return {k: ci[k] for k in ("low", "high", "level", "n", "n_valid", "method", "unit", "units", "units_digest", "seed")
            if k in ci}


def write_csv(rows: list[dict], columns: Sequence[str], csv_path: str | os.PathLike) -> None:
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, list(columns), extrasaction="raise", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_table(rows: list[dict], sidecar: dict, csv_path: str | os.PathLike, json_path: str | os.PathLike) -> None:
    write_csv(rows, sidecar["columns"], csv_path)
    io.write_json(json_path, sidecar)


def _x100(value: float) -> str:
    text = f"{value * SCALE:.2f}"
    return "0.00" if text == "-0.00" else text


def ci_cell(ci: Mapping[str, Any] | None) -> str:
    """"low–high" (en dash) x 100 with two decimals; empty without a CI or with no valid replicate."""
    if not ci or ci.get("low") is None or ci.get("high") is None:
        return ""
    return f"{_x100(ci['low'])}\u2013{_x100(ci['high'])}"


def ci_table(models: Sequence[tuple[str, str]], results: Iterable[Mapping[str, Any]],
             columns: Sequence[str] = TABLE1_COLUMNS) -> tuple[list[dict], list[str]]:
    """Rows of ``table1_ci.csv`` (the shape of Table 1, each cell its bootstrap CI) and its header."""
    cells_by_model = _cells_by_model(models, results)
    rows = []
    for name, label in models:
        cells = cells_by_model[name]
        rows.append({MODEL_COLUMN: label, **{c: ci_cell(cells[c].get("ci")) if c in cells else "" for c in columns}})
    return rows, [MODEL_COLUMN, *columns]


def delta_cell(delta: Mapping[str, Any] | None) -> str:
    """"delta [low, high]" x 100 with two decimals, ``DELTA_MARK`` appended when the CI excludes 0; only the
    difference when there is no CI; empty when either cell is empty."""
    if not delta or delta.get("delta") is None:
        return ""
    text = _x100(delta["delta"])
    if delta.get("low") is not None and delta.get("high") is not None:
        text += f" [{_x100(delta['low'])}, {_x100(delta['high'])}]"
    return text + (DELTA_MARK if delta.get("excludes_zero") else "")


def delta_table(models: Sequence[tuple[str, str]], results: Iterable[Mapping[str, Any]], bases: Mapping[str, str],
                columns: Sequence[str] = TABLE1_COLUMNS) -> tuple[list[dict], dict]:
    """``table1_delta.csv`` rows and sidecar: per fine-tuned model among ``models`` (``bases``: model -> its
    registry ``from:``), in row order, each cell's model − base with the paired bootstrap CI."""
    cells_by_model = _cells_by_model(models, results)
    labels = dict(models)
    rows, sidecar_models, level = [], {}, None
    for name, label in models:
        if name not in bases:
            continue
        base = bases[name]
        mine, theirs = cells_by_model[name], cells_by_model.get(base, {})
        row = {MODEL_COLUMN: label, BASE_COLUMN: labels.get(base, base)}
        numbers = {}
        for column in columns:
            if column not in mine or column not in theirs:
                row[column] = ""
                continue
            d = paired_delta(mine[column], theirs[column], benchmark=mine[column]["benchmark"], column=column,
                             names=(name, base))
            level = level or d["level"]
            numbers[column] = {**d, "base": base, "benchmark": mine[column]["benchmark"]}
            row[column] = delta_cell(d)
        rows.append(row)
        sidecar_models[label] = {"model": name, "base": base, "base_label": labels.get(base, base),
                                 "base_in_table": base in cells_by_model, "cells": numbers}
    sidecar = {
        "scale": SCALE, "decimals": 2, "columns": [MODEL_COLUMN, BASE_COLUMN, *columns], "level": level,
        "method": "paired percentile bootstrap: replicate differences over the same resampled units",
        "mark": DELTA_MARK, "mark_meaning": DELTA_MARK_MEANING, "models": sidecar_models,
        "empty_cell": "the model's or its base's cell is empty (or the base is not a row of Table 1)",
    }
    return rows, sidecar


def table1(models: Sequence[tuple[str, str]], results: Iterable[Mapping[str, Any]]) -> tuple[list[dict], dict]:
    return build_table(models, results, TABLE1_COLUMNS)


ABLATION_TEXT = ("Tasks", "Shard set")


def ablation(models: Sequence[tuple[str, str]], results: Iterable[Mapping[str, Any]],
             text: Mapping[str, Mapping[str, str]]) -> tuple[list[dict], dict]:
    """The per-task ablation table: each base, then its fine-tunes with the task families they saw."""
    return build_table(models, results, TABLE1_COLUMNS, text_columns=ABLATION_TEXT, text=text)


def table2(models: Sequence[tuple[str, str]], results: Iterable[Mapping[str, Any]],
           cutoffs: Mapping[str, str | None]) -> tuple[list[dict], dict]:
    text = {name: {TABLE2_COLUMNS[0]: cutoffs.get(name) or ""} for name, _ in models}
    return build_table(models, results, (TABLE2_VALUE,), text_columns=TABLE2_COLUMNS[:1], text=text)


def elicitation(models: Sequence[tuple[str, str]], results: Iterable[Mapping[str, Any]], modes: Mapping[str, str],
                columns: Sequence[str]) -> tuple[list[dict], dict]:
    """The elicitation modes side by side: each result's metric columns renamed ``"<column> [<mode>]"`` by
    its benchmark's registry mode; the sidecar adds the modes and, per model and benchmark, the counts of
    invalid outputs (``alpha.eval.results.elicitation_counts``)."""
    results = list(results)
    renamed = [{**r, "metrics": [{**m, "column": f"{m['column']} [{modes[r['benchmark']]}]"} for m in r["metrics"]]}
               for r in results]
    rows, sidecar = build_table(models, renamed, columns)
    labels = dict(models)
    sidecar["modes"] = dict(sorted(modes.items()))
    sidecar["elicitation"] = {
        labels[r["model"]]: {} for r in results if r["model"] in labels
    }
    for r in results:
        if r["model"] in labels:
            sidecar["elicitation"][labels[r["model"]]][r["benchmark"]] = r.get("elicitation", {"mode": "logprob"})
    return rows, sidecar
