"""Ad Library dumps as real collectors write them: hand-written rows for every layout and quirk that
API documents never mention (dates, single-object files, rounded ids, wide CSVs, Report downloads,
encodings and framing)."""
import datetime as dt
import gzip
import json

import pyarrow.parquet as pq
import pytest

from alpha.ads import cleaning as ads
from alpha.ads import csv_layouts, ingest
from alpha.ads.cleaning import CleaningOptions, Reject

URL = "https://www.facebook.com/ads/archive/render_ad/?id={id}&access_token=SECRETTOKEN"
REGIONS = json.dumps([{"percentage": "0.7", "region": "Ohio"}, {"percentage": "0.3", "region": "Texas"}])


def run(tmp_path, spec, **kwargs):
    out, quar = tmp_path / f"{spec.name}.parquet", tmp_path / f"{spec.name}.q.parquet"
    kwargs.setdefault("min_kept_share", 0.0)
    report = ingest.ingest_dump(spec, out, quar, CleaningOptions(), batch_rows=4, **kwargs)
    return report, pq.read_table(out).to_pylist(), pq.read_table(quar).to_pylist()


def ad(i, **fields):
    rec = {"id": str(10**15 + i), "page_id": "4242", "page_name": "Page", "ad_delivery_start_time": "2023-01-02",
           "ad_creative_bodies": ["Four plain words here"], "delivery_by_region": json.loads(REGIONS),
           "ad_snapshot_url": URL.format(id=10**15 + i)}
    rec.update(fields)
    return {k: v for k, v in rec.items() if v is not None}


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize("text, day", [
    ("2023-5-13", dt.date(2023, 5, 13)), ("2022-9-27", dt.date(2022, 9, 27)), ("2023-05-13", dt.date(2023, 5, 13)),
    ("2023-05-13T14:02:11", dt.date(2023, 5, 13)), ("2023-05-13 14:02", dt.date(2023, 5, 13)),
    ("2023-5-3 9:05", dt.date(2023, 5, 3)), ("2023-05-13T23:30:00-07:00", dt.date(2023, 5, 13)),
    ("2023-05-13T23:30:00Z", dt.date(2023, 5, 13)), ("2019-10-30T22:24:19+0000", dt.date(2019, 10, 30)),
    ("2023-05-13 14:02:11.250+00:00", dt.date(2023, 5, 13)), (" 2024-2-29 ", dt.date(2024, 2, 29)),
])
def test_dates_real_exports_write(text, day):
    assert ads.parse_date(text) == day


@pytest.mark.parametrize("text", ["2023-02-29", "2023-13-01", "2023-5-32", "2023-05-13 24:00", "2023-05-13T10:61",
                                  "5/13/2023", "13.05.2023", "2023/05/13", "20230513", "May 13, 2023", "2023-05-13T", ""])
def test_dates_that_are_not_dates(text):
    assert ads.parse_date(text) is None


def test_bad_date_is_quarantined_with_the_raw_value(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        ad(1, ad_delivery_start_time="2023-5-13"), ad(2, ad_delivery_start_time="13/05/2023"), ad(3, ad_delivery_start_time=None)]))
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("d", path))
    assert [r["delivery_start"] for r in kept] == [dt.date(2023, 5, 13)]
    by_reason = {q["reason"]: q["detail"] for q in quarantined}
    assert "13/05/2023" in by_reason["bad_date"] and "missing_dates" in by_reason


def test_unparsed_optional_dates_are_counted_not_lost_silently(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ad(1, ad_delivery_stop_time="until further notice", ad_creation_time="2023-1-1")))
    report, kept, _ = run(tmp_path, ingest.DumpSpec("d", path))
    assert kept[0]["delivery_stop"] is None and kept[0]["created"] == dt.date(2023, 1, 1)
    assert report["unparsed_dates"] == {"ad_delivery_stop_time": 1}


# ------------------------------------------------------------------ one ad per JSON file, document ids


