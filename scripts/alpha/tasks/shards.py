"""Training shard sets: the behavioural tasks (capped per task or family) and external instruction
sets (a ratio of the behavioural samples), shuffled by seed into ``n_shards`` Parquet files.

Every sample gets two independent 64-bit keys from blake2b-128 of (seed, id): the *select* key
decides caps (a capped task keeps its ``cap`` samples with the smallest select keys; ties broken by
id) and the *order* key decides the shuffle (shard = order % n_shards, rows sorted by (order, id)).
Two keys, because ordering by the select key would put a capped task's survivors, which all have
small keys, at the head of every shard.

Memory is bounded, never all samples at once:

* pass 0 reads (id, task, split) in batches: counts, plus the select keys of capped tasks' train
  rows (8 bytes a row) to find each cap's exact threshold with ``np.partition``;
* pass 1 streams the full rows in batches and appends each kept row to its shard's spill file
  (an Arrow IPC stream in a temporary folder inside ``out_dir``);
* pass 2 loads one spill at a time (about total / n_shards rows), sorts it and writes the shard.

The output depends only on the set of input rows, the seed, caps and n_shards: not on batch_rows
nor on the order of the input files. ``manifest.json`` records counts, caps, external mix and each
shard's row count and sha256; ``verify_manifest`` checks a shard set against it.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpha.core.io import PARQUET_OPTIONS, iter_parquet_batches, read_json, write_json, write_parquet
from alpha.tasks.samples import EXTERNAL_FAMILY, FAMILIES, ROW_GROUP_ROWS, SAMPLE_SCHEMA, TASKS, TRAIN, family_of
from alpha.tasks.sharegpt import load_sharegpt

log = logging.getLogger("alpha.tasks.shards")

MANIFEST = "manifest.json"
ORDER = "_order"
SPILL_SCHEMA = SAMPLE_SCHEMA.append(pa.field(ORDER, pa.uint64()))
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
    """What a run held in memory, for checking the bounded-memory claim: rows per spill, the most
    rows loaded at once in pass 2, and the peak Arrow allocation above the start of the run."""

    spill_rows: list[int] = field(default_factory=list)
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


def _check_inputs(sample_files: Sequence, n_shards: int, seed: int, batch_rows: int) -> list[Path]:
    if not sample_files:
        raise ValueError("no sample files given")
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards must be an integer >= 1, got {n_shards!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
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


# --- pass 1: spill kept rows by shard ---------------------------------------------------------------


class Spills:
    """One Arrow IPC stream per shard in a temporary folder; rows appended batch by batch."""

    def __init__(self, folder: Path, n_shards: int, stats: ShardStats):
        self.folder = folder
        self.n_shards = n_shards
        self.stats = stats
        self.rows = [0] * n_shards
        self._sinks = [pa.OSFile(str(self.path(k)), "wb") for k in range(n_shards)]
        self._writers = [pa.ipc.new_stream(sink, SPILL_SCHEMA) for sink in self._sinks]

    def path(self, k: int) -> Path:
        return self.folder / f"{k:05d}.arrows"

    def add(self, batch: pa.RecordBatch, order: np.ndarray) -> None:
        if not batch.num_rows:
            return
        batch = pa.RecordBatch.from_arrays([*batch.columns, pa.array(order, pa.uint64())], schema=SPILL_SCHEMA)
        shard = (order % np.uint64(self.n_shards)).astype(np.int64)
        by_shard = np.argsort(shard, kind="stable")
        bounds = np.searchsorted(shard[by_shard], np.arange(self.n_shards + 1))
        for k in np.flatnonzero(np.diff(bounds)):
            rows = by_shard[bounds[k]:bounds[k + 1]]
            self._writers[k].write_batch(batch.take(pa.array(rows)))
            self.rows[k] += len(rows)
        self.stats.sample_memory()

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        for sink in self._sinks:
            sink.close()
        self._writers, self._sinks = [], []


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


# --- pass 2: sort each spill, write its shard -------------------------------------------------------


def write_shard(spill: Path, out: Path, stats: ShardStats) -> dict:
    with pa.OSFile(str(spill), "rb") as src:
        table = pa.ipc.open_stream(src).read_all()
    spill.unlink()
    stats.hold(table.num_rows)
    stats.sample_memory()
    order = pc.sort_indices(table, sort_keys=[(ORDER, "ascending"), ("id", "ascending")])
    table = table.take(order).drop_columns([ORDER]).combine_chunks()
    stats.sample_memory()
    _check_unique(table.column("id"), out.name)
    write_parquet(out, table, ROW_GROUP_ROWS, PARQUET_OPTIONS)
    stats.sample_memory()
    rows = table.num_rows
    stats.release(rows)
    return {"file": out.name, "rows": rows, "sha256": sha256_of(out)}


def _check_unique(ids: pa.ChunkedArray, where: str) -> None:
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
) -> dict:
    """Write ``out_dir/shard-00000.parquet`` ... and ``out_dir/manifest.json``; returns the manifest.

    ``caps`` maps task or family names to a cap (null: none); tasks matching no key are left out.
    ``external`` entries ``{name, path, ratio}`` add round(ratio x behavioural rows) samples of a
    ShareGPT set (all it has when that is fewer). Pass a ``ShardStats`` to see what memory held."""
    paths = _check_inputs(sample_files, n_shards, seed, batch_rows)
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
        spills = Spills(spill_dir, n_shards, stats)
        try:
            spill_behavioural(paths, plan, seed, batch_rows, spills)
            taken = [spill_external(ext, ep, seed, batch_rows, spills) for ext, ep in zip(externals, ext_plans)]
        finally:
            spills.close()
        stats.spill_rows = list(spills.rows)
        log.info("pass 1: %d rows spilled over %d shards", sum(spills.rows), n_shards)
        shards = []
        for k in range(n_shards):
            shards.append(write_shard(spills.path(k), out_dir / shard_name(k), stats))
            log.info("pass 2: wrote %s (%d rows)", shards[-1]["file"], shards[-1]["rows"])
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
