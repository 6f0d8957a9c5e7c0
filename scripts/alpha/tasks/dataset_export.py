"""A training shard set as a Hugging Face ``datasets`` dataset: Parquet files, a dataset card, a manifest.

``export_dataset`` writes ``out_dir/``::

    data/train-00000-of-000NN.parquet ...     one file per non-empty shard, rows exactly as in the shard
    data/test_unseen_advertiser-00000-of-...  the workflow's held-out test sets (rule test_sets), only
    data/test_after_cutoff-00000-of-...       the tasks this shard set trains on (optional)
    README.md                                 the dataset card: Hub YAML front matter + generated text
    export.json                               per file rows, bytes and sha256; the source manifest digest

``datasets.load_dataset("parquet", data_files={split: [...]})`` (or ``load_dataset(out_dir)``, which reads
the card's ``configs``) loads it back. Rows are streamed (``batch_rows`` at a time) and written in row
groups of ``ROW_GROUP_ROWS``, so memory is bounded and the bytes depend only on the input rows: a rerun
writes identical files. The schema is the shards' own plus the ``huggingface`` features metadata that
``datasets`` writes itself; ``messages`` stays an Arrow list of ``{role, content}`` structs.

Provenance guard: every row must be either an ALPHA task sample (source "alpha", a known task and its
family) or a sample of one of the shard set's external instruction sets (source = task = the set's name,
family "external"), in the split the file says. A row whose source or task names an evaluation benchmark
(the config's benchmark registry and the benchmarks ALPHA is evaluated on), an external set named like
one, or an external file stored inside a benchmark's folder stops the export (``BenchmarkDataError``).
The guard checks provenance, not content: it cannot prove that a third-party external file holds no
benchmark text (the card says so).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpha.core.io import iter_parquet_batches, read_json, write_json, write_text
from alpha.tasks import shards
from alpha.tasks.samples import EXTERNAL_FAMILY, ROW_GROUP_ROWS, SAMPLE_SCHEMA, TASKS, TEST_SPLITS, TRAIN, SampleWriter, family_of

log = logging.getLogger("alpha.tasks.dataset_export")

CARD = "README.md"
EXPORT_MANIFEST = "export.json"
DATA = "data"
ALPHA_SOURCE = "alpha"  # the source of every behavioural sample (alpha.tasks.builders)
SPLIT_ORDER = (TRAIN, *TEST_SPLITS)
# The benchmarks ALPHA is evaluated on (alpha/eval/tasks/*.yaml and their raw forms): never in an export.
KNOWN_BENCHMARKS = ("opinionqa", "opinionqa_xl", "opinionqa_raw", "pew_atp", "atp", "globalopinionqa", "culturebank",
                    "culturenli", "gss")
_OWNED = {CARD, EXPORT_MANIFEST, DATA, ".snakemake_timestamp"}  # what an export folder may hold

TASK_NAMES = {
    "TAG": "target audience generation: write the ad for an audience",
    "TAP-G": "target audience prediction: the ad's top gender",
    "TAP-A": "target audience prediction: the ad's top age bracket",
    "TAP-R": "target audience prediction: the ad's top 3 states",
    "TC-G": "transcreation: rewrite a page's ad for another top gender",
    "TC-A": "transcreation: rewrite a page's ad for another top age bracket",
    "TC-R": "transcreation: rewrite a page's ad for another top state",
    "TS-E": "transsuasion: the page's more engaging ad for the same audience",
    "TS-B": "transsuasion: the page's ad with the larger spend for the same audience",
}
FIELDS = {
    "id": "unique, deterministic sample id (e.g. `TAG:age:<ad_id>`, `TS-B:<ad_id_1>><ad_id_2>`, `<external set>:<id>`)",
    "task": "task (TAG, TAP-G/A/R, TC-A/G/R, TS-E/B) or the external set's name",
    "family": "TAG, TAP, TC, TS or `external`",
    "split": "the sample's split (equals the dataset split)",
    "page_id": "the advertiser's Ad Library page id; null for external samples",
    "ad_ids": "the Ad Library ad ids the sample is built from (one for TAG/TAP, [source, target] for TC/TS); [] for external",
    "label": "TAP's class label (gender, age bracket, first state); null elsewhere",
    "source": "`alpha` (built from the ads by this workflow) or the external instruction set's name",
    "messages": "the chat: a list of {role, content} turns (system, user, assistant); no chat template applied",
}
# Meaning of the config keys the card lists (config/schema.yaml has the full text).
SETTING_NOTES = {
    "seed": "seed of every sampled choice (splits, caps, shuffles, TAP balance)",
    "ads.cleaning.min_words": "ads with fewer words (not counting [URL]) are dropped (too_short)",
    "ads.cleaning.drop_unnamed_pages": "ads whose page has no name are dropped",
    "ads.cleaning.require_demographics": "ads without a demographic distribution are dropped",
    "ads.min_kept_share": "a dump keeping fewer than this share of its records fails the run",
    "census.include_puerto_rico": "Puerto Rico is ranked alongside the states",
    "pairs.cosine_low": "TC/TS pairs (same page) need embedding cosine strictly above this",
    "pairs.cosine_high": "... and strictly below this (1.0 excludes duplicates)",
    "pairs.min_distance": "TS pairs need an edit (Levenshtein) distance above this",
    "pairs.distance_unit": "unit of that edit distance (words or chars)",
    "tasks.keywords.top_n": "KeyBERT keywords per ad body in TAG prompts",
    "tasks.splits.heldout_page_fraction": "share of advertisers (pages, by seeded hash) held out as test_unseen_advertiser",
    "tasks.splits.cutoff_date": "ads delivered after this day (delivery start, else creation) are test_after_cutoff",
    "tasks.tag_audiences": "TAG audience combinations, one sample per ad and combination",
    "tasks.region_min_rank_diff": "TC-R: the target's top state ranks at least this many places lower in the source",
    "tasks.tap_min_class_size": "TAP test sets are class-balanced; smaller classes are left out",
}


class ProvenanceError(ValueError):
    """A row that is neither an ALPHA task sample nor a sample of the shard set's external sets."""


