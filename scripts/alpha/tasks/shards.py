"""Training shard sets: the behavioural tasks (capped per task or family) and external instruction
sets (a ratio of the behavioural samples), shuffled by seed into ``n_shards`` Parquet files.

Every sample gets two independent 64-bit keys from blake2b-128 of (seed, id): the *select* key
decides caps (a capped task keeps its ``cap`` samples with the smallest select keys; ties broken by
id) and the *order* key decides the shuffle (shard = order % n_shards, rows sorted by (order, id)).
Two keys, because ordering by the select key would put a capped task's survivors, which all have
small keys, at the head of every shard.

Memory is bounded by the settings (``batch_rows``, ``fan_in``), never by the data:

* pass 0 reads (id, task, split) in batches: counts, plus the select keys of capped tasks' train
  rows (8 bytes a row) to find each cap's exact threshold with ``np.partition``;
* pass 1 streams the full rows in batches into a buffer of at most ``batch_rows`` rows; each time it
  fills, the buffer is sorted by (shard, order, id) and each shard's part is spilled as one sorted
  *run* (an Arrow IPC stream in a temporary folder inside ``out_dir``, in chunks of
  ``batch_rows / fan_in`` rows);
* pass 2 is an external merge sort, shard by shard: it reads the shard's runs one chunk at a time and
  merges them by (order, id), each round passing on every row up to the smallest last key of the
  chunks it holds, and writes the shard's Parquet row group by row group. It holds at most ``fan_in``
  chunks (about ``batch_rows`` rows), a sorted copy of one round and one row group; a shard with more
  than ``fan_in`` runs first merges runs into longer runs, in as many levels as it takes.

The output depends only on the set of input rows, the seed, caps and n_shards: not on batch_rows,
fan_in nor the order of the input files (row groups have a fixed size, so the Parquet bytes are those
of the whole sorted shard written at once). ``manifest.json`` records counts, caps, external mix and
each shard's row count and sha256; ``verify_manifest`` checks a shard set against it.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpha.core.io import PARQUET_OPTIONS, atomic_path, iter_parquet_batches, read_json, write_json
from alpha.tasks.samples import EXTERNAL_FAMILY, FAMILIES, ROW_GROUP_ROWS, SAMPLE_SCHEMA, TASKS, TRAIN, family_of
from alpha.tasks.sharegpt import load_sharegpt

log = logging.getLogger("alpha.tasks.shards")

MANIFEST = "manifest.json"
ORDER = "_order"
SPILL_SCHEMA = SAMPLE_SCHEMA.append(pa.field(ORDER, pa.uint64()))
SORT_KEYS = [(ORDER, "ascending"), ("id", "ascending")]
MERGE_FAN_IN = 64  # runs merged at once; a shard with more is merged in levels
_SPILL_PREFIX = ".spill-"


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.parquet"


def sample_keys(seed: int, ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """(select, order) uint64 keys of each id: the two halves of blake2b-128 over "seed NUL id"."""
    prefix = f"{seed}\x00".encode()
    raw = b"".join(hashlib.blake2b(prefix + i.encode(), digest_size=16).digest() for i in ids)
    both = np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.uint64)
    return both[:, 0].copy(), both[:, 1].copy()


@dataclass(frozen=True)
class Cut:
    """Keep select keys below ``key``, and those equal to it whose id is in ``ties`` (all when None)."""

    key: int
    ties: frozenset[str] | None = None

    def mask(self, select: np.ndarray, ids: Sequence[str]) -> np.ndarray:
        key = np.uint64(self.key)
        keep = select < key
        at = np.flatnonzero(select == key)
        if len(at):
            keep[at] = True if self.ties is None else [ids[i] in self.ties for i in at]
        return keep


def cut_for(select: np.ndarray, cap: int) -> tuple[Cut | None, int]:
    """The cut keeping ``cap`` of these keys (None: all fit) and, when several keys equal the
    threshold, how many of those still have to be chosen by id (0: no tie to break)."""
    if cap >= len(select):
        return None, 0
    if cap == 0:
        return Cut(0, frozenset()), 0
    key = int(np.partition(select, cap - 1)[cap - 1])
    below = int(np.count_nonzero(select < np.uint64(key)))
    at = int(np.count_nonzero(select == np.uint64(key)))
    return Cut(key), (0 if below + at == cap else cap - below)


def break_tie(cut: Cut, need: int, ids_and_keys: Iterable[tuple[Sequence[str], np.ndarray]]) -> Cut:
    """Resolve a tie at the threshold: the ``need`` smallest ids among those with the threshold key."""
    tied = sorted(i for ids, select in ids_and_keys for i in (ids[k] for k in np.flatnonzero(select == np.uint64(cut.key))))
    return Cut(cut.key, frozenset(tied[:need]))


@dataclass
class ShardStats:
    """What a run held in memory, for checking the bounded-memory claim: rows and sorted runs per
    shard, the intermediate merges pass 2 needed, the most rows held at once (pass 1's buffer, pass
    2's run chunks and pending output) and the peak Arrow allocation above the start of the run."""

    spill_rows: list[int] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    merges: int = 0
    max_rows_held: int = 0
    peak_arrow_bytes: int = 0
    _held: int = 0
    _baseline: int = 0

    def sample_memory(self) -> None:
        self.peak_arrow_bytes = max(self.peak_arrow_bytes, pa.total_allocated_bytes() - self._baseline)

    def hold(self, rows: int) -> None:
        self._held += rows
        self.max_rows_held = max(self.max_rows_held, self._held)

    def release(self, rows: int) -> None:
        self._held -= rows


# --- configuration ---------------------------------------------------------------------------------

_EXCLUDED = object()


def _check_caps(caps: Mapping[str, int | None]) -> dict[str, int | None]:
    known = set(TASKS) | set(FAMILIES)
    for key, cap in caps.items():
        if key not in known:
            raise ValueError(f"caps: unknown task or family {key!r} (known: {', '.join(sorted(known))})")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)):
            raise ValueError(f"caps: {key!r} must be an integer or null, not {cap!r}")
        if cap is not None and cap < 0:
            raise ValueError(f"caps: {key!r} is negative ({cap})")
    return dict(caps)


