"""TAG / TAP / TC / TS rules, prompts and test sets on hand-made ads whose expected samples are known."""
import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alpha.tasks import builders as tasks
from alpha.tasks import prompts
from alpha.tasks.prompts import Audience
from alpha.tasks.samples import SAMPLE_SCHEMA, TEST_AFTER_CUTOFF, TEST_UNSEEN_ADVERTISER, TRAIN
from alpha.tasks.splits import page_held_out, split_ads, split_of

# ---------------------------------------------------------------- prompts


def test_audience_descriptions():
    assert Audience("female", "25-34", "Texas").describe() == "women aged 25-34 in Texas"
    assert Audience(gender="male").describe() == "men"
    assert Audience(state="Ohio").describe() == "people in Ohio"
    assert Audience(age="65+").describe() == "people aged 65+"


def test_spend_and_dates_text():
    assert prompts.spend_text(100, 199, "usd") == "$100 to $199"
    assert prompts.spend_text(1000, None, "USD") == "at least $1,000"
    assert prompts.spend_text(5, 9, "EUR") == "5 EUR to 9 EUR"
    assert prompts.spend_text(None, None, None) == "not reported"
    assert prompts.dates_text(dt.date(2023, 1, 2), None) == "from 2023-01-02, still running"


@pytest.mark.parametrize(
    "task, label, text",
    [
        ("TAP-G", "male", "Best target audience for this ad is Male."),
        ("TAP-A", "55-64", "Best target age group for this ad is the audience aged 55-64."),
        ("TAP-R", ["Massachusetts", "New York", "Vermont"],
         "Top 3 states where the ad will perform best are Massachusetts, New York, Vermont."),
    ],
)
def test_tap_templates_round_trip(task, label, text):
    msgs = prompts.tap(task, prompts.tap_answer(task, label), "Acme", dt.date(2022, 5, 1), "Buy now please friends")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[2]["content"] == text
    assert prompts.parse_tap(task, text) == label
    assert prompts.parse_tap(task, "I think men, probably.") is None


def test_tap_parser_rejects_values_outside_the_classes():
    assert prompts.parse_tap("TAP-G", "Best target audience for this ad is Robots.") is None
    assert prompts.parse_tap("TAP-A", "Best target age group for this ad is the audience aged 13-17.") is None
    assert prompts.parse_tap("TAP-R", "Top 3 states where the ad will perform best are Ohio, Utah.") is None


# ---------------------------------------------------------------- segment facts


def seg(genders=(), gender_idx=(), ages=(), age_idx=(), states=(), cells=(), cell_idx=(), spend=100.0, ad_id="x"):
    return {
        "ad_id": ad_id, "state_ranked": list(states), "gender_ranked": list(genders), "gender_index_ranked": list(gender_idx),
        "age_ranked": list(ages), "age_index_ranked": list(age_idx), "age_gender_ranked": list(cells),
        "age_gender_index_ranked": list(cell_idx), "spend_mid": spend,
    }


def test_ties_for_the_top_are_not_a_unique_top():
    facts = tasks.ad_facts(seg(["female", "male"], [1.2, 1.2], ["18-24", "25-34"], [2.0, 1.0]), "USD")
    assert facts.gender_top is None and facts.gender_tied == {"female", "male"}
    assert facts.age_top == "18-24" and facts.age_tied == {"18-24"}


def test_state_rank_of_an_unreported_state_is_below_all_reported():
    facts = tasks.ad_facts(seg(states=["A", "B"]), "USD")
    assert facts.state_rank("B") == 2 and facts.state_rank("Z") == 3


# ---------------------------------------------------------------- TC


def ad(ad_id, body="some ad text here", page="p1"):
    return {"ad_id": ad_id, "page_id": page, "page_name": "Acme", "body": body}


RULES = tasks.PairTaskRules(region_min_rank_diff=3, min_distance=15)


def tc(fs, ft):
    return [s["task"] for s in tasks.transcreation_samples(ad("s"), ad("t"), fs, ft, TRAIN, RULES)]