def test_single_object_json_with_document_id(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({**ad(1, id=None, ad_snapshot_url=None), "_id": {"$oid": "64b7f0a1c2d3e4f5a6b7c8d9"}}))
    report, kept, _ = run(tmp_path, ingest.DumpSpec("one", path))
    assert report["single_object"] is True and report["in"] == 1
    assert kept[0]["ad_id"] == "64b7f0a1c2d3e4f5a6b7c8d9" and report["id_sources"] == {"_id": 1}


def test_document_id_only_when_no_ad_library_id(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({**ad(7, id=None), "_id": {"$oid": "64b7f0a1c2d3e4f5a6b7c8d9"}}))
    report, kept, _ = run(tmp_path, ingest.DumpSpec("one", path))
    assert kept[0]["ad_id"] == str(10**15 + 7) and report["id_sources"] == {"snapshot_url": 1}
    path.write_text(json.dumps({**ad(8), "_id": "abc"}))
    report, kept, _ = run(tmp_path, ingest.DumpSpec("one", path))
    assert kept[0]["ad_id"] == str(10**15 + 8) and report["id_sources"] == {"id": 1}


def test_page_stays_a_page_and_unknown_objects_stop(tmp_path):
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"data": [ad(1), ad(2)], "paging": {"next": "https://x?access_token=T"}}))
    report, kept, _ = run(tmp_path, ingest.DumpSpec("page", page))
    assert len(kept) == 2 and "single_object" not in report
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ingest.IngestError, match="one ad object"):
        run(tmp_path, ingest.DumpSpec("odd", odd))


def test_json_lines_named_json_are_read_as_json_lines(tmp_path):
    path = tmp_path / "lines.json"
    path.write_text(json.dumps(ad(1)) + "\n" + json.dumps(ad(2)) + "\n")
    report, kept, _ = run(tmp_path, ingest.DumpSpec("lines", path))
    assert report["format_detected"] == "jsonl" and len(kept) == 2


# ------------------------------------------------------------------ rounded page ids


CSV_HEAD = "id,page_id,page_name,ad_delivery_start_time,ad_creative_bodies,delivery_by_region,page_url,ad_snapshot_url\n"


def csv_row(i, page_id, page_url="", date="2023-01-02"):
    bodies = json.dumps(["Four plain words here"]).replace('"', '""')
    regions = REGIONS.replace('"', '""')
    return f'{10**15 + i},{page_id},Page,{date},"{bodies}","{regions}",{page_url},{URL.format(id=10**15 + i)}\n'


def test_mangled_page_ids_repaired_or_quarantined(tmp_path):
    path = tmp_path / "pages.csv"
    path.write_text(CSV_HEAD + "".join([
        csv_row(1, "1.29585E+14", "https://www.facebook.com/129585123456789/"),
        csv_row(2, "1.29585E+14", "https://www.facebook.com/profile.php?id=129585987654321"),
        csv_row(3, "1.29585E+14", ""),
        csv_row(4, "1.29585E+14", "https://www.facebook.com/BrandVanityName"),
        csv_row(5, "1.29585E+14", "https://www.facebook.com/555555555555555/"),  # another page: not a repair
        csv_row(6, "129585123456789.0", ""),
        csv_row(7, "9007199254740993.0", ""),  # beyond 2**53: the float lost digits
    ]))
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("pages", path))
    assert {r["ad_id"][-1]: r["page_id"] for r in kept} == {"1": "129585123456789", "2": "129585987654321", "6": "129585123456789"}
    assert {q["ad_id"][-1]: q["reason"] for q in quarantined} == {k: "mangled_page_id" for k in "3457"}
    assert report["quarantined_by_reason"] == {"mangled_page_id": 4}
    assert report["page_id_sources"] == {"page_id": 1, "page_url": 2}
    assert not any("E+" in r["page_id"] for r in kept)


