"""Census normalisation on a toy census with hand-computed expectations (see each test's comment).

Toy census (``toy``), with Puerto Rico:
    Florida 400, District of Columbia 100 (Meta: "Washington, District of Columbia"), Utah 100,
    Puerto Rico 400  → total 1000, so population shares 0.4 / 0.1 / 0.1 / 0.4.
    Without Puerto Rico the total is 600.
    Sex × age: every adult cell 100 except female 18-24 = 300 → adults 1400 (female 800, male 600).
"""
import hashlib
import math
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alpha.ads import census as C

ROOT = Path(__file__).resolve().parents[2]
CENSUS_DIR = ROOT / "config" / "census"
AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
ADS_SCHEMA = pa.schema(
    [
        ("ad_id", pa.string()),
        ("page_id", pa.string()),
        ("page_name", pa.string()),
        ("body", pa.string()),
        ("currency", pa.string()),
        ("spend_lower", pa.int64()),
        ("spend_upper", pa.int64()),
        ("impressions_lower", pa.int64()),
        ("impressions_upper", pa.int64()),
        ("demo_age", pa.list_(pa.string())),
        ("demo_gender", pa.list_(pa.string())),
        ("demo_share", pa.list_(pa.float64())),
        ("region_name", pa.list_(pa.string())),
        ("region_share", pa.list_(pa.float64())),
        ("snapshot_url", pa.string()),
    ]
)


def write_toy_census(d: Path) -> tuple[Path, Path, Path]:
    state = d / "state.csv"
    state.write_text(
        "state,meta_region_name,population_2020\n"
        "Florida,Florida,400\n"
        'District of Columbia,"Washington, District of Columbia",100\n'
        "Utah,Utah,100\n"
        "Puerto Rico,Puerto Rico,400\n",
        encoding="utf-8",
    )
    sex_age = d / "sex_age.csv"
    lines = ["sex,age,population_2020"]
    for sex in ("male", "female"):
        for age in AGES:
            lines.append(f"{sex},{age},{300 if (sex, age) == ('female', '18-24') else 100}")
    sex_age.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return state, sex_age, CENSUS_DIR / "pr_municipios.csv"


@pytest.fixture
def toy(tmp_path):
    return C.load_census(*write_toy_census(tmp_path))


@pytest.fixture
def toy_no_pr(tmp_path):
    return C.load_census(*write_toy_census(tmp_path), include_puerto_rico=False)


def ad(ad_id="1", regions=(("Florida", 1.0),), demo=(("18-24", "female", 1.0),), currency="USD",
       spend=(100, 199), impressions=(1000, 1999)):
    return {
        "ad_id": ad_id,
        "page_id": "p1",
        "page_name": "Page",
        "body": "An ad body",
        "currency": currency,
        "spend_lower": spend[0],
        "spend_upper": spend[1],
        "impressions_lower": impressions[0],
        "impressions_upper": impressions[1],
        "demo_age": [a for a, _, _ in demo],
        "demo_gender": [g for _, g, _ in demo],
        "demo_share": [s for _, _, s in demo],
        "region_name": [r for r, _ in regions],
        "region_share": [s for _, s in regions],
        "snapshot_url": "https://www.facebook.com/ads/archive/render_ad/?id=" + ad_id,
    }


def normalise(tmp_path, census, rows, batch_rows=1000, name="seg", **kw):
    src = tmp_path / f"{name}_ads.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ADS_SCHEMA), src)
    out = tmp_path / f"{name}.parquet"
    report = C.normalise_ads(src, out, census, batch_rows=batch_rows, **kw)
    return report, pq.read_table(out).to_pylist(), out


def one(tmp_path, census, row):
    return normalise(tmp_path, census, [row])[1][0]


# ------------------------------------------------------------------ census tables