def facts(**kw):
    return tasks.ad_facts(seg(**kw), "USD")


def test_tc_gender_needs_target_first_and_not_top_in_source():
    male, female = facts(genders=["male", "female"], gender_idx=[1.5, 0.5]), facts(genders=["female", "male"], gender_idx=[1.4, 0.6])
    assert tc(male, female) == ["TC-G"]
    tied = facts(genders=["female", "male"], gender_idx=[1.0, 1.0])
    assert tc(tied, female) == []  # female is (co-)top in the source
    assert tc(male, tied) == []  # the target has no unique first


def test_tc_age_source_audience_is_its_top_age():
    src = facts(ages=["18-24", "65+"], age_idx=[2.0, 0.1])
    tgt = facts(ages=["65+", "18-24"], age_idx=[3.0, 0.2])
    (sample,) = tasks.transcreation_samples(ad("s"), ad("t", "other body text"), src, tgt, TRAIN, RULES)
    assert sample["task"] == "TC-A" and sample["ad_ids"] == ["s", "t"] and sample["id"] == "TC-A:s>t"
    assert "resonated most with people aged 18-24" in sample["messages"][1]["content"]
    assert "Rewrite it for people aged 65+" in sample["messages"][1]["content"]
    assert sample["messages"][2]["content"] == "other body text"


@pytest.mark.parametrize(
    "source_states, target_top, expected",
    [
        (["A", "B", "C", "D", "E"], "D", ["TC-R"]),  # rank 4 -> 3 places lower: kept
        (["A", "B", "C", "D", "E"], "C", []),  # rank 3 -> 2 places: dropped
        (["A", "B"], "Z", []),  # unreported: rank 3 -> 2 places
        (["A", "B", "C"], "Z", ["TC-R"]),  # unreported: rank 4
        (["A", "B", "C", "D"], "A", []),  # same top state
    ],
)
def test_tc_region_rank_difference(source_states, target_top, expected):
    assert tc(facts(states=source_states), facts(states=[target_top, "A"])) == expected


# ---------------------------------------------------------------- TS


def ts(fa, fb):
    from collections import Counter

    skipped = Counter()
    out = list(tasks.transsuasion_samples(ad("a"), ad("b"), fa, fb, TRAIN, skipped))
    return [(s["task"], s["ad_ids"]) for s in out], skipped


def test_ts_direction_is_low_to_high_impact():
    fa = facts(cells=["female 25-34", "male 25-34"], cell_idx=[2.0, 1.0], spend=500.0)
    fb = facts(cells=["female 25-34", "male 25-34"], cell_idx=[1.5, 1.0], spend=50.0)
    found, _ = ts(fa, fb)
    assert found == [("TS-E", ["b", "a"]), ("TS-B", ["b", "a"])]


def test_ts_ties_and_mismatches_are_skipped_and_counted():
    same = facts(cells=["female 25-34"], cell_idx=[2.0], spend=100.0)
    found, skipped = ts(same, facts(cells=["female 25-34"], cell_idx=[2.0], spend=100.0))
    assert found == [] and skipped["TS-E:equal_engagement"] == 1 and skipped["TS-B:equal_spend"] == 1
    found, skipped = ts(same, facts(cells=["male 25-34"], cell_idx=[2.0]))
    assert found == [] and skipped["TS:different_top_demographic"] == 1
    eur = tasks.ad_facts(seg(cells=["female 25-34"], cell_idx=[3.0], spend=900.0), "EUR")
    found, skipped = ts(same, eur)
    assert found == [("TS-E", ["a", "b"])] and skipped["TS-B:spend_not_comparable"] == 1


def test_ts_prompt_names_the_shared_demographic():
    fa = facts(cells=["male 45-54"], cell_idx=[1.0], spend=10.0)
    fb = facts(cells=["male 45-54"], cell_idx=[2.0], spend=20.0)
    out = list(tasks.transsuasion_samples(ad("a", "first ad"), ad("b", "second ad"), fa, fb, TRAIN, __import__("collections").Counter()))
    assert "targets men aged 45-54" in out[0]["messages"][1]["content"]
    assert out[0]["messages"][2]["content"] == "second ad"


