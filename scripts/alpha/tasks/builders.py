"""ALPHA50M task builders: TAG and TAP from single ads, TC and TS from mined within-page pairs,
and the held-out test sets (TAP class-balanced).

Memory is bounded by ``batch_rows``, not by the data: ads stream row-aligned in batches, pairs in batches
against one page range of the shard's ads at a time (spilled to an Arrow IPC file), and the test sets keep
only an 8-byte key per TAP test sample between their passes.

Segment facts come from the census-normalised segments (per-capita indexes, ranked descending, exact
ties broken by name). "Top" means the highest index; a demographic tied for the top is top-ranked,
and a unique first place is needed to call a segment *the* most engaged one.
"""
from __future__ import annotations

import logging
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpha.core.io import iter_parquet_batches
from alpha.tasks import prompts
from alpha.tasks.prompts import Audience
from alpha.tasks.samples import MESSAGE_TYPE, SAMPLE_SCHEMA, TEST_SPLITS, SampleWriter, family_of, stable_key

log = logging.getLogger("alpha.tasks.builders")

AD_COLUMNS = ["ad_id", "page_id", "page_name", "body", "delivery_start", "delivery_stop", "currency", "spend_lower", "spend_upper"]
SEGMENT_COLUMNS = [
    "ad_id", "state_ranked", "gender_ranked", "gender_index_ranked", "age_ranked", "age_index_ranked",
    "age_gender_ranked", "age_gender_index_ranked", "spend_mid",
]
AUDIENCE_VARIABLES = ("gender", "age", "region")
PROGRESS_EVERY = 100_000


@dataclass(frozen=True)
class AdFacts:
    """What the task rules need to know about one ad's delivery."""

    gender_top: str | None  # the unique most-engaged gender; None when tied or unreported
    gender_tied: frozenset  # every gender tied for the top
    age_top: str | None
    age_tied: frozenset
    states: tuple  # ranked best first
    cell_top: str | None  # the unique most-engaged age x gender cell, e.g. "female 25-34"
    cell_index: dict
    spend_mid: float | None
    currency: str | None

    def state_rank(self, state: str) -> int:
        """1-based rank; a state Meta did not report ranks below every reported one."""
        try:
            return self.states.index(state) + 1
        except ValueError:
            return len(self.states) + 1


def _top(names: Sequence[str] | None, values: Sequence[float] | None) -> tuple[str | None, frozenset]:
    if not names:
        return None, frozenset()
    best = values[0]
    tied = frozenset(n for n, v in zip(names, values) if v == best)
    return (names[0] if len(tied) == 1 else None), tied


def ad_facts(seg: dict, currency: str | None) -> AdFacts:
    gender_top, gender_tied = _top(seg["gender_ranked"], seg["gender_index_ranked"])
    age_top, age_tied = _top(seg["age_ranked"], seg["age_index_ranked"])
    cell_top, _ = _top(seg["age_gender_ranked"], seg["age_gender_index_ranked"])
    spend = seg["spend_mid"]
    return AdFacts(
        gender_top, gender_tied, age_top, age_tied, tuple(seg["state_ranked"] or ()), cell_top,
        dict(zip(seg["age_gender_ranked"] or (), seg["age_gender_index_ranked"] or ())),
        None if spend is None or np.isnan(spend) else float(spend),
        (currency or "").strip().upper() or None,
    )


def cell_audience(cell: str) -> Audience:
    gender, age = cell.split(" ", 1)
    return Audience(gender=gender, age=age)


def _sample(task: str, split: str, page_id: str, ad_ids: list[str], msgs: list[dict], label: str | None = None, key: str = "") -> dict:
    return {
        "id": f"{task}:{key + ':' if key else ''}{'>'.join(ad_ids)}",
        "task": task,
        "family": family_of(task),
        "split": split,
        "page_id": page_id,
        "ad_ids": ad_ids,
        "label": label,
        "source": "alpha",
        "messages": msgs,
    }


# ---------------------------------------------------------------- aligned streaming


def aligned_batches(sources: Sequence[tuple[str, list[str]]], batch_rows: int) -> Iterator[list[pa.Table]]:
    """Stream several Parquet files row-aligned (same row order), yielding equal-length slices.

    The files must have the same number of rows; their first column (an id) must agree row by row."""
    iters = [iter_parquet_batches(path, batch_rows, columns) for path, columns in sources]
    buffers: list[pa.Table | None] = [None] * len(sources)
    exhausted = [False] * len(sources)
    while True:
        for k, it in enumerate(iters):
            while not exhausted[k] and (buffers[k] is None or buffers[k].num_rows < batch_rows):
                nxt = next(it, None)
                if nxt is None:
                    exhausted[k] = True
                else:
                    tbl = pa.Table.from_batches([nxt])
                    buffers[k] = tbl if buffers[k] is None else pa.concat_tables([buffers[k], tbl])
        sizes = [0 if b is None else b.num_rows for b in buffers]
        n = min(min(sizes), batch_rows)
        if n == 0:
            if any(sizes):
                names = ", ".join(str(path) for path, _ in sources)
                raise ValueError(f"row counts differ between {names}: rerun the rules that wrote them")
            return
        out = [b.slice(0, n) for b in buffers]
        buffers = [b.slice(n) for b in buffers]
        ids = [t.column(0) for t in out]
        for (path, _), col in zip(sources[1:], ids[1:]):
            if not col.equals(ids[0]):
                raise ValueError(f"{path} is not row-aligned with {sources[0][0]} (ad ids differ): rerun the rule that wrote it")
        yield out


# ---------------------------------------------------------------- TAG and TAP


def tag_samples(ad: dict, facts: AdFacts, split: str, keywords: list[str], audiences: Sequence[Sequence[str]],
                skipped: Counter) -> Iterator[dict]:
    spend = prompts.spend_text(ad["spend_lower"], ad["spend_upper"], ad["currency"])
    dates = prompts.dates_text(ad["delivery_start"], ad["delivery_stop"])
    for combo in audiences:
        parts = {}
        for var in combo:
            value = {"gender": facts.gender_top, "age": facts.age_top, "region": facts.states[0] if facts.states else None}[var]
            if value is None:
                skipped[f"TAG:no_top_{var}"] += 1
                break
            parts["state" if var == "region" else var] = value
        else:
            msgs = prompts.tag(Audience(**parts), ad["page_name"], spend, dates, keywords, ad["body"])
            yield _sample("TAG", split, ad["page_id"], [ad["ad_id"]], msgs, key="+".join(combo))


