"""The paper's result tables from the per-(model, benchmark) metric JSONs (``alpha.eval.results.evaluate``).

Table 1: one row per registry model, the paper's twelve columns in the paper's order, values x 100 with
two decimals; a cell whose benchmark is not configured is left empty (the paper's "-"). Table 2:
OpinionQA-XL representativeness on the waves fielded March-August 2023, next to each model's knowledge
cut-off. Each table has a JSON sidecar recording, per column, the benchmark, metric, variant, items and
exclusions, so a number can always be traced to its definition; a metric family may not mix variants
within one table (``alpha.eval.metrics.check_variants``).
"""
from __future__ import annotations

import csv
import os
from typing import Any, Iterable, Mapping, Sequence

from alpha.core import io
from alpha.eval.columns import TABLE1_COLUMNS, TABLE2_VALUE
from alpha.eval.metrics import MetricResult, check_variants
from alpha.eval.results import table_cells

MODEL_COLUMN = "Model"
GROUNDED_COLUMNS = ("CultureBank Reddit (grounded)", "CultureBank TikTok (grounded)")
TABLE2_COLUMNS = ("Knowledge Cut-off", TABLE2_VALUE)
SCALE = 100.0


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
    by_model: dict[str, list] = {}
    for result in results:
        by_model.setdefault(result["model"], []).append(result)
    unknown = sorted(set(by_model) - {name for name, _ in models})
    if unknown:
        raise ValueError(f"results for models not in the registry: {unknown}")
    cells_by_model = {name: table_cells(by_model.get(name, [])) for name, _ in models}
    variants = _variants_by_family(cells_by_model, columns)
    rows, sidecar_cells = [], {}
    for name, label in models:
        cells = cells_by_model[name]
        row = {MODEL_COLUMN: label, **{c: (text or {}).get(name, {}).get(c, "") for c in text_columns}}
        row.update({column: cell(cells[column]["value"]) if column in cells else "" for column in columns})
        rows.append(row)
        sidecar_cells[label] = {
            column: {k: cells[column][k] for k in ("benchmark", "name", "variant", "family", "value", "n_items",
                                                  "excluded", "where")}
            for column in columns if column in cells
        }
    sidecar = {
        "scale": SCALE, "decimals": 2, "columns": [MODEL_COLUMN, *text_columns, *columns],
        "variants": variants, "models": {label: name for name, label in models}, "cells": sidecar_cells,
        "empty_cell": "benchmark not configured, or the metric is undefined (no items)",
    }
    return rows, sidecar


def write_table(rows: list[dict], sidecar: dict, csv_path: str | os.PathLike, json_path: str | os.PathLike) -> None:
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, sidecar["columns"], extrasaction="raise", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    io.write_json(json_path, sidecar)


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