# ---------------------------------------------------------------- end to end on hand-made files

AD_FIELDS = pa.schema([
    ("ad_id", pa.string()), ("page_id", pa.string()), ("page_name", pa.string()), ("body", pa.string()),
    ("delivery_start", pa.date32()), ("delivery_stop", pa.date32()), ("created", pa.date32()), ("currency", pa.string()),
    ("spend_lower", pa.int64()), ("spend_upper", pa.int64()),
])


def write_inputs(tmp_path, rows, segs, splits_by_ad):
    ads = tmp_path / "ads.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=AD_FIELDS), ads)
    seg_rows = [dict(s, page_id=r["page_id"]) for s, r in zip(segs, rows)]
    segments = tmp_path / "segments.parquet"
    pq.write_table(pa.Table.from_pylist(seg_rows), segments)
    spl = tmp_path / "splits.parquet"
    pq.write_table(pa.table({"ad_id": [r["ad_id"] for r in rows], "page_id": [r["page_id"] for r in rows],
                             "split": [splits_by_ad[r["ad_id"]] for r in rows]}), spl)
    return ads, segments, spl


def ad_row(ad_id, page="p1", body=None, start=dt.date(2022, 1, 1)):
    return {"ad_id": ad_id, "page_id": page, "page_name": f"Page {page}", "body": body or f"ad {ad_id} body text words",
            "delivery_start": start, "delivery_stop": None, "created": start, "currency": "USD", "spend_lower": 100, "spend_upper": 199}


def test_pair_tasks_drop_pairs_straddling_splits_and_apply_the_distance(tmp_path):
    rows = [ad_row(i) for i in ("a", "b", "c")]
    g = dict(cells=["female 25-34"], cell_idx=[1.0])
    segs = [
        seg(["male", "female"], [1.5, 0.5], ad_id="a", spend=50.0, **g),
        seg(["female", "male"], [1.5, 0.5], ad_id="b", spend=150.0, cells=["female 25-34"], cell_idx=[2.0]),
        seg(["female", "male"], [1.5, 0.5], ad_id="c", spend=150.0, **g),
    ]
    ads, segments, spl = write_inputs(tmp_path, rows, segs, {"a": TRAIN, "b": TRAIN, "c": TEST_AFTER_CUTOFF})
    pairs = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"page_id": ["p1", "p1", "p1"], "ad_id_1": ["a", "a", "b"], "ad_id_2": ["b", "c", "c"],
                             "cosine": [0.8, 0.8, 0.8], "distance": pa.array([16, 16, 15], pa.int32())}), pairs)
    out = tmp_path / "samples.parquet"
    report = tasks.build_pair_tasks(pairs, ads, segments, spl, out, RULES)
    table = pq.read_table(out)
    assert table.schema.equals(SAMPLE_SCHEMA)
    got = sorted(zip(table.column("task").to_pylist(), map(tuple, table.column("ad_ids").to_pylist())))
    # a-b: TC-G both ways, TS-E and TS-B (distance 16 > 15); a-c and b-c straddle train/test
    assert got == [("TC-G", ("a", "b")), ("TC-G", ("b", "a")), ("TS-B", ("a", "b")), ("TS-E", ("a", "b"))]
    assert report["skipped"]["pair:straddles_splits"] == 2
    assert set(table.column("split").to_pylist()) == {TRAIN}