def test_first_usable_page_id_column_wins(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("id,page_id,page_id_text,page_name,ad_delivery_start_time,ad_creative_bodies,delivery_by_region\n"
                    f'77,1.29585E+14,129585123456789,P,2022-02-02,Four words right here,"{REGIONS.replace(chr(34), 2 * chr(34))}"\n')
    report, kept, _ = run(tmp_path, ingest.DumpSpec("two", path, columns={"page_id_text": "page_id"}))
    assert kept[0]["page_id"] == "129585123456789"


@pytest.mark.parametrize("raw, expected", [
    ("123", ("123", "ok")), (123, ("123", "ok")), (" 123.000 ", ("123", "ok")), ("1.23457E+15", (None, "mangled")),
    (1.2e14, (None, "mangled")), ("nan", (None, "missing")), ("", (None, "missing")), (None, (None, "missing")),
    ("brand", ("brand", "other")), (True, (None, "other")),
])
def test_id_text(raw, expected):
    assert ads.id_text(raw) == expected


def test_resolve_page_id_refuses_what_is_not_certain():
    with pytest.raises(Reject) as err:
        ads.resolve_page_id("1.3E+14", "https://www.facebook.com/129585123456789")
    assert err.value.reason == "mangled_page_id" and "does not match" in err.value.detail
    with pytest.raises(Reject) as err:
        ads.resolve_page_id("NULL", None)
    assert err.value.reason == "missing_page"


# ------------------------------------------------------------------ wide CSV layouts


def test_wide_us_states_and_demographic_cells(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(
        'id,page_id,page_name,ad_delivery_start_time,ad_creative_bodies,Ohio,Texas,"Washington, District of Columbia",Unknown,'
        "female 18-24,male 18-24,25-34_female\n"
        "1,9,P,2023-1-2,Four plain words here,50,30,,20,40%,35%,25%\n"
        "2,9,P,2023-01-02,Four plain words here,0.6,0.4,0,,0.5,0.5,\n"
        "3,9,P,2023-01-02,Four plain words here,,,,,,,\n")
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("wide", path))
    assert report["unmapped_columns"] == []
    assert report["wide_columns"] == {"regions": 4, "demographic_cells": 3, "ages": 0, "genders": 0}
    first, second = kept
    assert first["region_name"] == ["Ohio", "Texas", "Unknown"] and first["region_share"] == pytest.approx([0.5, 0.3, 0.2])
    assert list(zip(first["demo_gender"], first["demo_age"])) == [("female", "18-24"), ("male", "18-24"), ("female", "25-34")]
    assert first["demo_share"] == pytest.approx([0.4, 0.35, 0.25])
    assert second["region_name"] == ["Ohio", "Texas"] and second["region_share"] == pytest.approx([0.6, 0.4])
    assert [q["reason"] for q in quarantined] == ["missing_location"]
    assert report["wide_regions"] == 2 and report["wide_demographics"] == 2


def test_wide_marginals_non_us_regions_and_list_columns(tmp_path):
    path = tmp_path / "ca.csv"
    regions = json.dumps([{"percentage": "1", "region": "Manitoba"}]).replace('"', '""')
    path.write_text(
        "id,page_id,page_name,ad_delivery_start_time,ad_creative_bodies,delivery_by_region,Ontario,region:Quebec,"
        "age:18-24,age:65+,gender:female,gender:male\n"
        '1,9,P,2023-01-02,Four plain words here,,80,20,0.25,0.75,0.6,0.4\n'
        f'2,9,P,2023-01-02,Four plain words here,"{regions}",10,90,,,,\n')
    report, kept, _ = run(tmp_path, ingest.DumpSpec("ca", path, wide_regions=("Ontario",)))
    first, second = kept
    assert first["region_name"] == ["Ontario", "Quebec"] and first["region_share"] == pytest.approx([0.8, 0.2])
    cells = dict(zip(zip(first["demo_age"], first["demo_gender"]), first["demo_share"]))
    assert cells == pytest.approx({("18-24", "female"): 0.15, ("18-24", "male"): 0.1, ("65+", "female"): 0.45, ("65+", "male"): 0.3})
    assert second["region_name"] == ["Manitoba"]  # the list column wins where a row has one
    assert report["wide_demographics_from_marginals"] == 1


def test_wide_columns_need_the_layout_and_long_keeps_them_out(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("id,page_id,page_name,ad_delivery_start_time,ad_creative_bodies,Ohio\n1,9,P,2023-01-02,Four plain words here,1\n")
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("w", path, layout="long"))
    assert report["unmapped_columns"] == ["Ohio"] and not kept and quarantined[0]["reason"] == "missing_location"
    plain = tmp_path / "plain.csv"
    plain.write_text(CSV_HEAD + csv_row(1, "9"))
    with pytest.raises(ingest.IngestError, match="layout wide"):
        run(tmp_path, ingest.DumpSpec("plain", plain, layout="wide"))


def test_wide_bad_cells_are_quarantined(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,page_id,page_name,ad_delivery_start_time,ad_creative_bodies,Ohio,Texas\n"
                    "1,9,P,2023-01-02,Four plain words here,lots,0.5\n2,9,P,2023-01-02,Four plain words here,0.5,0.5\n")
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("bad", path))
    assert len(kept) == 1 and quarantined[0]["reason"] in ("bad_number", "bad_distribution")


