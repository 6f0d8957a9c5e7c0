"""alpha.demo.ads: the embedded demo's synthetic Ad Library dumps — deterministic, in the real layouts of
README's ingestion section, with every quirk present and the planted audience signal visible; the survey
lean planted from it (alpha.demo.lean)."""
from __future__ import annotations

import ast
import csv
import io
import itertools
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from alpha.demo.ads import REPEAT_BODY_SHARE, write_demo_ads
from alpha.demo.lean import planted_lean
from alpha.demo.surveys import LEAN_GROUPS

ROOT = Path(__file__).resolve().parents[2]
CENSUS = ROOT / "config" / "census"
FILES = ["ads_current.jsonl", "ads_legacy.jsonl", "ads_page.json", "ads_export.csv", "ads_export_demos.csv",
         "ads_export_regions.csv", "ads_single.json", "ads_wide.csv", "ads_library_report.csv", "media_verbalisation.jsonl",
         "truth.parquet"]
TERRITORIES = {"Guam", "Northern Mariana Islands", "US Virgin Islands", "Eastern District", "Western District"}
TOKEN_URL = re.compile(r"render_ad/\?id=(\d{15,16})&access_token=[A-Za-z0-9]{30,}$")
STATES_51 = 51


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = write_demo_ads(out, seed=1234, census_dir=CENSUS)
    return out, summary


def read_jsonl(path: Path):
    good, bad, blank = [], [], 0
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        if not line.strip():
            blank += 1
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad.append(line)
            continue
        (good if isinstance(obj, dict) else bad).append(obj if isinstance(obj, dict) else line)
    return good, bad, blank