def test_pair_tasks_distance_exactly_at_the_threshold_gives_no_ts(tmp_path):
    rows = [ad_row("a"), ad_row("b")]
    segs = [seg(ad_id="a", cells=["male 18-24"], cell_idx=[1.0], spend=1.0),
            seg(ad_id="b", cells=["male 18-24"], cell_idx=[2.0], spend=2.0)]
    ads, segments, spl = write_inputs(tmp_path, rows, segs, {"a": TRAIN, "b": TRAIN})
    pairs = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"page_id": ["p1"], "ad_id_1": ["a"], "ad_id_2": ["b"], "cosine": [0.9],
                             "distance": pa.array([15], pa.int32())}), pairs)
    report = tasks.build_pair_tasks(pairs, ads, segments, spl, tmp_path / "s.parquet", RULES)
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 0 and report["skipped"]["TS:distance_too_small"] == 1


def test_ad_tasks_tag_combinations_and_tap_labels(tmp_path):
    rows = [ad_row("a"), ad_row("b")]
    segs = [
        seg(["female", "male"], [1.3, 0.7], ["25-34", "65+"], [2.0, 0.5], states=["Ohio", "Utah", "Iowa"], ad_id="a"),
        seg(["female", "male"], [1.0, 1.0], ["25-34"], [1.0], states=["Ohio"], ad_id="b"),
    ]
    ads, segments, spl = write_inputs(tmp_path, rows, segs, {"a": TRAIN, "b": TEST_UNSEEN_ADVERTISER})
    kw = tmp_path / "kw.parquet"
    pq.write_table(pa.table({"ad_id": ["a", "b"], "keywords": [["solar", "panels"], []]}), kw)
    out = tmp_path / "ads_tasks.parquet"
    report = tasks.build_ad_tasks(ads, segments, kw, spl, out, [["gender"], ["gender", "age", "region"]], batch_rows=1)
    rows_out = {r["id"]: r for r in pq.read_table(out).to_pylist()}
    assert set(rows_out) == {"TAG:gender:a", "TAG:gender+age+region:a", "TAP-G:a", "TAP-A:a", "TAP-R:a", "TAP-A:b"}
    assert "appeal most to women aged 25-34 in Ohio" in rows_out["TAG:gender+age+region:a"]["messages"][1]["content"]
    assert "Keywords: solar, panels" in rows_out["TAG:gender:a"]["messages"][1]["content"]
    assert rows_out["TAP-R:a"]["label"] == "Ohio" and rows_out["TAP-G:a"]["label"] == "female"
    assert rows_out["TAP-A:b"]["split"] == TEST_UNSEEN_ADVERTISER
    assert report["skipped"] == {"TAG:no_top_gender": 2, "TAP-G:no_unique_top": 1, "TAP-R:fewer_than_3_states": 1}


def test_ad_tasks_refuse_misaligned_inputs(tmp_path):
    rows = [ad_row("a"), ad_row("b")]
    ads, segments, spl = write_inputs(tmp_path, rows, [seg(ad_id="a"), seg(ad_id="b")], {"a": TRAIN, "b": TRAIN})
    kw = tmp_path / "kw.parquet"
    pq.write_table(pa.table({"ad_id": ["b", "a"], "keywords": [[], []]}), kw)
    with pytest.raises(ValueError, match="not row-aligned"):
        tasks.build_ad_tasks(ads, segments, kw, spl, tmp_path / "o.parquet", [["gender"]])


# ---------------------------------------------------------------- splits


def test_split_rules(tmp_path):
    cutoff = dt.date(2023, 6, 30)
    assert split_of(True, dt.date(2020, 1, 1), cutoff) == TEST_UNSEEN_ADVERTISER
    assert split_of(False, cutoff, cutoff) == TRAIN  # "after" the cut-off day, not on it
    assert split_of(False, dt.date(2023, 7, 1), cutoff) == TEST_AFTER_CUTOFF
    assert split_of(False, None, cutoff) == TRAIN
    assert not page_held_out("p", 1, 0.0)
    held = [page_held_out(f"p{i}", 7, 0.3) for i in range(2000)]
    assert 0.25 < sum(held) / len(held) < 0.35
    # a page's fate does not depend on any other page, and grows monotonically with the fraction
    assert all(page_held_out(f"p{i}", 7, 0.5) for i in range(2000) if held[i])