def test_percent_notation_and_rounding(tmp_path):
    assert ads.parse_share("45%", "f") == pytest.approx(0.45) and ads.parse_share(" 2.5 %", "f") == pytest.approx(0.025)
    for bad in (True, "45%%", "%", "150%"):
        with pytest.raises(Reject):
            ads.parse_share(bad, "f")
    wide = csv_layouts.wide_columns(["Ohio", "Iowa"])
    regions, _, _ = csv_layouts.wide_values(wide, ["0.500001", "0.500002"])  # fractions rounded past 1
    assert [float(r["percentage"]) for r in regions] == pytest.approx([0.500001, 0.500002])
    regions, _, _ = csv_layouts.wide_values(wide, ["60", "40"])
    assert [float(r["percentage"]) for r in regions] == pytest.approx([0.6, 0.4])


def test_wide_column_classification():
    header = ["id", "region:Bavaria", "Texas", "demographic_distribution.female.25-34", "65+ men", "Age: 18-24", "Women", "unknown"]
    wide = csv_layouts.wide_columns(header, skip=[0])
    assert wide.regions == {1: "Bavaria", 2: "Texas", 7: "Unknown"}
    assert wide.cells == {3: ("25-34", "female"), 4: ("65+", "male")}
    assert wide.ages == {5: "18-24"} and wide.genders == {6: "female"}


# ------------------------------------------------------------------ Ad Library Report downloads, low yield


@pytest.mark.parametrize("header, kind", [
    ("Page ID,Page name,Disclaimer,Amount spent (USD),Number of ads in Library\n", "advertiser spend totals"),
    ("\ufeffLocation name,Amount spent (USD)\n", "location spend totals"),
])
def test_report_csv_stops_with_what_it_is(tmp_path, header, kind):
    path = tmp_path / "FacebookAdLibraryReport_2023-08-01_US_lifelong.csv"
    path.write_text(header + "123,Some Page,Paid for by X,\"1,234\",5\n", encoding="utf-8")
    with pytest.raises(ingest.IngestError) as err:
        run(tmp_path, ingest.DumpSpec("report", path))
    assert kind in str(err.value) and "not an ad dump" in str(err.value) and "Remove it from ads.dumps" in str(err.value)


def test_low_yield_dump_fails_with_the_counts(tmp_path):
    path = tmp_path / "low.jsonl"
    path.write_text("\n".join(json.dumps(ad(i, ad_creative_bodies=["too short"] if i else None)) for i in range(150)))
    with pytest.raises(ingest.IngestError) as err:
        run(tmp_path, ingest.DumpSpec("low", path), min_kept_share=0.01)
    assert "kept 0 of 150" in str(err.value) and "'too_short': 149" in str(err.value)
    path.write_text("\n".join(json.dumps(ad(i, ad_creative_bodies=None if i else ["four plain words here"])) for i in range(150)))
    with pytest.raises(ingest.IngestError, match=r"kept 1 of 150 records \(0.7%"):
        run(tmp_path, ingest.DumpSpec("low", path), min_kept_share=0.01)
    report, kept, _ = run(tmp_path, ingest.DumpSpec("low", path), min_kept_share=0.005)
    assert len(kept) == 1 and report["quarantined_by_reason"] == {"empty_body": 149}