class BenchmarkDataError(ProvenanceError):
    """Benchmark data (or an external set that looks like it) on its way into an export."""


# --- provenance guard ----------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def benchmark_names(benchmarks: Mapping[str, Mapping] | None = None) -> frozenset[str]:
    """Normalised names that identify benchmark data: the known benchmarks, and the config's registry
    (``{name: {"task": ..., "paths": [...]}}``) names and task names."""
    names = set(KNOWN_BENCHMARKS)
    for name, entry in (benchmarks or {}).items():
        names.add(name)
        if entry.get("task"):
            names.add(entry["task"])
    return frozenset(n for n in map(_norm, names) if n)


def benchmark_match(name: str | None, names: Iterable[str]) -> str | None:
    """The benchmark ``name`` identifies (a word of it is one, or it contains a long one), else None."""
    if not name:
        return None
    words = {_norm(w) for w in re.split(r"[^A-Za-z0-9]+", name) if w}
    whole = _norm(name)
    for bench in sorted(names):
        if bench in words or whole == bench or (len(bench) >= 5 and bench in whole):
            return bench
    return None


def _inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path == folder or folder in path.parents


def check_external_sets(external: Mapping[str, str | os.PathLike | None], benchmarks: Mapping[str, Mapping] | None = None) -> None:
    """Refuse external sets named like a benchmark or whose file lies inside a benchmark's files."""
    names = benchmark_names(benchmarks)
    for name, path in sorted(external.items()):
        hit = benchmark_match(name, names)
        if hit:
            raise BenchmarkDataError(
                f"external set {name!r} is named like the benchmark {hit!r}: an export never contains benchmark data "
                "(rename the set if it is not benchmark data, or leave it out of the shard set)")
        for bench, entry in sorted((benchmarks or {}).items()):
            for bench_path in entry.get("paths", []):
                if path and bench_path and _inside(path, bench_path):
                    raise BenchmarkDataError(
                        f"external set {name!r} reads {path}, which lies inside benchmark {bench!r}'s files ({bench_path}): "
                        "an export never contains benchmark data")


@dataclass(frozen=True)
class Provenance:
    externals: frozenset[str]
    benchmarks: frozenset[str]

    def problem(self, task, family, source, split, expected_split: str) -> str | None:
        """Why a row with these values may not be exported (None: it may)."""
        for what, value in (("source", source), ("task", task)):
            hit = benchmark_match(value, self.benchmarks)
            if hit:
                raise BenchmarkDataError(f"{what} {value!r} is benchmark data ({hit})")
        if None in (task, family, source, split):
            return "null task, family, source or split"
        if split != expected_split:
            return f"split {split!r} in the {expected_split} split"
        if source == ALPHA_SOURCE:
            if task not in TASKS or family != family_of(task):
                return f"source alpha with task {task!r} and family {family!r}"
            return None
        if source in self.externals:
            if task != source or family != EXTERNAL_FAMILY or split != TRAIN:
                return f"external set {source!r} with task {task!r}, family {family!r}, split {split!r}"
            return None
        return f"source {source!r} is neither {ALPHA_SOURCE!r} nor an external set of the shard set ({sorted(self.externals)})"