def test_split_ads_file(tmp_path):
    rows = [ad_row(f"a{i}", page=f"p{i % 40}", start=dt.date(2023, 7, 1) if i % 3 == 0 else dt.date(2023, 6, 30)) for i in range(400)]
    ads = tmp_path / "ads.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=AD_FIELDS), ads)
    report = split_ads(ads, tmp_path / "splits.parquet", seed=3, heldout_page_fraction=0.2, cutoff="2023-06-30", batch_rows=64)
    table = pq.read_table(tmp_path / "splits.parquet").to_pylist()
    assert [r["ad_id"] for r in table] == [r["ad_id"] for r in rows]
    by_page: dict = {}
    for r in table:
        by_page.setdefault(r["page_id"], set()).add(r["split"] == TEST_UNSEEN_ADVERTISER)
    assert all(len(v) == 1 for v in by_page.values())  # a page is held out whole
    assert report["pages"][TEST_UNSEEN_ADVERTISER] == sum(page_held_out(f"p{i}", 3, 0.2) for i in range(40)) > 0
    for r, src in zip(table, rows):
        if r["split"] != TEST_UNSEEN_ADVERTISER:
            assert (r["split"] == TEST_AFTER_CUTOFF) == (src["delivery_start"] > dt.date(2023, 6, 30))


# ---------------------------------------------------------------- test sets


def test_balanced_keep_hand_computed():
    ids = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(4)] + ["c0", "c1"]
    labels = ["A"] * 10 + ["B"] * 4 + ["C"] * 2
    keep, info = tasks.balanced_keep(ids, labels, seed=1, min_class_size=3)
    assert info["per_class"] == 4 and info["classes"] == ["A", "B"] and info["dropped_classes"] == {"C": 2}
    assert len(keep) == 8 and {i for i in keep if i.startswith("b")} == {"b0", "b1", "b2", "b3"}
    assert keep == tasks.balanced_keep(ids, labels, seed=1, min_class_size=3)[0]
    assert keep != tasks.balanced_keep(ids, labels, seed=2, min_class_size=3)[0]


def sample(task, split, label=None, n=0):
    return {"id": f"{task}:{n}", "task": task, "family": task.split("-")[0], "split": split, "page_id": "p", "ad_ids": [str(n)],
            "label": label, "source": "alpha", "messages": prompts.messages("s", "u", "a")}


def test_test_sets_are_tap_balanced_and_hold_only_test_rows(tmp_path):
    rows = [sample("TAP-G", TEST_AFTER_CUTOFF, "female" if n < 7 else "male", n) for n in range(10)]
    rows += [sample("TAG", TEST_AFTER_CUTOFF, n=n) for n in range(20, 23)] + [sample("TAG", TRAIN, n=n) for n in range(30, 35)]
    rows += [sample("TS-E", TEST_UNSEEN_ADVERTISER, n=40)]
    src = tmp_path / "samples.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), src)
    outs = {TEST_AFTER_CUTOFF: tmp_path / "after.parquet", TEST_UNSEEN_ADVERTISER: tmp_path / "unseen.parquet"}
    report = tasks.build_test_sets([src], outs, seed=5, min_class_size=1, batch_rows=4)
    after = pq.read_table(outs[TEST_AFTER_CUTOFF]).to_pylist()
    tap_labels = [r["label"] for r in after if r["task"] == "TAP-G"]
    assert sorted(tap_labels) == ["female"] * 3 + ["male"] * 3
    assert sum(r["task"] == "TAG" for r in after) == 3
    assert [r["id"] for r in pq.read_table(outs[TEST_UNSEEN_ADVERTISER]).to_pylist()] == ["TS-E:40"]
    assert report["tap_balance"][TEST_AFTER_CUTOFF]["TAP-G"]["per_class"] == 3



# ---------------------------------------------------------------- streaming: bytes and memory bounded by batch_rows

STATES = ["Ohio", "Utah", "Iowa", "Texas", "Maine", "Idaho", "Nevada", "Kansas"]