@pytest.fixture(scope="module")
def parsed(demo):
    """Every dump read generically, as records with current field names (legacy/CSV mapped)."""
    out, _ = demo
    current, bad_current, blank_current = read_jsonl(out / "ads_current.jsonl")
    legacy, bad_legacy, blank_legacy = read_jsonl(out / "ads_legacy.jsonl")
    page = json.loads((out / "ads_page.json").read_text(encoding="utf-8"))
    with open(out / "ads_export.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    demos, regions = defaultdict(list), defaultdict(list)
    with open(out / "ads_export_demos.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            demos[r["ad_id"]].append({"percentage": r["percentage"], "age": r["age"], "gender": r["gender"]})
    with open(out / "ads_export_regions.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            regions[r["ad_id"]].append({"percentage": r["percentage"], "region": r["region"]})
    export = []
    for r in rows:
        real = TOKEN_URL.search(r["ad_snapshot_url"]).group(1)
        export.append({
            "id": real, "shown_id": r["id"], "page_name": r["page_name"], "currency": r["currency"],
            "ad_creative_bodies": json.loads(r["ad_creative_bodies"]) if r["ad_creative_bodies"] else None,
            "impressions": {k: v for k, v in (("lower_bound", r["impressions.lower_bound"]),
                                              ("upper_bound", r["impressions.upper_bound"])) if v},
            "demographic_distribution": demos.get(real, []), "delivery_by_region": regions.get(real, []),
            "ad_snapshot_url": r["ad_snapshot_url"],
        })
    legacy_as_current = [
        {**r, "ad_creative_bodies": [r["ad_creative_body"]] if "ad_creative_body" in r else None,
         "delivery_by_region": r.get("region_distribution")}
        for r in legacy
    ]
    truth = pq.read_table(out / "truth.parquet").to_pandas()
    return {
        "out": out, "current": current, "bad_current": bad_current, "blank_current": blank_current,
        "legacy": legacy, "legacy_as_current": legacy_as_current, "bad_legacy": bad_legacy, "blank_legacy": blank_legacy,
        "page": page, "page_data": page["data"], "export_rows": rows, "export": export, "truth": truth,
    }


def dumps_of(parsed):
    return {"current": parsed["current"], "legacy": parsed["legacy_as_current"], "page": parsed["page_data"], "export": parsed["export"]}


# ------------------------------------------------------------------------ determinism, counts


def test_deterministic_bytes(demo, tmp_path):
    out, summary = demo
    again, other = tmp_path / "again", tmp_path / "other"
    assert write_demo_ads(again, seed=1234, census_dir=CENSUS) == summary
    write_demo_ads(other, seed=1235, census_dir=CENSUS)
    for name in FILES:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    for name in FILES:
        assert (out / name).read_bytes() != (other / name).read_bytes(), name


def test_counts_and_heavy_tail(parsed, demo):
    _, summary = demo
    truth = parsed["truth"]
    assert len(truth) == 3000 and truth.ad_id.is_unique and summary["unique_ads"] == 3000
    assert truth.ad_id.str.fullmatch(r"[1-9]\d{14,15}").all()
    assert truth.page_id.str.fullmatch(r"[1-9]\d{8,14}").all()
    sizes = truth.page_id.value_counts()
    assert len(sizes) == 150 and sizes.max() >= 300 and (sizes <= 5).sum() >= 30
    assert truth.page_id.nunique() == truth.page_name.nunique()  # one name per page
    assert (truth.groupby("page_id").topic.nunique() == 1).all()  # a page has one topic
    assert truth.topic.nunique() >= 10
    share = truth.primary_dump.value_counts(normalize=True)
    assert 0.45 < share["ads_current.jsonl"] < 0.65 and 0.12 < share["ads_legacy.jsonl"] < 0.28
    assert 0.02 < share["ads_page.json"] < 0.09 and 0.13 < share["ads_export.csv"] < 0.27
    assert summary["ads_page.json"]["records"] == len(parsed["page_data"])
    assert summary["ads_export.csv"]["rows"] == len(parsed["export_rows"])


def test_layouts_and_field_names(parsed):
    current, legacy = parsed["current"], parsed["legacy"]
    assert len(parsed["bad_current"]) >= 5 and parsed["blank_current"] >= 1 and parsed["bad_legacy"]
    assert any(isinstance(b, str) and not b.lstrip().startswith(("{", "[")) for b in parsed["bad_current"])  # stray text
    for r in current + parsed["page_data"]:
        assert not {"ad_creative_body", "region_distribution", "potential_reach", "funding_entity"} & set(r)
        assert isinstance(r["spend"]["lower_bound"], str) and isinstance(r["impressions"]["lower_bound"], str)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", r.get("ad_delivery_start_time", "2021-01-01"))
    assert all("estimated_audience_size" in r and "bylines" in r for r in current)
    assert any("ad_delivery_stop_time" not in r for r in current)  # still running
    for r in legacy:
        assert not {"ad_creative_bodies", "delivery_by_region", "estimated_audience_size", "bylines"} & set(r)
        assert "potential_reach" in r and "funding_entity" in r
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", r.get("ad_creation_time", "2019-10-30T22:24:19+0000"))
        assert isinstance(r.get("ad_creative_body", ""), str)
    assert sum("region_distribution" in r for r in legacy) > 0.95 * len(legacy)
    page = parsed["page"]
    assert set(page) == {"data", "paging"} and set(page["paging"]) == {"cursors", "next"}
    assert page["paging"]["next"].startswith("https://graph.facebook.com/") and "access_token=" in page["paging"]["next"]
    rows = parsed["export_rows"]
    assert list(rows[0]) == ["id", "page_id", "page_name", "bylines", "ad_creation_time", "ad_delivery_start_time",
                             "ad_delivery_stop_time", "ad_creative_bodies", "ad_creative_link_titles", "currency",
                             "spend.lower_bound", "spend.upper_bound", "impressions.lower_bound", "impressions.upper_bound",
                             "estimated_audience_size.lower_bound", "estimated_audience_size.upper_bound", "languages",
                             "publisher_platforms", "ad_snapshot_url", "collector_batch", "page_url"]
    for r in rows:
        assert r["ad_creative_bodies"] == "" or isinstance(json.loads(r["ad_creative_bodies"]), list)
        for col in ("languages", "publisher_platforms"):
            assert r[col].startswith("['") and isinstance(ast.literal_eval(r[col]), list)
        assert r["ad_creative_link_titles"] == "" or isinstance(ast.literal_eval(r["ad_creative_link_titles"]), list)
    media = [json.loads(x) for x in (parsed["out"] / "media_verbalisation.jsonl").read_text(encoding="utf-8").splitlines()]
    assert 0.15 < len(media) / 3000 < 0.25 and all(set(m) == {"ad_id", "verbalisation"} for m in media)
    assert all(re.match(r"(Image|Video|Carousel): ", m["verbalisation"]) for m in media)


def test_access_token_in_every_snapshot_url(demo):
    out, _ = demo
    for name in ("ads_current.jsonl", "ads_legacy.jsonl", "ads_page.json", "ads_export.csv"):
        text = (out / name).read_text(encoding="utf-8")
        urls = re.findall(r"https://www\.facebook\.com/ads/archive/render_ad/\?[^\"\s,]*", text)
        assert len(urls) > 50, name
        assert all(TOKEN_URL.search(u) for u in urls), name  # truncated lines are cut before their URL


def test_csv_mangled_ids_recoverable(parsed):
    truth = parsed["truth"].set_index("ad_id")
    mangled = [r for r in parsed["export"] if r["shown_id"] != r["id"]]
    assert 0.05 < len(mangled) / len(parsed["export"]) < 0.16
    for r in mangled:
        assert re.fullmatch(r"\d\.\d{5}E\+1[45]", r["shown_id"])
        assert float(r["shown_id"]) == pytest.approx(int(r["id"]), rel=1e-5)  # same number, spreadsheet rounding
        assert truth.loc[r["id"], "mangled_id"]
        assert r["demographic_distribution"]  # side tables are keyed by the real id
    assert all(r["shown_id"].isdigit() for r in parsed["export"] if r["shown_id"] == r["id"])


def test_percentages_are_strings_summing_to_one(parsed):
    for name, records in dumps_of(parsed).items():
        for r in records:
            for key in ("demographic_distribution", "delivery_by_region"):
                entries = r.get(key) or []
                if not entries:
                    continue
                assert all(isinstance(e["percentage"], str) for e in entries)
                assert sum(float(e["percentage"]) for e in entries) == pytest.approx(1.0, abs=2e-3), (name, r["id"], key)


# ------------------------------------------------------------------------ quirks


def test_every_quirk_present(parsed):
    def bodies(r):
        return r.get("ad_creative_bodies")

    for name, records in dumps_of(parsed).items():
        recs = [r for r in records if r.get("delivery_by_region") is not None]
        regions = Counter(e["region"] for r in recs for e in r["delivery_by_region"])
        pcts = [e["percentage"] for r in records for e in (r.get("demographic_distribution") or []) + (r.get("delivery_by_region") or [])]
        demo_cells = [e for r in records for e in r.get("demographic_distribution") or []]
        assert any(re.fullmatch(r"\d\.\dE-\d", p) for p in pcts), name  # "2.6E-5"
        assert regions["Washington, District of Columbia"] and regions["Unknown"] and regions["Puerto Rico"], name
        assert TERRITORIES & set(regions), name
        assert any(sum(1 for e in r["delivery_by_region"] if e["region"] in regions and e["region"] != "Unknown") < 45
                   for r in recs), name  # states below the reporting threshold are absent
        assert any(e["age"] == "13-17" for e in demo_cells) and any(e["gender"] == "unknown" for e in demo_cells), name
        assert any(r["impressions"].get("lower_bound") == "1000000" and "upper_bound" not in r["impressions"] for r in records), name
        assert any(bodies(r) is not None and len(" ".join(bodies(r)).split()) in (1, 2, 3) for r in records), name
        assert any(not any(b.strip() for b in (bodies(r) or [])) for r in records), name  # empty bodies
        assert any(re.search(r"https?://|www\.", " ".join(bodies(r) or [])) for r in records), name
        assert {r["currency"] for r in records} - {"USD", "AUD"}, name  # EUR / GBP / CAD
        if name != "legacy":  # the old API gave one body per ad
            assert any(len(bodies(r) or []) > 1 for r in records), name
        if name != "page":
            assert any(not r.get("page_name") for r in records), name
    current = parsed["current"]
    # every shape of empty body and unnamed page
    assert any("ad_creative_bodies" not in r for r in current) and any(r.get("ad_creative_bodies") == [] for r in current)
    assert any(r.get("ad_creative_bodies") == [""] for r in current)
    assert any("page_name" not in r for r in current) and any(r.get("page_name") == "" for r in current)
    assert any(len(set(r["ad_creative_bodies"])) < len(r["ad_creative_bodies"]) for r in current if r.get("ad_creative_bodies"))
    # Puerto Rico split into municipios in 2019 legacy ads; Australian regions ("no denominator")
    legacy = parsed["legacy"]
    muni = [r for r in legacy if any(e["region"] in ("San Juan", "Bayamón") for e in r.get("region_distribution") or [])]
    assert len(muni) >= 3 and all(r["ad_delivery_start_time"].startswith("2019-") for r in muni)
    assert not any(e["region"] == "Puerto Rico" for r in muni for e in r["region_distribution"])  # split, not both
    aus = [r for r in current if any(e["region"] == "New South Wales" for e in r.get("delivery_by_region") or [])]
    assert aus and all(r["currency"] == "AUD" for r in aus)


def test_duplicates_within_and_across_dumps(parsed):
    truth = parsed["truth"]
    ids = {name: Counter(r["id"] for r in records) for name, records in dumps_of(parsed).items()}
    for name in ("current", "legacy", "export"):
        assert ids[name].most_common(1)[0][1] >= 2, name
    assert len(set(ids["current"]) & set(ids["export"])) >= 20
    assert set(ids["current"]) & set(ids["page"]) and set(ids["current"]) & set(ids["legacy"])
    # exact duplicates: a repeated record is identical apart from the collector's token
    by_id = defaultdict(list)
    for r in parsed["current"]:
        by_id[r["id"]].append(json.dumps(r, sort_keys=True))
    assert any(len(v) > 1 and len(set(v)) == 1 for v in by_id.values())
    multi = truth[truth.dumps.map(len) > 1]
    assert len(multi) >= 20 and truth.is_duplicate.sum() >= len(multi)


def test_truth_flags_match_files(parsed):
    truth = parsed["truth"].set_index("ad_id")
    everything = {}
    for records in dumps_of(parsed).values():
        for r in records:
            everything.setdefault(r["id"], r)
    bad_ids = set(truth.index[truth.malformed_only])
    assert len(bad_ids) >= 3 and not bad_ids & set(everything)  # only a truncated line holds them
    assert set(truth.index) - bad_ids == set(everything)
    for flag in ("is_duplicate", "empty_body", "unnamed_page", "short_body", "multi_frame", "has_url", "non_usd",
                 "missing_impr_upper", "malformed_line", "mangled_id", "municipios", "territories", "foreign"):
        assert truth[flag].sum() >= 3, flag
    for ad_id, row in truth[truth.short_body & ~truth.malformed_only].iterrows():
        assert 1 <= len(" ".join(everything[ad_id]["ad_creative_bodies"]).split()) <= 3
    for ad_id, row in truth[truth.has_url & ~truth.malformed_only].iterrows():
        assert re.search(r"https?://|www\.", " ".join(everything[ad_id]["ad_creative_bodies"]))
    for ad_id, row in truth[truth.missing_impr_upper & ~truth.malformed_only].iterrows():
        assert "upper_bound" not in everything[ad_id]["impressions"]
    assert (truth[truth.unnamed_page].groupby("page_id").size() >= 8).all()


# ------------------------------------------------------------------------ planted signal


def _share(records, truth, topic, key, pred):
    vals = [sum(float(e["percentage"]) for e in r.get(key) or [] if pred(e))
            for r in records if r["id"] in truth.index and truth.loc[r["id"], "topic"] == topic and r.get(key)]
    return float(np.mean(vals))


def test_planted_audience_signal(parsed):
    truth = parsed["truth"].drop_duplicates("ad_id").set_index("ad_id")
    unshifted = truth[truth.audience_shift == "none"]
    records = [r for r in parsed["current"] + parsed["legacy_as_current"] if r["id"] in unshifted.index]
    demo_key, region_key = "demographic_distribution", "delivery_by_region"
    assert _share(records, unshifted, "hunting", demo_key, lambda e: e["gender"] == "male") > 0.7
    assert _share(records, unshifted, "beauty", demo_key, lambda e: e["gender"] == "female") > 0.7
    assert _share(records, unshifted, "retirement", demo_key, lambda e: e["age"] == "65+") > 0.4  # census: 0.216
    assert _share(records, unshifted, "college", demo_key, lambda e: e["age"] == "18-24") > 0.35  # census: 0.121
    assert _share(records, unshifted, "snow", region_key, lambda e: e["region"] == "Vermont") > 6 * 0.0019
    assert _share(records, unshifted, "surf", region_key, lambda e: e["region"] == "Hawaii") > 6 * 0.0044
    assert _share(records, unshifted, "farm", region_key, lambda e: e["region"] == "Iowa") > 5 * 0.0095
    # per-capita, the planted top state is (nearly always) among the three highest-indexed states
    pop = {}
    with open(CENSUS / "census2020_state_population.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            pop[r["meta_region_name"]] = float(r["population_2020"])
    total = sum(pop.values())
    hits = []
    for r in parsed["current"]:
        if r["id"] not in truth.index or not r.get(region_key) or truth.loc[r["id"], "foreign"]:
            continue
        index = {e["region"]: float(e["percentage"]) / (pop[e["region"]] / total) for e in r[region_key] if e["region"] in pop}
        top3 = sorted(index, key=index.get, reverse=True)[:3]
        hits.append(truth.loc[r["id"], "top_states"][0] in top3)
    assert np.mean(hits) > 0.9


def test_shifted_variants_change_the_target(parsed):
    truth = parsed["truth"].set_index("ad_id")
    by_id = {r["id"]: r for r in parsed["current"] + parsed["legacy_as_current"] if r.get("demographic_distribution")}
    gender_ok, age_ok = [], []
    for ad_id, row in truth[truth.audience_shift.isin(["gender", "age"])].iterrows():
        if ad_id not in by_id or row.foreign:
            continue
        cells = by_id[ad_id]["demographic_distribution"]
        if row.audience_shift == "gender":
            male = sum(float(e["percentage"]) for e in cells if e["gender"] == "male")
            female = sum(float(e["percentage"]) for e in cells if e["gender"] == "female")
            gender_ok.append((male > female) == (row.top_gender == "male"))
        else:
            per_age = Counter()
            for e in cells:
                per_age[e["age"]] += float(e["percentage"])
            age_ok.append(per_age[row.top_age] >= sorted(per_age.values())[-2])
    assert len(gender_ok) >= 20 and np.mean(gender_ok) > 0.9
    assert len(age_ok) >= 20 and np.mean(age_ok) > 0.8
    shifted_families = truth[truth.audience_shift != "none"].family_id.unique()
    assert len(shifted_families) >= 50


def test_paraphrase_families(parsed):
    truth = parsed["truth"]
    bodies = {}
    for r in parsed["current"] + parsed["legacy_as_current"] + parsed["page_data"]:
        if r.get("ad_creative_bodies") and r["ad_creative_bodies"][0].strip():
            bodies.setdefault(r["id"], r["ad_creative_bodies"][0])
    # one ad per creative: reruns repeat their family's creatives (test_reruns_*)
    clean = truth[~truth.short_body & ~truth.empty_body & truth.ad_id.isin(bodies) & truth.rerun_of.isna()]
    sizes = truth.groupby("family_id").size()
    assert sizes.between(1, 8).all() and (sizes >= 2).mean() > 0.9
    words = [len(bodies[a].split()) for a in clean.ad_id]
    assert 10 <= np.percentile(words, 5) and np.percentile(words, 95) <= 80

    def tokens(text):
        return re.findall(r"[a-z0-9']+", text.lower())

    def word_diff(a, b):
        ca, cb = Counter(tokens(a)), Counter(tokens(b))
        return sum(((ca - cb) + (cb - ca)).values())

    def jaccard(a, b):
        sa, sb = set(tokens(a)), set(tokens(b))
        return len(sa & sb) / len(sa | sb)

    within, diffs, across = [], [], []
    for _, fam in itertools.islice(clean.groupby("family_id"), 250):
        texts = [bodies[a] for a in fam.ad_id]
        for a, b in itertools.combinations(texts, 2):
            assert a != b  # rewrites, not copies
            within.append(jaccard(a, b))
            diffs.append(word_diff(a, b))
    for _, page in itertools.islice(clean.groupby("page_id"), 80):
        heads = page.drop_duplicates("family_id").ad_id.tolist()[:6]
        across += [jaccard(bodies[a], bodies[b]) for a, b in itertools.combinations(heads, 2)]
    assert np.median(within) > 0.55 and np.median(within) > np.median(across) + 0.2
    assert 0.15 < np.mean(np.array(diffs) > 15) < 0.85  # some pairs differ by more than 15 words, some by fewer


# ------------------------------------------------------------------------ reruns: one creative, other delivery

BODY_QUIRKS = ["empty_body", "short_body", "has_url", "multi_frame"]  # these give a rerun a body of its own


def first_records(parsed):
    """Each ad's first intact record, in current field names."""
    records = {}
    for recs in dumps_of(parsed).values():
        for r in recs:
            records.setdefault(r["id"], r)
    return records


def rerun_pairs(parsed):
    """(rerun, the ad that first ran its creative) truth rows, both with intact records."""
    truth = parsed["truth"].set_index("ad_id", drop=False)
    records = first_records(parsed)
    reruns = truth[truth.rerun_of.notna()]
    return [(row, truth.loc[row.rerun_of]) for row in reruns.itertuples() if row.ad_id in records and row.rerun_of in records]


def test_reruns_share_and_scope(parsed):
    truth = parsed["truth"].set_index("ad_id", drop=False)
    reruns = truth[truth.rerun_of.notna()]
    assert len(reruns) / len(truth) == pytest.approx(REPEAT_BODY_SHARE, abs=0.005)
    first = truth.loc[reruns.rerun_of]
    assert first.rerun_of.isna().all()  # every rerun points at the first run of its creative
    assert (first.page_id.values == reruns.page_id.values).all()  # the same advertiser, so the same topic and lean
    assert (first.family_id.values == reruns.family_id.values).all()
    assert (first.delivery_start.values <= reruns.delivery_start.values).all()
    # one creative, one planted audience: reruns and what they rerun are unshifted variants
    assert (reruns.audience_shift == "none").all() and (first.audience_shift == "none").all()
    assert (first.top_age.values == reruns.top_age.values).all()


def test_reruns_repeat_bodies_within_a_page(parsed):
    truth = parsed["truth"].set_index("ad_id")
    records = first_records(parsed)
    pairs = rerun_pairs(parsed)
    plain = [(r, f) for r, f in pairs if not any(getattr(r, q) or f[q] for q in BODY_QUIRKS)]
    assert len(plain) > 0.4 * len(pairs) > 300
    for rerun, first in plain:
        assert records[rerun.ad_id]["ad_creative_bodies"] == records[first.ad_id]["ad_creative_bodies"]
    # a body repeats only within its page (short bodies such as "Shop now!" aside)
    pages_of = defaultdict(set)
    for ad_id, r in records.items():
        if r.get("ad_creative_bodies") and not truth.loc[ad_id, "short_body"] and not truth.loc[ad_id, "empty_body"]:
            pages_of[r["ad_creative_bodies"][0]].add(truth.loc[ad_id, "page_id"])
    assert max(map(len, pages_of.values())) == 1
    distinct = len({r["ad_creative_bodies"][0] for r in records.values() if r.get("ad_creative_bodies")})
    with_body = sum(1 for r in records.values() if r.get("ad_creative_bodies"))
    assert distinct / with_body < 1 - 0.5 * REPEAT_BODY_SHARE


def test_reruns_differ_in_delivery(parsed):
    records = first_records(parsed)
    pairs = rerun_pairs(parsed)
    assert pairs
    delivery = ("demographic_distribution", "delivery_by_region")
    for rerun, first in pairs:
        a, b = records[rerun.ad_id], records[first.ad_id]
        assert a["id"] != b["id"] and a["ad_snapshot_url"] != b["ad_snapshot_url"]
        assert any(a.get(k) and a.get(k) != b.get(k) for k in delivery), rerun.ad_id
    other_day = [rerun.delivery_start != first.delivery_start for rerun, first in pairs]
    assert np.mean(other_day) > 0.8


def test_reruns_survive_deduplication(demo, parsed, tmp_path):
    """Ingestion drops a record as a duplicate by ad id or by content (page, body, start, delivery): a
    rerun has its own id and delivery, so it stays; the planted exact duplicates still go."""
    from alpha.ads import ingest

    out, _ = demo
    parts = []
    for name, spec in (("current", {"path": out / "ads_current.jsonl"}), ("legacy", {"path": out / "ads_legacy.jsonl"}),
                       ("page", {"path": out / "ads_page.json"}),
                       ("export", {"path": out / "ads_export.csv", "demographics": out / "ads_export_demos.csv",
                                   "regions": out / "ads_export_regions.csv"})):
        report, _ = _ingest(tmp_path, name, **spec)
        parts.append((tmp_path / f"{name}.parquet", tmp_path / f"{name}.q.parquet", report))
    merged = ingest.merge_dumps(parts, tmp_path / "ads.parquet", tmp_path / "quarantine.parquet", tmp_path / "duplicates.parquet")
    duplicates = pq.read_table(tmp_path / "duplicates.parquet").to_pandas()
    assert (duplicates.key == "ad_id").all() and merged["totals"]["duplicates"] > 0
    kept = set(pq.read_table(tmp_path / "ads.parquet", columns=["ad_id"]).column("ad_id").to_pylist())
    truth = parsed["truth"]
    reruns = truth[truth.rerun_of.notna() & ~truth.unnamed_page & ~truth.malformed_only]
    assert len(reruns) > 500 and reruns.ad_id.isin(kept).mean() > 0.95  # the rest quarantined, as any ad may be


def test_reruns_are_deterministic_and_move_no_other_draw(tmp_path):
    def write(name, share):
        out = tmp_path / name
        summary = write_demo_ads(out, seed=99, n_ads=600, n_pages=30, census_dir=CENSUS, repeat_body_share=share)
        return out, summary

    (a, sa), (b, sb), (none, s0) = write("a", 0.25), write("b", 0.25), write("none", 0.0)
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert sa == sb and sa["reruns"] == 150 and s0["reruns"] == 0
    truth = pq.read_table(a / "truth.parquet").to_pandas()
    assert truth.rerun_of.notna().sum() == 150 and pq.read_table(none / "truth.parquet").column("rerun_of").null_count == 600
    # the reruns' own random stream: every other ad's records, every id, date and distribution stay as they were
    grouped = set(truth.rerun_of.dropna()) | set(truth[truth.rerun_of.notna()].ad_id)
    for name in ("ads_library_report.csv", "media_verbalisation.jsonl"):
        assert (a / name).read_bytes() == (none / name).read_bytes(), name
    with_reruns, without = (read_jsonl(d / "ads_current.jsonl") for d in (a, none))
    assert [r["id"] for r in with_reruns[0]] == [r["id"] for r in without[0]]
    assert len(with_reruns[1]) == len(without[1])  # the same malformed lines (a rerun's cut short at the same draw)
    texts = ("ad_creative_bodies", "ad_creative_link_titles")
    for x, y in zip(with_reruns[0], without[0]):
        if x["id"] in grouped:
            assert {k: v for k, v in x.items() if k not in texts} == {k: v for k, v in y.items() if k not in texts}
        else:
            assert x == y


def test_rerun_share_is_checked(tmp_path):
    for share in (-0.1, 1.0):
        with pytest.raises(ValueError, match="repeat_body_share"):
            write_demo_ads(tmp_path, seed=1, n_ads=50, n_pages=5, census_dir=CENSUS, repeat_body_share=share)
    # more than the unshifted later variants can give: all of them rerun
    summary = write_demo_ads(tmp_path / "most", seed=1, n_ads=400, n_pages=20, census_dir=CENSUS, repeat_body_share=0.95)
    truth = pq.read_table(tmp_path / "most" / "truth.parquet").to_pandas()
    assert summary["reruns"] == ((truth.variant > 0) & (truth.audience_shift == "none")).sum() < 0.95 * 400


def test_money_and_dates(parsed):
    truth = parsed["truth"]
    current = parsed["current"]
    spend_buckets = {(r["spend"]["lower_bound"], r["spend"].get("upper_bound")) for r in current}
    assert {("0", "99"), ("100", "499"), ("1000", "4999")} <= spend_buckets
    lo_spend = np.array([int(r["spend"]["lower_bound"]) for r in current])
    lo_impr = np.array([int(r["impressions"]["lower_bound"]) for r in current])
    assert np.corrcoef(np.log1p(lo_spend), np.log1p(lo_impr))[0, 1] > 0.7
    starts = truth.delivery_start.astype(str)
    assert starts.min() >= "2019-10-01" and starts.max() <= "2024-06-30"
    us = truth[~truth.municipios]
    assert us.delivery_start.astype(str).min() >= "2021-01-01"
    assert 0.15 < (starts > "2023-06-30").mean() < 0.5


# ------------------------------------------------------------------------ collector quirks, read back


def test_export_dates_and_rounded_page_ids(parsed):
    rows, truth = parsed["export_rows"], parsed["truth"].set_index("ad_id")
    starts = [r["ad_delivery_start_time"] for r in rows if r["ad_delivery_start_time"]]
    assert any(re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", d) and not re.fullmatch(r"\d{4}-\d\d-\d\d", d) for d in starts)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", d) for d in starts)
    rounded = [r for r in rows if "E+" in r["page_id"]]
    real = {r["id"]: r for r in parsed["export"]}
    assert len(rounded) >= 6
    for r in rounded:
        ad_id = TOKEN_URL.search(r["ad_snapshot_url"]).group(1)
        assert truth.loc[ad_id, "mangled_page_id"] and real[ad_id]
        if r["page_url"]:
            number = re.search(r"facebook\.com/(\d+)/", r["page_url"]).group(1)
            assert number == truth.loc[ad_id, "page_id"] and float(r["page_id"]) == pytest.approx(int(number), rel=1e-5)
        else:
            assert truth.loc[ad_id, "mangled_page_lost"]
    assert truth.mangled_page_lost.sum() == 3 and not truth[truth.mangled_page_lost].is_duplicate.any()


def _ingest(tmp_path, name, **spec):
    from alpha.ads import ingest
    from alpha.ads.cleaning import CleaningOptions

    out = tmp_path / name
    report = ingest.ingest_dump(ingest.DumpSpec(name, spec.pop("path"), **spec), out.with_suffix(".parquet"),
                                out.with_suffix(".q.parquet"), CleaningOptions())
    return report, pq.read_table(out.with_suffix(".parquet")).to_pandas()


def test_single_object_and_wide_dumps_read_back(demo, parsed, tmp_path):
    out, summary = demo
    truth = parsed["truth"].set_index("ad_id")
    single = json.loads((out / "ads_single.json").read_text(encoding="utf-8"))
    assert "id" not in single and set(single["_id"]) == {"$oid"} and "access_token=" in single["ad_snapshot_url"]
    report, kept = _ingest(tmp_path, "single", path=out / "ads_single.json")
    assert report["single_object"] and report["id_sources"] == {"snapshot_url": 1}
    assert truth.loc[kept.ad_id[0], "in_single"]

    raw = (out / "ads_wide.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and b"%" in raw
    header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert "Texas" in header and any(h.startswith("region: ") for h in header) and "female 25-34" in header
    report, kept = _ingest(tmp_path, "wide", path=out / "ads_wide.csv")
    assert report["unmapped_columns"] == [] and len(kept) == summary["ads_wide.csv"]["rows"] == truth.in_wide.sum()
    originals = {r["id"]: r for r in parsed["export"]}
    for row in kept.itertuples():
        assert truth.loc[row.ad_id, "in_wide"]
        want = {e["region"]: float(e["percentage"]) for e in originals[row.ad_id]["delivery_by_region"] if float(e["percentage"])}
        assert dict(zip(row.region_name, row.region_share)) == pytest.approx(want, rel=1e-9)
        cells = {(e["gender"], e["age"]): float(e["percentage"]) for e in originals[row.ad_id]["demographic_distribution"]}
        assert dict(zip(zip(row.demo_gender, row.demo_age), row.demo_share)) == pytest.approx(
            {k: v for k, v in cells.items() if v}, rel=1e-9)


def test_library_report_is_refused(demo, tmp_path):
    from alpha.ads import ingest

    out, _ = demo
    with pytest.raises(ingest.IngestError, match="Ad Library Report download .advertiser spend totals"):
        _ingest(tmp_path, "report", path=out / "ads_library_report.csv")


def test_planted_lean_covers_the_demo_survey_groups_and_follows_the_ad_topics():
    lean = planted_lean()
    assert set(lean) == set(LEAN_GROUPS) and lean == planted_lean()
    assert max(abs(v) for v in lean.values()) == pytest.approx(0.8) and all(-1 <= v <= 1 for v in lean.values())
    # the demo topics target ages far more than genders: same-age groups lean alike, the old and the young apart
    assert abs(lean["Male 65+"] - lean["Female 65+"]) < 0.1
    assert abs(lean["Male 65+"] - lean["Male 18-29"]) > 1.0
