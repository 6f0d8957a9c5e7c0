"""ALPHA50M task builders: TAG and TAP from single ads, TC and TS from mined within-page pairs,
and the held-out test sets (TAP class-balanced).

Segment facts come from the census-normalised segments (per-capita indexes, ranked descending, exact
ties broken by name). "Top" means the highest index; a demographic tied for the top is top-ranked,
and a unique first place is needed to call a segment *the* most engaged one.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
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


def _read_pages(path, columns: list[str], pages: list[str]) -> pa.Table:
    table = pq.read_table(path, columns=columns, filters=[("page_id", "in", pages)] if pages else None)
    return table if pages else table.slice(0, 0)


def build_pair_tasks(pairs_parquet, ads_parquet, segments_parquet, splits_parquet, out_parquet, rules: PairTaskRules) -> dict:
    """TC-A/G/R (both directions of each pair) and TS-E/B (low to high impact) for one pair shard.

    Reads only the ads of the shard's pages; pairs straddling two splits are dropped and counted."""
    pairs = pq.read_table(pairs_parquet)
    pages = sorted(set(pairs.column("page_id").to_pylist()))
    ads = _read_pages(ads_parquet, AD_COLUMNS, pages)
    segs = _read_pages(segments_parquet, SEGMENT_COLUMNS + ["page_id"], pages)
    spl = _read_pages(splits_parquet, ["ad_id", "split", "page_id"], pages)
    ad_rows = {r["ad_id"]: r for r in ads.to_pylist()}
    facts = {r["ad_id"]: ad_facts(r, ad_rows[r["ad_id"]]["currency"]) for r in segs.to_pylist() if r["ad_id"] in ad_rows}
    split_of = dict(zip(spl.column("ad_id").to_pylist(), spl.column("split").to_pylist()))
    counts: Counter = Counter()
    skipped: Counter = Counter()
    with SampleWriter(out_parquet) as writer:
        for k, (a_id, b_id, distance) in enumerate(zip(pairs.column("ad_id_1").to_pylist(), pairs.column("ad_id_2").to_pylist(),
                                                       pairs.column("distance").to_pylist())):
            missing = [x for x in (a_id, b_id) if x not in facts or x not in split_of]
            if missing:
                raise ValueError(f"{pairs_parquet}: ad {missing[0]} is not in {ads_parquet}/{segments_parquet}/{splits_parquet}; "
                                 "rerun mine_pairs")
            split = pair_split(split_of[a_id], split_of[b_id])
            if split is None:
                skipped["pair:straddles_splits"] += 1
                continue
            a, b = ad_rows[a_id], ad_rows[b_id]
            fa, fb = facts[a_id], facts[b_id]
            found = [*transcreation_samples(a, b, fa, fb, split, rules), *transcreation_samples(b, a, fb, fa, split, rules)]
            if distance > rules.min_distance:
                found += transsuasion_samples(a, b, fa, fb, split, skipped)
            else:
                skipped["TS:distance_too_small"] += 1
            for sample in found:
                writer.add(sample)
                counts[(sample["task"], split)] += 1
            if (k + 1) % PROGRESS_EVERY == 0:
                log.info("pair tasks: %d / %d pairs", k + 1, pairs.num_rows)
    report = {"pairs": pairs.num_rows, "pages": len(pages), "samples": _nested(counts), "skipped": dict(sorted(skipped.items()))}
    log.info("pair tasks: %d pairs -> %d samples", pairs.num_rows, sum(counts.values()))
    return report


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
    info = {
        "per_class": per_class,
        "classes": sorted(kept_classes),
        "dropped_classes": {lab: len(v) for lab, v in sorted(by_label.items()) if lab not in kept_classes},
        "available": len(ids),
    }
    return keep, info


def build_test_sets(sample_files: Sequence, out_by_split: dict, seed: int, min_class_size: int, batch_rows: int = 65536) -> dict:
    """Every test-split sample of every task into ``out_by_split[split]``, TAP balanced per split and task.

    Two passes: TAP ids and labels first (small), then the rows, so memory is one batch."""
    tap: dict[tuple[str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    for path in sample_files:
        for batch in iter_parquet_batches(path, batch_rows, ["id", "family", "task", "split", "label"]):
            for sample_id, family, task, split, label in zip(
                    *(batch.column(c).to_pylist() for c in ("id", "family", "task", "split", "label"))):
                if family == "TAP" and split in TEST_SPLITS:
                    tap[(split, task)][0].append(sample_id)
                    tap[(split, task)][1].append(label)
    keep: set[str] = set()
    balance: dict = defaultdict(dict)
    for (split, task), (ids, labels) in sorted(tap.items()):
        kept, info = balanced_keep(ids, labels, seed, min_class_size)
        keep |= kept
        balance[split][task] = info
    counts: Counter = Counter()
    writers = {split: SampleWriter(out_by_split[split]) for split in TEST_SPLITS}
    try:
        for path in sample_files:
            for batch in iter_parquet_batches(path, batch_rows, SAMPLE_SCHEMA.names):
                table = pa.Table.from_batches([batch]).filter(pc.is_in(batch.column("split"), pa.array(TEST_SPLITS)))
                for row in table.to_pylist():
                    if row["family"] == "TAP" and row["id"] not in keep:
                        continue
                    writers[row["split"]].add(row)
                    counts[(row["task"], row["split"])] += 1
    finally:
        for writer in writers.values():
            writer.close()
    return {"samples": _nested(counts), "tap_balance": dict(balance), "seed": seed, "min_class_size": min_class_size}