# ------------------------------------------------------------------ encodings and framing


def test_csv_with_bom_crlf_and_a_second_download_appended(tmp_path):
    path = tmp_path / "concat.csv"
    text = CSV_HEAD + csv_row(1, "9") + "\ufeff" + CSV_HEAD + csv_row(2, "9") + "\n"
    path.write_bytes(("\ufeff" + text).replace("\n", "\r\n").encode("utf-8"))
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("concat", path))
    assert [r["ad_id"][-1] for r in kept] == ["1", "2"] and not quarantined
    assert report["repeated_headers"] == 1 and report["in"] == 2


def test_gzip_whatever_the_suffix_and_a_cut_stream(tmp_path):
    lines = "".join(json.dumps(ad(i)) + "\n" for i in range(200)).encode()
    packed = gzip.compress(lines)
    (tmp_path / "a.jsonl.gz").write_bytes(packed)
    (tmp_path / "b.jsonl").write_bytes(packed)  # compressed, named as plain text
    for name in ("a.jsonl.gz", "b.jsonl"):
        report, kept, _ = run(tmp_path, ingest.DumpSpec(name.split(".")[0], tmp_path / name))
        assert len(kept) == 200 and "truncated_input" not in report
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) * 2 // 3])
    for vectorised in (True, False):
        report, kept, quarantined = run(tmp_path, ingest.DumpSpec("cut", tmp_path / "cut.jsonl.gz"), vectorised=vectorised)
        assert report["truncated_input"] is True and 50 < len(kept) < 200
        assert report["in"] == len(kept) + len(quarantined) and len(quarantined) <= 1


def test_csv_gzip_cut_mid_row(tmp_path):
    text = CSV_HEAD + "".join(csv_row(i, "9") for i in range(300))
    packed = gzip.compress(text.encode())
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("cut", tmp_path / "cut.csv.gz"))
    assert report["truncated_input"] is True and report["in"] == len(kept) + len(quarantined)
    assert {q["reason"] for q in quarantined} <= {"malformed_row", "missing_location", "bad_distribution", "empty_body"}


def test_utf16_tab_separated_and_semicolon_exports(tmp_path):
    rows = [["id", "page_id", "page_name", "ad_delivery_start_time", "ad_creative_bodies", "Ohio"],
            ["1", "9", "Café Ünïcode", "2023-1-2", "Quatre mots en français", "1"]]
    (tmp_path / "u16.csv").write_bytes("\r\n".join("\t".join(r) for r in rows).encode("utf-16"))
    (tmp_path / "semi.csv").write_text("\n".join(";".join(r) for r in rows), encoding="utf-8")
    for name in ("u16", "semi"):
        _, kept, _ = run(tmp_path, ingest.DumpSpec(name, tmp_path / f"{name}.csv"))
        assert kept[0]["page_name"] == "Café Ünïcode" and kept[0]["region_name"] == ["Ohio"], name


def test_undecodable_bytes_and_cut_rows_are_quarantined_per_row(tmp_path):
    path = tmp_path / "mixed.csv"
    good = csv_row(1, "9").encode()
    latin = csv_row(2, "9").replace("Page", "Caf\u00e9").encode("latin-1")
    short = b"3,9,Page\n"
    path.write_bytes(CSV_HEAD.encode() + good + latin + short + csv_row(4, "9").encode()[:60])  # cut inside a quoted cell
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("mixed", path))
    assert [r["ad_id"][-1] for r in kept] == ["1"]
    assert [q["reason"] for q in quarantined] == ["bad_encoding", "malformed_row", "malformed_row"]
    assert report["in"] == 4 and all("SECRETTOKEN" not in (q["raw"] or "") for q in quarantined)
    latin_ok = tmp_path / "latin.csv"
    latin_ok.write_bytes(CSV_HEAD.encode() + latin)
    _, kept, _ = run(tmp_path, ingest.DumpSpec("latin", latin_ok, encoding="cp1252"))
    assert kept[0]["page_name"] == "Café"