def cap_of(task: str, caps: Mapping[str, int | None]):
    """The task's own cap, else its family's; ``_EXCLUDED`` when neither is listed."""
    if task in caps:
        return caps[task]
    family = family_of(task)
    return caps[family] if family in caps else _EXCLUDED


@dataclass(frozen=True)
class External:
    name: str
    path: Path
    ratio: float


def _check_external(external: Sequence[Mapping]) -> list[External]:
    out, names = [], set()
    reserved = set(TASKS) | set(FAMILIES) | {EXTERNAL_FAMILY}
    for k, entry in enumerate(external):
        name, path, ratio = entry.get("name"), entry.get("path"), entry.get("ratio")
        label = f"external[{k}] ({name!r})"
        if not isinstance(name, str) or not name or name in reserved or name in names:
            raise ValueError(f"{label}: name must be a new non-empty string, not a task or family name")
        if path is None or not Path(path).is_file():
            raise FileNotFoundError(f"{label}: file {path} does not exist")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio < 0:
            raise ValueError(f"{label}: ratio must be a number >= 0, not {ratio!r}")
        names.add(name)
        out.append(External(name, Path(path), float(ratio)))
    return out


def _check_inputs(sample_files: Sequence, n_shards: int, seed: int, batch_rows: int, fan_in: int) -> list[Path]:
    if not sample_files:
        raise ValueError("no sample files given")
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards must be an integer >= 1, got {n_shards!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    if fan_in < 2:
        raise ValueError(f"fan_in must be >= 2, got {fan_in}")
    paths = [Path(p) for p in sample_files]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"sample file {p} does not exist")
        missing = set(SAMPLE_SCHEMA.names) - set(pq.read_schema(p).names)
        if missing:
            raise ValueError(f"{p}: not a sample table (missing columns {sorted(missing)})")
    return paths


# --- pass 0: counts and cap thresholds --------------------------------------------------------------


@dataclass
class Plan:
    counts: dict[str, dict[str, int]]
    cuts: dict[str, Cut | None]  # included tasks only; None keeps every train row
    kept: dict[str, int]
    excluded_tasks: dict[str, int]


