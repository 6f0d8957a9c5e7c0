"""Scattered row work: fixed-size row blocks shared out to jobs, per-block checkpoints, progress lines.

A long per-row step (embedding, keyword extraction) is cut into blocks of ``block_rows`` rows that
do not depend on how many jobs run: job ``part`` of ``jobs`` takes whole blocks, and each block is
computed by itself (its own batches, its own caches). So the gathered result is byte-identical for
any job count, and a block finished before a kill is reused when the job is run again.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from alpha.core.io import atomic_path


def n_blocks(rows: int, block_rows: int) -> int:
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    return -(-rows // block_rows)


def job_blocks(rows: int, block_rows: int, part: int, jobs: int) -> range:
    """Block numbers of job ``part`` (0-based) of ``jobs``: contiguous, as even as whole blocks allow
    (jobs beyond the block count get none)."""
    if jobs < 1 or not 0 <= part < jobs:
        raise ValueError(f"part must be in 0..{jobs - 1} (jobs={jobs}), got {part}")
    blocks = n_blocks(rows, block_rows)
    return range(part * blocks // jobs, (part + 1) * blocks // jobs)


def block_rows_range(block: int, rows: int, block_rows: int) -> tuple[int, int]:
    start = block * block_rows
    return start, min(start + block_rows, rows)


def job_rows(rows: int, block_rows: int, part: int, jobs: int) -> tuple[int, int]:
    """[start, stop) rows of job ``part``: the rows of its blocks."""
    blocks = job_blocks(rows, block_rows, part, jobs)
    if not blocks:
        return (0, 0)
    return block_rows_range(blocks[0], rows, block_rows)[0], block_rows_range(blocks[-1], rows, block_rows)[1]


def read_rows(path, start: int, stop: int, columns: list[str]):
    """Rows [start, stop) of a Parquet file as a table, reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, pre_buffer=False)
    groups, offset, first = [], 0, None
    for g in range(parquet.metadata.num_row_groups):
        n = parquet.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    if stop > offset or start > stop:
        raise ValueError(f"{path}: rows [{start}, {stop}) but the file has {offset}")
    if not groups:
        return parquet.schema_arrow.empty_table().select(columns)
    return parquet.read_row_groups(groups, columns=columns).slice(start - first, stop - start)


def content_key(texts: Iterable[str], settings: str) -> str:
    """A short hash of a block's texts and the settings that shape its result: a checkpoint is
    reused only for the same rows computed the same way."""
    digest = hashlib.blake2b(settings.encode(), digest_size=12)
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _save_npy(path: Path, values) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.asarray(values), allow_pickle=False)


def _load_npy(path: Path):
    return np.load(path, allow_pickle=False)


def array_key(values: np.ndarray) -> str:
    """A short hash of an array's bytes (for keys of results computed from it)."""
    return hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=12).hexdigest()


class Checkpoints:
    """Finished blocks of one job, kept beside its output until the job completes.

    ``<folder>/<block>-<key><suffix>``: written atomically, so a kill leaves whole blocks or nothing;
    a block whose key differs (other rows or settings) is never reused. ``clear()`` removes the
    folder once the job's output is written. NumPy arrays by default; ``save``/``load`` for others."""

    def __init__(self, folder: str | Path, suffix: str = ".npy", save: Callable[[Path, object], None] = _save_npy,
                 load: Callable[[Path], object] = _load_npy):
        self.folder, self.suffix, self._save, self._load = Path(folder), suffix, save, load
        self.reused = 0

    def _path(self, block: int, key: str) -> Path:
        return self.folder / f"{block:06d}-{key}{self.suffix}"

    def load(self, block: int, key: str):
        """The block's saved result, or None (never saved, other key, or a torn file: compute it again)."""
        path = self._path(block, key)
        if not path.exists():
            return None
        try:
            found = self._load(path)
        except (OSError, ValueError):
            return None
        self.reused += 1
        return found

    def save(self, block: int, key: str, values) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(f"{block:06d}-*"):
            stale.unlink()
        with atomic_path(self._path(block, key)) as tmp:
            self._save(tmp, values)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Progress:
    """Log lines "what: done / total rows (pct), rows/s, ETA" at most every ``every_s`` seconds
    and at the end, so a long job shows it is alive and when it will finish."""

    def __init__(self, total: int, what: str, log: logging.Logger, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.what, self.log, self.every_s, self.clock = total, what, log, every_s, clock
        self.done = self.skipped = 0
        self.started = self.last = clock()

    def advance(self, rows: int, computed: bool = True) -> None:
        """``rows`` more done; ``computed=False`` for rows taken from a checkpoint (not in the rate)."""
        self.done += rows
        self.skipped += 0 if computed else rows
        now = self.clock()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            self.log.info("%s", self.line(now))

    def rate(self, now: float) -> float:
        elapsed = now - self.started
        return (self.done - self.skipped) / elapsed if elapsed > 0 else 0.0

    def line(self, now: float) -> str:
        rate = self.rate(now)
        left = self.total - self.done
        eta = time.strftime("%H:%M:%S", time.gmtime(left / rate)) if rate > 0 else "unknown"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        resumed = f", {self.skipped} from checkpoints" if self.skipped else ""
        return f"{self.what}: {self.done} / {self.total} rows ({pct:.0f}%), {rate:.1f} rows/s, ETA {eta}{resumed}"


def iter_blocks(path, rows: int, block_rows: int, part: int, jobs: int, columns: list[str]) -> Iterator[tuple[int, object]]:
    """(block number, table of its rows) for each block of job ``part``, read one block at a time."""
    for block in job_blocks(rows, block_rows, part, jobs):
        start, stop = block_rows_range(block, rows, block_rows)
        yield block, read_rows(path, start, stop, columns)