def test_trailing_partial_json_line(tmp_path):
    path = tmp_path / "partial.jsonl"
    path.write_text(json.dumps(ad(1)) + "\n" + json.dumps(ad(2))[:50])
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("partial", path))
    assert len(kept) == 1 and [q["reason"] for q in quarantined] == ["malformed_json"]


# ------------------------------------------------------------------ found by fuzzing (tests/fuzz, make fuzz)


def both_paths(tmp_path, path):
    """The per-record and the vectorised JSON Lines path: they must give the same rows and quarantine."""
    (ref, ref_kept, ref_q), (fast, fast_kept, fast_q) = (
        run(tmp_path, ingest.DumpSpec(f"{path.stem}_{vec}", path), vectorised=vec) for vec in (False, True))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "source_file"} for r in rows]  # noqa: E731
    reasons = lambda rows: [(q["source_record"], q["ad_id"], q["reason"]) for q in rows]  # noqa: E731
    assert strip(fast_kept) == strip(ref_kept) and reasons(fast_q) == reasons(ref_q)
    assert {k: v for k, v in fast.items() if k != "dump"} == {k: v for k, v in ref.items() if k != "dump"}
    return ref, ref_kept, ref_q


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("bodies", [5, 1.5, True, {"a": "b c d e"}])
def test_bodies_that_are_not_text_are_quarantined(tmp_path, bodies):
    path = write_jsonl(tmp_path / "b.jsonl", [ad(1), ad(2, ad_creative_bodies=bodies)])
    report, kept, quarantined = both_paths(tmp_path, path)  # crashed: 'int' object is not iterable
    assert len(kept) == 1 and [(q["reason"], q["ad_id"]) for q in quarantined] == [("empty_body", str(10**15 + 2))]


def test_range_bounds_beyond_64_bits_are_bad_numbers(tmp_path):
    bounds = ["99999999999999999999", "9223372036854775808", "-9223372036854775809", "1e19", "1e400", "inf", 2**63]
    records = [ad(i, spend={"lower_bound": b, "upper_bound": "10"}) for i, b in enumerate(bounds)]
    records.append(ad(99, spend={"lower_bound": "9223372036854775807", "upper_bound": "00000000000000000000012"}))
    path = write_jsonl(tmp_path / "n.jsonl", records)
    report, kept, quarantined = both_paths(tmp_path, path)  # crashed: OverflowError writing Parquet / parsing inf
    assert report["quarantined_by_reason"] == {"bad_number": len(bounds)}
    assert (kept[0]["spend_lower"], kept[0]["spend_upper"]) == (2**63 - 1, 12)
    with pytest.raises(Reject, match="64-bit"):
        ads.parse_int("1e19", "spend")


def test_nan_and_huge_shares_are_bad_numbers(tmp_path):
    regions = [{"percentage": "0.5", "region": "Ohio"}, {"percentage": "nan", "region": "Texas"}]
    path = write_jsonl(tmp_path / "s.jsonl", [ad(1, delivery_by_region=regions), ad(2)])
    _, kept, quarantined = both_paths(tmp_path, path)  # a NaN after the first share was kept (min/max skip NaN)
    assert len(kept) == 1 and [q["reason"] for q in quarantined] == ["bad_number"]
    with pytest.raises(Reject):
        ads._distribution([{"percentage": 10**400, "region": "Ohio"}], ("region",), "delivery_by_region")  # OverflowError