def check_rows(table: pa.Table | pa.RecordBatch, expected_split: str, provenance: Provenance, where: str) -> Counter:
    """Rows per task of ``table``; raises on a row that may not be exported, naming its id."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    keys = ["task", "family", "source", "split"]
    groups = table.select(keys).group_by(keys, use_threads=False).aggregate([([], "count_all")])
    counts: Counter = Counter()
    for task, family, source, split, n in zip(*(groups.column(k).to_pylist() for k in [*keys, "count_all"])):
        try:
            problem = provenance.problem(task, family, source, split, expected_split)
        except BenchmarkDataError as err:
            raise BenchmarkDataError(f"{where}: row {_first_id(table, task, source)!r}: {err}; "
                                     "the export refuses benchmark data") from None
        if problem:
            raise ProvenanceError(f"{where}: row {_first_id(table, task, source)!r}: {problem}")
        counts[task] += n
    return counts


def _first_id(table: pa.Table, task, source) -> str | None:
    def same(column, value):
        col = table.column(column)
        return pc.is_null(col) if value is None else pc.fill_null(pc.equal(col, value), False)

    ids = table.filter(pc.and_(same("task", task), same("source", source))).column("id")
    return ids[0].as_py() if len(ids) else None


# --- writing -----------------------------------------------------------------------------------------------


def data_file(split: str, k: int, n: int) -> str:
    return f"{DATA}/{split}-{k:05d}-of-{n:05d}.parquet"


def export_schema(schema: pa.Schema) -> pa.Schema:
    """The shards' schema with the ``huggingface`` features metadata that ``datasets`` itself writes."""
    import datasets

    features = datasets.Features.from_arrow_schema(schema)
    return schema.with_metadata(features.arrow_schema.metadata)


