"""The vectorised pair tasks (``build_pair_tasks``) against the per-pair implementation they replaced.

``reference_build_pair_tasks`` below is the old rule body, kept verbatim: pair by pair through ``pair_samples``
(the per-pair specification of TC and TS, still in builders) and ``SampleWriter.add``. The new one must write the
same bytes and the same report, whatever the batch size, on random shards and on shards of odd values (ties,
NaN and null spends and indexes, null bodies and page names, duplicate and null states, pairs of an ad with
itself, null splits) that reach every skip reason and every task. tests/bench/bench_pair_tasks.py times both.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from alpha.core.io import iter_parquet_batches
from alpha.tasks import builders as tasks
from alpha.tasks.builders import AdFacts, PairTaskRules, ShardAds, ad_facts, pair_samples
from alpha.tasks.samples import SampleWriter
from alpha.tasks.splits import pair_split

log = logging.getLogger("alpha.tasks.builders")

# ---------------------------------------------------------------- the per-pair implementation (before vectorising)


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


def reference_build_pair_tasks(pairs_parquet, ads_parquet, segments_parquet, splits_parquet, out_parquet, rules: PairTaskRules,
                               batch_rows: int = 20000) -> dict:
    pages = tasks.pairs_pages(pairs_parquet, batch_rows)
    ranges = tasks.page_ranges(ads_parquet, pages, batch_rows)
    n_pairs = pq.ParquetFile(pairs_parquet).metadata.num_rows
    sources = [(ads_parquet, tasks.PAIR_AD_COLUMNS), (segments_parquet, tasks.SEGMENT_COLUMNS), (splits_parquet, ["ad_id", "split"])]
    where = f"{ads_parquet}/{segments_parquet}/{splits_parquet}"
    counts: Counter = Counter()
    skipped: Counter = Counter()
    done = 0
    with tempfile.TemporaryDirectory(prefix="pair_tasks-") as tmp, SampleWriter(out_parquet) as writer:
        store = ShardAds.spill(Path(tmp) / "ads.arrow", sources, pages, ranges, batch_rows)
        for batch in iter_parquet_batches(pairs_parquet, batch_rows, ["page_id", "ad_id_1", "ad_id_2", "distance"]):
            batch_ranges = ranges[pc.index_in(batch.column("page_id").cast(pa.string()), value_set=pages).to_numpy()]
            for lo, hi in tasks._runs(batch_ranges):
                run = batch.slice(lo, hi - lo)
                ads = PairAds.of(store.load(int(batch_ranges[lo])), pa.concat_arrays([run.column("ad_id_1"), run.column("ad_id_2")]))
                for sample in _run_samples(run, ads, rules, skipped, str(pairs_parquet), where):
                    writer.add(sample)
                    counts[(sample["task"], sample["split"])] += 1
            done += batch.num_rows
            log.info("pair tasks: %d / %d pairs", done, n_pairs)
        store.close()
    report = {"pairs": n_pairs, "pages": len(pages), "samples": tasks._nested(counts), "skipped": dict(sorted(skipped.items()))}
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


# ---------------------------------------------------------------- inputs

RULES = PairTaskRules(region_min_rank_diff=3, min_distance=15)
TRAIN, AFTER, UNSEEN = "train", "test_after_cutoff", "test_unseen_advertiser"
AD_SCHEMA = pa.schema([
    ("ad_id", pa.string()), ("page_id", pa.string()), ("page_name", pa.string()), ("body", pa.string()),
    ("delivery_start", pa.date32()), ("delivery_stop", pa.date32()), ("created", pa.date32()), ("currency", pa.string()),
    ("spend_lower", pa.int64()), ("spend_upper", pa.int64()),
])
STR_LIST, F64_LIST = pa.list_(pa.string()), pa.list_(pa.float64())
SEGMENT_SCHEMA = pa.schema([
    ("ad_id", pa.string()), ("page_id", pa.string()), ("state_ranked", STR_LIST), ("gender_ranked", STR_LIST),
    ("gender_index_ranked", F64_LIST), ("age_ranked", STR_LIST), ("age_index_ranked", F64_LIST),
    ("age_gender_ranked", STR_LIST), ("age_gender_index_ranked", F64_LIST), ("spend_mid", pa.float64()),
])
STATES = ["Ohio", "Utah", "Iowa", "Texas", "Maine", "Idaho", "Nevada", "Kansas", "Oregon"]
CELLS = ["female 25-34", "male 25-34", "female 65+", "male 18-24"]


def _ranked(rng: random.Random, names: list[str], odd: bool) -> tuple[list | None, list | None]:
    """Names ranked by a descending index, often tied at the top; with ``odd``, also empty, null or NaN."""
    if odd and rng.random() < 0.1:
        return rng.choice([([], []), (None, None)])
    chosen = rng.sample(names, rng.randint(1, len(names)))
    values = sorted((rng.choice([3.0, 2.0, 1.5, 1.0]) for _ in chosen), reverse=True)
    if odd and rng.random() < 0.05:
        values[0] = float("nan")
    if odd and len(chosen) > 1 and rng.random() < 0.1:  # a name listed twice (dict() keeps the last index)
        chosen.append(chosen[0])
        values.append(rng.choice([0.5, 4.0, float("nan")]))
    return chosen, values


def write_shard(folder: Path, seed: int, n_pages: int, odd: bool, shuffle_pairs: bool = False) -> tuple[Path, Path, Path, Path]:
    """Pages of 1-9 ads with random facts (odd values with ``odd``), the ads scattered, and the page's pairs page by page
    (shuffled with ``shuffle_pairs``); with ``odd`` also an ad paired with itself now and then."""
    rng = random.Random(seed)
    ads, segments, splits, pairs = [], [], [], []
    for p in range(n_pages):
        page = f"p{p:03d}"
        ids = [f"a{p:03d}_{k}" for k in range(rng.randint(1, 9))]
        page_split = rng.choice([TRAIN, TRAIN, UNSEEN])
        for ad_id in ids:
            words = " ".join(rng.choice(["vote", "tax", "school", "road", "jobs", "care"]) for _ in range(rng.randint(3, 20)))
            ads.append({
                "ad_id": ad_id, "page_id": page, "page_name": None if odd and rng.random() < 0.1 else f"Page {p} & co",
                "body": rng.choice([None, "", words]) if odd and rng.random() < 0.15 else words,
                "delivery_start": dt.date(2022, 1, 1), "delivery_stop": None, "created": None,
                "currency": rng.choice(["USD", "usd ", "EUR", None, ""]) if odd else rng.choice(["USD", "USD", "EUR"]),
                "spend_lower": 100, "spend_upper": 199,
            })
            genders, gender_idx = _ranked(rng, ["female", "male"], odd)
            ages, age_idx = _ranked(rng, ["18-24", "25-34", "65+"], odd)
            cells, cell_idx = _ranked(rng, CELLS, odd)
            states = rng.sample(STATES, rng.randint(0, len(STATES)))
            if odd and states and rng.random() < 0.1:
                states.insert(rng.randint(0, len(states)), rng.choice(states))  # a state listed twice: its first rank counts
            if odd and rng.random() < 0.05:
                states = None
            spend = rng.choice([50.0, 150.0, 150.0, float("nan")] + ([None] if odd else []))
            segments.append({"ad_id": ad_id, "page_id": page, "state_ranked": states, "gender_ranked": genders,
                             "gender_index_ranked": gender_idx, "age_ranked": ages, "age_index_ranked": age_idx,
                             "age_gender_ranked": cells, "age_gender_index_ranked": cell_idx, "spend_mid": spend})
            split = page_split if page_split != TRAIN else rng.choice([TRAIN, TRAIN, AFTER])
            splits.append({"ad_id": ad_id, "page_id": page, "split": None if odd and rng.random() < 0.03 else split})
        page_pairs = [(page, a, b, rng.randint(13, 18)) for i, a in enumerate(ids) for b in ids[i + 1:]]
        if odd:
            page_pairs += [(page, a, a, 16) for a in ids if rng.random() < 0.1]
        pairs += page_pairs
    order = list(range(len(ads)))
    rng.shuffle(order)
    paths = [folder / name for name in ("pairs.parquet", "ads.parquet", "segments.parquet", "splits.parquet")]
    for rows, schema, path in ((ads, AD_SCHEMA, paths[1]), (segments, SEGMENT_SCHEMA, paths[2]), (splits, None, paths[3])):
        pq.write_table(pa.Table.from_pylist([rows[i] for i in order], schema=schema), path)
    if shuffle_pairs:
        rng.shuffle(pairs)
    page, a, b, dist = zip(*pairs)
    pq.write_table(pa.table({"page_id": page, "ad_id_1": a, "ad_id_2": b, "cosine": [0.8] * len(pairs),
                             "distance": pa.array(dist, pa.int32())}), paths[0])
    return tuple(paths)


def both_ways(folder: Path, inputs, batch_rows: int) -> tuple[tuple[bytes, dict], tuple[bytes, dict]]:
    out = {}
    for name, fn in (("new", tasks.build_pair_tasks), ("old", reference_build_pair_tasks)):
        path = folder / f"{name}{batch_rows}.parquet"
        report = fn(*inputs, path, RULES, batch_rows=batch_rows)
        out[name] = (path.read_bytes(), report)
    return out["new"], out["old"]


# ---------------------------------------------------------------- same bytes, same report


@pytest.mark.parametrize("seed, odd, shuffle_pairs", [(0, False, False), (1, True, False), (2, True, True), (3, True, False)])
def test_vectorised_pair_tasks_write_what_the_per_pair_rules_write(tmp_path, seed, odd, shuffle_pairs):
    inputs = write_shard(tmp_path, seed, n_pages=40, odd=odd, shuffle_pairs=shuffle_pairs)
    reports = []
    for batch_rows in (1, 3, 16, 50, 100_000):
        new, old = both_ways(tmp_path, inputs, batch_rows)
        assert new[1] == old[1], batch_rows
        assert new[0] == old[0], batch_rows
        reports.append(new)
    assert all(r == reports[0] for r in reports)  # and neither depends on the batch size


def test_odd_shards_reach_every_task_and_skip_reason(tmp_path):
    inputs = write_shard(tmp_path, 1, n_pages=40, odd=True)
    report = tasks.build_pair_tasks(*inputs, tmp_path / "s.parquet", RULES, batch_rows=16)
    assert set(report["samples"]) == {"TC-G", "TC-A", "TC-R", "TS-E", "TS-B"}
    assert set(report["skipped"]) == {"pair:straddles_splits", "TS:distance_too_small", "TS:different_top_demographic",
                                      "TS-E:equal_engagement", "TS-B:spend_not_comparable", "TS-B:equal_spend"}
    table = pq.read_table(tmp_path / "s.parquet")
    contents = pc.list_flatten(table.column("messages")).combine_chunks().field("content")
    assert contents.null_count > 0  # a null body stays a null assistant message
    assert pc.any(pc.match_substring(contents, "This ad by None ")).as_py()  # a null page name reads as an f-string writes it


def test_chunks_of_pairs_do_not_change_the_bytes(tmp_path, monkeypatch):
    inputs = write_shard(tmp_path, 4, n_pages=20, odd=True)
    tasks.build_pair_tasks(*inputs, tmp_path / "whole.parquet", RULES, batch_rows=1000)
    monkeypatch.setattr(tasks, "PAIR_CHUNK", 3)
    tasks.build_pair_tasks(*inputs, tmp_path / "chunked.parquet", RULES, batch_rows=1000)
    assert (tmp_path / "whole.parquet").read_bytes() == (tmp_path / "chunked.parquet").read_bytes()


def test_a_missing_ad_is_refused_with_the_first_missing_id(tmp_path):
    pairs, ads, segments, spl = write_shard(tmp_path, 5, n_pages=3, odd=False)
    table = pq.read_table(pairs)
    page, a, b = (table.column(c)[0].as_py() for c in ("page_id", "ad_id_1", "ad_id_2"))
    pq.write_table(pa.table({"page_id": [page] * 3, "ad_id_1": [a, "gone_1", "gone_3"], "ad_id_2": [b, "gone_2", a],
                             "cosine": [0.8] * 3, "distance": pa.array([16] * 3, pa.int32())}), pairs)
    for fn in (tasks.build_pair_tasks, reference_build_pair_tasks):
        with pytest.raises(ValueError, match="ad gone_1 is not in .* rerun mine_pairs"):
            fn(pairs, ads, segments, spl, tmp_path / "s.parquet", RULES, batch_rows=100)


def test_prompt_templates_are_read_off_the_prompt_functions():
    templates, roles = tasks._pair_templates()
    assert roles == ("system", "user", "assistant")
    tc = tasks.prompts.transcreation(tasks.Audience(gender="male"), tasks.Audience(gender="female"), "Acme", "one", "two")
    texts = {"d1": "men", "d2": "women", "page_name": "Acme", "body1": "one", "body2": "two"}
    rendered = [{"role": role, "content": "".join(texts[p[1]] if isinstance(p, tuple) else p for p in pieces)}
                for role, pieces in templates[0]]
    assert rendered == tc
    with pytest.raises(RuntimeError, match="not literal text"):
        tasks._template_of(lambda a, b: [{"role": "user", "content": b.upper()}], (), ("page_name", "body1"))


def test_a_shard_without_pairs_writes_an_empty_file(tmp_path):
    inputs = write_shard(tmp_path, 6, n_pages=3, odd=False)
    pq.write_table(pq.read_table(inputs[0]).slice(0, 0), inputs[0])
    new, old = both_ways(tmp_path, inputs, 10)
    assert new == old and new[1] == {"pairs": 0, "pages": 0, "samples": {}, "skipped": {}}