def test_literal_cells_that_python_cannot_build_stay_text(tmp_path):
    assert ads.parse_list_cell("{[1]: 2}") == ["{[1]: 2}"]  # ast.literal_eval raised TypeError (unhashable)
    assert ads.parse_list_cell("{1, [2]}") == ["{1, [2]}"]
    assert ads.parse_list_cell('["\\ud83d alone", "x"]') == ['["\\ud83d alone", "x"]']  # a lone surrogate: no text
    assert ads.parse_list_cell('["\\ud83d\\ude00 pair"]') == ["\U0001f600 pair"]
    path = tmp_path / "lit.csv"
    path.write_text(CSV_HEAD + '1,9,Page,2023-01-02,"{1, [2]}","{[1]: 2}",,\n'
                    + f'2,9,Page,2023-01-02,"[""\\ud83d four words here""]","{REGIONS.replace(chr(34), 2 * chr(34))}",,\n')
    _, kept, quarantined = run(tmp_path, ingest.DumpSpec("lit", path))  # crashed: TypeError, then a UTF-8 error
    assert [q["reason"] for q in quarantined] == ["too_short"] and kept[0]["body"] == '["\\ud83d four words here"]'


def test_access_tokens_in_free_text_and_encoded_urls_are_removed(tmp_path):
    shim = "https://l.facebook.com/l.php?u=https%3A%2F%2Fx.example.com%2F%3Faccess_token%3DSECRETTOKEN"
    records = [
        ad(1, ad_creative_bodies=["Pay now access_token=SECRETTOKEN today please", "see example.com/p?ACCESS_TOKEN=SECRETTOKEN&b=2 now"],
           page_name="Page access_token=SECRETTOKEN", bylines="Funder (access_token=SECRETTOKEN)",
           ad_creative_link_titles=["Title access_token=SECRETTOKEN"]),
        ad(2, page_id="https://www.facebook.com/brand?access_token=SECRETTOKEN"),
        ad(3, ad_creative_bodies=[f"short {shim}"]),
        ad(4, page_id="access_token=SECRETTOKEN"),
    ]
    path = write_jsonl(tmp_path / "t.jsonl", records)
    _, kept, quarantined = both_paths(tmp_path, path)
    assert "SECRETTOKEN" not in json.dumps([kept, quarantined], default=str)
    first = kept[0]
    assert first["body"] == "Pay now today please\nsee example.com/p&b=2 now" and first["page_name"] == "Page"
    assert first["bylines"] == "Funder (" and first["link_title"] == "Title"
    assert kept[1]["page_id"] == "https://www.facebook.com/brand"
    assert {q["ad_id"][-1]: q["reason"] for q in quarantined} == {"3": "too_short", "4": "missing_page"}
    assert ads.redact(shim) == "https://l.facebook.com/l.php?u=https%3A%2F%2Fx.example.com%2F%3F"


def test_a_boolean_page_id_is_no_page_id(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [ad(1, page_id=True), ad(2)])
    _, kept, quarantined = both_paths(tmp_path, path)  # was kept with a null page id
    assert len(kept) == 1 and [q["reason"] for q in quarantined] == ["missing_page"]


def test_doubled_and_spaced_byte_order_marks_read_alike_both_ways(tmp_path):
    bom = b"\xef\xbb\xbf"
    lines = [json.dumps(ad(i)).encode() for i in range(4)]
    path = tmp_path / "boms.jsonl"
    path.write_bytes(bom + bom + lines[0] + b"\n" + b" " + bom + b" \n" + lines[1] + b"\n"
                     + bom + b" " + bom + lines[2] + b"\n" + lines[3] + b"\n")
    report, kept, _ = both_paths(tmp_path, path)  # the per-record path quarantined the doubled BOM, the other kept it
    assert report["in"] == 4 and len(kept) == 4


def test_unicode_currency_upper_cased_alike_both_ways(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [ad(1, currency="\ufb01"), ad(2, currency="eu\u00df"), ad(3, currency="usd")])
    _, kept, _ = both_paths(tmp_path, path)  # Arrow kept "ﬁ" and "EUß"
    assert [r["currency"] for r in kept] == ["FI", "EUSS", "USD"]


def test_json_lines_with_bytes_that_are_not_utf8(tmp_path):
    good = json.dumps(ad(1)).encode()
    path = tmp_path / "latin.jsonl"
    path.write_bytes(good + b"\n" + json.dumps(ad(2, page_name="Caf")).encode().replace(b'"Caf"', b'"Caf\xe9"') + b"\n")
    _, kept, quarantined = both_paths(tmp_path, path)  # the vectorised path stopped on an invalid UTF-8 sequence
    assert len(kept) == 1 and [q["reason"] for q in quarantined] == ["malformed_json"]