def test_real_census_loads():
    census = C.load_census(CENSUS_DIR / "census2020_state_population.csv", CENSUS_DIR / "census2020_sex_age.csv",
                           CENSUS_DIR / "pr_municipios.csv")
    assert len(census.states) == 52 and "Puerto Rico" in census.states
    assert sum(census.state_population) - 3285874 == 331449281  # 50 states + DC, as published
    assert sum(census.cell_population) == 258343281  # adults
    assert census.map_region("Washington, District of Columbia") == "District of Columbia"
    assert census.map_region("Washington") == "Washington"
    no_pr = C.load_census(CENSUS_DIR / "census2020_state_population.csv", CENSUS_DIR / "census2020_sex_age.csv",
                          CENSUS_DIR / "pr_municipios.csv", include_puerto_rico=False)
    assert len(no_pr.states) == 51 and no_pr.map_region("San Juan") is None and no_pr.map_region("Puerto Rico") is None


def test_municipio_list_is_complete_and_accented():
    names = (CENSUS_DIR / "pr_municipios.csv").read_text(encoding="utf-8").splitlines()
    assert names[0] == "municipio"
    assert len(names[1:]) == 78 == len(set(names[1:]))
    for spelled in ("Bayamón", "Mayagüez", "Añasco", "Loíza", "Río Grande", "San Germán", "Juana Díaz", "Florida"):
        assert spelled in names


def test_census_errors_name_the_file(tmp_path):
    state, sex_age, pr = write_toy_census(tmp_path)
    with pytest.raises(C.CensusError, match="not found"):
        C.load_census(tmp_path / "nope.csv", sex_age, pr)
    bad = tmp_path / "bad.csv"
    bad.write_text("sex,age,population_2020\nmale,13-17,5\n", encoding="utf-8")
    with pytest.raises(C.CensusError, match="13-17"):
        C.load_census(state, bad, pr)
    dup = tmp_path / "dup.csv"
    dup.write_text(state.read_text() + "Utah,Utah,5\n", encoding="utf-8")
    with pytest.raises(C.CensusError, match="duplicate state 'Utah'"):
        C.load_census(dup, sex_age, pr)


def test_treatment_is_in_the_module_docstring():
    flat = lambda s: re.sub(r"\s+", " ", s)  # noqa: E731
    doc = flat(C.__doc__)
    for key, text in C.TREATMENT.items():
        assert flat(text) in doc, key
        assert flat(text) in flat(C.TREATMENT_MD)


# ------------------------------------------------------------------ states


def test_state_index_by_hand_unmapped_and_absent(tmp_path, toy):
    # Florida 0.4, DC (Meta's name) 0.2, Unknown 0.2, Guam 0.2. Mapped delivery 0.6 → Florida 2/3, DC 1/3.
    # Index = delivery share / population share: Florida (2/3)/0.4 = 5/3; DC (1/3)/0.1 = 10/3.
    # Utah and Puerto Rico are absent: no index, not ranked. Unmapped: 0.2 + 0.2 = 0.4.
    row = one(tmp_path, toy, ad(regions=[("Florida", 0.4), ("Washington, District of Columbia", 0.2),
                                         ("Unknown", 0.2), ("Guam", 0.2)]))
    assert row["census_status"] == "ok"
    assert row["state_ranked"] == ["District of Columbia", "Florida"]
    assert row["state_index_ranked"] == pytest.approx([10 / 3, 5 / 3])
    assert row["region_unmapped_share"] == pytest.approx(0.4)
    assert row["region_unmapped"] == ["Guam", "Unknown"]


def test_tie_broken_by_name(tmp_path, toy):
    # Utah 0.1, DC 0.1, Florida 0.8 (all mapped, total 1.0). Utah and DC have 100 people each (share 0.1):
    # index 0.1/0.1 = 1.0 each, a tie broken by name ("District of Columbia" < "Utah") even though Utah
    # comes first in the input. Florida 0.8/0.4 = 2.0 ranks first.
    row = one(tmp_path, toy, ad(regions=[("Utah", 0.1), ("Florida", 0.8), ("Washington, District of Columbia", 0.1)]))
    assert row["state_ranked"] == ["Florida", "District of Columbia", "Utah"]
    assert row["state_index_ranked"] == pytest.approx([2.0, 1.0, 1.0])
    assert row["state_index_ranked"][1] == row["state_index_ranked"][2]