def _id_batches(paths: Sequence[Path], batch_rows: int) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    for p in paths:
        for batch in iter_parquet_batches(p, batch_rows, columns=["id", "task", "split"]):
            if any(batch.column(c).null_count for c in ("id", "task", "split")):
                raise ValueError(f"{p}: null id, task or split")
            yield (batch.column("id").to_pylist(),
                   batch.column("task").to_numpy(zero_copy_only=False),
                   batch.column("split").to_numpy(zero_copy_only=False))


def plan_caps(paths: Sequence[Path], caps: Mapping[str, int | None], seed: int, batch_rows: int) -> Plan:
    counts: dict[str, dict[str, int]] = {}
    keys: dict[str, list[np.ndarray]] = {}
    for ids, tasks, splits in _id_batches(paths, batch_rows):
        for task in np.unique(tasks):
            in_task = tasks == task
            per_split = counts.setdefault(str(task), {})
            for split, n in zip(*np.unique(splits[in_task].astype(str), return_counts=True)):
                per_split[str(split)] = per_split.get(str(split), 0) + int(n)
            if isinstance(cap_of(task, caps), int):
                rows = np.flatnonzero(in_task & (splits == TRAIN))
                keys.setdefault(str(task), []).append(sample_keys(seed, (ids[r] for r in rows))[0])
    cuts, kept, excluded, ties = {}, {}, {}, {}
    for task in sorted(counts):
        n_train = counts[task].get(TRAIN, 0)
        cap = cap_of(task, caps)
        if cap is _EXCLUDED:
            excluded[task] = n_train
            continue
        cut, need = (None, 0) if cap is None else cut_for(np.concatenate(keys.get(task, [np.empty(0, np.uint64)])), cap)
        cuts[task] = cut
        kept[task] = n_train if cap is None else min(cap, n_train)
        if need:
            ties[task] = need
    for task, need in ties.items():
        cuts[task] = break_tie(cuts[task], need, _tied(paths, task, seed, batch_rows))
    return Plan(counts, cuts, kept, excluded)


def _tied(paths: Sequence[Path], task: str, seed: int, batch_rows: int) -> Iterator[tuple[list[str], np.ndarray]]:
    log.info("tie at the cap of %s: one more pass to break it by id", task)
    for ids, tasks, splits in _id_batches(paths, batch_rows):
        rows = np.flatnonzero((tasks == task) & (splits == TRAIN))
        chosen = [ids[r] for r in rows]
        yield chosen, sample_keys(seed, chosen)[0]


@dataclass
class ExternalPlan:
    name: str
    ratio: float
    requested: int
    available: int
    cut: Cut | None
    rejected: dict[str, int]


def plan_external(ext: External, n_behavioural: int, seed: int, batch_rows: int) -> ExternalPlan:
    requested = math.floor(ext.ratio * n_behavioural + 0.5)
    dataset = load_sharegpt(ext.path, ext.name)
    select = np.concatenate([np.empty(0, np.uint64)]
                            + [sample_keys(seed, ids)[0] for ids in _chunks((r["id"] for r in dataset), batch_rows)])
    cut, need = cut_for(select, requested)
    if need:
        cut = break_tie(cut, need, ((ids, sample_keys(seed, ids)[0]) for ids in _chunks((r["id"] for r in dataset), batch_rows)))
    rejected = dict(sorted(dataset.rejected.items()))
    log.info("external %s: %d requested, %d available, rejected %s", ext.name, requested, len(select), rejected or "none")
    return ExternalPlan(ext.name, ext.ratio, requested, len(select), cut, rejected)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- pass 1: spill kept rows as sorted runs ----------------------------------------------------------


