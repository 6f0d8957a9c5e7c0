"""The prepared-items file every benchmark step shares (``results/eval_items/<benchmark>.parquet``): one
row per item with its id, question id, prompt, labels and the loader's whole item as JSON."""
from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

ITEMS_SCHEMA = pa.schema([
    ("item_id", pa.string()),
    ("question_id", pa.string()),
    ("prompt", pa.string()),
    ("labels", pa.list_(pa.string())),
    ("item", pa.string()),  # the loader's whole item dict as JSON (NaN kept as NaN)
])

ITEMS_ROW_GROUP_ROWS = 65_536  # fixed so the bytes never depend on how items were batched


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



def read_items(path: str | os.PathLike) -> list[dict]:
    """The prepared items, each the loader's dict (``table2`` added for dated survey waves)."""
    import pyarrow.parquet as pq

    return [json.loads(text) for text in pq.read_table(path, columns=["item"]).column("item").to_pylist()]