class SplitFiles:
    """One split's files, written in order: ``start(k)`` opens file k, ``add`` appends rows (a file opened
    with a ``limit`` is closed, and the next one opened, when it has that many rows)."""

    def __init__(self, folder: Path, split: str, n_files: int, schema: pa.Schema, limit: int | None = None):
        self.folder, self.split, self.n_files, self.schema, self.limit = folder, split, n_files, schema, limit
        self.files: list[dict] = []
        self._writer: SampleWriter | None = None
        self._k = -1
        self._rows = 0

    def start(self, k: int) -> None:
        self.finish()
        if k >= self.n_files:
            raise ValueError(f"{self.split}: more than the {self.n_files} files counted")
        self._k = k
        path = self.folder / data_file(self.split, k, self.n_files)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = SampleWriter(path, self.schema, ROW_GROUP_ROWS)
        self._rows = 0

    def add(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None:
                self.start(self._k + 1)
            room = table.num_rows if self.limit is None else self.limit - self._rows
            self._writer.add_table(table.slice(0, room))
            self._rows += min(room, table.num_rows)
            table = table.slice(room)
            if self.limit is not None and self._rows >= self.limit:
                self.finish()

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self.files.append({"file": data_file(self.split, self._k, self.n_files), "split": self.split, "rows": self._writer.rows})
            self._writer = None


def _batches(path: Path, batch_rows: int, tasks: frozenset[str] | None = None) -> Iterator[pa.Table]:
    for batch in iter_parquet_batches(path, batch_rows, SAMPLE_SCHEMA.names):
        table = pa.Table.from_batches([batch])
        if tasks is not None:
            table = table.filter(pc.is_in(table.column("task"), pa.array(sorted(tasks), pa.string())))
        if table.num_rows:
            yield table


def _count_rows(path: Path, batch_rows: int, tasks: frozenset[str]) -> int:
    value_set = pa.array(sorted(tasks), pa.string())
    return sum(pc.sum(pc.is_in(b.column("task"), value_set)).as_py() or 0 for b in iter_parquet_batches(path, batch_rows, ["task"]))


def _write_train(shard_dir: Path, manifest: Mapping, tmp: Path, schema: pa.Schema, provenance: Provenance, batch_rows: int):
    entries = [e for e in manifest["shards"] if e["rows"]]
    out = SplitFiles(tmp, TRAIN, len(entries), schema)
    counts: Counter = Counter()
    for k, entry in enumerate(entries):
        out.start(k)
        for table in _batches(shard_dir / entry["file"], batch_rows):
            counts += check_rows(table, TRAIN, provenance, f"{shard_dir.name}/{entry['file']}")
            out.add(table)
        out.finish()
        out.files[-1]["from"] = entry["file"]
        log.info("train: %s -> %s (%d rows)", entry["file"], out.files[-1]["file"], out.files[-1]["rows"])
    return out.files, counts


def _write_test(split: str, path: Path, tasks: frozenset[str], tmp: Path, schema: pa.Schema, provenance: Provenance,
                batch_rows: int, rows_per_file: int):
    n = _count_rows(path, batch_rows, tasks)
    if not n:
        log.info("%s: no rows of this shard set's tasks, split left out", split)
        return [], Counter()
    out = SplitFiles(tmp, split, math.ceil(n / rows_per_file), schema, limit=rows_per_file)
    counts: Counter = Counter()
    for table in _batches(path, batch_rows, tasks):
        counts += check_rows(table, split, provenance, path.name)
        out.add(table)
    out.finish()
    for entry in out.files:
        entry["from"] = path.name
    log.info("%s: %d rows of %d tasks in %d files", split, n, len(counts), len(out.files))
    return out.files, counts


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _describe_file(tmp: Path, entry: dict, schema: pa.Schema) -> dict:
    """Rows, bytes and sha256 of a written file, read back: Arrow bytes (``num_bytes`` as ``datasets``
    counts them) summed over fresh row groups, so they never depend on how the rows were batched."""
    path = tmp / entry["file"]
    parquet = pq.ParquetFile(path, pre_buffer=False)
    if not parquet.schema_arrow.equals(schema, check_metadata=True):
        raise RuntimeError(f"{entry['file']}: written schema differs from the export schema")
    num_bytes = sum(parquet.read_row_group(g).nbytes for g in range(parquet.num_row_groups))
    if parquet.metadata.num_rows != entry["rows"]:
        raise RuntimeError(f"{entry['file']}: {parquet.metadata.num_rows} rows read back, {entry['rows']} written")
    return {**entry, "num_bytes": num_bytes, "size": path.stat().st_size, "sha256": shards.sha256_of(path)}


# --- source facts for the card ---------------------------------------------------------------------------


def dump_facts(ingest_report: Mapping | None, ads_path: str | os.PathLike | None, batch_rows: int,
               collected: Mapping[str, str] | None = None) -> list[dict]:
    """Per source dump: file, counts from the merge report and the date range of its kept ads (from the
    merged ads table, streamed four columns at a time), plus the collection date given in the config."""
    if not ingest_report:
        return []
    files = ingest_report.get("files", {})
    collected = dict(collected or {})
    unknown = sorted(set(collected) - set(files))
    if unknown:
        raise ValueError(f"dataset_export.dump_collected names dumps the run does not have: {unknown} (dumps: {sorted(files)})")
    dates = _dates_by_file(ads_path, batch_rows) if ads_path else {}
    out = []
    for name in sorted(files):
        entry = files[name]
        d = dates.get(entry.get("file"), {})
        out.append({
            "dump": name, "file": entry.get("file"), "format": entry.get("format"),
            "records": entry.get("in"), "kept": entry.get("kept"), "quarantined": entry.get("quarantined"),
            "duplicates": entry.get("duplicates"), "ads_in_table": d.get("ads", 0),
            "first_date": d.get("first"), "last_date": d.get("last"),
            "created": [d.get("created_min"), d.get("created_max")],
            "delivery": [d.get("delivery_start_min"), d.get("delivery_stop_max")],
            "collected": collected.get(name),
            "shares_file_name": sorted(n for n, e in files.items() if n != name and e.get("file") == entry.get("file")),
        })
    return out


def _dates_by_file(ads_path, batch_rows: int) -> dict[str, dict]:
    cols = ["source_file", "created", "delivery_start", "delivery_stop"]
    acc: dict[str, dict] = {}

    def keep(d, key, value, pick):
        if value is not None:
            d[key] = value if d.get(key) is None else pick(d[key], value)

    for batch in iter_parquet_batches(ads_path, batch_rows, cols):
        table = pa.Table.from_batches([batch])
        agg = table.group_by("source_file", use_threads=False).aggregate(
            [("created", "min"), ("created", "max"), ("delivery_start", "min"), ("delivery_start", "max"),
             ("delivery_stop", "min"), ("delivery_stop", "max"), ([], "count_all")])
        for row in agg.to_pylist():
            d = acc.setdefault(row["source_file"], {"ads": 0})
            d["ads"] += row["count_all"]
            keep(d, "created_min", row["created_min"], min)
            keep(d, "created_max", row["created_max"], max)
            keep(d, "delivery_start_min", row["delivery_start_min"], min)
            keep(d, "delivery_stop_max", row["delivery_stop_max"], max)
            for value in (row["created_min"], row["delivery_start_min"], row["delivery_stop_min"]):
                keep(d, "first", value, min)
            for value in (row["created_max"], row["delivery_start_max"], row["delivery_stop_max"]):
                keep(d, "last", value, max)
    return {f: {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()} for f, d in acc.items()}


def code_digest(code_files: Sequence[str | os.PathLike]) -> str | None:
    """sha256 over the (relative path, sha256) of the code that ran the export."""
    if not code_files:
        return None
    lines = [f"{Path(p).as_posix()} {shards.sha256_of(Path(p))}" for p in sorted(map(str, code_files))]
    return sha256_bytes("\n".join(lines).encode())


# --- driver ----------------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _prepare_out(out_dir: Path, shard_dir: Path) -> None:
    if _inside(out_dir, shard_dir) or _inside(shard_dir, out_dir):
        raise ValueError(f"the export folder {out_dir} and the shard set {shard_dir} must not contain each other")
    if out_dir.exists():
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in _OWNED)
        if foreign:
            raise ValueError(f"{out_dir} holds files an export does not write ({foreign[:5]}): refusing to replace it")