def chunk_rows_for(batch_rows: int, fan_in: int) -> int:
    """Rows per chunk of a run, so that a merge holding one chunk of each of ``fan_in`` runs holds
    about ``batch_rows`` rows."""
    return max(1, batch_rows // fan_in)


class Spills:
    """Kept rows buffered up to ``batch_rows``; each flush spills every shard's part of the buffer as
    one run sorted by (order, id), ``runs[k]`` listing shard k's run files in a temporary folder."""

    def __init__(self, folder: Path, n_shards: int, batch_rows: int, chunk_rows: int, stats: ShardStats):
        self.folder = folder
        self.n_shards = n_shards
        self.batch_rows = batch_rows
        self.chunk_rows = chunk_rows
        self.stats = stats
        self.rows = [0] * n_shards
        self.runs: list[list[Path]] = [[] for _ in range(n_shards)]
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0

    def add(self, batch: pa.RecordBatch, order: np.ndarray) -> None:
        if not batch.num_rows:
            return
        if self._buffered + batch.num_rows > self.batch_rows:
            self.flush()
        self._buffer.append(pa.RecordBatch.from_arrays([*batch.columns, pa.array(order, pa.uint64())], schema=SPILL_SCHEMA))
        self._buffered += batch.num_rows
        self.stats.hold(batch.num_rows)
        self.stats.sample_memory()

    def flush(self) -> None:
        if not self._buffered:
            return
        table, bounds = _shard_sort(pa.Table.from_batches(self._buffer, SPILL_SCHEMA), self.n_shards)
        self._buffer = []
        self.stats.sample_memory()
        for k in np.flatnonzero(np.diff(bounds)):
            path = self.folder / f"{k:05d}-{len(self.runs[k]):06d}.arrows"
            write_run(path, table.slice(bounds[k], bounds[k + 1] - bounds[k]), self.chunk_rows)
            self.runs[k].append(path)
            self.rows[k] += int(bounds[k + 1] - bounds[k])
        self.stats.release(self._buffered)
        self._buffered = 0


def _shard_sort(table: pa.Table, n_shards: int) -> tuple[pa.Table, np.ndarray]:
    """The rows sorted by (shard, order, id), and the n_shards + 1 bounds of each shard's rows."""
    by_key = pc.sort_indices(table, sort_keys=SORT_KEYS).to_numpy()
    shard = (table.column(ORDER).to_numpy()[by_key] % np.uint64(n_shards)).astype(np.int64)
    by_shard = np.argsort(shard, kind="stable")
    return table.take(pa.array(by_key[by_shard])), np.searchsorted(shard[by_shard], np.arange(n_shards + 1))


def write_run(path: Path, rows: pa.Table, chunk_rows: int) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, SPILL_SCHEMA) as writer:
        writer.write_table(rows, max_chunksize=chunk_rows)


