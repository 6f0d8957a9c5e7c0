"""Step 1 of a benchmark (rule prepare_benchmark): the task's loader on the released files ->
prepared items, quarantine (JSON Lines) and a report with the counts."""
from __future__ import annotations

import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
import yaml

from alpha.core import io
from alpha.eval.items import ITEMS_ROW_GROUP_ROWS, ITEMS_SCHEMA, item_json
from alpha.eval.loaders import get_loader, quarantine_counts
from alpha.eval.loaders.atp import TABLE2_WINDOW
from alpha.eval.task_spec import VARIANTS, TaskSpec

log = logging.getLogger("alpha.eval.prepare")


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
    io.write_parquet(items_out, table, ITEMS_ROW_GROUP_ROWS)
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
    io.write_json(report_out, io.finite(report))
    log.info("%d items, %d quarantined", len(rows), len(result.quarantine))
    return report