def random_shard(tmp_path, n_pages, ads_per_page=6, seed=0, shuffle_pairs=False):
    """Pages of ads with random segments (ties included), the ads in scattered order, and every within-page
    pair (page by page, as mine_pairs writes them, unless ``shuffle_pairs``)."""
    import random

    rng = random.Random(seed)
    rows, segs, splits, pairs = [], [], {}, []
    for p in range(n_pages):
        page, ids = f"p{p:04d}", [f"a{p:04d}_{k}" for k in range(ads_per_page + p % 3)]
        page_split = rng.choice([TRAIN, TRAIN, TEST_UNSEEN_ADVERTISER])
        for ad_id in ids:
            words = " ".join(rng.choice(["vote", "tax", "school", "road", "jobs", "care"]) for _ in range(rng.randint(5, 30)))
            rows.append(ad_row(ad_id, page=page, body=words))
            rows[-1]["currency"] = rng.choice(["USD", "USD", "EUR"])
            cells = rng.sample(["female 25-34", "male 25-34", "female 65+"], 2)
            segs.append(seg(rng.sample(["female", "male"], 2), [1.5, rng.choice([0.5, 1.5])], rng.sample(["25-34", "65+"], 2),
                            [rng.choice([2.0, 1.0]), 1.0], states=rng.sample(STATES, rng.randint(0, 6)), cells=cells,
                            cell_idx=[rng.choice([3.0, 2.0]), 1.0], spend=rng.choice([50.0, 150.0, float("nan")]), ad_id=ad_id))
            splits[ad_id] = page_split if page_split != TRAIN else rng.choice([TRAIN, TRAIN, TEST_AFTER_CUTOFF])
        pairs += [(page, a, b, rng.randint(10, 20)) for i, a in enumerate(ids) for b in ids[i + 1:]]
    order = list(range(len(rows)))
    rng.shuffle(order)
    ads, segments, spl = write_inputs(tmp_path, [rows[i] for i in order], [segs[i] for i in order], splits)
    if shuffle_pairs:
        rng.shuffle(pairs)
    path = tmp_path / "pairs.parquet"
    page, a, b, dist = zip(*pairs)
    pq.write_table(pa.table({"page_id": page, "ad_id_1": a, "ad_id_2": b, "cosine": [0.8] * len(pairs),
                             "distance": pa.array(dist, pa.int32())}), path)
    return path, ads, segments, spl


@pytest.mark.parametrize("shuffle_pairs", [False, True])
def test_pair_tasks_bytes_do_not_depend_on_batch_rows(tmp_path, monkeypatch, shuffle_pairs):
    import tempfile

    inputs = random_shard(tmp_path, n_pages=12, shuffle_pairs=shuffle_pairs)
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    outputs = {}
    for batch_rows in (1, 4, 10_000):
        out_dir = tmp_path / f"out{batch_rows}"
        out_dir.mkdir()
        report = tasks.build_pair_tasks(*inputs, out_dir / "s.parquet", RULES, batch_rows=batch_rows)
        assert [p.name for p in out_dir.iterdir()] == ["s.parquet"] and not any(spill.iterdir())  # the spilled ads are gone
        outputs[batch_rows] = ((out_dir / "s.parquet").read_bytes(), report)
    assert outputs[1] == outputs[4] == outputs[10_000]
    tasks_found = set(pq.read_table(tmp_path / "out1/s.parquet", columns=["task"]).column("task").to_pylist())
    assert tasks_found == {"TC-G", "TC-A", "TC-R", "TS-E", "TS-B"} and outputs[1][1]["pages"] == 12


def test_page_ranges_hold_batch_rows_ads_unless_one_page_is_larger(tmp_path):
    pairs, ads, _, _ = random_shard(tmp_path, n_pages=6, ads_per_page=3)  # pages of 3, 4, 5, 3, 4, 5 ads
    pages = tasks.pairs_pages(pairs, batch_rows=2)
    assert pages.to_pylist() == [f"p{p:04d}" for p in range(6)]
    assert tasks.page_ranges(ads, pages, batch_rows=8).tolist() == [0, 0, 1, 1, 2, 3]  # 3+4, 5+3, 4, 5 ads
    assert tasks.page_ranges(ads, pages, batch_rows=2).tolist() == [0, 1, 2, 3, 4, 5]