def test_puerto_rico_municipios_summed_accents_and_case(tmp_path, toy, toy_no_pr):
    # San Juan 0.2 + "bayamon" 0.1 + "MAYAGÜEZ" 0.1 = Puerto Rico 0.4; Florida 0.6 (the state).
    # With PR: Florida 0.6/0.4 = 1.5, Puerto Rico 0.4/0.4 = 1.0.
    regions = [("Florida", 0.6), ("San Juan", 0.2), ("bayamon", 0.1), ("MAYAGÜEZ", 0.1)]
    row = one(tmp_path, toy, ad(regions=regions))
    assert row["state_ranked"] == ["Florida", "Puerto Rico"]
    assert row["state_index_ranked"] == pytest.approx([1.5, 1.0])
    assert row["region_unmapped_share"] == 0.0 and row["region_unmapped"] == []
    # Without PR (600 people): Florida 1.0 of mapped delivery / (400/600) = 1.5; municipios unmapped (0.4).
    row = normalise(tmp_path, toy_no_pr, [ad(regions=regions)], name="nopr")[1][0]
    assert row["state_ranked"] == ["Florida"] and row["state_index_ranked"] == pytest.approx([1.5])
    assert row["region_unmapped_share"] == pytest.approx(0.4)
    assert row["region_unmapped"] == ["MAYAGÜEZ", "San Juan", "bayamon"]


def test_accented_and_plain_spellings_are_the_same_municipio(toy):
    for name in ("Bayamón", "Bayamon", "bayamón", " BAYAMON "):
        assert toy.map_region(name) == "Puerto Rico"
    assert toy.map_region("Puerto Rico") == "Puerto Rico"


def test_florida_is_always_the_state(tmp_path, toy):
    # Florida is also a PR municipio; it must count as the state: index 1.0/0.4 = 2.5, Puerto Rico absent.
    row = one(tmp_path, toy, ad(regions=[("Florida", 1.0)]))
    assert toy.map_region("Florida") == "Florida" and toy.map_region("florida") == "Florida"
    assert row["state_ranked"] == ["Florida"] and row["state_index_ranked"] == pytest.approx([2.5])


def test_foreign_only_ad_has_no_denominator(tmp_path, toy):
    row = one(tmp_path, toy, ad(regions=[("New South Wales", 0.7), ("Victoria", 0.3)], currency="AUD"))
    assert row["census_status"] == "no_denominator"
    for col in ("state_ranked", "state_index_ranked", "age_gender_ranked", "gender_ranked", "age_ranked"):
        assert row[col] == []
    assert row["region_unmapped_share"] == pytest.approx(1.0)
    assert row["region_unmapped"] == ["New South Wales", "Victoria"]
    assert row["impressions_per_dollar"] is None and row["spend_mid"] == 149.5


# ------------------------------------------------------------------ age × gender


def test_age_gender_by_hand(tmp_path, toy):
    # female 18-24 0.3, male 18-24 0.3, female 65+ 0.2; 13-17 (female) 0.1; unknown gender 25-34 0.1.
    # Adult male/female total 0.8 → shares 0.375, 0.375, 0.25. Population shares (of 1400): 300, 100, 100.
    # female 18-24: 0.375 / (300/1400) = 1.75; male 18-24: 0.375 * 14 = 5.25; female 65+: 0.25 * 14 = 3.5.
    # gender: female 0.625 / (800/1400) = 1.09375; male 0.375 / (600/1400) = 0.875.
    # age: 18-24 0.75 / (400/1400) = 2.625; 65+ 0.25 / (200/1400) = 1.75; other ages not reported.
    demo = [("18-24", "female", 0.3), ("18-24", "male", 0.3), ("65+", "female", 0.2),
            ("13-17", "female", 0.1), ("25-34", "unknown", 0.1)]
    row = one(tmp_path, toy, ad(demo=demo))
    assert row["census_status"] == "ok"
    assert row["age_gender_ranked"] == ["male 18-24", "female 65+", "female 18-24"]
    assert row["age_gender_index_ranked"] == pytest.approx([5.25, 3.5, 1.75])
    assert row["gender_ranked"] == ["female", "male"]
    assert row["gender_index_ranked"] == pytest.approx([1.09375, 0.875])
    assert row["age_ranked"] == ["18-24", "65+"]
    assert row["age_index_ranked"] == pytest.approx([2.625, 1.75])
    assert row["share_13_17"] == pytest.approx(0.1)
    assert row["share_gender_unknown"] == pytest.approx(0.1)
    assert row["share_demo_other"] == 0.0


