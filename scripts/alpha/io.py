"""Small I/O helpers shared by every stage: logging into a rule's log, atomic JSON writes."""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def setup_logging(log_path: str | os.PathLike | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send the ``alpha`` logger (and warnings) to a rule's log file, or to stderr without one."""
    handler: logging.Handler
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("alpha")
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").handlers[:] = [handler]
    return root


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON atomically (temp file + rename) with stable key order, so reruns are byte-identical."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def iter_parquet_batches(path: str | os.PathLike, batch_rows: int, columns: list[str] | None = None):
    """Stream a Parquet file in record batches with memory bounded by one batch.

    ``pre_buffer=False`` matters: with pyarrow's default the reader keeps every row group it has
    pre-buffered alive, and memory grows with the file (measured: +350 MB over 500k ads).
    """
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, pre_buffer=False)
    yield from parquet.iter_batches(batch_size=batch_rows, columns=columns)