def test_side_table_rows_with_undecodable_bytes_quarantine_their_ad(tmp_path):
    main = tmp_path / "side.csv"
    main.write_text("id,page_id,page_name,ad_delivery_start_time,ad_creative_bodies\n"
                    "1,9,P,2023-01-02,Four plain words here\n2,9,P,2023-01-02,Four plain words here\n")
    regions = tmp_path / "side_regions.csv"
    regions.write_bytes(b"ad_id,region,percentage\n1,Oh\xe9io,1\n2,Ohio,1\n")
    _, kept, quarantined = run(tmp_path, ingest.DumpSpec("side", main, regions=regions))  # crashed writing Parquet
    assert [r["ad_id"] for r in kept] == ["2"] and [(q["ad_id"], q["reason"]) for q in quarantined] == [(None, "bad_encoding")]


def test_nan_and_infinity_numbers_are_not_json_in_either_path(tmp_path):
    lines = [json.dumps(ad(1)), '{"score": NaN, ' + json.dumps(ad(2))[1:], '{"score": -Infinity, ' + json.dumps(ad(3))[1:],
             json.dumps(ad(4, ad_creative_bodies=["Information Infrastructure NaN words"]))]
    path = tmp_path / "nan.jsonl"
    path.write_text("\n".join(lines) + "\n")
    _, kept, quarantined = both_paths(tmp_path, path)  # Arrow's reader kept the NaN / Infinity lines
    assert [r["ad_id"][-1] for r in kept] == ["1", "4"] and [q["reason"] for q in quarantined] == ["malformed_json"] * 2


def test_a_cut_csv_row_with_undecodable_bytes_is_quarantined(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_bytes(CSV_HEAD.encode() + csv_row(1, "9").encode() + b"2,9,Caf\xe9\n")
    _, kept, quarantined = run(tmp_path, ingest.DumpSpec("cut", path))  # crashed writing the quarantine's raw text
    assert len(kept) == 1 and quarantined[0]["reason"] == "malformed_row" and quarantined[0]["raw"] == "2,9,Caf\ufffd"


def test_tokens_in_language_platform_and_currency_cells_are_removed(tmp_path):
    records = [ad(1, languages=["en", URL.format(id=5)], publisher_platforms=["facebook access_token=SECRETTOKEN"],
                  currency="usd?access_token=SECRETTOKEN")]
    _, kept, _ = both_paths(tmp_path, write_jsonl(tmp_path / "l.jsonl", records))  # a misaligned CSV row put a URL there
    assert kept[0]["languages"] == ["en", "https://www.facebook.com/ads/archive/render_ad/?id=5"]
    assert kept[0]["platforms"] == ["facebook "] and kept[0]["currency"] == "USD"


def test_a_token_value_ends_at_any_whitespace_in_both_paths(tmp_path):
    url = "https://www.facebook.com/ads/archive/render_ad/?id=5&access_token=SECRETTOKEN\u00a0tail"
    _, kept, _ = both_paths(tmp_path, write_jsonl(tmp_path / "w.jsonl", [ad(1, ad_snapshot_url=url)]))
    assert kept[0]["snapshot_url"] == "https://www.facebook.com/ads/archive/render_ad/?id=5\u00a0tail"  # RE2's \s is ASCII only


def test_list_cells_nested_beyond_the_recursion_limit_stay_text(tmp_path):
    deep = "[" * 3000 + "]" * 3000
    assert ads.parse_list_cell(deep) == [deep]  # json.loads raised RecursionError
    path = tmp_path / "deep.csv"
    path.write_text(CSV_HEAD + f"1,9,Page,2023-01-02,Four plain words here,{deep},,\n" + csv_row(2, "9"))
    _, kept, quarantined = run(tmp_path, ingest.DumpSpec("deep", path))
    assert len(kept) == 1 and [q["reason"] for q in quarantined] == ["bad_distribution"]
