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
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpha.core.io import iter_parquet_batches
from alpha.tasks import prompts
from alpha.tasks.prompts import Audience
from alpha.tasks.samples import SAMPLE_SCHEMA, TEST_SPLITS, SampleWriter, family_of, stable_key
from alpha.tasks.splits import pair_split

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

    def __init__(self, path: Path, batches_of: dict[int, list[int]]):
        self._file = pa.OSFile(str(path))
        self._reader = pa.ipc.open_file(self._file)
        self._batches_of = batches_of
        self._loaded: tuple[int, pa.Table] | None = None

    @classmethod
    def spill(cls, path: Path, sources: Sequence[tuple[str, list[str]]], pages: pa.Array, ranges: np.ndarray,
              batch_rows: int) -> "ShardAds":
        schema = _joined_schema(sources)
        batches_of: dict[int, list[int]] = defaultdict(list)
        written = 0
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
                        batches_of[int(rng[lo])].append(written)
                        written += 1
        return cls(path, dict(batches_of))

    def load(self, rng: int) -> pa.Table:
        if self._loaded is None or self._loaded[0] != rng:
            self._loaded = None  # free the previous range before reading the next
            batches = [self._reader.get_batch(i) for i in self._batches_of.get(rng, [])]
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


@dataclass
class PairAds:
    """Rows, facts and split of the ads one run of pairs names."""

    rows: dict[str, dict]
    facts: dict[str, AdFacts]
    split: dict[str, str]

    @classmethod
    def of(cls, table: pa.Table, ad_ids: pa.Array) -> "PairAds":
        pos = pc.index_in(pc.unique(ad_ids), value_set=table.column("ad_id").combine_chunks()).drop_null()
        rows = table.take(pos).to_pylist()
        return cls({r["ad_id"]: r for r in rows}, {r["ad_id"]: ad_facts(r, r["currency"]) for r in rows},
                   {r["ad_id"]: r["split"] for r in rows})


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
    one batch of pairs and one page range of ads (``batch_rows`` each; a larger page is read whole)."""
    pages = pairs_pages(pairs_parquet, batch_rows)
    ranges = page_ranges(ads_parquet, pages, batch_rows)
    n_pairs = pq.ParquetFile(pairs_parquet).metadata.num_rows
    sources = [(ads_parquet, PAIR_AD_COLUMNS), (segments_parquet, SEGMENT_COLUMNS), (splits_parquet, ["ad_id", "split"])]
    where = f"{ads_parquet}/{segments_parquet}/{splits_parquet}"
    counts: Counter = Counter()
    skipped: Counter = Counter()
    done = 0
    # the spill goes to TMPDIR (Snakemake's tmpdir resource): the shard's ads, uncompressed, about 1.5 kB an ad
    with tempfile.TemporaryDirectory(prefix="pair_tasks-") as tmp, SampleWriter(out_parquet) as writer:
        store = ShardAds.spill(Path(tmp) / "ads.arrow", sources, pages, ranges, batch_rows)
        for batch in iter_parquet_batches(pairs_parquet, batch_rows, ["page_id", "ad_id_1", "ad_id_2", "distance"]):
            batch_ranges = ranges[pc.index_in(batch.column("page_id").cast(pa.string()), value_set=pages).to_numpy()]
            for lo, hi in _runs(batch_ranges):
                run = batch.slice(lo, hi - lo)
                ads = PairAds.of(store.load(int(batch_ranges[lo])), pa.concat_arrays([run.column("ad_id_1"), run.column("ad_id_2")]))
                for sample in _run_samples(run, ads, rules, skipped, str(pairs_parquet), where):
                    writer.add(sample)
                    counts[(sample["task"], sample["split"])] += 1
            done += batch.num_rows
            log.info("pair tasks: %d / %d pairs", done, n_pairs)
        store.close()
    report = {"pairs": n_pairs, "pages": len(pages), "samples": _nested(counts), "skipped": dict(sorted(skipped.items()))}
    log.info("pair tasks: %d pairs -> %d samples", n_pairs, sum(counts.values()))
    return report


def _run_samples(run: pa.RecordBatch, ads: PairAds, rules: PairTaskRules, skipped: Counter, pairs_path: str,
                 ads_paths: str) -> Iterator[dict]:
    for a_id, b_id, distance in zip(*(run.column(c).to_pylist() for c in ("ad_id_1", "ad_id_2", "distance"))):
        missing = [x for x in (a_id, b_id) if x not in ads.facts]
        if missing:
            raise ValueError(f"{pairs_path}: ad {missing[0]} is not in {ads_paths} (on the pair's page); rerun mine_pairs")
        split = pair_split(ads.split[a_id], ads.split[b_id])
        if split is None:
            skipped["pair:straddles_splits"] += 1
            continue
        yield from pair_samples(ads.rows[a_id], ads.rows[b_id], ads.facts[a_id], ads.facts[b_id], split, distance, rules, skipped)


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