def test_pair_tasks_need_row_aligned_ad_tables(tmp_path):
    pairs, ads, segments, spl = random_shard(tmp_path, n_pages=2)
    table = pq.read_table(segments)
    pq.write_table(table.take(list(range(table.num_rows))[::-1]), segments)
    with pytest.raises(ValueError, match="not row-aligned"):
        tasks.build_pair_tasks(pairs, ads, segments, spl, tmp_path / "s.parquet", RULES, batch_rows=4)


def test_pair_tasks_refuse_a_pair_whose_ad_is_missing_from_its_page(tmp_path):
    pairs, ads, segments, spl = random_shard(tmp_path, n_pages=2)
    pq.write_table(pa.table({"page_id": ["p0000"], "ad_id_1": ["a0000_0"], "ad_id_2": ["a0001_0"], "cosine": [0.8],
                             "distance": pa.array([16], pa.int32())}), pairs)
    with pytest.raises(ValueError, match="ad a0001_0 is not in .* rerun mine_pairs"):
        tasks.build_pair_tasks(pairs, ads, segments, spl, tmp_path / "s.parquet", RULES, batch_rows=4)


def peak_python_bytes(fn) -> int:
    """Peak Python allocations of ``fn()``; logging is off meanwhile, because pytest's capture handler
    keeps every record (one progress line a batch) and would make the peak grow with the batches."""
    import logging
    import tracemalloc

    logging.disable(logging.CRITICAL)
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)


def small_row_groups(monkeypatch):
    """Sample row groups of 64 rows, so that the writer's one row group is small beside what is measured."""
    from functools import partial

    from alpha.tasks.samples import SampleWriter

    monkeypatch.setattr(tasks, "SampleWriter", partial(SampleWriter, row_group_rows=64))


def test_pair_tasks_memory_is_bound_by_batch_rows_not_by_pairs(tmp_path, monkeypatch):
    small_row_groups(monkeypatch)
    peaks = {}
    for n_pages in (6, 60):
        folder = tmp_path / f"n{n_pages}"
        folder.mkdir()
        inputs = random_shard(folder, n_pages=n_pages, ads_per_page=8)
        peaks[n_pages] = peak_python_bytes(lambda: tasks.build_pair_tasks(*inputs, folder / "s.parquet", RULES, batch_rows=16))
    assert peaks[60] < 1.5 * peaks[6], peaks  # 10x the ads and pairs; holding them would be ~10x the memory


