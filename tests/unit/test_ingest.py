"""Ingestion on hand-written dumps in every real layout (tests/fixtures/ads), one quirk per record."""
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from alpha.ads import cleaning as ads
from alpha.ads import ingest
from alpha.ads.cleaning import CleaningOptions, Reject

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ads"
OPTS = CleaningOptions(min_words=4)


def run(tmp_path, spec, media=None):
    out, quar = tmp_path / f"{spec.name}.parquet", tmp_path / f"{spec.name}.q.parquet"
    report = ingest.ingest_dump(spec, out, quar, OPTS, media=media, batch_rows=3)
    return report, pq.read_table(out).to_pylist(), pq.read_table(quar).to_pylist()


# ------------------------------------------------------------------ small parsers


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://x/render_ad/?id=12&access_token=ABC", "https://x/render_ad/?id=12"),
        ("https://x/render_ad/?access_token=ABC&id=12", "https://x/render_ad/?id=12"),
        ("https://x/?id=12&ACCESS_TOKEN=abc&x=1", "https://x/?id=12&x=1"),
        (None, None),
    ],
)
def test_strip_token(url, expected):
    assert ads.strip_token(url) == expected


def test_redact_free_text():
    assert "access_token" not in ads.redact('{"url": "a?id=1&access_token=SECRET", "b": 1}')
    assert "SECRET" not in ads.redact("see access_token=SECRET here")


@pytest.mark.parametrize("raw, ad_id", [("123", "123"), ("1.23457E+15", "1234567890123456"), ("", "1234567890123456")])
def test_resolve_ad_id_from_snapshot(raw, ad_id):
    url = "https://www.facebook.com/ads/archive/render_ad/?id=1234567890123456&access_token=T"
    assert ads.resolve_ad_id(raw, url) == ad_id


def test_resolve_ad_id_unrecoverable():
    assert ads.resolve_ad_id("1.23E+15", None) is None


@pytest.mark.parametrize("value, share", [("0.25", 0.25), ("2.6E-5", 2.6e-5), ("1", 1.0), (0.5, 0.5)])
def test_parse_share(value, share):
    assert ads.parse_share(value, "f") == pytest.approx(share)


@pytest.mark.parametrize("value", ["abc", None, "1.5", "-0.1"])
def test_parse_share_rejects(value):
    with pytest.raises(Reject) as err:
        ads.parse_share(value, "f")
    assert err.value.reason == "bad_number"


def test_parse_int_and_dates():
    assert ads.parse_int("1000", "x") == 1000
    assert ads.parse_int("1,000", "x") == 1000
    assert ads.parse_int(None, "x") is None
    assert ads.parse_date("2019-10-30T22:24:19+0000") == dt.date(2019, 10, 30)
    assert ads.parse_date("2021-12-08") == dt.date(2021, 12, 8)
    assert ads.parse_date("yesterday") is None


@pytest.mark.parametrize(
    "cell, parsed",
    [('["a", "b"]', ["a", "b"]), ("['facebook', 'instagram']", ["facebook", "instagram"]), ("en", ["en"]), ("", []), (["x"], ["x"])],
)
def test_parse_list_cell(cell, parsed):
    assert ads.parse_list_cell(cell) == parsed


def test_parse_list_cell_never_evaluates_code():
    assert ads.parse_list_cell("[__import__('os').getcwd()]") == ["[__import__('os').getcwd()]"]


def test_merge_frames_urls_and_repeats():
    body, n = ads.merge_frames(["Go to https://a.b/c?d=1 now", "Go to https://a.b/c?d=1 now", "", "See  www.x.org\tsoon"])
    assert body == "Go to [URL] now\nSee [URL] soon"
    assert n == 2


# ------------------------------------------------------------------ whole dumps


