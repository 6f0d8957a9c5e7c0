"""JSON-document dumps (an API page, a top-level array, one ad object) read in chunks: the same records,
notes and errors as the whole-document parse they replace, at every chunk boundary, and memory bounded
by the chunk, not by the file."""
import functools
import gzip
import json
import logging
import sys
import tracemalloc
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from alpha.ads import ingest
from alpha.ads.cleaning import CleaningOptions
from alpha.demo.ads import write_demo_ads
from fuzz.ad_records import RandomSource, gen_corpus, write_json_doc

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests/fixtures/ads"


def old_read_json_pages(spec, notes=None):
    """``read_json_pages`` before it streamed (the whole file parsed at once), kept as the reference."""
    with ingest._open_binary(spec.path) as fh:
        data = fh.read()
    try:
        doc = orjson.loads(data.lstrip(ingest.UTF8_BOM) if data.startswith(ingest.UTF8_BOM) else data)
    except orjson.JSONDecodeError as err:
        first = next((line for line in data.split(b"\n") if line.strip()), b"")
        if ingest._jsonl_record(0, first).record is not None:
            if notes is not None:
                notes["format_detected"] = "jsonl"
            yield from ingest.read_jsonl(spec, notes)
            return
        raise ingest.IngestError(f"{spec.path}: not valid JSON ({err}); JSON Lines dumps need a .jsonl suffix") from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        items = doc["data"]
    elif isinstance(doc, dict) and not ingest._AD_FIELDS.isdisjoint(doc) and "data" not in doc:
        if notes is not None:
            notes["single_object"] = True
        items = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise ingest.IngestError(f"{spec.path}: expected an API page with a 'data' list, a JSON array of ads or one ad object")
    for index, obj in enumerate(items):
        if isinstance(obj, dict):
            yield ingest.RawRecord(index, obj)
        else:
            yield ingest.RawRecord(index, None, ingest._raw_text(orjson.dumps(obj)), "not_an_object")


def read(reader, path: Path, **kwargs):
    """('ok', records, notes) or ('error', the message up to the parser's own words)."""
    notes: dict = {}
    try:
        records = [(r.index, r.record, r.raw, r.error) for r in reader(ingest.DumpSpec("x", path), notes, **kwargs)]
    except ingest.IngestError as err:
        message = str(err)
        return ("error", message.split(" (")[0] if "not valid JSON" in message else message)
    return ("ok", records, notes)


def same(path: Path, chunks=(1, 2, 3, 5, 8, 13, 64, 4096, None)) -> tuple:
    """The old reader's result, checked equal to the streaming reader's at each chunk size (an error
    must be the same error; records handed on before it do not count: the job fails either way)."""
    expected = read(old_read_json_pages, path)
    for chunk in chunks:
        got = read(ingest.read_json_pages, path, chunk_bytes=chunk)
        assert got == expected, f"chunk_bytes={chunk}: {str(got)[:300]} != {str(expected)[:300]}"
    return expected


def ad(i, **extra):
    return {"id": str(10**14 + i), "page_id": "123", "page_name": "Caf\u00e9 \U0001f600", "ad_creative_bodies": ["Four plain words here"],
            "ad_delivery_start_time": "2023-01-02", "spend": {"lower_bound": "100", "upper_bound": "199"},
            "delivery_by_region": [{"percentage": "0.7", "region": "Ohio"}, {"percentage": "0.3", "region": "Texas"}], **extra}


def write(tmp_path, name: str, content) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


@pytest.fixture(autouse=True)
def quiet():
    logging.disable(logging.CRITICAL)  # pytest keeps every log record: none while memory is measured
    yield
    logging.disable(logging.NOTSET)


# ------------------------------------------------------------------ every chunk boundary