def _as_samples(batch: pa.RecordBatch, origin: object) -> pa.RecordBatch:
    try:
        return batch.select(SAMPLE_SCHEMA.names).cast(SAMPLE_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
        raise ValueError(f"{origin}: rows do not match the sample schema: {err}") from None


def spill_behavioural(paths: Sequence[Path], plan: Plan, seed: int, batch_rows: int, spills: Spills) -> None:
    for p in paths:
        for batch in iter_parquet_batches(p, batch_rows):
            batch = _as_samples(batch, p)
            tasks = batch.column("task").to_numpy(zero_copy_only=False)
            rows = np.flatnonzero((batch.column("split").to_numpy(zero_copy_only=False) == TRAIN) & np.isin(tasks, list(plan.cuts)))
            if not len(rows):
                continue
            ids = batch.column("id").take(pa.array(rows)).to_pylist()
            select, order = sample_keys(seed, ids)
            keep = np.ones(len(rows), dtype=bool)
            for task in np.unique(tasks[rows]):
                cut = plan.cuts[task]
                if cut is not None:
                    in_task = tasks[rows] == task
                    keep[in_task] = cut.mask(select[in_task], [i for i, t in zip(ids, in_task) if t])
            spills.add(batch.take(pa.array(rows[keep])), order[keep])
        log.info("spilled %s", p.name)


def spill_external(ext: External, plan: ExternalPlan, seed: int, batch_rows: int, spills: Spills) -> int:
    dataset = load_sharegpt(ext.path, ext.name)
    taken = 0
    for records in _chunks(dataset, batch_rows):
        ids = [r["id"] for r in records]
        select, order = sample_keys(seed, ids)
        keep = np.ones(len(ids), dtype=bool) if plan.cut is None else plan.cut.mask(select, ids)
        chosen = [r for r, k in zip(records, keep) if k]
        if chosen:
            spills.add(pa.RecordBatch.from_pylist(chosen, schema=SAMPLE_SCHEMA), order[keep])
        taken += len(chosen)
    if dataset.accepted != plan.available:
        raise ValueError(f"external set {ext.name!r}: {ext.path} changed while it was being read")
    return taken


# --- pass 2: merge each shard's runs, write the shard ----------------------------------------------


class RunCursor:
    """A sorted run read one chunk (IPC record batch) at a time; the chunk's first ``pos`` rows are merged."""

    def __init__(self, path: Path, stats: ShardStats):
        self._source = pa.OSFile(str(path), "rb")
        self._batches = iter(pa.ipc.open_stream(self._source))
        self.stats = stats
        self.chunk: pa.RecordBatch | None = None
        self.order = np.empty(0, np.uint64)
        self.pos = 0
        self.last_key: tuple[int, str] = (0, "")

    def refill(self) -> bool:
        """Load the next chunk once this one is merged; False at the end of the run."""
        if self.pos < len(self.order):
            return True
        self._drop()
        for chunk in self._batches:
            if chunk.num_rows:
                self.chunk, self.order = chunk, chunk.column(ORDER).to_numpy()
                self.last_key = (int(self.order[-1]), chunk.column("id")[-1].as_py())
                self.stats.hold(chunk.num_rows)
                return True
        return False

    def take_upto(self, key: tuple[int, str]) -> pa.RecordBatch:
        """The unmerged rows of the chunk with (order, id) <= ``key``: a prefix, since the run is sorted."""
        order, ident = key
        end = max(self.pos, int(np.searchsorted(self.order, np.uint64(order), side="left")))
        ids = self.chunk.column("id")
        while end < len(self.order) and int(self.order[end]) == order and ids[end].as_py() <= ident:
            end += 1
        rows = self.chunk.slice(self.pos, end - self.pos)
        self.pos = end
        return rows

    def close(self) -> None:
        self._drop()
        self._source.close()

    def _drop(self) -> None:
        if self.chunk is not None:
            self.stats.release(self.chunk.num_rows)
        self.chunk, self.order, self.pos = None, np.empty(0, np.uint64), 0


def merge_runs(paths: Sequence[Path], sink: Callable[[pa.Table], None], stats: ShardStats) -> None:
    """Pass the rows of sorted runs to ``sink`` in (order, id) order, holding one chunk per run. Each
    round passes on every held row up to the smallest last key of the held chunks, sorted: no row
    still on disk can come before them, and at least one chunk is used up."""
    with ExitStack() as stack:
        live = [stack.enter_context(closing(RunCursor(p, stats))) for p in paths]
        live = [c for c in live if c.refill()]
        while live:
            bound = min(c.last_key for c in live)
            pieces = [piece for c in live if (piece := c.take_upto(bound)).num_rows]
            rows = pa.Table.from_batches(pieces)
            stats.sample_memory()
            sink(rows if len(pieces) == 1 else rows.take(pc.sort_indices(rows, sort_keys=SORT_KEYS)))
            live = [c for c in live if c.refill()]


class Rechunk:
    """Passes rows on to ``write`` in contiguous tables of exactly ``rows`` rows (the last one shorter)."""

    def __init__(self, rows: int, write: Callable[[pa.Table], None], stats: ShardStats):
        self.rows = rows
        self.write = write
        self.stats = stats
        self._pending: list[pa.Table] = []
        self._held = 0

    def __call__(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._held += table.num_rows
        self.stats.hold(table.num_rows)
        while self._held >= self.rows:
            self._emit(self.rows)

    def close(self) -> None:
        if self._held:
            self._emit(self._held)

    def _emit(self, n: int) -> None:
        pending = pa.concat_tables(self._pending)
        rest = pending.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self.write(pending.slice(0, n).combine_chunks())
        self.stats.sample_memory()
        self._held -= n
        self.stats.release(n)


class ShardFile:
    """The shard's Parquet file, one row group at a time; the bytes are those ``write_parquet`` gives
    the whole shard, since its writer cuts the same row groups. Checks that ids are unique."""

    def __init__(self, writer: pq.ParquetWriter, name: str):
        self.writer = writer
        self.name = name
        self.rows = 0
        self._last_id: str | None = None

    def __call__(self, group: pa.Table) -> None:
        group = group.drop_columns([ORDER])
        _check_unique(group.column("id"), self.name, self._last_id)
        self._last_id = group.column("id")[-1].as_py()
        self.writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
        self.rows += group.num_rows

    def close(self) -> None:
        if not self.rows:
            self.writer.write_table(SAMPLE_SCHEMA.empty_table(), row_group_size=ROW_GROUP_ROWS)


def merge_levels(runs: list[Path], fan_in: int, chunk_rows: int, stats: ShardStats) -> list[Path]:
    """Merge runs into longer ones, oldest first, until at most ``fan_in`` are left."""
    runs = list(runs)
    while len(runs) > fan_in:
        take = min(fan_in, len(runs) - fan_in + 1)  # no more than needed to get down to fan_in
        group, runs = runs[:take], runs[take:]
        path = group[0].with_name(f"{group[0].name[:5]}-merged-{stats.merges:06d}.arrows")
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, SPILL_SCHEMA) as writer:
            chunks = Rechunk(chunk_rows, writer.write_table, stats)
            merge_runs(group, chunks, stats)
            chunks.close()
        for done in group:
            done.unlink()
        runs.append(path)
        stats.merges += 1
    return runs


def write_shard(runs: list[Path], out: Path, fan_in: int, chunk_rows: int, stats: ShardStats) -> dict:
    runs = merge_levels(runs, fan_in, chunk_rows, stats)
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, SAMPLE_SCHEMA, **PARQUET_OPTIONS) as writer:
        shard = ShardFile(writer, out.name)
        groups = Rechunk(ROW_GROUP_ROWS, shard, stats)
        merge_runs(runs, groups, stats)
        groups.close()
        shard.close()
    for done in runs:
        done.unlink()
    return {"file": out.name, "rows": shard.rows, "sha256": sha256_of(out)}