def test_current_jsonl_every_quirk(tmp_path):
    spec = ingest.DumpSpec("current", FIX / "current.jsonl")
    media = ingest.load_media(FIX / "media.jsonl")
    report, kept, quarantined = run(tmp_path, spec, media)
    assert report["in"] == 11  # 11 non-blank lines incl. one malformed and one non-object; blank line skipped
    assert report["in"] == report["parsed_kept"] + report["quarantined"]
    assert report["quarantined_by_reason"] == {
        "bad_number": 1,
        "empty_body": 1,
        "malformed_json": 1,
        "missing_dates": 1,
        "missing_location": 1,
        "not_an_object": 1,
        "too_short": 1,
        "unnamed_page": 1,
    }
    assert set(report["quarantined_by_reason"]) <= set(ads.REASONS)
    assert [r["ad_id"] for r in kept] == ["1111111111111111", "5555555555555555", "1111111111111111"]
    sunny = kept[0]
    assert sunny["body"] == "Retire in the sun. Visit [URL] today!\nTour our model homes this weekend at [URL]"
    assert sunny["n_frames"] == 2
    assert sunny["impressions_lower"] == 1_000_000 and sunny["impressions_upper"] is None
    assert sunny["spend_lower"] == 100 and sunny["spend_upper"] == 199
    assert sunny["demo_share"] == pytest.approx([0.6, 0.399974, 2.6e-5])
    assert sunny["region_name"] == ["Florida", "Washington, District of Columbia", "Unknown"]
    assert sunny["delivery_start"] == dt.date(2023, 7, 2) and sunny["delivery_stop"] == dt.date(2023, 7, 20)
    assert sunny["snapshot_url"] == "https://www.facebook.com/ads/archive/render_ad/?id=1111111111111111"
    assert sunny["media_verbalisation"] == "Image: an older couple on a sunny porch, see [URL]"
    assert sunny["platforms"] == ["facebook", "instagram"]
    assert kept[1]["currency"] == "CAD"
    assert kept[1]["snapshot_url"] == "https://www.facebook.com/ads/archive/render_ad/?id=5555555555555555"
    assert {q["source_record"] for q in quarantined if q["reason"] == "malformed_json"} == {9}
    for q in quarantined:
        assert "TESTTOKEN" not in (q["raw"] or "") and "access_token" not in (q["raw"] or "")


def test_legacy_names(tmp_path):
    report, kept, _ = run(tmp_path, ingest.DumpSpec("legacy", FIX / "legacy.jsonl"))
    assert report["parsed_kept"] == 1
    row = kept[0]
    assert row["bylines"] == "Hunters Supply Co"
    assert row["body"].endswith("at [URL]")
    assert row["region_name"] == ["Montana", "San Juan", "Bayamón"]
    assert (row["audience_lower"], row["audience_upper"]) == (10000, 50000)
    assert row["delivery_start"] == dt.date(2019, 10, 30)


def test_json_page(tmp_path):
    report, kept, quarantined = run(tmp_path, ingest.DumpSpec("page", FIX / "page.json"))
    assert report["format"] == "json"
    assert [r["ad_id"] for r in kept] == ["1313131313131313"]
    assert [q["reason"] for q in quarantined] == ["not_an_object"]


def test_csv_export_with_side_tables(tmp_path):
    spec = ingest.DumpSpec(
        "export", FIX / "export.csv", demographics=FIX / "export_demos.csv", regions=FIX / "export_regions.csv"
    )
    report, kept, quarantined = run(tmp_path, spec)
    assert report["unmapped_columns"] == ["collector_batch"]
    assert [r["ad_id"] for r in kept] == ["1414141414141414", "1515151515151515"]
    first = kept[0]
    assert first["region_name"] == ["Iowa", "Nebraska"] and first["region_share"] == [0.75, 0.25]
    assert first["demo_gender"] == ["male", "female"]
    assert first["languages"] == ["en"] and first["platforms"] == ["facebook", "instagram"]
    assert (first["spend_lower"], first["spend_upper"]) == (200, 299)
    assert [q["reason"] for q in quarantined] == ["missing_id"]


def test_csv_extra_column_mapping(tmp_path):
    src = tmp_path / "odd.csv"
    src.write_text(
        "doc_id,page_id,page_name,ad_delivery_start_time,body,delivery_by_region\n"
        '77,5,P,2022-02-02,Four words right here,"[{""percentage"": ""1"", ""region"": ""Ohio""}]"\n'
    )
    report, kept, _ = run(tmp_path, ingest.DumpSpec("odd", src, columns={"doc_id": "id"}))
    assert report["unmapped_columns"] == []
    assert kept[0]["ad_id"] == "77" and kept[0]["region_name"] == ["Ohio"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "file not found"),
        ("garbage.jsonl", "not json\nstill not json\n", "none of its 2 records"),
        ("empty.jsonl", "\n\n", "no records"),
        ("broken.json", '{"data": [', "not valid JSON"),
        ("noid.csv", "foo,bar\n1,2\n", "no ad id column"),
        ("weird.txt", "x", "cannot tell the format"),
    ],
)
def test_unreadable_files_stop_with_the_file_name(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ingest.IngestError) as err:
        run(tmp_path, ingest.DumpSpec("x", path))
    assert name in str(err.value) and message in str(err.value)