def test_records_split_at_every_chunk_boundary_read_the_same(tmp_path):
    doc = {"paging": {"cursors": {"after": "QVFI"}, "data": [1]}, "data": [
        ad(1, data={"data": [1, 2]}), 12345678901234567890, -1.5e-300, 1e5, "text \\ \" \u2028", None, True, [ad(2)],
        ad(3, ad_creative_bodies=["\U0001f600" * 5, "\\u00e9 escaped"], n=[0, -0, 1.0, 2.5e10])], "after": {"data": []}}
    for name, text in [("minified.json", json.dumps(doc, ensure_ascii=False, separators=(",", ":"))),
                       ("pretty.json", json.dumps(doc, indent=2)),
                       ("ascii.json", json.dumps(doc, ensure_ascii=True)),
                       ("crlf.json", json.dumps(doc, indent="\t").replace("\n", "\r\n") + "\r\n")]:
        path = write(tmp_path, name, text)
        size = path.stat().st_size
        expected = same(path, chunks=range(1, size + 2))
        assert expected[0] == "ok" and len(expected[1]) == 9 and expected[2] == {}
        assert [r[3] for r in expected[1]] == [None] + ["not_an_object"] * 7 + [None]


def test_a_byte_order_mark_is_dropped_however_the_chunks_fall(tmp_path):
    page = json.dumps({"data": [ad(1), ad(2)]})
    for name, content in [("bom.json", "\ufeff" + page), ("two_boms.json", "\ufeff\ufeff" + page),
                          ("bom_array.json", "\ufeff" + json.dumps([ad(3)])), ("bom_single.json", "\ufeff" + json.dumps(ad(4))),
                          ("bom_only.json", "\ufeff"), ("bom_lines.json", "\ufeff" + json.dumps(ad(5)) + "\n" + json.dumps(ad(6))),
                          ("space_bom.json", " \ufeff" + page)]:
        same(write(tmp_path, name, content))
    assert read(ingest.read_json_pages, tmp_path / "bom.json", chunk_bytes=1)[0] == "ok"
    assert read(ingest.read_json_pages, tmp_path / "bom_single.json", chunk_bytes=2)[2] == {"single_object": True}
    assert read(ingest.read_json_pages, tmp_path / "bom_lines.json", chunk_bytes=3)[2] == {"format_detected": "jsonl"}


# ------------------------------------------------------------------ document shapes


def test_paging_before_data_and_keys_after_it(tmp_path):
    paging = {"cursors": {"before": "A", "after": "B"}, "next": "https://graph.facebook.com/x?access_token=T", "data": [9]}
    path = write(tmp_path, "page.json", json.dumps({"paging": paging, "summary": {"total_count": 2}, "data": [ad(1), ad(2)],
                                                    "more": [{"data": "x"}], "paging2": paging}))
    expected = same(path)
    assert [r[1]["id"] for r in expected[1]] == [str(10**14 + 1), str(10**14 + 2)] and expected[2] == {}


def test_only_the_top_level_data_key_holds_the_records(tmp_path):
    nested = ad(1, data=[ad(2)], extra={"data": [ad(3)]})
    expected = same(write(tmp_path, "nested.json", json.dumps({"data": [nested, {"data": [ad(4)]}]})))
    assert [r[1] for r in expected[1]] == [nested, {"data": [ad(4)]}]
    single = same(write(tmp_path, "single.json", json.dumps(ad(5, extra={"data": [1]}))))
    assert single[2] == {"single_object": True} and len(single[1]) == 1
    # a top-level "data" that is not an array: not a page, as before
    assert same(write(tmp_path, "data_object.json", json.dumps({"data": ad(6)})))[1].endswith("one ad object")
    assert same(write(tmp_path, "data_late.json", '{"data": 5, "data": [' + json.dumps(ad(7)) + "]}"))[0] == "ok"


def test_a_top_level_array_and_other_top_levels(tmp_path):
    expected = same(write(tmp_path, "array.json", json.dumps([ad(1), 5, ad(2), [], {}])))
    assert [r[3] for r in expected[1]] == [None, "not_an_object", None, "not_an_object", None]
    for name, content in [("empty_array.json", "[]"), ("empty_page.json", '{"data": []}'), ("empty_object.json", "{}"),
                          ("odd.json", '{"hello": "world"}'), ("number.json", "12"), ("string.json", '"x"'), ("null.json", "null"),
                          ("empty.json", ""), ("blank.json", " \n\t "),
                          ("gzip.json", gzip.compress(json.dumps({"data": [ad(8)]}).encode()))]:
        same(write(tmp_path, name, content))