def _check_unique(ids: pa.ChunkedArray, where: str, before: str | None = None) -> None:
    """Raise on a repeated id among sorted ids (and ``before``, the id just before them)."""
    if before is not None:
        ids = pa.chunked_array([pa.array([before], ids.type), *ids.chunks])
    if len(ids) < 2:
        return
    same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    if pc.any(same).as_py():
        dup = ids[int(pc.index(same, True).as_py())].as_py()
        raise ValueError(f"sample id {dup!r} appears more than once (in {where}); ids must be unique across inputs")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- driver -------------------------------------------------------------------------------------------


def _clear(out_dir: Path, n_shards: int) -> None:
    """Remove what an earlier run left: the manifest, spill folders, shards beyond n_shards."""
    (out_dir / MANIFEST).unlink(missing_ok=True)
    for stale in out_dir.glob(f"{_SPILL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    wanted = {shard_name(k) for k in range(n_shards)}
    for old in out_dir.glob("shard-*.parquet"):
        if old.name not in wanted:
            log.info("removing stale %s", old.name)
            old.unlink()


def build_shard_set(
    sample_files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    n_shards: int,
    seed: int,
    caps: Mapping[str, int | None],
    external: Sequence[Mapping] = (),
    batch_rows: int = 65536,
    stats: ShardStats | None = None,
    fan_in: int = MERGE_FAN_IN,
) -> dict:
    """Write ``out_dir/shard-00000.parquet`` ... and ``out_dir/manifest.json``; returns the manifest.

    ``caps`` maps task or family names to a cap (null: none); tasks matching no key are left out.
    ``external`` entries ``{name, path, ratio}`` add round(ratio x behavioural rows) samples of a
    ShareGPT set (all it has when that is fewer). ``batch_rows`` and ``fan_in`` (runs merged at once)
    bound memory and leave the output unchanged. Pass a ``ShardStats`` to see what memory held."""
    paths = _check_inputs(sample_files, n_shards, seed, batch_rows, fan_in)
    caps = _check_caps(caps)
    externals = _check_external(external)
    stats = stats if stats is not None else ShardStats()
    stats._baseline = pa.total_allocated_bytes()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir, n_shards)

    plan = plan_caps(paths, caps, seed, batch_rows)
    n_behavioural = sum(plan.kept.values())
    log.info("pass 0: %d tasks, %d behavioural training samples kept, excluded tasks %s",
             len(plan.counts), n_behavioural, sorted(plan.excluded_tasks))
    ext_plans = [plan_external(ext, n_behavioural, seed, batch_rows) for ext in externals]

    spill_dir = Path(tempfile.mkdtemp(prefix=_SPILL_PREFIX, dir=out_dir))
    try:
        chunk_rows = chunk_rows_for(batch_rows, fan_in)
        spills = Spills(spill_dir, n_shards, batch_rows, chunk_rows, stats)
        spill_behavioural(paths, plan, seed, batch_rows, spills)
        taken = [spill_external(ext, ep, seed, batch_rows, spills) for ext, ep in zip(externals, ext_plans)]
        spills.flush()
        stats.spill_rows, stats.runs = list(spills.rows), [len(r) for r in spills.runs]
        log.info("pass 1: %d rows spilled over %d shards in %d sorted runs", sum(spills.rows), n_shards, sum(stats.runs))
        shards = []
        for k in range(n_shards):
            shards.append(write_shard(spills.runs[k], out_dir / shard_name(k), fan_in, chunk_rows, stats))
            log.info("pass 2: wrote %s (%d rows, %d runs merged)", shards[-1]["file"], shards[-1]["rows"], stats.runs[k])
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)

    manifest = _manifest(paths, seed, n_shards, caps, plan, ext_plans, taken, shards)
    write_json(out_dir / MANIFEST, manifest)
    return manifest


