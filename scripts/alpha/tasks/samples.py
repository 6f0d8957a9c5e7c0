"""The instruction-sample record every task builder writes and every shard reads.

One row per chat-format sample: ``{id, task, family, split, page_id, ad_ids, label, source, messages}``.
``messages`` is a list of ``{role, content}`` (system / user / assistant); the model's chat template is
applied at training time, never baked in here.
"""
from __future__ import annotations

import pyarrow as pa

from alpha.core.io import PARQUET_OPTIONS
from alpha.tasks.names import (  # noqa: F401  (the names travel with the sample record)
    EXTERNAL_FAMILY,
    FAMILIES,
    SPLITS,
    TASKS,
    TEST_AFTER_CUTOFF,
    TEST_SPLITS,
    TEST_UNSEEN_ADVERTISER,
    TRAIN,
)

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

SAMPLE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),  # unique and deterministic, e.g. "TAG:<ad_id>" or "TS-B:<ad_id_1>><ad_id_2>"
        ("task", pa.string()),  # TAG, TAP-G, TAP-A, TAP-R, TC-A, TC-G, TC-R, TS-E, TS-B, or an external set's name
        ("family", pa.string()),  # TAG, TAP, TC, TS, or "external"
        ("split", pa.string()),  # one of SPLITS
        ("page_id", pa.string()),  # null for external samples
        ("ad_ids", pa.list_(pa.string())),  # the ad (TAG, TAP) or [source, target] ad (TC, TS); [] for external
        ("label", pa.string()),  # TAP's class label (gender, age bracket, top state); null elsewhere
        ("source", pa.string()),  # "alpha" or the external set's name
        ("messages", pa.list_(MESSAGE_TYPE)),
    ]
)


ROW_GROUP_ROWS = 16_384  # fixed so the file bytes never depend on how the writer was batched


def family_of(task: str) -> str:
    return task.split("-")[0] if task in TASKS else EXTERNAL_FAMILY


def messages(system: str, user: str, assistant: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant},
    ]


def empty_table() -> pa.Table:
    return SAMPLE_SCHEMA.empty_table()


class SampleWriter:
    """Append samples row by row (``add``) or as Arrow tables (``add_table``); writes row groups of exactly
    ``row_group_rows`` rows, each from one contiguous table, so memory stays at about one row group and the
    file bytes depend only on the rows and their order, never on how they were added."""

    def __init__(self, path, schema: pa.Schema = SAMPLE_SCHEMA, row_group_rows: int = ROW_GROUP_ROWS):
        import pyarrow.parquet as pq

        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._pending: list[dict] = []  # rows added one by one, not yet queued as a table
        self._tables: list[pa.Table] = []  # queued, in order, fewer than row_group_rows rows after each flush
        self._queued = 0
        self._writer = pq.ParquetWriter(path, schema, **PARQUET_OPTIONS)

    def add(self, row: dict) -> None:
        self._pending.append(row)
        if self._queued + len(self._pending) >= self.row_group_rows:
            self._flush_full()

    def add_table(self, table: pa.Table) -> None:
        self._queue_pending()
        if table.num_rows:
            self._tables.append(table.select(self.schema.names).cast(self.schema))
            self._queued += table.num_rows
        if self._queued >= self.row_group_rows:
            self._flush_full()

    def _queue_pending(self) -> None:
        if self._pending:
            self._tables.append(pa.Table.from_pylist(self._pending, schema=self.schema))
            self._queued += len(self._pending)
            self._pending = []

    def _flush_full(self) -> None:
        self._queue_pending()
        queued = pa.concat_tables(self._tables)
        start = 0
        while queued.num_rows - start >= self.row_group_rows:
            self._write(queued.slice(start, self.row_group_rows))
            start += self.row_group_rows
        rest = queued.slice(start)
        self._tables = [rest] if rest.num_rows else []
        self._queued = rest.num_rows

    def _write(self, table: pa.Table) -> None:
        self._writer.write_table(table.combine_chunks(), row_group_size=self.row_group_rows)
        self.rows += table.num_rows

    def close(self) -> None:
        self._queue_pending()
        if self._queued:
            self._write(pa.concat_tables(self._tables))
        self._tables, self._queued = [], 0
        self._writer.close()

    def __enter__(self) -> "SampleWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stable_key(seed: int, text: str) -> int:
    """A 64-bit key from (seed, text) that never changes across Python runs or machines."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest(), "little")