def test_merge_dedupes_across_files_and_accounts_for_every_record(tmp_path):
    parts = []
    for name, spec in [
        ("current", ingest.DumpSpec("current", FIX / "current.jsonl")),
        ("again", ingest.DumpSpec("again", FIX / "current.jsonl")),
        ("legacy", ingest.DumpSpec("legacy", FIX / "legacy.jsonl")),
    ]:
        a, q = tmp_path / f"{name}.parquet", tmp_path / f"{name}.q.parquet"
        parts.append((a, q, ingest.ingest_dump(spec, a, q, OPTS, batch_rows=2)))
    report = ingest.merge_dumps(parts, tmp_path / "ads.parquet", tmp_path / "q.parquet", tmp_path / "d.parquet", batch_rows=2)
    files = report["files"]
    assert files["current"]["kept"] == 2 and files["current"]["duplicates"] == 1
    for f in files.values():
        assert f["in"] == f["kept"] + f["quarantined"] + f["duplicates"]
    # the second copy of the same dump is all duplicates or quarantine
    assert files["again"]["kept"] == 0 and files["again"]["duplicates"] == 3
    assert report["totals"]["kept"] == 3
    merged = pq.read_table(tmp_path / "ads.parquet")
    assert merged.column("ad_id").to_pylist() == ["1111111111111111", "5555555555555555", "1212121212121212"]
    dups = pq.read_table(tmp_path / "d.parquet").to_pylist()
    assert {d["key"] for d in dups} == {"ad_id"} and len(dups) == 1 + 3
    assert pq.read_table(tmp_path / "q.parquet").num_rows == report["totals"]["quarantined"]


def test_content_duplicates_with_new_ids(tmp_path):
    line = (FIX / "legacy.jsonl").read_text().strip()
    src = tmp_path / "dup.jsonl"
    src.write_text(line + "\n" + line.replace("1212121212121212", "1999999999999999") + "\n")
    a, q = tmp_path / "a.parquet", tmp_path / "q.parquet"
    rep = ingest.ingest_dump(ingest.DumpSpec("dup", src), a, q, OPTS)
    report = ingest.merge_dumps([(a, q, rep)], tmp_path / "m.parquet", tmp_path / "mq.parquet", tmp_path / "md.parquet")
    assert report["totals"]["duplicates"] == 1
    assert pq.read_table(tmp_path / "md.parquet").column("key").to_pylist() == ["content"]


def test_seen_keys_matches_python_set():
    import numpy as np

    rng = np.random.default_rng(0)
    seen, reference = ingest.SeenKeys(), set()
    for _ in range(20):
        keys = rng.integers(0, 500, size=64).astype(np.uint64)
        expected = np.array([int(k) in reference for k in keys])
        assert (seen.seen(keys) == expected).all()
        seen.add(keys)
        reference.update(int(k) for k in keys)
    assert len(seen) == len(reference)


def test_output_is_deterministic(tmp_path):
    spec = ingest.DumpSpec("current", FIX / "current.jsonl")
    ingest.ingest_dump(spec, tmp_path / "a1.parquet", tmp_path / "q1.parquet", OPTS)
    ingest.ingest_dump(spec, tmp_path / "a2.parquet", tmp_path / "q2.parquet", OPTS)
    assert (tmp_path / "a1.parquet").read_bytes() == (tmp_path / "a2.parquet").read_bytes()
    assert (tmp_path / "q1.parquet").read_bytes() == (tmp_path / "q2.parquet").read_bytes()


def test_media_verbalisations_from_csv_json_and_json_lines_agree(tmp_path, caplog):
    rows = [("111", "Image: a porch"), ("222", "Video: a rally; flags")]
    (tmp_path / "media.csv").write_text("\ufeffAd_ID,verbalisation\n" + "".join(f'{i},"{t}"\n' for i, t in rows)
                                        + "333,\n", encoding="utf-8")
    (tmp_path / "media_semicolon.csv").write_text("id;media_verbalisation\n" + "".join(f'{i};"{t}"\n' for i, t in rows))
    (tmp_path / "media.json").write_text(json.dumps([{"ad_id": i, "verbalisation": t} for i, t in rows]))
    (tmp_path / "media.jsonl").write_text("".join(json.dumps({"id": i, "verbalisation": t}) + "\n" for i, t in rows))
    expected = dict(rows)
    for name in ("media.csv", "media_semicolon.csv", "media.json", "media.jsonl"):
        assert ingest.load_media(tmp_path / name) == expected, name
    with caplog.at_level("WARNING", logger="alpha"):
        ingest.load_media(tmp_path / "media.csv")
    assert "1 rows of media.csv without an ad id and a verbalisation were skipped" in caplog.text