def tap_samples(ad: dict, facts: AdFacts, split: str, skipped: Counter) -> Iterator[dict]:
    labels = {
        "TAP-G": (facts.gender_top, facts.gender_top),
        "TAP-A": (facts.age_top, facts.age_top),
        "TAP-R": (list(facts.states[:3]) if len(facts.states) >= 3 else None, facts.states[0] if facts.states else None),
    }
    for task, (answer, label) in labels.items():
        if answer is None:
            skipped[f"{task}:no_unique_top" if task != "TAP-R" else f"{task}:fewer_than_3_states"] += 1
            continue
        msgs = prompts.tap(task, prompts.tap_answer(task, answer), ad["page_name"], ad["delivery_start"], ad["body"])
        yield _sample(task, split, ad["page_id"], [ad["ad_id"]], msgs, label=label)


def build_ad_tasks(ads_parquet, segments_parquet, keywords_parquet, splits_parquet, out_parquet, tag_audiences: Sequence[Sequence[str]],
                   batch_rows: int = 20000) -> dict:
    """TAG (one sample per ad and audience combination) and TAP-G/A/R (one each) per ad."""
    for combo in tag_audiences:
        unknown = set(combo) - set(AUDIENCE_VARIABLES)
        if unknown or not combo:
            raise ValueError(f"TAG audience {list(combo)}: use a non-empty combination of {AUDIENCE_VARIABLES}")
    sources = [(ads_parquet, AD_COLUMNS), (segments_parquet, SEGMENT_COLUMNS), (keywords_parquet, ["ad_id", "keywords"]),
               (splits_parquet, ["ad_id", "split"])]
    counts: Counter = Counter()
    skipped: Counter = Counter()
    n_ads = 0
    with SampleWriter(out_parquet) as writer:
        for ads, segs, kws, spl in aligned_batches(sources, batch_rows):
            for ad, seg, kw, split in zip(ads.to_pylist(), segs.to_pylist(), kws.column("keywords").to_pylist(),
                                          spl.column("split").to_pylist()):
                facts = ad_facts(seg, ad["currency"])
                for sample in (*tag_samples(ad, facts, split, kw or [], tag_audiences, skipped), *tap_samples(ad, facts, split, skipped)):
                    writer.add(sample)
                    counts[(sample["task"], split)] += 1
            n_ads += ads.num_rows
            log.info("ad tasks: %d ads done, %d samples", n_ads, sum(counts.values()))
    return {"ads": n_ads, "samples": _nested(counts), "skipped": dict(sorted(skipped.items()))}


def _nested(counts: Counter) -> dict:
    out: dict = defaultdict(dict)
    for (task, split), n in sorted(counts.items()):
        out[task][split] = n
    return dict(out)


# ---------------------------------------------------------------- TC and TS


@dataclass(frozen=True)
class PairTaskRules:
    region_min_rank_diff: int = 3
    min_distance: int = 15


def transcreation_samples(s: dict, t: dict, fs: AdFacts, ft: AdFacts, split: str, rules: PairTaskRules) -> Iterator[dict]:
    """TC from source ad ``s`` to target ad ``t`` (one direction of a pair)."""
    for task, var in (("TC-G", "gender"), ("TC-A", "age")):
        target = getattr(ft, f"{var}_top")
        source_tied = getattr(fs, f"{var}_tied")
        if target is None or not source_tied or target in source_tied:
            continue
        source_top = min(source_tied)  # the ranked first (ties are ranked by name)
        msgs = prompts.transcreation(Audience(**{var: source_top}), Audience(**{var: target}), s["page_name"], s["body"], t["body"])
        yield _sample(task, split, s["page_id"], [s["ad_id"], t["ad_id"]], msgs)
    if ft.states and fs.states and fs.state_rank(ft.states[0]) - 1 >= rules.region_min_rank_diff:
        msgs = prompts.transcreation(Audience(state=fs.states[0]), Audience(state=ft.states[0]), s["page_name"], s["body"], t["body"])
        yield _sample("TC-R", split, s["page_id"], [s["ad_id"], t["ad_id"]], msgs)


def transsuasion_samples(a: dict, b: dict, fa: AdFacts, fb: AdFacts, split: str, skipped: Counter) -> Iterator[dict]:
    """TS-E and TS-B for an unordered pair: Ad1 -> Ad2 where Ad2 has strictly higher impact."""
    if fa.cell_top is None or fa.cell_top != fb.cell_top:
        skipped["TS:different_top_demographic"] += 1
        return
    cell = fa.cell_top
    audience = cell_audience(cell)
    ea, eb = fa.cell_index[cell], fb.cell_index[cell]
    if ea != eb:
        lo, hi = (a, b) if ea < eb else (b, a)
        yield _sample("TS-E", split, a["page_id"], [lo["ad_id"], hi["ad_id"]],
                      prompts.transsuasion("TS-E", audience, lo["page_name"], lo["body"], hi["body"]))
    else:
        skipped["TS-E:equal_engagement"] += 1
    if fa.currency != fb.currency or fa.spend_mid is None or fb.spend_mid is None:
        skipped["TS-B:spend_not_comparable"] += 1
    elif fa.spend_mid == fb.spend_mid:
        skipped["TS-B:equal_spend"] += 1
    else:
        lo, hi = (a, b) if fa.spend_mid < fb.spend_mid else (b, a)
        yield _sample("TS-B", split, a["page_id"], [lo["ad_id"], hi["ad_id"]],
                      prompts.transsuasion("TS-B", audience, lo["page_name"], lo["body"], hi["body"]))


def pair_samples(a: dict, b: dict, fa: AdFacts, fb: AdFacts, split: str, distance: int, rules: PairTaskRules,
                 skipped: Counter) -> list[dict]:
    """Every sample of one pair: TC both ways, then TS when the bodies are far enough apart."""
    found = [*transcreation_samples(a, b, fa, fb, split, rules), *transcreation_samples(b, a, fb, fa, split, rules)]
    if distance > rules.min_distance:
        found += transsuasion_samples(a, b, fa, fb, split, skipped)
    else:
        skipped["TS:distance_too_small"] += 1
    return found