def export_dataset(
    shard_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    shard_set: str | None = None,
    test_files: Mapping[str, str | os.PathLike] | None = None,
    test_report: str | os.PathLike | None = None,
    ingest_report: str | os.PathLike | None = None,
    ads: str | os.PathLike | None = None,
    external: Mapping[str, str | os.PathLike | None] | None = None,
    benchmarks: Mapping[str, Mapping] | None = None,
    settings: Mapping | None = None,
    spec: Mapping | None = None,
    card: Mapping | None = None,
    code_files: Sequence[str | os.PathLike] = (),
    batch_rows: int = 16384,
    test_rows_per_file: int = 200_000,
) -> dict:
    """Export the shard set in ``shard_dir`` to ``out_dir`` (replaced as a whole); returns export.json's content.

    ``test_files`` ({split: path}) adds the held-out test sets, restricted to the tasks the shard set
    includes; ``test_report`` (their report.json) is checked against the rows. ``external`` maps the shard
    set's external sets to their files; ``benchmarks`` is the benchmark registry ({name: {task, paths}}).
    ``ingest_report`` and ``ads`` (the merged ads table) give the card its source dumps; ``settings``
    ({config key: value}), ``spec`` (the shard set's config) and ``card`` (name, license_name,
    license_link, dump_collected, demo, demo_external) only change the card."""
    shard_dir, out_dir = Path(shard_dir), Path(out_dir)
    shard_set = shard_set or shard_dir.name
    card = dict(card or {})
    if batch_rows < 1 or test_rows_per_file < 1:
        raise ValueError("batch_rows and test_rows_per_file must be >= 1")
    problems = shards.verify_manifest(shard_dir)
    if problems:
        raise ValueError(f"shard set {shard_dir} does not match its manifest:\n  " + "\n  ".join(problems))
    manifest_bytes = (shard_dir / shards.MANIFEST).read_bytes()
    manifest = read_json(shard_dir / shards.MANIFEST)
    _prepare_out(out_dir, shard_dir)

    ext_names = [e["name"] for e in manifest.get("external", [])]
    ext_paths = {name: (external or {}).get(name) for name in ext_names}
    check_external_sets(ext_paths, benchmarks)
    provenance = Provenance(frozenset(ext_names), benchmark_names(benchmarks))
    first = next((e["file"] for e in manifest["shards"]), None)
    source_schema = pq.read_schema(shard_dir / first) if first else SAMPLE_SCHEMA
    if not source_schema.remove_metadata().equals(SAMPLE_SCHEMA):
        raise ValueError(f"{shard_dir}: shards are not sample tables:\n{source_schema}")
    schema = export_schema(source_schema.remove_metadata())
    tasks = frozenset(t for t, n in manifest["included"].items() if n > 0)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp's folder is private; the export is a folder like any other
    try:
        files, train_counts = _write_train(shard_dir, manifest, tmp, schema, provenance, batch_rows)
        counts = {TRAIN: train_counts}
        for split in TEST_SPLITS:
            if test_files and test_files.get(split):
                written, counts[split] = _write_test(split, Path(test_files[split]), tasks, tmp, schema, provenance,
                                                     batch_rows, test_rows_per_file)
                files += written
        _check_counts(manifest, counts, read_json(test_report) if test_report else None, tasks)
        files = [_describe_file(tmp, entry, schema) for entry in files]
        report = read_json(ingest_report) if ingest_report else None
        dumps = dump_facts(report, ads, batch_rows, card.get("dump_collected"))
        export = _export_manifest(shard_set, manifest, manifest_bytes, files, counts, tasks, dumps, settings, spec, card,
                                  code_digest(code_files), ext_paths, test_files, benchmarks)
        write_text(tmp / CARD, render_card(export, manifest, schema))
        write_json(tmp / EXPORT_MANIFEST, export)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s: %s", shard_set, {s: v["num_examples"] for s, v in export["splits"].items()})
    return export


def _check_counts(manifest: Mapping, counts: Mapping[str, Counter], test_report: Mapping | None, tasks: frozenset[str]) -> None:
    expected = {t: n for t, n in manifest["included"].items() if n}
    expected.update({e["name"]: e["taken"] for e in manifest.get("external", []) if e["taken"]})
    if dict(counts[TRAIN]) != expected:
        got = dict(sorted(counts[TRAIN].items()))
        raise ValueError(f"train rows per task {got} differ from the shard manifest's {dict(sorted(expected.items()))}")
    if test_report is None:
        return
    for split in TEST_SPLITS:
        if split not in counts:
            continue
        want = {t: per.get(split, 0) for t, per in test_report.get("samples", {}).items() if t in tasks and per.get(split, 0)}
        if dict(counts[split]) != want:
            raise ValueError(f"{split}: rows per task {dict(sorted(counts[split].items()))} differ from the test sets' report {want}")