def tap_heavy_samples(tmp_path, n, name="samples.parquet"):
    """Mostly TAP test samples (the part balancing must remember), a few TAG and train rows."""
    rows = []
    for k in range(n):
        split = TEST_AFTER_CUTOFF if k % 3 else TEST_UNSEEN_ADVERTISER
        gender = "nonbinary" if k % 30 == 5 else ["female", "male"][k % 2]  # a small class, in test_after_cutoff only
        if k % 10 == 0:
            rows.append(sample("TAG", split if k % 20 else TRAIN, n=k))
        else:
            rows.append(sample("TAP-G" if k % 4 else "TAP-A", split, gender if k % 4 else f"{18 + k % 5}", n=k))
    path = tmp_path / name
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), path, row_group_size=max(1, n // 7))
    return path, rows


def expected_test_sets(rows, seed, min_class_size):
    """What the test sets hold by definition: balanced_keep over each (split, task)'s TAP samples at once."""
    keep: set = set()
    for split in (TEST_AFTER_CUTOFF, TEST_UNSEEN_ADVERTISER):
        for task in sorted({r["task"] for r in rows if r["family"] == "TAP"}):
            tap = [r for r in rows if r["split"] == split and r["task"] == task]
            keep |= tasks.balanced_keep([r["id"] for r in tap], [r["label"] for r in tap], seed, min_class_size)[0]
    return {split: [r["id"] for r in rows if r["split"] == split and (r["family"] != "TAP" or r["id"] in keep)]
            for split in (TEST_AFTER_CUTOFF, TEST_UNSEEN_ADVERTISER)}


@pytest.mark.parametrize("coarse_keys", [False, True])
def test_test_sets_bytes_do_not_depend_on_batch_rows(tmp_path, monkeypatch, coarse_keys):
    src, rows = tap_heavy_samples(tmp_path, 600)
    rows += rows[5:9]  # repeated ids: ties at the cut are decided by id, as balanced_keep does
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), src)
    if coarse_keys:  # many equal keys: every cut falls on a tie
        monkeypatch.setattr(tasks, "stable_key", lambda seed, text: (hash(text) % 7) * 2**40)
    outputs = {}
    for batch_rows in (1, 7, 100_000):
        outs = {split: tmp_path / f"{split}{batch_rows}.parquet" for split in (TEST_AFTER_CUTOFF, TEST_UNSEEN_ADVERTISER)}
        report = tasks.build_test_sets([src, src], outs, seed=3, min_class_size=50, batch_rows=batch_rows)
        outputs[batch_rows] = (report, *(p.read_bytes() for p in outs.values()))
        got = {split: pq.read_table(p, columns=["id"]).column("id").to_pylist() for split, p in outs.items()}
        assert got == expected_test_sets(rows * 2, 3, 50)
    assert outputs[1] == outputs[7] == outputs[100_000]
    balance = outputs[1][0]["tap_balance"]
    assert balance[TEST_AFTER_CUTOFF]["TAP-G"]["dropped_classes"] == {"nonbinary": 42}  # (20 + 1 repeated) x 2 files
    assert balance[TEST_UNSEEN_ADVERTISER]["TAP-A"]["per_class"] == 0  # every class too small


def test_test_sets_memory_is_bound_by_batch_rows_not_by_samples(tmp_path, monkeypatch):
    small_row_groups(monkeypatch)
    peaks, taps = {}, {}
    for n in (2_000, 20_000):
        src, rows = tap_heavy_samples(tmp_path, n, name=f"s{n}.parquet")
        taps[n] = sum(r["family"] == "TAP" for r in rows)
        outs = {split: tmp_path / f"{split}{n}.parquet" for split in (TEST_AFTER_CUTOFF, TEST_UNSEEN_ADVERTISER)}
        peaks[n] = peak_python_bytes(lambda: tasks.build_test_sets([src], outs, seed=1, min_class_size=1, batch_rows=64))
    # What may grow: each TAP test sample's 8-byte key (up to twice that in a growing array, and a copy to cut
    # its class). Ids, labels or rows held per sample (Python objects) would be well over 100 bytes each.
    per_sample = (peaks[20_000] - peaks[2_000]) / (taps[20_000] - taps[2_000])
    assert per_sample < 40, (peaks, per_sample)


def test_sample_writer_bytes_do_not_depend_on_rows_or_tables(tmp_path):
    from alpha.tasks.samples import SampleWriter

    rows = [sample("TAG", TRAIN, n=n) for n in range(50)]
    with SampleWriter(tmp_path / "rows.parquet", row_group_rows=8) as writer:
        for row in rows:
            writer.add(row)
    with SampleWriter(tmp_path / "mixed.parquet", row_group_rows=8) as writer:
        table = pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA)
        writer.add_table(table.slice(0, 3))
        for row in rows[3:12]:
            writer.add(row)
        writer.add_table(table.slice(12, 0))
        writer.add_table(pa.concat_tables([table.slice(12, 20), table.slice(32, 17)]))
        writer.add(rows[49])
    assert (tmp_path / "rows.parquet").read_bytes() == (tmp_path / "mixed.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "mixed.parquet").metadata.num_row_groups == 7