# The shard's ads are spilled to disk once, grouped into page ranges: pairs come page by page, so one
# range (about batch_rows ads) is in memory at a time, whatever the number of ads or pairs.
PAIR_AD_COLUMNS = ["ad_id", "page_id", "page_name", "body", "currency"]


def pairs_pages(pairs_parquet, batch_rows: int) -> pa.Array:
    """The shard's pages, in the order its pairs first name them."""
    known = pa.array([], pa.string())
    for batch in iter_parquet_batches(pairs_parquet, batch_rows, ["page_id"]):
        pages = pc.unique(batch.column(0).cast(pa.string()))
        new = pages.filter(pc.invert(pc.is_in(pages, value_set=known)))
        if len(new):
            known = pa.concat_arrays([known, new])
    return known


def page_ranges(ads_parquet, pages: pa.Array, batch_rows: int) -> np.ndarray:
    """A range number per page: consecutive pages (in pair order) with at most ``batch_rows`` ads in all;
    a page with more ads is a range of its own."""
    counts = np.zeros(len(pages), np.int64)
    for batch in iter_parquet_batches(ads_parquet, batch_rows, ["page_id"]):
        found = pc.index_in(batch.column(0), value_set=pages).drop_null().to_numpy()
        counts += np.bincount(found, minlength=len(pages))
    ranges = np.zeros(len(pages), np.int64)
    current, filled = 0, 0
    for k, n in enumerate(counts.tolist()):
        if filled and filled + n > batch_rows:
            current, filled = current + 1, 0
        ranges[k] = current
        filled += n
    return ranges


class ShardAds:
    """The ads of a shard's pages (pair-task columns, segments and split) in an Arrow IPC file whose record
    batches each hold ads of one page range; ``load`` reads one range, and keeps only the last one read."""

    def __init__(self, path: Path, batch_ranges: np.ndarray):
        self._file = pa.OSFile(str(path))
        self._reader = pa.ipc.open_file(self._file)
        self._batch_ranges = batch_ranges  # the page range of each record batch (4 bytes a batch, whatever the pages)
        self._loaded: tuple[int, pa.Table] | None = None

    @classmethod
    def spill(cls, path: Path, sources: Sequence[tuple[str, list[str]]], pages: pa.Array, ranges: np.ndarray,
              batch_rows: int) -> "ShardAds":
        schema = _joined_schema(sources)
        batch_ranges: list[int] = []
        with pa.ipc.new_file(str(path), schema) as writer:
            for parts in aligned_batches(sources, batch_rows):
                page = pc.index_in(parts[0].column("page_id"), value_set=pages)
                table = _joined(parts, schema).filter(page.is_valid())
                rng = ranges[page.drop_null().to_numpy()]
                order = np.argsort(rng, kind="stable")
                table, rng = table.take(order), rng[order]
                for lo, hi in _runs(rng):
                    for batch in table.slice(lo, hi - lo).combine_chunks().to_batches():
                        writer.write_batch(batch)
                        batch_ranges.append(int(rng[lo]))
        return cls(path, np.array(batch_ranges, np.int32))

    def load(self, rng: int) -> pa.Table:
        if self._loaded is None or self._loaded[0] != rng:
            self._loaded = None  # free the previous range before reading the next
            batches = [self._reader.get_batch(i) for i in (self._batch_ranges == rng).nonzero()[0].tolist()]
            self._loaded = (rng, pa.Table.from_batches(batches, self._reader.schema))
        return self._loaded[1]

    def close(self) -> None:
        self._loaded = None
        self._file.close()


def _joined_schema(sources: Sequence[tuple[str, list[str]]]) -> pa.Schema:
    """ad_id, then every other column of the sources, with the types the files store."""
    fields = [("ad_id", pq.read_schema(sources[0][0]).field("ad_id").type)]
    for path, columns in sources:
        stored = pq.read_schema(path)
        fields += [(name, stored.field(name).type) for name in columns if name != "ad_id"]
    return pa.schema(fields)


