"""The vectorised JSON Lines path must give exactly what the per-record path gives."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from alpha.ads import ingest
from alpha.ads.cleaning import CleaningOptions

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ads"
URL = "https://www.facebook.com/ads/archive/render_ad/?id={id}&access_token=TESTTOKEN"


def base(i, **overrides):
    rec = {
        "id": str(10**15 + i),
        "page_id": "42",
        "page_name": "Page",
        "ad_delivery_start_time": "2023-01-02",
        "ad_creative_bodies": ["Four plain words here"],
        "currency": "USD",
        "spend": {"lower_bound": "100", "upper_bound": "199"},
        "impressions": {"lower_bound": "1000", "upper_bound": "1999"},
        "demographic_distribution": [{"percentage": "0.5", "age": "18-24", "gender": "male"},
                                     {"percentage": "0.5", "age": "65+", "gender": "female"}],
        "delivery_by_region": [{"percentage": "0.9", "region": "Ohio"}, {"percentage": "0.1", "region": "Unknown"}],
        "ad_snapshot_url": URL.format(id=10**15 + i),
    }
    for key, value in overrides.items():
        if value is None:
            rec.pop(key, None)
        else:
            rec[key] = value
    return rec


EDGE_CASES = [
    {},
    {"ad_creative_bodies": ["Visit HTTPS://Shop.Example.com/x?y=1 or WWW.EXAMPLE.ORG\u00a0today  please",
                            "Visit HTTPS://Shop.Example.com/x?y=1 or WWW.EXAMPLE.ORG\u00a0today  please", " ",
                            "Second\u2009frame\tof text"]},
    {"ad_creative_bodies": None, "ad_creative_body": "  A legacy single body string  "},
    {"ad_creative_bodies": ["", ""]},
    {"ad_creative_bodies": ["[URL] two words https://x.y"]},
    {"id": "1.23457E+15"},
    {"id": "1.23457E+15", "ad_snapshot_url": None},
    {"id": None, "ad_id": "777"},
    {"id": " 888 "},
    {"page_id": " "},
    {"page_name": "\u00a0"},
    {"page_name": None},
    {"ad_delivery_start_time": "2019-10-30T22:24:19+0000"},
    {"ad_delivery_start_time": "2021-02-30", "ad_creation_time": "2021-02-01"},
    {"ad_delivery_start_time": "soon"},
    {"ad_delivery_stop_time": "2023-02-01", "ad_creation_time": "2022-12-31T10:00:00+0000"},
    {"delivery_by_region": []},
    {"delivery_by_region": None, "region_distribution": [{"percentage": "1", "region": "Texas"}]},
    {"delivery_by_region": [{"percentage": "2.6E-5", "region": "Guam"}, {"percentage": "0.999974", "region": "Iowa"}]},
    {"delivery_by_region": [{"percentage": "abc", "region": "Iowa"}]},
    {"delivery_by_region": [{"percentage": "1.5", "region": "Iowa"}]},
    {"delivery_by_region": [{"percentage": " 0.5", "region": "Iowa"}]},
    {"delivery_by_region": [{"percentage": "0.5"}]},
    {"demographic_distribution": [{"percentage": "0.5", "age": "18-24"}]},
    {"demographic_distribution": [{"percentage": "x", "age": "18-24", "gender": "male"}],
     "delivery_by_region": [{"percentage": "y", "region": "Iowa"}]},
    {"demographic_distribution": None},
    {"spend": {"lower_bound": "1,000", "upper_bound": "1e4"}},
    {"spend": {"lower_bound": "lots"}},
    {"impressions": {"lower_bound": "1000000"}},
    {"impressions": {"lower_bound": "", "upper_bound": ""}},
    {"spend": None, "impressions": None},
    {"estimated_audience_size": None, "potential_reach": {"lower_bound": "5", "upper_bound": "10"}},
    {"currency": " eur "},
    {"currency": ""},
    {"bylines": "  ", "funding_entity": "Legacy Funder"},
    {"bylines": None, "funding_entity": " Legacy Funder "},
    {"ad_creative_link_titles": ["", "  Title https://t.co/x  ", "Other"]},
    {"ad_creative_link_titles": None, "ad_creative_link_title": "Legacy title"},
    {"languages": ["en", "es"], "publisher_platforms": ["facebook"]},
    {"ad_snapshot_url": "https://x/render_ad/?access_token=ABC&id=5"},
    {"ad_snapshot_url": "https://x/render_ad/?ACCESS_TOKEN=ABC"},
    {"ad_snapshot_url": ""},
    {"ad_creative_bodies": ["one two three"]},
    {"delivery_by_region": [{"percentage": "45%", "region": "Ohio"}, {"percentage": " 55 % ", "region": "Iowa"}]},
    {"delivery_by_region": [{"percentage": "145%", "region": "Ohio"}]},
    # dates as spreadsheets and collectors write them
    {"ad_delivery_start_time": "2023-5-13"},
    {"ad_delivery_start_time": "2022-9-7", "ad_delivery_stop_time": "2022-10-1 9:05"},
    {"ad_delivery_start_time": "2023-05-13 14:02", "ad_creation_time": "2023-05-12T23:59:59.123Z"},
    {"ad_delivery_start_time": "2023-05-13T14:02:11-07:00"},
    {"ad_delivery_start_time": "2023-05-13 14:02:11+00:00"},
    {"ad_delivery_start_time": "2023-05-13 25:00"},
    {"ad_delivery_start_time": "5/13/2023", "ad_creation_time": "13.05.2023"},
    {"ad_delivery_start_time": "2023-13-01"},
    {"ad_delivery_stop_time": "next week", "ad_creation_time": "2023-1-1 10:00 PM"},
    {"ad_delivery_start_time": "   "},
    {"ad_delivery_start_time": None},
    # ids a spreadsheet round trip left behind
    {"page_id": "1.29585E+14", "page_profile_uri": "https://www.facebook.com/129585123456789/"},
    {"page_id": "1.29585E+14", "page_url": "https://www.facebook.com/profile.php?id=129585123456789"},
    {"page_id": "1.29585E+14"},
    {"page_id": "1.29585E+14", "page_profile_uri": "https://www.facebook.com/987654321098765/"},
    {"page_id": "129585123456789.0"},
    {"page_id": "#N/A"},
    {"page_id": "brand-page"},
    {"id": "1234567890123.0", "ad_snapshot_url": None},
    {"id": None, "_id": "doc-17", "ad_snapshot_url": None},
    {"id": None, "_id": "doc-18"},
    {"id": "1.2E+15", "_id": "doc-19", "ad_snapshot_url": None},
]


def write_lines(path, records, extra_lines=()):
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return path


def both_paths(tmp_path, path, options=CleaningOptions(), media=None):
    out = {}
    for vec in (False, True):
        spec = ingest.DumpSpec("x", path)
        a, q = tmp_path / f"a{vec}.parquet", tmp_path / f"q{vec}.parquet"
        report = ingest.ingest_dump(spec, a, q, options, media=media, batch_rows=7, vectorised=vec)
        quarantine = [(r["source_record"], r["ad_id"], r["reason"]) for r in pq.read_table(q).to_pylist()]
        out[vec] = (report, pq.read_table(a).to_pylist(), sorted(quarantine))
    return out[False], out[True]


def assert_same(reference, fast):
    ref_report, ref_rows, ref_q = reference
    fast_report, fast_rows, fast_q = fast
    assert fast_q == ref_q
    assert len(fast_rows) == len(ref_rows)
    for r, f in zip(ref_rows, fast_rows):
        assert f == r, {k: (r[k], f[k]) for k in r if r[k] != f[k]}
    assert fast_report == ref_report


def test_edge_cases_agree(tmp_path):
    records = [base(i, **case) for i, case in enumerate(EDGE_CASES)]
    path = write_lines(tmp_path / "edge.jsonl", records)
    media = {str(10**15 + 1): "Image: https://img.example.com/a  two\u00a0spaces"}
    reference, fast = both_paths(tmp_path, path, media=media)
    assert len(reference[1]) > 20 and len(reference[2]) > 10  # both kept and quarantined rows are compared
    reasons = {reason for *_, reason in reference[2]}
    assert {"bad_date", "missing_dates", "mangled_page_id", "missing_page"} <= reasons
    assert set(reference[0]["id_sources"]) == {"id", "snapshot_url", "_id"}
    assert reference[0]["page_id_sources"]["page_url"] == 2
    assert reference[0]["unparsed_dates"] == {"ad_creation_time": 1, "ad_delivery_start_time": 1, "ad_delivery_stop_time": 1}
    assert_same(reference, fast)


def test_byte_order_marks_and_crlf_agree(tmp_path):
    records = [base(i) for i in range(150)]
    lines = [json.dumps(r).encode() for r in records]
    lines[0] = b"\xef\xbb\xbf" + lines[0]
    lines[80] = b"\xef\xbb\xbf" + lines[80]  # a second download appended to the first
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\r\n".join(lines[:80]) + b"\r\n\xef\xbb\xbf\r\n" + b"\n".join(lines[80:]) + b"\n")
    reference, fast = both_paths(tmp_path, path)
    assert reference[0]["in"] == 150 and reference[0]["parsed_kept"] == 150
    assert_same(reference, fast)


@pytest.mark.parametrize("options", [CleaningOptions(min_words=0, drop_unnamed_pages=False, require_demographics=True),
                                     CleaningOptions(min_words=8)])
def test_options_agree(tmp_path, options):
    records = [base(i, **case) for i, case in enumerate(EDGE_CASES)]
    path = write_lines(tmp_path / "edge.jsonl", records)
    assert_same(*both_paths(tmp_path, path, options=options))


def test_malformed_lines_inside_large_blocks(tmp_path):
    records = [base(i, **EDGE_CASES[i % len(EDGE_CASES)]) for i in range(300)]
    lines = [json.dumps(r) for r in records]
    lines[150] = lines[150][:40]
    lines[220] = '["not an object"]'
    lines[10] = json.dumps(dict(records[10], page_id=12345))  # a number where Arrow expects a string
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:]) + "\n")
    reference, fast = both_paths(tmp_path, path)
    assert {reason for *_, reason in reference[2]} >= {"malformed_json", "not_an_object"}
    assert_same(reference, fast)


@pytest.mark.parametrize("name", ["current.jsonl", "legacy.jsonl"])
def test_fixture_dumps_agree(tmp_path, name):
    assert_same(*both_paths(tmp_path, FIX / name))


def test_block_boundaries_and_long_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "JSONL_BLOCK_BYTES", 1500)  # several lines per block, some longer than a block
    records = [base(i, **EDGE_CASES[i % len(EDGE_CASES)]) for i in range(120)]
    records[7]["ad_creative_bodies"] = ["word " * 600]
    lines = [json.dumps(r) for r in records]
    lines[30] = lines[30][:25]
    path = tmp_path / "blocks.jsonl"
    path.write_text("\n".join(lines[:60]) + "\n\n  \n" + "\n".join(lines[60:]))  # no final newline
    reference, fast = both_paths(tmp_path, path)
    assert reference[0]["in"] == 120
    assert_same(reference, fast)


@pytest.mark.parametrize("text", ["0000-01-01", "0000-12-31T10:00:00", "0000-02-29", "0001-01-01", "9999-12-31", "2021-02-30"])
def test_year_zero_dates_are_rejected_by_both_paths(text):
    """Arrow's strptime takes year 0, Python's datetime cannot hold it: the Arrow path wrote a date no reader
    could convert (found by the ingestion fuzzer). Both paths must agree on every such date."""
    import pyarrow as pa

    from alpha.ads import cleaning
    from alpha.ads.arrow import _parse_date

    assert _parse_date(pa.array([text])).to_pylist() == [cleaning.parse_date(text)]