def test_minors_only_and_missing_demographics(tmp_path, toy):
    rows = normalise(tmp_path, toy, [
        ad("a", demo=[("13-17", "male", 0.6), ("18-24", "unknown", 0.4)]),
        ad("b", demo=[]),
    ])[1]
    assert rows[0]["census_status"] == "no_adult_demographics"
    assert rows[0]["age_gender_ranked"] == [] and rows[0]["state_ranked"] == ["Florida"]
    assert rows[0]["share_13_17"] == pytest.approx(0.6) and rows[0]["share_gender_unknown"] == pytest.approx(0.4)
    assert rows[1]["census_status"] == "no_demographics" and rows[1]["share_13_17"] is None
    assert rows[1]["state_ranked"] == ["Florida"]


def test_malformed_lists_are_flagged_not_crashing(tmp_path, toy):
    bad = ad("bad")
    bad["region_share"] = [0.5, 0.5]  # two shares for one region
    rows = normalise(tmp_path, toy, [bad, ad("good")])[1]
    assert [r["census_status"] for r in rows] == ["malformed", "ok"]
    assert rows[0]["state_ranked"] == [] and rows[0]["region_unmapped_share"] is None


# ------------------------------------------------------------------ ROI


def test_roi_midpoints(tmp_path, toy):
    rows = normalise(tmp_path, toy, [
        ad("both", spend=(100, 199), impressions=(1000, 1999)),  # 1499.5 / 149.5
        ad("open", spend=(100, 199), impressions=(1_000_000, None)),  # top bucket: lower bound 1e6 / 149.5
        ad("eur", currency="EUR"),  # spend in EUR → no impressions per dollar
        ad("free", spend=(0, 0)),  # spend midpoint 0 → null
        ad("nospendcap", spend=(1_000_000, None)),  # lower bound on spend would overstate ROI → null
    ])[1]
    by = {r["ad_id"]: r for r in rows}
    assert by["both"]["spend_mid"] == 149.5 and by["both"]["impressions_mid"] == 1499.5
    assert by["both"]["impressions_per_dollar"] == pytest.approx(1499.5 / 149.5)
    assert by["open"]["impressions_mid"] == 1_000_000.0
    assert by["open"]["impressions_per_dollar"] == pytest.approx(1_000_000 / 149.5)
    assert by["eur"]["impressions_per_dollar"] is None and by["eur"]["spend_mid"] == 149.5
    assert by["free"]["impressions_per_dollar"] is None and by["free"]["spend_mid"] == 0.0
    assert by["nospendcap"]["impressions_per_dollar"] is None and by["nospendcap"]["spend_mid"] == 1_000_000.0


# ------------------------------------------------------------------ streaming, determinism, report


def many_ads(n=23):
    regions = [("Florida", 0.5), ("Utah", 0.2), ("Guam", 0.1), ("San Juan", 0.1), ("Unknown", 0.1)]
    rows = []
    for i in range(n):
        rot = regions[i % 5:] + regions[: i % 5]
        shares = [(name, share * (1 + (i % 3))) for name, share in rot[: 2 + i % 4]]
        demo = [("18-24", "female", 0.2 + 0.01 * i), ("35-44", "male", 0.3), ("13-17", "unknown", 0.05)]
        row = ad(str(1000 + i), regions=shares, demo=demo if i % 7 else [])
        if i % 11 == 0:
            row = ad(str(1000 + i), regions=[("Victoria", 1.0)], currency="AUD")
        rows.append(row)
    return rows


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_streaming_equals_one_batch_byte_for_byte(tmp_path, toy):
    rows = many_ads()
    rep1, out1, p1 = normalise(tmp_path, toy, rows, batch_rows=1000, name="one", row_group_rows=8)
    rep3, out3, p3 = normalise(tmp_path, toy, rows, batch_rows=3, name="three", row_group_rows=8)
    assert out1 == out3 and rep1 == rep3
    assert sha(p1) == sha(p3)
    assert pq.ParquetFile(p3).metadata.num_row_groups == math.ceil(len(rows) / 8)
    assert pq.read_schema(p1) == C.SEGMENTS_SCHEMA
    assert [r["ad_id"] for r in out1] == [r["ad_id"] for r in rows]