def _joined(parts: Sequence[pa.Table], schema: pa.Schema) -> pa.Table:
    """Row-aligned slices of the per-ad tables side by side (aligned_batches checked their ad ids agree)."""
    columns = {"ad_id": parts[0].column("ad_id")}
    for part in parts:
        columns.update({name: part.column(name) for name in part.column_names if name != "ad_id"})
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def _runs(values: np.ndarray) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of equal consecutive values."""
    if not len(values):
        return
    starts = [0, *(np.flatnonzero(np.diff(values)) + 1).tolist()]
    yield from zip(starts, [*starts[1:], len(values)])


def build_pair_tasks(pairs_parquet, ads_parquet, segments_parquet, splits_parquet, out_parquet, rules: PairTaskRules,
                     batch_rows: int = 20000) -> dict:
    """TC-A/G/R (both directions of each pair) and TS-E/B (low to high impact) for one pair shard.

    Reads only the ads of the shard's pages; pairs straddling two splits are dropped and counted. Memory is
    one batch of pairs and one page range of ads (``batch_rows`` each; a larger page is read whole).

    The rules are those of ``pair_samples`` (the per-pair specification), applied to whole runs of pairs at a
    time by ``_chunk_samples``: the samples, their order and the skip counts are the same."""
    pages = pairs_pages(pairs_parquet, batch_rows)
    ranges = page_ranges(ads_parquet, pages, batch_rows)
    n_pairs = pq.ParquetFile(pairs_parquet).metadata.num_rows
    sources = [(ads_parquet, PAIR_AD_COLUMNS), (segments_parquet, SEGMENT_COLUMNS), (splits_parquet, ["ad_id", "split"])]
    where = f"{ads_parquet}/{segments_parquet}/{splits_parquet}"
    counts: Counter = Counter()
    skipped: Counter = Counter()
    done = 0
    vocab = _Vocab()
    facts: RangeFacts | None = None
    # the spill goes to TMPDIR (Snakemake's tmpdir resource): the shard's ads, uncompressed, about 1.5 kB an ad
    with tempfile.TemporaryDirectory(prefix="pair_tasks-") as tmp, SampleWriter(out_parquet) as writer:
        store = ShardAds.spill(Path(tmp) / "ads.arrow", sources, pages, ranges, batch_rows)
        for batch in iter_parquet_batches(pairs_parquet, batch_rows, ["page_id", "ad_id_1", "ad_id_2", "distance"]):
            batch_ranges = ranges[pc.index_in(batch.column("page_id").cast(pa.string()), value_set=pages).to_numpy()]
            for lo, hi in _runs(batch_ranges):
                run = batch.slice(lo, hi - lo)
                rng = int(batch_ranges[lo])
                if facts is None or facts.range != rng:
                    facts = None  # free the previous range (and its facts) before loading the next
                    facts = RangeFacts(rng, store.load(rng), vocab)
                rows_1, rows_2 = facts.rows(run.column("ad_id_1"), run.column("ad_id_2"), str(pairs_parquet), where)
                distance = run.column("distance").to_numpy(zero_copy_only=False)
                for start in range(0, len(rows_1), PAIR_CHUNK):
                    part = slice(start, start + PAIR_CHUNK)
                    samples = _chunk_samples(facts, rows_1[part], rows_2[part], distance[part], rules, skipped, counts)
                    if samples is not None:
                        writer.add_table(samples)
            done += batch.num_rows
            log.info("pair tasks: %d / %d pairs", done, n_pairs)
        facts = None
        store.close()
    report = {"pairs": n_pairs, "pages": len(pages), "samples": _nested(counts), "skipped": dict(sorted(skipped.items()))}
    log.info("pair tasks: %d pairs -> %d samples", n_pairs, sum(counts.values()))
    return report


# ---------------------------------------------------------------- TC and TS over whole runs of pairs
#
# ``pair_samples`` spelled over arrays: each ad's facts (``ad_facts``, once an ad per loaded page range) become
# small integer codes and numbers by row of the range's table, the rules become boolean masks over a chunk of
# pairs, and the samples are assembled as Arrow columns (prompts rendered by Arrow from the prompt functions'
# own templates), in the order ``pair_samples`` yields them: pair by pair, TC a->b, TC b->a, TS-E, TS-B.

PAIR_CHUNK = 2048  # pairs turned into samples at once: about 3 samples a pair (8 at most), so peak memory stays as it was
PAIR_KINDS = ("TC-G", "TC-A", "TC-R", "TC-G", "TC-A", "TC-R", "TS-E", "TS-B")  # per pair, in pair_samples' order
PAIR_TASKS = ("TC-G", "TC-A", "TC-R", "TS-E", "TS-B")
PAIR_FAMILIES = tuple(family_of(task) for task in PAIR_TASKS)
_KIND_TASK = np.array([PAIR_TASKS.index(k) for k in PAIR_KINDS])
_KIND_TEMPLATE = np.array([0, 0, 0, 0, 0, 0, 1, 2])  # transcreation, transsuasion TS-E, transsuasion TS-B
_NONE = -1  # no such fact (no unique top, no tied segment, no reported state)


class _Vocab:
    """Small integer codes for fact values (None included), per kind of value, in order of first sight; and the
    audience descriptions of the codes, as ``prompts`` words them."""

    def __init__(self) -> None:
        self._codes: dict[str, dict] = defaultdict(dict)
        self._values: dict[str, list] = defaultdict(list)
        self._described: dict[str, np.ndarray] = defaultdict(lambda: np.full(0, _NONE, np.int64))  # code -> description
        self.descriptions: list[str] = []
        self._description_array: pa.Array | None = None

    def code(self, kind: str, value) -> int:
        codes = self._codes[kind]
        found = codes.get(value)
        if found is None:
            found = codes[value] = len(codes)
            self._values[kind].append(value)
        return found

    def description_array(self) -> pa.Array:
        if self._description_array is None or len(self._description_array) != len(self.descriptions):
            self._description_array = pa.array(self.descriptions, pa.string())
        return self._description_array

    def value(self, kind: str, code: int):
        return self._values[kind][code]

    def values(self, kind: str) -> list:
        """Every value of ``kind``, by code."""
        return self._values[kind]

    def describe(self, kind: str, codes: np.ndarray) -> np.ndarray:
        """Index in ``descriptions`` of each code's audience (gender, age, state or age x gender cell)."""
        described = self._described[kind]
        if len(described) < len(self._values[kind]):
            described = self._described[kind] = np.concatenate([described, np.full(len(self._values[kind]) - len(described), _NONE)])
        ids = described[codes]
        for code in set(codes[ids == _NONE].tolist()):  # codes described for the first time
            value = self._values[kind][code]
            audience = cell_audience(value) if kind == "cell" else Audience(**{kind: value})
            described[code] = len(self.descriptions)
            self.descriptions.append(audience.describe())
        return described[codes]