def size_category(n: int) -> str:
    if n < 1000:
        return "n<1K"
    bounds = [(10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
              (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B")]
    return next((label for bound, label in bounds if n < bound), "n>1T" if n >= 10**12 else "10B<n<100B")


def _versions() -> dict:
    import datasets
    import huggingface_hub

    return {"pyarrow": pa.__version__, "datasets": datasets.__version__, "huggingface_hub": huggingface_hub.__version__}


def _export_manifest(shard_set, manifest, manifest_bytes, files, counts, tasks, dumps, settings, spec, card, digest,
                     ext_paths, test_files, benchmarks) -> dict:
    splits = {}
    for split in SPLIT_ORDER:
        mine = [f for f in files if f["split"] == split]
        if mine:
            splits[split] = {"num_examples": sum(f["rows"] for f in mine), "num_bytes": sum(f["num_bytes"] for f in mine),
                             "files": len(mine), "tasks": dict(sorted(counts[split].items()))}
    demo_external = card.get("demo_external")
    return {
        "shard_set": shard_set,
        "name": card.get("name") or "ALPHA50M",
        "demo": bool(card.get("demo")),
        "source": {
            "shard_manifest_sha256": sha256_bytes(manifest_bytes),
            "shards": [{k: s[k] for k in ("file", "rows", "sha256")} for s in manifest["shards"]],
            "seed": manifest["seed"],
            "test_sets": sorted(Path(p).name for p in (test_files or {}).values() if p),
        },
        "files": [{k: f[k] for k in ("file", "split", "rows", "num_bytes", "size", "sha256", "from")} for f in files],
        "splits": splits,
        "tasks_in_test_splits": sorted(tasks) if test_files else [],
        "total_rows": sum(s["num_examples"] for s in splits.values()),
        "download_size": sum(f["size"] for f in files),
        "dataset_size": sum(f["num_bytes"] for f in files),
        "external": [
            {**{k: e[k] for k in ("name", "ratio", "requested", "available", "taken", "rejected")},
             "file": Path(ext_paths[e["name"]]).name if ext_paths.get(e["name"]) else None,
             "synthetic_demo": bool(card.get("demo") and demo_external and ext_paths.get(e["name"])
                                    and os.path.normpath(str(ext_paths[e["name"]])) == os.path.normpath(demo_external))}
            for e in manifest.get("external", [])
        ],
        "dumps": dumps,
        "settings": dict(sorted((settings or {}).items())),
        "shard_set_spec": _plain(spec or {"caps": manifest["caps"], "n_shards": manifest["n_shards"]}),
        "benchmark_guard": {"refused_names": sorted(benchmark_names(benchmarks)), "allowed_sources": [ALPHA_SOURCE, *sorted(ext_paths)]},
        "generator": {"rule": "export_dataset", "script": "scripts/export_dataset.py", "module": "alpha.tasks.dataset_export",
                      "code_sha256": digest, **_versions()},
        "license": {"license": "other", "license_name": card.get("license_name") or "alpha-mixed-sources",
                    "license_link": card.get("license_link")},
    }


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- the dataset card ------------------------------------------------------------------------------------------


def card_yaml(export: Mapping, schema: pa.Schema) -> str:
    """The card's YAML front matter, serialised by ``huggingface_hub`` with ``datasets``' own dataset_info."""
    import datasets
    from huggingface_hub import DatasetCardData

    info = datasets.DatasetInfo(features=datasets.Features.from_arrow_schema(schema.remove_metadata()),
                                download_size=export["download_size"], dataset_size=export["dataset_size"])
    info.config_name = "default"
    info.splits = datasets.SplitDict()
    for split, s in export["splits"].items():
        info.splits.add(datasets.SplitInfo(name=split, num_bytes=s["num_bytes"], num_examples=s["num_examples"]))
    families = {family_of(t) for s in export["splits"].values() for t in s["tasks"]}
    categories = ["text-generation"] + (["text-classification"] if "TAP" in families else [])
    tags = ["advertising", "meta-ad-library", "alignment", "instruction-tuning", "chat"] + (["synthetic"] if export["demo"] else [])
    lic = export["license"]
    data = DatasetCardData(
        pretty_name=f"{export['name']} ({export['shard_set']})",
        license="other",
        license_name=lic["license_name"],
        **({"license_link": lic["license_link"]} if lic["license_link"] else {}),
        language=["en"],
        task_categories=categories,
        size_categories=[size_category(export["total_rows"])],
        tags=tags,
        configs=[{"config_name": "default",
                  "data_files": [{"split": split, "path": f"{DATA}/{split}-*"} for split in export["splits"]]}],
    )
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data.to_yaml()


def _compact(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _md(value) -> str:
    """A value as one Markdown table cell."""
    text = "-" if value is None else value if isinstance(value, str) else _compact(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]


def render_card(export: Mapping, manifest: Mapping, schema: pa.Schema) -> str:
    splits = list(export["splits"])
    s = export["shard_set"]
    name = export["name"]
    lines = ["---", card_yaml(export, schema).rstrip("\n"), "---", "", f"# {name}: shard set `{s}`", ""]
    if export["demo"]:
        lines += ["> **Embedded demo.** This export was built from the workflow's synthetic, format-faithful demo inputs "
                  "(rule `demo_inputs`), not from real Meta Ad Library dumps: the ads, advertisers and delivery figures "
                  "are generated, and the results say nothing about real advertising.", ""]
    lines += [
        f"Instruction samples from the ALPHA (\"Align Via Actions\") workflow: chat-format tasks derived from how ads "
        f"in the Meta Ad Library were delivered to audiences (gender, age, US state), normalised by US Census population. "
        f"This is the training shard set `{s}` (`results/shards/{s}/`, rule `make_shards`), exported unchanged by rule "
        f"`export_dataset`. Generated from the data; do not edit by hand.", "",
        "## Splits and counts", "",
    ]
    tasks = sorted({t for sp in export["splits"].values() for t in sp["tasks"]},
                   key=lambda t: (TASKS.index(t) if t in TASKS else len(TASKS), t))
    rows = []
    for t in tasks:
        per = [export["splits"][sp]["tasks"].get(t, 0) for sp in splits]
        rows.append([f"`{t}`", family_of(t), *[f"{n:,}" for n in per], f"{sum(per):,}"])
    totals = [export["splits"][sp]["num_examples"] for sp in splits]
    rows.append(["**total**", "", *[f"**{n:,}**" for n in totals], f"**{sum(totals):,}**"])
    lines += _table(["task", "family", *[f"`{sp}`" for sp in splits], "total"], rows) + [""]
    lines += [f"- `{TRAIN}`: every row of the shard set, file for file and in the same order "
              f"(`shard-k.parquet` -> `data/{TRAIN}-k-of-N.parquet`). Shard sets hold training rows only."]
    if len(splits) > 1:
        lines += [f"- {', '.join(f'`{sp}`' for sp in splits[1:])}: the workflow's held-out test sets (rule `test_sets`, "
                  f"`results/tasks/test/`), on which every fine-tuned model is scored (rule `eval_train_tasks`), restricted to the "
                  f"tasks this shard set trains on ({', '.join(export['tasks_in_test_splits'])}). They are shared by all shard sets, "
                  "never capped, TAP class-balanced per split (`tasks.tap_min_class_size`). Test pages (advertisers) and "
                  "ads after the cutoff never appear in a training sample; pairs straddling two splits are dropped."]
    else:
        lines += ["- No test split: the export was made without the workflow's test sets (`dataset_export.test_splits`)."]
    for name_ in TASK_NAMES:
        if name_ in tasks:
            lines.append(f"- `{name_}`: {TASK_NAMES[name_]}")
    lines += ["", "## Fields", ""]
    lines += _table(["column", "type", "meaning"], [[f"`{f.name}`", f"`{f.type}`", FIELDS.get(f.name, "")] for f in schema]) + [""]
    lines += _composition(export, manifest)
    lines += _settings_section(export)
    lines += _dumps_section(export)
    lines += _licence_section(export)
    lines += _loading_section(export)
    lines += _provenance_section(export)
    return "\n".join(lines).rstrip("\n") + "\n"


def _composition(export, manifest) -> list[str]:
    spec = export["shard_set_spec"]
    lines = ["## Shard set composition", "",
             f"`shards.sets.{export['shard_set']}`: caps {_compact(spec.get('caps', manifest['caps']))} (a task or family's "
             f"most training samples, null = all, unlisted tasks left out), {manifest['n_shards']} shards, seed {manifest['seed']}; "
             "a capped task keeps the samples with the smallest seeded keys.", ""]
    rows = [[f"`{t}`", f"{n_all:,}", f"{manifest['included'].get(t, 0):,}", f"{manifest['excluded_by_cap'].get(t, 0):,}"]
            for t, n_all in sorted((t, per.get(TRAIN, 0)) for t, per in manifest["counts"].items()) if t in manifest["included"]]
    rows += [[f"`{t}`", f"{n:,}", "0", "left out (not in caps)"] for t, n in sorted(manifest.get("excluded_tasks", {}).items())]
    lines += _table(["task", "train samples built", "in the set", "dropped by the cap"], rows) + [""]
    if export["external"]:
        lines += ["External instruction sets mixed in (`shards.external`; ratio x behavioural samples, all of a set when it has "
                  "fewer):", ""]
        ext_rows = []
        for e in export["external"]:
            what = ("synthetic stand-in written by rule `demo_external` (templated conversations, no real ShareGPT / CBC data)"
                    if e["synthetic_demo"] else "third-party ShareGPT-format file (not produced by this workflow)")
            ext_rows.append([f"`{e['name']}`", e["file"] or "-", str(e["ratio"]), f"{e['requested']:,}", f"{e['available']:,}",
                             f"{e['taken']:,}", _compact(e["rejected"]), what])
        lines += _table(["set (`source`)", "file", "ratio", "requested", "valid", "taken", "rejected", "what it is"], ext_rows) + [""]
    return lines


def _settings_section(export) -> list[str]:
    settings = export["settings"]
    if not settings:
        return []
    lines = ["## Filters and thresholds", "",
             "The config values this data was built with (config keys; `config/schema.yaml` has the full text):", ""]
    rows = [[f"`{k}`", f"`{v if isinstance(v, str) else _compact(v)}`", SETTING_NOTES.get(k, "")] for k, v in settings.items()]
    lines += _table(["config key", "value", "meaning"], rows)
    return lines + [""]


def _dumps_section(export) -> list[str]:
    dumps = export["dumps"]
    if not dumps:
        return []
    lines = ["## Source dumps", "",
             "The Meta Ad Library dumps the ads came from (rule `ingest_dump`, merged by `merge_ads`; first occurrence wins on "
             "duplicates). Dates are those of the kept ads (creation and delivery); the workflow does not record when a dump "
             "was collected, so `collected` is what `dataset_export.dump_collected` states, if anything.", ""]
    rows = [[f"`{d['dump']}`", d["file"] or "-", d["format"] or "-", f"{d['records'] or 0:,}", f"{d['kept'] or 0:,}",
             f"{d['quarantined'] or 0:,}", f"{d['duplicates'] or 0:,}", f"{d['first_date'] or '-'} to {d['last_date'] or '-'}",
             f"{d['created'][0] or '-'} to {d['created'][1] or '-'}", f"{d['delivery'][0] or '-'} to {d['delivery'][1] or '-'}",
             d["collected"] or "not recorded"] for d in dumps]
    firsts = [d["first_date"] for d in dumps if d["first_date"]]
    lasts = [d["last_date"] for d in dumps if d["last_date"]]
    lines += _table(["dump", "file", "format", "records", "kept", "quarantined", "duplicates", "ad dates", "created", "delivered",
                     "collected"], rows)
    lines += ["", f"All dumps: {sum(d['records'] or 0 for d in dumps):,} records, {sum(d['kept'] or 0 for d in dumps):,} ads kept, "
              f"ad dates {min(firsts) if firsts else '-'} to {max(lasts) if lasts else '-'}."]
    shared = [d["dump"] for d in dumps if d["shares_file_name"]]
    if shared:
        lines += [f"Dumps {', '.join(shared)} share a file name: their date ranges are those of all ads from that file name."]
    return lines + [""]


def _licence_section(export) -> list[str]:
    lines = [
        "## Licence notes", "",
        "`license: other`: no single licence covers this data.", "",
        ("- **Ad text and ad metadata** (bodies, page names and ids, ad ids, spend, delivery) "
         + ("would, in a build from real dumps, come" if export["demo"] else "come")
         + " from the Meta Ad Library; their use is governed by Meta's Ad Library terms, which this export does not change. "
         "Prompts and answers are templated around that content."),
        "- **Audience labels** are derived from the ads' delivery shares normalised by 2020 US Census tables "
        "(`census.*`), US Census Bureau public data; no census table is included.",
    ]
    if export["external"]:
        names = ", ".join(f"`{e['name']}`" for e in export["external"])
        if all(e["synthetic_demo"] for e in export["external"]):
            lines.append(f"- **External instruction data** ({names}): the demo's synthetic stand-in, generated by the workflow.")
        else:
            lines.append(f"- **External instruction data** ({names}, rows with that `source`): third-party conversations mixed in "
                         "for training; their own terms apply. Filter them out by `source` if those terms do not fit your use.")
    lines += [
        "- **No benchmark data.** ALPHA is evaluated on Pew ATP / OpinionQA, GlobalOpinionQA, CultureBank, CultureNLI and GSS; "
        "those benchmarks' own terms apply to them, and none of their data is in this export. The export checked every "
        f"row's provenance: `source` is `{ALPHA_SOURCE}` (a task built from the ads) or one of the shard set's external sets, "
        "no `source` or `task` names a benchmark, and no external set is named like a benchmark or read from a benchmark's "
        "files; it refuses to run otherwise. It checks provenance, not text: an external file's content is its provider's.",
    ]
    if export["demo"]:
        lines.append("- **Demo build**: the ads are synthetic (rule `demo_inputs`), so no Meta Ad Library content is included.")
    return lines + [""]


def _loading_section(export) -> list[str]:
    files = ",\n".join(f'        "{sp}": "{DATA}/{sp}-*.parquet"' for sp in export["splits"])
    return [
        "## Loading", "",
        "```python",
        "from datasets import load_dataset",
        "",
        "# from this folder (or its copy on the Hub): the splits come from the card's `configs`",
        f'ds = load_dataset("path/to/{export["shard_set"]}")',
        "# or the Parquet files directly",
        "ds = load_dataset(",
        '    "parquet",',
        "    data_files={",
        files + ",",
        "    },",
        ")",
        f'print(ds["{TRAIN}"][0]["messages"])',
        "```",
        "",
        "Each file is plain Parquet (pyarrow, pandas, DuckDB, Polars read it). `messages` holds the chat turns without "
        "any chat template; apply the model's template at training time.", "",
    ]


def _provenance_section(export) -> list[str]:
    gen = export["generator"]
    lines = ["## Provenance", "",
             f"- generator: rule `{gen['rule']}` (`{gen['script']}`, `{gen['module']}`), code sha256 `{gen['code_sha256'] or '-'}`",
             f"- libraries: pyarrow {gen['pyarrow']}, datasets {gen['datasets']}, huggingface_hub {gen['huggingface_hub']}",
             f"- source: `results/shards/{export['shard_set']}/manifest.json` sha256 `{export['source']['shard_manifest_sha256']}` "
             f"({len(export['source']['shards'])} shards, seed {export['source']['seed']})",
             f"- files: {len(export['files'])} Parquet files, {export['download_size']:,} bytes; `export.json` lists each file's "
             "rows, bytes and sha256, and the shard it came from",
             "- rerunning the export on the same shards writes identical bytes"]
    return lines + [""]