def test_deterministic_rerun(tmp_path, toy):
    rows = many_ads()
    _, _, p1 = normalise(tmp_path, toy, rows, name="a")
    _, _, p2 = normalise(tmp_path, toy, rows, name="b")
    assert sha(p1) == sha(p2)


def test_report_counts(tmp_path, toy):
    rows = many_ads()
    report, out, _ = normalise(tmp_path, toy, rows, batch_rows=4)
    assert report["ads_in"] == report["ads_out"] == len(rows)
    statuses = [r["census_status"] for r in out]
    assert report["census_status"] == {s: statuses.count(s) for s in C.STATUSES}
    assert report["census_status"]["no_denominator"] == 3  # i = 0, 11, 22
    assert report["ads_with_unmapped_regions"] == sum(1 for r in out if (r["region_unmapped_share"] or 0) > 0)
    counts = {}
    for r in out:
        for name in r["region_unmapped"]:
            counts[name] = counts.get(name, 0) + 1
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(d["region"], d["ads"]) for d in report["top_unmapped_regions"]] == expected
    assert "Victoria" in counts and "San Juan" not in counts  # municipios count into Puerto Rico


def test_empty_table_and_missing_columns(tmp_path, toy):
    report, out, path = normalise(tmp_path, toy, [])
    assert out == [] and report["ads_in"] == 0 and pq.read_schema(path) == C.SEGMENTS_SCHEMA
    src = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"ad_id": ["1"]}), src)
    with pytest.raises(ValueError, match="missing column"):
        C.normalise_ads(src, tmp_path / "x.parquet", toy)


# ------------------------------------------------------------------ the figure's view of one ad


def test_delivery_views_match_segments(tmp_path, toy):
    row_in = ad(regions=[("Florida", 0.4), ("Washington, District of Columbia", 0.2), ("San Juan", 0.1), ("Unknown", 0.3)],
                demo=[("18-24", "female", 0.3), ("18-24", "male", 0.3), ("65+", "female", 0.2), ("13-17", "female", 0.2)])
    seg = one(tmp_path, toy, row_in)
    state_raw, state_index, ag_raw, ag_index = C.delivery_views(row_in, toy)
    # raw: as Meta reported (not renormalised), reported states only, largest first
    assert state_raw.to_dict() == pytest.approx({"Florida": 0.4, "District of Columbia": 0.2, "Puerto Rico": 0.1})
    assert list(state_raw.index) == ["Florida", "District of Columbia", "Puerto Rico"]
    assert list(state_index.index) == seg["state_ranked"]
    assert state_index.tolist() == seg["state_index_ranked"]
    assert "Utah" not in state_index.index  # absent: no index
    assert ag_raw.to_dict() == pytest.approx({"female 18-24": 0.3, "female 65+": 0.2, "male 18-24": 0.3})
    assert list(ag_index.index) == seg["age_gender_ranked"] and ag_index.tolist() == seg["age_gender_index_ranked"]


def census_peak(tmp_path, census, rows, name, batch_rows=50, row_group_rows=100):
    """Peak of numpy / Python (tracemalloc) plus Arrow (a proxy pool's high-water mark) while normalising."""
    import tracemalloc

    src = tmp_path / f"{name}_ads.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ADS_SCHEMA), src, row_group_size=64)
    pool, previous = pa.proxy_memory_pool(pa.default_memory_pool()), pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        report = C.normalise_ads(src, tmp_path / f"{name}.parquet", census, batch_rows=batch_rows, row_group_rows=row_group_rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous)
    assert report["ads_out"] == len(rows)
    return peak + pool.max_memory()


def test_memory_is_bounded_by_batch_and_row_group_not_by_ads(tmp_path, toy):
    """5x the ads under the same batch_rows and row_group_rows: the same peak (within 1.5x). Reading or
    buffering the whole table (batch_rows or row groups as large as the input) fails this."""
    rows = many_ads(2000)
    small = census_peak(tmp_path, toy, rows[:400], "small")
    large = census_peak(tmp_path, toy, rows, "large")
    assert large < 1.5 * small, (small, large)