class _Grid:
    """rows x codes values (0 where never set), widening as codes appear."""

    def __init__(self, rows: int, dtype) -> None:
        self.data = np.zeros((rows, 4), dtype)

    def put(self, rows: np.ndarray, cols: np.ndarray, values) -> None:
        """data[rows[i], cols[i]] = values[i]; each (row, col) at most once."""
        if len(cols) and cols.max() >= self.data.shape[1]:
            wider = np.zeros((self.data.shape[0], max(2 * self.data.shape[1], int(cols.max()) + 1)), self.data.dtype)
            wider[:, :self.data.shape[1]] = self.data
            self.data = wider
        self.data[rows, cols] = values

    def get(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        inside = (cols >= 0) & (cols < self.data.shape[1])
        out = np.zeros(len(rows), self.data.dtype)
        out[inside] = self.data[rows[inside], cols[inside]]
        return out


class RangeFacts:
    """The ``AdFacts`` of one loaded page range as arrays by row of its table, filled for the ads that runs of
    pairs name (by ``ad_facts`` itself, once an ad while the range stays loaded)."""

    FACT_COLUMNS = [name for name in (*SEGMENT_COLUMNS, "currency", "split") if name != "state_ranked"]  # states: _fill_states

    def __init__(self, rng: int, table: pa.Table, vocab: _Vocab):
        n = table.num_rows
        self.range = rng
        self.table = table
        self.vocab = vocab
        self.ad_id = table.column("ad_id").combine_chunks().cast(pa.string())
        self.text = {name: table.column(name).combine_chunks().cast(pa.string()) for name in ("page_id", "page_name", "body")}
        self.split_values = table.column("split").combine_chunks()
        self.known = np.zeros(n, bool)
        self.split = np.zeros(n, np.int64)  # _NONE: no split, which no other ad's split equals (pair_split)
        self.top = {var: np.full(n, _NONE, np.int64) for var in ("gender", "age")}  # the unique top
        self.first = {var: np.full(n, _NONE, np.int64) for var in ("gender", "age")}  # min of the tied (a source's audience)
        self.tied = {var: _Grid(n, bool) for var in ("gender", "age")}
        self.n_states = np.zeros(n, np.int64)
        self.state_top = np.full(n, _NONE, np.int64)
        self.state_rank = _Grid(n, np.int32)  # 1-based rank of each reported state (first occurrence), 0 unreported
        self.cell_top = np.full(n, _NONE, np.int64)
        self.cell_value = np.full(n, np.nan)  # cell_index[cell_top]; NaN when None
        self.cell_value_none = np.zeros(n, bool)
        self.spend = np.full(n, np.nan)  # NaN: None
        self.currency = np.zeros(n, np.int64)

    def rows(self, ids_1: pa.Array, ids_2: pa.Array, pairs_path: str, ads_paths: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows in the range of each pair's ads, with their facts filled; refuses an ad missing from the range."""
        found = pc.index_in(pa.concat_arrays([ids_1, ids_2]), value_set=self.ad_id)
        n = len(ids_1)
        if found.null_count:
            bad = np.flatnonzero(~found.is_valid().to_numpy(zero_copy_only=False).reshape(2, n).all(axis=0))[0]
            missing = ids_1[bad] if not found[bad].is_valid else ids_2[bad]
            raise ValueError(f"{pairs_path}: ad {missing.as_py()} is not in {ads_paths} (on the pair's page); rerun mine_pairs")
        both = found.to_numpy(zero_copy_only=False).astype(np.int64)
        rows_1, rows_2 = both[:n], both[n:]
        new = np.bincount(both[~self.known[both]], minlength=len(self.known)).nonzero()[0]  # in row order, once each
        if len(new):
            self._fill(new)
        return rows_1, rows_2

    def _fill(self, new: np.ndarray) -> None:
        code = self.vocab.code
        tied_rows: dict[str, list] = {"gender": [], "age": []}
        tied_codes: dict[str, list] = {"gender": [], "age": []}
        for row, values in zip(new.tolist(), self.table.select(self.FACT_COLUMNS).take(new).to_pylist()):
            values["state_ranked"] = None  # read by _fill_states, for all the new rows at once
            facts = ad_facts(values, values["currency"])
            self.split[row] = _NONE if values["split"] is None else code("split", values["split"])
            for var, top, tied in (("gender", facts.gender_top, facts.gender_tied), ("age", facts.age_top, facts.age_tied)):
                if top is not None:
                    self.top[var][row] = code(var, top)
                if tied:
                    self.first[var][row] = code(var, min(tied))
                    tied_rows[var] += [row] * len(tied)
                    tied_codes[var] += [code(var, v) for v in tied]
            if facts.cell_top is not None:
                self.cell_top[row] = code("cell", facts.cell_top)
                value = facts.cell_index[facts.cell_top]
                self.cell_value_none[row] = value is None
                self.cell_value[row] = np.nan if value is None else value
            self.spend[row] = np.nan if facts.spend_mid is None else facts.spend_mid
            self.currency[row] = code("currency", facts.currency)
        for var in tied_rows:
            self.tied[var].put(np.array(tied_rows[var], np.int64), np.array(tied_codes[var], np.int64), True)
        self._fill_states(new)
        self.known[new] = True

    def _fill_states(self, new: np.ndarray) -> None:
        """``AdFacts.states`` (``state_ranked``, None as empty) and ``state_rank`` for the rows ``new``, over Arrow."""
        lists = self.table.column("state_ranked").take(new).combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy().astype(np.int64)
        values = pc.list_flatten(lists).cast(pa.string())  # a null list has no values, as an empty one
        for state in pc.unique(values).to_pylist():
            self.vocab.code("state", state)
        known = pa.array(self.vocab.values("state"), pa.string())
        codes = pc.index_in(values, value_set=known, skip_nulls=False).to_numpy(zero_copy_only=False).astype(np.int64)
        starts = np.zeros(len(new), np.int64)
        np.add.accumulate(lengths[:-1], out=starts[1:])
        parent = np.repeat(np.arange(len(new)), lengths)
        rank = np.arange(len(codes)) - starts[parent] + 1
        # state_rank is the first occurrence's (tuple.index): np.unique's return_index is each key's first position
        _, first = np.unique(parent * (len(known) + 1) + codes, return_index=True)
        self.state_rank.put(new[parent[first]], codes[first], rank[first])
        self.n_states[new] = lengths
        listed = lengths > 0
        self.state_top[new[listed]] = codes[starts[listed]]


def _count(counter: Counter, key, n) -> None:
    """Counter keys only for what happened, as ``counter[key] += 1`` per event makes them."""
    if n:
        counter[key] += int(n)


def _chunk_samples(facts: RangeFacts, a: np.ndarray, b: np.ndarray, distance: np.ndarray, rules: PairTaskRules,
                   skipped: Counter, counts: Counter) -> pa.Table | None:
    """The samples of pairs (a[i], b[i]) (rows of ``facts``), as ``pair_samples`` yields them pair after pair."""
    same = (facts.split[a] == facts.split[b]) & (facts.split[a] != _NONE)  # splits.pair_split: the ads' common split
    _count(skipped, "pair:straddles_splits", len(a) - same.sum())
    everyone = np.arange(len(a))
    picked: list[tuple] = []  # per kind: pair index, first ad, second ad, page_id ad, page_name and body1 ad, body2 ad, d1, d2

    def pick(kind: int, mask: np.ndarray, first, second, page, lead, other, d1, d2) -> None:
        sel = everyone[mask]
        if len(sel):
            picked.append((kind, sel, first[sel], second[sel], page[sel], lead[sel], other[sel], d1(sel), d2(sel)))

    vocab = facts.vocab
    for direction, (s, t) in enumerate(((a, b), (b, a))):
        for k, var in enumerate(("gender", "age")):
            target, source = facts.top[var][t], facts.first[var][s]
            ok = same & (target != _NONE) & (source != _NONE)
            ok[ok] = ~facts.tied[var].get(s[ok], target[ok])
            pick(3 * direction + k, ok, s, t, s, s, t, lambda sel, v=var, c=source: vocab.describe(v, c[sel]),
                 lambda sel, v=var, c=target: vocab.describe(v, c[sel]))
        ok = same & (facts.n_states[t] > 0) & (facts.n_states[s] > 0)
        rank = facts.state_rank.get(s[ok], facts.state_top[t][ok])
        rank = np.where(rank == 0, facts.n_states[s][ok] + 1, rank)
        ok[ok] = rank - 1 >= rules.region_min_rank_diff
        pick(3 * direction + 2, ok, s, t, s, s, t, lambda sel, s=s: vocab.describe("state", facts.state_top[s][sel]),
             lambda sel, t=t: vocab.describe("state", facts.state_top[t][sel]))
    far = same & (distance > rules.min_distance)
    _count(skipped, "TS:distance_too_small", same.sum() - far.sum())
    cell = facts.cell_top[a]
    shared = far & (cell != _NONE) & (cell == facts.cell_top[b])
    _count(skipped, "TS:different_top_demographic", far.sum() - shared.sum())
    if shared.any():
        audience = np.zeros(len(a), np.int64)
        audience[shared] = vocab.describe("cell", cell[shared])
        ea, eb = facts.cell_value[a], facts.cell_value[b]
        equal = (ea == eb) | (facts.cell_value_none[a] & facts.cell_value_none[b])
        _count(skipped, "TS-E:equal_engagement", (shared & equal).sum())
        lo, hi = np.where(ea < eb, a, b), np.where(ea < eb, b, a)
        pick(6, shared & ~equal, lo, hi, a, lo, hi, lambda sel: audience[sel], lambda sel: np.full(len(sel), _NONE))
        sa, sb = facts.spend[a], facts.spend[b]
        comparable = (facts.currency[a] == facts.currency[b]) & ~np.isnan(sa) & ~np.isnan(sb)
        _count(skipped, "TS-B:spend_not_comparable", (shared & ~comparable).sum())
        _count(skipped, "TS-B:equal_spend", (shared & comparable & (sa == sb)).sum())
        lo, hi = np.where(sa < sb, a, b), np.where(sa < sb, b, a)
        pick(7, shared & comparable & (sa != sb), lo, hi, a, lo, hi, lambda sel: audience[sel], lambda sel: np.full(len(sel), _NONE))
    if not picked:
        return None
    kind = np.concatenate([np.full(len(p[1]), p[0]) for p in picked])
    pair, first, second, page, lead, other, d1, d2 = (np.concatenate([p[k] for p in picked]) for k in range(1, 9))
    order = np.argsort(pair * len(PAIR_KINDS) + kind, kind="stable")
    kind, pair, first, second, page, lead, other, d1, d2 = (x[order] for x in (kind, pair, first, second, page, lead, other, d1, d2))
    task_index = _KIND_TASK[kind]
    split_codes = facts.split[a[pair]]
    width = int(split_codes.max()) + 1
    n = np.bincount(task_index * width + split_codes)
    for key in n.nonzero()[0].tolist():
        counts[(PAIR_TASKS[key // width], vocab.value("split", key % width))] += int(n[key])
    return _sample_table(facts, kind, task_index, a[pair], first, second, page, lead, other, d1, d2)


def _sample_table(facts: RangeFacts, kind, task_index, split_row, first, second, page, lead, other, d1, d2) -> pa.Table:
    n = len(kind)
    task = _texts(PAIR_TASKS).take(task_index)
    ad_id = facts.ad_id
    first_ids, second_ids = ad_id.take(first), ad_id.take(second)
    sample_id = pc.binary_join_element_wise(task, _text(":"), first_ids, _text(">"), second_ids, _text(""))
    ad_ids = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
                                      ad_id.take(np.column_stack([first, second]).ravel()))
    messages = _messages(facts, kind, {"d1": d1, "d2": d2, "page_name": lead, "body1": lead, "body2": other})
    columns = {
        "id": sample_id, "task": task, "family": _texts(PAIR_FAMILIES).take(task_index),
        "split": facts.split_values.take(split_row), "page_id": facts.text["page_id"].take(page), "ad_ids": ad_ids,
        "label": pa.nulls(n, pa.string()), "source": pa.repeat(_text("alpha"), n), "messages": messages,
    }
    return pa.Table.from_arrays([columns[name] for name in SAMPLE_SCHEMA.names], schema=SAMPLE_SCHEMA)


# The prompt functions' own templates: each message's role and its content as literal text and named slots,
# read off by calling the function with marked slot values (and checked against a second call).

_SLOT_MARK = "\x00{}:{}\x01"


class _SlotAudience:
    def __init__(self, text: str):
        self.text = text

    def describe(self) -> str:
        return self.text


def _template_of(fn, audience_slots: Sequence[str], text_slots: Sequence[str], *lead) -> list[tuple[str, list]]:
    """[(role, pieces)] of ``fn(*lead, *audiences, *texts)``; pieces are literal strings and ("slot", name)."""
    import re

    def call(mark: str) -> list[dict]:
        values = [_SlotAudience(_SLOT_MARK.format(mark, s)) for s in audience_slots] + [_SLOT_MARK.format(mark, s) for s in text_slots]
        return fn(*lead, *values)

    pattern = re.compile("\x00a:([a-z0-9_]+)\x01")
    template = []
    for message in call("a"):
        pieces: list = []
        for k, part in enumerate(pattern.split(message["content"])):
            if k % 2:
                pieces.append(("slot", part))
            elif part:
                pieces.append(part)
        template.append((message["role"], pieces))
    check = [{"role": role, "content": "".join(_SLOT_MARK.format("b", p[1]) if isinstance(p, tuple) else p for p in pieces)}
             for role, pieces in template]
    if check != call("b") or any("\x00" in role for role, _ in template):
        raise RuntimeError(f"prompts.{fn.__name__} is not literal text and its arguments: the vectorised pair tasks cannot render it")
    return template


_TEMPLATES: tuple | None = None
_JOIN_NONE = pc.JoinOptions(null_handling="replace", null_replacement="None")  # a null slot reads "None", as an f-string spells it
_MESSAGE_FIELDS = list(MESSAGE_TYPE)


@lru_cache(maxsize=None)
def _text(value: str) -> pa.Scalar:
    """A string scalar made once (converting Python values on every Arrow call costs time and, through
    CPython's attribute cache, leaves a few bytes behind per call)."""
    return pa.scalar(value, pa.string())


@lru_cache(maxsize=64)
def _texts(values: tuple) -> pa.Array:
    return pa.array(values, pa.string())


def _pair_templates() -> tuple[list, tuple]:
    """Templates by _KIND_TEMPLATE (transcreation, transsuasion TS-E, transsuasion TS-B), and their roles."""
    global _TEMPLATES
    if _TEMPLATES is None:
        texts = ("page_name", "body1", "body2")
        templates = [_template_of(prompts.transcreation, ("d1", "d2"), texts),
                     *(_template_of(prompts.transsuasion, ("d1",), texts, task) for task in ("TS-E", "TS-B"))]
        _TEMPLATES = (templates, tuple(dict.fromkeys(role for template in templates for role, _ in template)))
    return _TEMPLATES


def _messages(facts: RangeFacts, kind: np.ndarray, rows: dict[str, np.ndarray]) -> pa.Array:
    """Each sample's messages (list<struct<role, content>>) from its kind's template, ``rows`` naming its slots'
    values: every content is gathered once, by one take over the rendered texts and the range's own columns."""
    templates, roles = _pair_templates()
    template_of = _KIND_TEMPLATE[kind]
    offsets = np.zeros(len(kind) + 1, np.int64)
    np.add.accumulate(np.array([len(t) for t in templates])[template_of], out=offsets[1:])  # (np.cumsum leaves a string in the type cache)
    value_index = np.empty(int(offsets[-1]), np.int64)
    role_index = np.empty(int(offsets[-1]), np.int64)
    sources = {"d1": facts.vocab.description_array(), "page_name": facts.text["page_name"], "body1": facts.text["body"]}
    sources["d2"], sources["body2"] = sources["d1"], sources["body1"]
    chunks: list[pa.Array] = []
    base_of: dict[int, int] = {}  # id of a chunk -> where it starts among the chunks

    def chunk(array: pa.Array) -> int:
        if id(array) not in base_of:
            base_of[id(array)] = sum(len(c) for c in chunks)
            chunks.append(array)
        return base_of[id(array)]

    everyone = np.arange(len(kind))
    for k, template in enumerate(templates):
        sub = everyone[template_of == k]
        if not len(sub):
            continue
        for j, (role, pieces) in enumerate(template):
            at = offsets[sub] + j
            role_index[at] = roles.index(role)
            if all(isinstance(p, str) for p in pieces):  # literal text, e.g. the system prompt: one copy, taken n times
                value_index[at] = chunk(_texts(("".join(pieces),)))
            elif len(pieces) == 1:  # the slot's value itself, taken from where it is (a null body stays null)
                name = pieces[0][1]
                value_index[at] = chunk(sources[name]) + rows[name][sub]
            else:
                args = [sources[p[1]].take(rows[p[1]][sub]) if isinstance(p, tuple) else _text(p) for p in pieces]
                value_index[at] = chunk(pc.binary_join_element_wise(*args, _text(""), options=_JOIN_NONE)) + np.arange(len(sub))
    values = pa.chunked_array(chunks, pa.string()).take(value_index)
    values = values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    structs = pa.StructArray.from_arrays([_texts(roles).take(role_index), values], fields=_MESSAGE_FIELDS)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), structs, type=pa.list_(MESSAGE_TYPE))


# ---------------------------------------------------------------- held-out test sets


def balanced_keep(ids: Sequence[str], labels: Sequence[str], seed: int, min_class_size: int) -> tuple[set[str], dict]:
    """Class-balanced subset: every class with at least ``min_class_size`` samples contributes the size
    of the smallest such class, chosen by seeded hash; smaller classes are dropped (and reported)."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for sample_id, label in zip(ids, labels):
        by_label[label].append(sample_id)
    kept_classes = {lab: v for lab, v in by_label.items() if len(v) >= min_class_size}
    per_class = min((len(v) for v in kept_classes.values()), default=0)
    keep: set[str] = set()
    for members in kept_classes.values():
        keep.update(sorted(members, key=lambda i: (stable_key(seed, i), i))[:per_class])
    return keep, _balance_info({lab: len(v) for lab, v in by_label.items()}, min_class_size)


def _balance_info(sizes: dict, min_class_size: int) -> dict:
    kept = sorted(lab for lab, n in sizes.items() if n >= min_class_size)
    return {
        "per_class": min((sizes[lab] for lab in kept), default=0),
        "classes": kept,
        "dropped_classes": {lab: n for lab, n in sorted(sizes.items()) if lab not in kept},
        "available": sum(sizes.values()),
    }


# What balancing holds per TAP test sample: its 64-bit seeded key, in one array per (split, task, label).
TapClass = tuple[str, str, str]
TAP_COLUMNS = ["id", "family", "task", "split", "label"]


@dataclass(frozen=True)
class ClassCut:
    """The TAP samples of one class that ``balanced_keep`` keeps: key below ``key``, or equal to it and
    either all such are kept (``tied_ids`` None) or the id is among ``tied_ids`` (64-bit key collisions)."""

    key: int
    tied_ids: frozenset | None = None

    def keeps(self, key: int, sample_id: str) -> bool:
        return key < self.key or (key == self.key and (self.tied_ids is None or sample_id in self.tied_ids))


def _tap_test_rows(batch: pa.RecordBatch) -> pa.Table:
    table = pa.Table.from_batches([batch])
    return table.filter(pc.and_(pc.equal(table.column("family"), "TAP"), pc.is_in(table.column("split"), pa.array(TEST_SPLITS))))


def _keys(seed: int, ids: pa.ChunkedArray) -> np.ndarray:
    return np.fromiter((stable_key(seed, i) for i in ids.to_pylist()), np.uint64, len(ids))


def _classes(table: pa.Table) -> list[TapClass]:
    return list(zip(*(table.column(c).to_pylist() for c in ("split", "task", "label"))))


class KeyColumn:
    """uint64 keys appended batch by batch to one array that doubles when full (no array per batch)."""

    def __init__(self) -> None:
        self._keys = np.empty(64, np.uint64)
        self._n = 0

    def extend(self, keys: np.ndarray) -> None:
        if self._n + len(keys) > len(self._keys):
            grown = np.empty(max(2 * len(self._keys), self._n + len(keys)), np.uint64)
            grown[:self._n] = self._keys[:self._n]
            self._keys = grown
        self._keys[self._n:self._n + len(keys)] = keys
        self._n += len(keys)

    def array(self) -> np.ndarray:
        return self._keys[:self._n]


def tap_keys(sample_files: Sequence, seed: int, batch_rows: int) -> dict[TapClass, np.ndarray]:
    """The seeded keys of every TAP test sample, per class (8 bytes a sample)."""
    columns: dict[TapClass, KeyColumn] = defaultdict(KeyColumn)
    for path in sample_files:
        for batch in iter_parquet_batches(path, batch_rows, TAP_COLUMNS):
            tap = _tap_test_rows(batch)
            keys = _keys(seed, tap.column("id"))
            classes = _classes(tap)
            code = {c: k for k, c in enumerate(dict.fromkeys(classes))}
            codes = np.fromiter((code[c] for c in classes), np.int64, len(classes))
            for c, k in code.items():
                columns[c].extend(keys[codes == k])
    return {c: column.array() for c, column in columns.items()}


def class_cuts(keys: dict[TapClass, np.ndarray], min_class_size: int) -> tuple[dict[TapClass, ClassCut], dict, dict[TapClass, int]]:
    """Per kept class the cut ``balanced_keep`` makes, the balance report, and for each class whose cut falls
    on equal keys the number of them to keep (then ids decide)."""
    cuts: dict[TapClass, ClassCut] = {}
    balance: dict = defaultdict(dict)
    tied: dict[TapClass, int] = {}
    for split, task in sorted({(s, t) for s, t, _ in keys}):
        sizes = {lab: len(k) for (s, t, lab), k in keys.items() if (s, t) == (split, task)}
        info = _balance_info(sizes, min_class_size)
        balance[split][task] = info
        per_class = info["per_class"]
        for lab in info["classes"]:
            ks = keys[(split, task, lab)]
            cut = int(np.partition(ks, per_class - 1)[per_class - 1])
            cuts[(split, task, lab)] = ClassCut(cut)
            if (ks <= cut).sum() > per_class:
                tied[(split, task, lab)] = per_class - int((ks < cut).sum())
    return cuts, dict(balance), tied


def tied_cuts(sample_files: Sequence, cuts: dict[TapClass, ClassCut], tied: dict[TapClass, int], seed: int,
              batch_rows: int) -> dict[TapClass, ClassCut]:
    """Where a cut falls on equal keys, which ids win: the smallest, as ``balanced_keep`` sorts (key, id)."""
    ids: dict[TapClass, list[str]] = defaultdict(list)
    for path in sample_files:
        for batch in iter_parquet_batches(path, batch_rows, TAP_COLUMNS):
            tap = _tap_test_rows(batch)
            for c, key, sample_id in zip(_classes(tap), _keys(seed, tap.column("id")).tolist(), tap.column("id").to_pylist()):
                if c in tied and key == cuts[c].key:
                    ids[c].append(sample_id)
    return {**cuts, **{c: ClassCut(cuts[c].key, frozenset(sorted(ids[c])[:slots])) for c, slots in tied.items()}}


def _kept_test_rows(batch: pa.RecordBatch, cuts: dict[TapClass, ClassCut], seed: int) -> pa.Table:
    """The batch's test-split rows, TAP rows only where their class cut keeps them."""
    table = pa.Table.from_batches([batch])
    table = table.filter(pc.is_in(table.column("split"), pa.array(TEST_SPLITS)))
    tap = pc.fill_null(pc.equal(table.column("family"), "TAP"), False).to_numpy(zero_copy_only=False)
    if not tap.any():
        return table
    rows = table.filter(tap)
    kept = [c in cuts and cuts[c].keeps(key, sample_id)
            for c, key, sample_id in zip(_classes(rows), _keys(seed, rows.column("id")).tolist(), rows.column("id").to_pylist())]
    keep = ~tap
    keep[np.flatnonzero(tap)] = kept
    return table.filter(keep)


def build_test_sets(sample_files: Sequence, out_by_split: dict, seed: int, min_class_size: int, batch_rows: int = 20000) -> dict:
    """Every test-split sample of every task into ``out_by_split[split]``, TAP balanced per split and task.

    Two passes: the TAP test samples' seeded keys first (8 bytes each: where each class is cut), then the
    rows, batch by batch; a third, over TAP ids only, just where a cut falls on equal keys."""
    keys = tap_keys(sample_files, seed, batch_rows)
    cuts, balance, tied = class_cuts(keys, min_class_size)
    if tied:
        cuts = tied_cuts(sample_files, cuts, tied, seed, batch_rows)
    del keys
    counts: Counter = Counter()
    writers = {split: SampleWriter(out_by_split[split]) for split in TEST_SPLITS}
    try:
        for path in sample_files:
            for batch in iter_parquet_batches(path, batch_rows, SAMPLE_SCHEMA.names):
                table = _kept_test_rows(batch, cuts, seed)
                for split in TEST_SPLITS:
                    writers[split].add_table(table.filter(pc.equal(table.column("split"), split)))
                counts.update(zip(table.column("task").to_pylist(), table.column("split").to_pylist()))
    finally:
        for writer in writers.values():
            writer.close()
    return {"samples": _nested(counts), "tap_balance": balance, "seed": seed, "min_class_size": min_class_size}