def _manifest(paths, seed, n_shards, caps, plan: Plan, ext_plans: list[ExternalPlan], taken: list[int], shards: list[dict]) -> dict:
    return {
        "seed": seed,
        "n_shards": n_shards,
        "inputs": sorted(p.name for p in paths),
        "caps": caps,
        "counts": plan.counts,
        "included": plan.kept,
        "excluded_by_cap": {t: plan.counts[t].get(TRAIN, 0) - n for t, n in plan.kept.items()},
        "excluded_tasks": plan.excluded_tasks,
        "excluded_splits": {t: {s: n for s, n in per.items() if s != TRAIN} for t, per in plan.counts.items() if set(per) - {TRAIN}},
        "behavioural_rows": sum(plan.kept.values()),
        "external": [
            {"name": ep.name, "ratio": ep.ratio, "requested": ep.requested, "available": ep.available,
             "taken": n, "rejected": ep.rejected}
            for ep, n in zip(ext_plans, taken)
        ],
        "shards": shards,
        "total_rows": sum(s["rows"] for s in shards),
    }


def verify_manifest(out_dir: str | os.PathLike) -> list[str]:
    """Problems with a shard set against its manifest (empty when it is intact)."""
    out_dir = Path(out_dir)
    if not (out_dir / MANIFEST).is_file():
        return [f"{MANIFEST} missing in {out_dir}"]
    manifest = read_json(out_dir / MANIFEST)
    problems = []
    listed = {entry["file"] for entry in manifest["shards"]}
    for entry in manifest["shards"]:
        problems += _verify_shard(out_dir / entry["file"], entry)
    for extra in sorted(p.name for p in out_dir.glob("shard-*.parquet") if p.name not in listed):
        problems.append(f"{extra}: not listed in the manifest")
    if sum(e["rows"] for e in manifest["shards"]) != manifest["total_rows"]:
        problems.append(f"total_rows {manifest['total_rows']} is not the sum of the shards' rows")
    return problems


def _verify_shard(path: Path, entry: Mapping) -> list[str]:
    if not path.is_file():
        return [f"{entry['file']}: missing"]
    problems = []
    if sha256_of(path) != entry["sha256"]:
        problems.append(f"{entry['file']}: sha256 differs from the manifest")
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as err:
        return problems + [f"{entry['file']}: unreadable ({err})"]
    if rows != entry["rows"]:
        problems.append(f"{entry['file']}: {rows} rows, manifest says {entry['rows']}")
    return problems