def test_json_lines_named_json_still_fall_back(tmp_path):
    lines = json.dumps(ad(1)) + "\n\n" + json.dumps(ad(2)) + "\n{not json\n"
    expected = same(write(tmp_path, "lines.json", lines))
    assert expected[2] == {"format_detected": "jsonl"} and [r[3] is None for r in expected[1]] == [True, True, False]
    assert same(write(tmp_path, "blank_first.json", "\n \n" + lines))[0] == "ok"
    assert same(write(tmp_path, "pretty_lines.json", json.dumps(ad(1), indent=1) + "\n" + json.dumps(ad(2), indent=1)))[0] == "error"
    assert same(write(tmp_path, "two_on_a_line.json", json.dumps(ad(1)) + " " + json.dumps(ad(2))))[0] == "error"


# ------------------------------------------------------------------ malformed documents


def test_a_truncated_document_fails_as_before_wherever_it_is_cut(tmp_path):
    text = json.dumps({"paging": {"next": "u"}, "data": [ad(1), 3.25, ad(2, ad_creative_bodies=["\u00e9\U0001f600 x"])]})
    data = text.encode()
    for cut in range(len(data)):
        path = write(tmp_path, "cut.json", data[:cut])
        expected = same(path, chunks=(1, 7, None))
        assert expected[0] == "error" and ("not valid JSON" in expected[1] or cut == 0), (cut, expected)
    gz = gzip.compress(json.dumps({"data": [ad(i) for i in range(200)]}).encode())
    assert same(write(tmp_path, "cut.json.gz", gz[: len(gz) // 2]), chunks=(100, None))[0] == "error"


@pytest.mark.parametrize("content", [
    '{"data": [{"id": "1"}, {"id": NaN}]}', '{"data": [{"id": "1"}, {"id": Infinity}]}', '{"data": [{"id": "1"},]}',
    '{"data": [{"id": "1"}],}', '{"data": [{"id": "1"} {"id": "2"}]}', '{"data" [1]}', '{1: 2}', '{"data": [{"id": "1"}]} x',
    '[{"id": "1e400", "n": 1e400}]', '[{"id": "\\ud800"}]', '[{"id": "a\x01b"}]', '{"id": NaN}', '[' + '[' * 1100 + ']' * 1100 + ']',
    b'{"data": [{"id": "1"}, {"id": "\xff"}]}', b'\xff\xfe{"data": []}',
])
def test_a_bad_record_fails_the_document_as_before(tmp_path, content):
    expected = same(write(tmp_path, "bad.json", content), chunks=(1, 5, None))
    assert expected[0] == "error" and "not valid JSON" in expected[1]


def test_nesting_up_to_orjsons_limit_is_read(tmp_path):
    deep = '{"data": [' + '{"a":' * 1015 + '1' + '}' * 1015 + ', {"id": "2"}]}'
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 5000)  # for comparing the records (json's parser is the reader's business)
    try:
        expected = same(write(tmp_path, "deep.json", deep), chunks=(4096, None))
    finally:
        sys.setrecursionlimit(limit)
    assert sys.getrecursionlimit() == limit
    assert expected[0] == "ok" and len(expected[1]) == 2


def test_a_second_data_array_stops_the_job(tmp_path):
    path = write(tmp_path, "two.json", json.dumps({"data": [ad(1)]})[:-1] + ', "data": [' + json.dumps(ad(2)) + "]}")
    with pytest.raises(ingest.IngestError, match="a second top-level 'data' key"):
        list(ingest.read_json_pages(ingest.DumpSpec("x", path)))


def test_fuzzed_documents_read_as_before(tmp_path):
    """The fuzzer's page and one-object documents (NaN, lone surrogates, cuts, BOMs, gzip, ASCII escapes)."""
    outcomes = set()
    for seed in range(150):
        for case in gen_corpus(RandomSource(seed), 12, ("page", "single")).files:
            path = tmp_path / f"{seed}-{case.name}.json"
            write_json_doc(case, path)
            outcomes.add(same(path, chunks=(1, 97, None))[0])
            path.unlink()
    assert outcomes == {"ok", "error"}


# ------------------------------------------------------------------ whole dumps: byte-identical outputs


def ingest_outputs(spec: ingest.DumpSpec, folder: Path, reader) -> tuple:
    out_a, out_q = folder / f"{spec.name}.parquet", folder / f"{spec.name}.quarantine.parquet"
    original = ingest.read_json_pages
    ingest.read_json_pages = reader
    try:
        report = ingest.ingest_dump(spec, out_a, out_q, CleaningOptions(), batch_rows=50, min_kept_share=0)
    finally:
        ingest.read_json_pages = original
    return report, out_a.read_bytes(), out_q.read_bytes()


@pytest.fixture(scope="module")
def demo_dumps(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    write_demo_ads(out, seed=1234, n_ads=600, n_pages=30, census_dir=ROOT / "config" / "census")
    return out


@pytest.mark.parametrize("chunk", [None, 4096, 97])
def test_ingest_outputs_are_byte_identical_on_the_fixtures_and_the_demo(tmp_path, demo_dumps, chunk):
    paths = [FIX / "page.json", demo_dumps / "ads_page.json", demo_dumps / "ads_single.json"]
    assert all(p.exists() for p in paths)
    for path in paths:
        spec = ingest.DumpSpec(path.stem, path)
        old = ingest_outputs(spec, tmp_path / "old", old_read_json_pages)
        new = ingest_outputs(spec, tmp_path / "new", functools.partial(ingest.read_json_pages, chunk_bytes=chunk))
        assert new == old, path.name
        assert len(pq.read_table(tmp_path / "new" / f"{spec.name}.parquet")) > 0


# ------------------------------------------------------------------ memory


def big_page(path: Path, mb: int, body_words: int = 1000) -> int:
    """An API page of about ``mb`` MB (paging first), written record by record; returns the record count."""
    body = " ".join(f"word{i % 997}" for i in range(body_words))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"paging": {"cursors": {"after": "QVFI"}, "next": "https://graph.facebook.com/x?after=QVFI"}, "data": [')
        n = 0
        while fh.tell() < mb << 20:
            fh.write(("," if n else "") + json.dumps(ad(n, ad_creative_bodies=[f"{n} {body}"])))
            n += 1
        fh.write("]}")
    return n


def peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_a_json_page_is_read_in_memory_bounded_by_the_chunk_not_the_file(tmp_path):
    path = tmp_path / "big.json"
    n = big_page(path, 50)
    spec = ingest.DumpSpec("big", path)
    for chunk in (1 << 20, 1 << 18):
        count = []
        peak = peak_mb(lambda: count.append(sum(1 for _ in ingest.read_json_pages(spec, {}, chunk_bytes=chunk))))
        bound = 5 * chunk / 2**20 + 1  # the chunk read, its text, the window it joins (x2) and one ~8 KB record
        print(f"streaming, chunk {chunk >> 10} KiB: {peak:.1f} MB peak over {path.stat().st_size / 2**20:.0f} MB, {n} records")
        assert count == [n] and peak < bound
    old = peak_mb(lambda: sum(1 for _ in old_read_json_pages(spec, {})))
    print(f"whole document: {old:.0f} MB peak")
    assert old > 50  # at least the file: the bound above tells the two apart


def test_ingesting_a_json_page_is_bounded_by_the_chunk_and_the_batch(tmp_path):
    """The whole dump job (cleaning, Parquet row groups of 50 rows, 64 KiB chunks): peak allocation flat
    when the page grows 5x; the whole-document parse grew with it."""
    warm = tmp_path / "warm.json"
    big_page(warm, 1, body_words=60)

    def run(path, reader):
        def go():  # the job only (reading its outputs back would count)
            ingest.read_json_pages = reader
            try:
                ingest.ingest_dump(ingest.DumpSpec(path.stem, path), tmp_path / "a.parquet", tmp_path / "q.parquet", CleaningOptions(),
                                   batch_rows=50, min_kept_share=0)
            finally:
                ingest.read_json_pages = original
        return go

    original = ingest.read_json_pages

    streaming = functools.partial(ingest.read_json_pages, chunk_bytes=1 << 16)  # both pages many chunks long
    run(warm, streaming)()  # first-call caches of the cleaning code: not what is measured
    peaks = {}
    for mb in (1, 5):
        path = tmp_path / f"page{mb}.json"
        big_page(path, mb, body_words=60)
        peaks[mb] = peak_mb(run(path, streaming))
    old = peak_mb(run(tmp_path / "page5.json", old_read_json_pages))
    print(f"ingest_dump peak: streaming {peaks[1]:.1f} MB (1 MB page) -> {peaks[5]:.1f} MB (5 MB page); whole document {old:.1f} MB")
    assert peaks[5] < 1.5 * peaks[1] + 0.25
    assert old > 10 * peaks[5]
