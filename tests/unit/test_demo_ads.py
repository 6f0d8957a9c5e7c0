"""The demo dumps: deterministic, in the real layouts, with every quirk and the planted signal."""
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from alpha.demo_ads import write_demo_ads

CENSUS = Path(__file__).resolve().parents[2] / "config" / "census"
FILES = ["ads_current.jsonl", "ads_legacy.jsonl", "ads_page.json", "ads_export.csv", "ads_export_demos.csv",
         "ads_export_regions.csv", "media_verbalisation.jsonl", "truth.parquet"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    counts = write_demo_ads(out, seed=7, census_dir=CENSUS)
    return out, counts


def jsonl(path):
    good, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            good.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    return good, bad


def test_deterministic(demo, tmp_path):
    out, _ = demo
    again, other = tmp_path / "again", tmp_path / "other"
    write_demo_ads(again, seed=7, census_dir=CENSUS)
    write_demo_ads(other, seed=8, census_dir=CENSUS)
    for name in FILES:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert (out / "ads_current.jsonl").read_bytes() != (other / "ads_current.jsonl").read_bytes()


def test_sizes_and_heavy_tail(demo):
    out, counts = demo
    truth = pq.read_table(out / "truth.parquet").to_pandas()
    assert len(truth) == 3000 and truth.ad_id.is_unique
    sizes = truth.page_id.value_counts()
    assert len(sizes) == 150 and sizes.max() >= 300 and (sizes <= 5).sum() >= 30
    assert (truth.groupby("family_id").size() >= 2).mean() > 0.9  # paraphrase families


def test_formats_and_legacy_names(demo):
    out, _ = demo
    current, bad_current = jsonl(out / "ads_current.jsonl")
    legacy, bad_legacy = jsonl(out / "ads_legacy.jsonl")
    assert bad_current >= 5 and bad_legacy >= 1
    assert all("ad_creative_bodies" in r and "delivery_by_region" in r for r in current)
    assert all("ad_creative_body" in r and "region_distribution" in r and "potential_reach" in r and "funding_entity" in r for r in legacy)
    assert not any("delivery_by_region" in r or "ad_creative_bodies" in r for r in legacy)
    assert all(r["ad_creation_time"].endswith("+0000") for r in legacy)
    page = json.loads((out / "ads_page.json").read_text())
    assert set(page) == {"data", "paging"} and page["data"]
    rows = list(csv.DictReader(open(out / "ads_export.csv", encoding="utf-8")))
    mangled = [r for r in rows if "E+" in r["id"]]
    assert mangled and all(f"id={r['id'][:1]}" in r["ad_snapshot_url"] for r in mangled)
    demo_ids = {r["ad_id"] for r in csv.DictReader(open(out / "ads_export_demos.csv", encoding="utf-8"))}
    for r in mangled:
        real = r["ad_snapshot_url"].split("id=")[1].split("&")[0]
        assert real in demo_ids  # side tables are keyed by the real id
    assert "collector_batch" in rows[0]


def test_every_quirk_present(demo):
    out, _ = demo
    current, _ = jsonl(out / "ads_current.jsonl")
    legacy, _ = jsonl(out / "ads_legacy.jsonl")
    records = current + legacy
    regions = Counter(e["region"] for r in current for e in r["delivery_by_region"])
    legacy_regions = Counter(e["region"] for r in legacy for e in r["region_distribution"])
    assert regions["Washington, District of Columbia"] and regions["Unknown"]
    assert any(regions[t] for t in ("Guam", "Northern Mariana Islands", "US Virgin Islands", "Eastern District", "Western District"))
    assert legacy_regions["San Juan"] or legacy_regions["Bayamón"]
    assert regions["New South Wales"] or legacy_regions["New South Wales"]
    assert any(len(r["delivery_by_region"]) < 51 for r in current)  # absent states
    pcts = [e["percentage"] for r in current for e in r["demographic_distribution"]]
    assert all(isinstance(p, str) for p in pcts) and any("E-" in p for p in pcts)
    assert any(e["age"] == "13-17" for r in current for e in r["demographic_distribution"])
    assert any(e["gender"] == "unknown" for r in current for e in r["demographic_distribution"])
    assert any("upper_bound" not in r["impressions"] for r in records)
    assert any(len(r["ad_creative_bodies"]) > 1 for r in current)
    assert any(len(set(r["ad_creative_bodies"])) < len(r["ad_creative_bodies"]) for r in current)  # repeated frames
    assert any("http" in b or "www." in b for r in current for b in r["ad_creative_bodies"])
    assert any(not any(b.strip() for b in r["ad_creative_bodies"]) for r in current)
    assert any(not r.get("page_name") for r in current)
    assert any(len(" ".join(r["ad_creative_bodies"]).split()) < 4 and r["ad_creative_bodies"] for r in current)
    assert {r["currency"] for r in records} > {"USD"}
    ids = Counter(r["id"] for r in current)
    assert ids.most_common(1)[0][1] >= 2  # exact duplicates within a dump
    export_ids = {row["ad_snapshot_url"].split("id=")[1].split("&")[0] for row in csv.DictReader(open(out / "ads_export.csv", encoding="utf-8"))}
    assert export_ids & set(ids)  # and across dumps


def test_access_token_in_every_snapshot_url(demo):
    out, _ = demo
    current, _ = jsonl(out / "ads_current.jsonl")
    page = json.loads((out / "ads_page.json").read_text())["data"]
    rows = list(csv.DictReader(open(out / "ads_export.csv", encoding="utf-8")))
    urls = [r["ad_snapshot_url"] for r in current + page] + [r["ad_snapshot_url"] for r in rows]
    assert urls and all("access_token=EAAB" in u for u in urls)


def test_percentages_sum_to_one(demo):
    out, _ = demo
    current, _ = jsonl(out / "ads_current.jsonl")
    for r in current[:500]:
        for key in ("demographic_distribution", "delivery_by_region"):
            assert sum(float(e["percentage"]) for e in r[key]) == pytest.approx(1.0, abs=0.01)


def test_dates_span_the_cutoff(demo):
    out, _ = demo
    truth = pq.read_table(out / "truth.parquet").to_pandas()
    after = (truth.delivery_start.astype(str) > "2023-06-30").mean()
    assert 0.1 < after < 0.6


def test_planted_signal(demo):
    out, _ = demo
    current, _ = jsonl(out / "ads_current.jsonl")
    truth = {t["ad_id"]: t for t in pq.read_table(out / "truth.parquet").to_pylist()}
    def share(records, topic, pred):
        vals = [sum(float(e["percentage"]) for e in r["demographic_distribution"] if pred(e)) for r in records if truth[r["id"]]["topic"] == topic]
        return float(np.mean(vals))
    assert share(current, "hunting", lambda e: e["gender"] == "male") > 0.6
    assert share(current, "beauty", lambda e: e["gender"] == "female") > 0.6
    assert share(current, "retirement", lambda e: e["age"] == "65+") > 0.4  # census 65+ share of adults is ~0.21
    def state_share(topic, state):
        return float(np.mean([sum(float(e["percentage"]) for e in r["delivery_by_region"] if e["region"] == state)
                              for r in current if truth[r["id"]]["topic"] == topic]))
    assert state_share("snow", "Vermont") > 5 * 0.0019  # Vermont is 0.19% of the population
    assert state_share("surf", "Hawaii") > 3 * 0.0044  # Hawaii is 0.44%; California shares the boost
