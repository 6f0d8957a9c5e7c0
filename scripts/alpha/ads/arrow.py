"""The vectorised twin of `alpha.ads.cleaning.normalise_record` for JSON Lines dumps.

Arrow's C++ JSON reader parses a block of lines against an explicit schema and pyarrow.compute
cleans whole columns at once; only the rare awkward values (odd number formats, repeated carousel
frames) drop back to the per-record helpers of `alpha.ads.cleaning`. A block the reader cannot parse (a
malformed line, a number where a string belongs) is handed to the per-record path by the caller.
The two paths must agree record for record: tests/unit/test_ads_arrow.py checks them against
each other on every fixture and on the demo dumps.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from alpha.ads import cleaning as ads
from alpha.ads.cleaning import ADS_SCHEMA, CleaningOptions, Reject

_RANGE = pa.struct([("lower_bound", pa.string()), ("upper_bound", pa.string())])
_DEMO = pa.list_(pa.struct([("percentage", pa.string()), ("age", pa.string()), ("gender", pa.string())]))
_REGION = pa.list_(pa.struct([("percentage", pa.string()), ("region", pa.string())]))
_STRINGS = pa.list_(pa.string())

RAW_SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("ad_id", pa.string()), ("_id", pa.string()), ("ad_archive_id", pa.string()),
        ("page_id", pa.string()), ("page_name", pa.string()),
        ("page_profile_uri", pa.string()), ("page_url", pa.string()), ("page_link", pa.string()),
        ("bylines", pa.string()), ("funding_entity", pa.string()),
        ("ad_creation_time", pa.string()), ("ad_delivery_start_time", pa.string()), ("ad_delivery_stop_time", pa.string()),
        ("ad_creative_bodies", _STRINGS), ("ad_creative_body", pa.string()),
        ("ad_creative_link_titles", _STRINGS), ("ad_creative_link_title", pa.string()),
        ("currency", pa.string()),
        ("spend", _RANGE), ("impressions", _RANGE), ("estimated_audience_size", _RANGE), ("potential_reach", _RANGE),
        ("demographic_distribution", _DEMO),
        ("delivery_by_region", _REGION), ("region_distribution", _REGION),
        ("languages", _STRINGS), ("publisher_platforms", _STRINGS),
        ("ad_snapshot_url", pa.string()),
    ]
)
_PARSE = pj.ParseOptions(explicit_schema=RAW_SCHEMA, unexpected_field_behavior="ignore", newlines_in_values=False)

_WS_CLASS = "".join(f"\\x{{{ord(c):x}}}" for c in ads.WHITESPACE)
_URL_RE2 = "(?i)(?:https?://|www\\.)[^<>\"'" + _WS_CLASS + "]+"
_TOKEN_RE2 = "(?i)[?&]?access_token(?:=|%3D)[^&#<>\"'" + _WS_CLASS + "]*"  # ads.TOKEN_PATTERN
_SHARE_RE2 = r"^[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?$|^[0-9]+\.$"
_DIGITS_RE2 = r"^[0-9]+$"
_BOUND_RE2 = r"^[0-9]{1,18}$"  # below 2**63 for sure; longer digit runs go through ads.parse_int

# Checks in the order normalise_record makes them: the first that fails names the reason.
_ORDER = ("missing_id", "page", "unnamed_page", "empty_body", "too_short", "dates", "distribution", "missing_location", "range")
_DATE_RE2 = "^" + ads.DATE_PATTERN + "$"


def parse_block(data) -> pa.Table:
    """Parse JSON Lines bytes (or a memoryview, read without a copy); raises pyarrow.ArrowInvalid
    when any line does not fit RAW_SCHEMA, or is not JSON in a way Arrow's reader lets through and
    the per-record path (orjson) quarantines: bytes that are not UTF-8, NaN / Infinity / Inf numbers."""
    buffer = pa.py_buffer(data)
    offsets = pa.py_buffer(np.array([0, len(buffer)], np.int64))
    pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, buffer]).cast(pa.large_string())  # UTF-8 check
    for line in _lines_with_nan_or_inf(data):  # usually the words "Information", "NaN" inside a string
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            raise pa.ArrowInvalid("a line that is not JSON (NaN or Infinity)") from None
    options = pj.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))  # one core per job
    return pj.read_json(pa.BufferReader(buffer), read_options=options, parse_options=_PARSE)


_VALUE_START = frozenset(b":[, \t-")  # what precedes a bare NaN / Inf value (not a word or a token)


def _lines_with_nan_or_inf(data) -> list[bytes]:
    """The lines where "NaN" or "Inf" (also -NaN, Infinity) may stand as a bare value. Found with
    bytes.find, which runs at memchr speed and is rarely hit: inside words and tokens they follow a
    letter or digit and are skipped."""
    raw = data if isinstance(data, bytes) else bytes(data)
    hits = []
    for pattern in (b"NaN", b"Inf"):
        at = raw.find(pattern)
        while at >= 0:
            if at == 0 or raw[at - 1] in _VALUE_START:
                hits.append(at)
            at = raw.find(pattern, at + 3)
    lines, starts = [], set()
    for at in sorted(hits):
        start = raw.rfind(b"\n", 0, at) + 1
        if start not in starts:
            starts.add(start)
            end = raw.find(b"\n", at)
            lines.append(raw[start:] if end < 0 else raw[start:end])
    return lines


def _col(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _coalesce(table: pa.Table, *names: str) -> pa.Array:
    return pc.coalesce(*[_col(table, n) for n in names]) if len(names) > 1 else _col(table, names[0])


def _trim(arr: pa.Array) -> pa.Array:
    return pc.utf8_trim(arr, characters=ads.WHITESPACE)


def _redact(arr: pa.Array) -> pa.Array:
    """alpha.ads.cleaning.redact over a column: every access_token removed."""
    if pc.any(pc.match_substring(arr, "access_token", ignore_case=True)).as_py():
        return pc.replace_substring_regex(arr, _TOKEN_RE2, "")
    return arr


def _redact_lists(lists: pa.ListArray) -> pa.ListArray:
    """_redact inside a list column without nulls."""
    values = lists.values
    redacted = _redact(values)
    return lists if redacted is values else pa.ListArray.from_arrays(lists.offsets, redacted, type=lists.type)


def _clean_text(arr: pa.Array) -> pa.Array:
    """access_tokens removed, URLs → [URL]; then split on whitespace and join with one space (Arrow's
    Unicode whitespace is exactly str.split()'s: checked over the whole BMP)."""
    arr = pc.replace_substring_regex(_redact(arr), _URL_RE2, "[URL]")
    return pc.utf8_trim_whitespace(pc.binary_join(pc.utf8_split_whitespace(arr), " "))  # edges split to ""


def _np(arr) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _parse_date(arr: pa.Array) -> pa.Array:
    """alpha.ads.cleaning.parse_date over a column: DATE_PATTERN's parts, zero-padded, parsed and checked."""
    parts = pc.extract_regex(_trim(arr), _DATE_RE2)  # null where the pattern does not match

    def part(name: str) -> pa.Array:
        value = pc.struct_field(parts, name)
        return pc.if_else(pc.equal(value, ""), pa.scalar(None, pa.string()), value)  # "" = group not taken

    def at_most(name: str, limit: int) -> pa.Array:
        return pc.less_equal(pc.cast(part(name), pa.int64()), limit)

    hour = part("H")
    time_ok = pc.or_kleene(pc.is_null(hour), pc.and_kleene(
        pc.and_kleene(at_most("H", 23), at_most("M", 59)), pc.or_kleene(pc.is_null(part("S")), at_most("S", 59))))
    text = pc.binary_join_element_wise(part("y"), pc.utf8_lpad(part("m"), 2, "0"), pc.utf8_lpad(part("d"), 2, "0"), "-")
    text = pc.if_else(pc.fill_null(time_ok, False), text, pa.scalar(None, pa.string()))
    parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls impossible days over (2021-02-30 → 2021-03-02), and takes year 0, which Python's
    # datetime (MINYEAR = 1) cannot hold: the Python path rejects both
    real = pc.and_kleene(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), text),
                         pc.greater_equal(pc.cast(part("y"), pa.int64()), 1))
    return pc.if_else(real, parsed, pa.scalar(None, parsed.type)).cast(pa.date32())


def _upper(arr: pa.Array) -> pa.Array:
    """str.upper over a column: Arrow's utf8_upper maps one character to one (ß, ﬁ stay), Python's
    to several (SS, FI), so text that is not ASCII is upper-cased by Python."""
    if pc.all(pc.string_is_ascii(arr)).as_py() is not False:
        return pc.ascii_upper(arr)
    return pa.array([None if x is None else x.upper() for x in arr.to_pylist()], pa.string())


def _blank(arr: pa.Array) -> np.ndarray:
    return ~_np(pc.is_valid(arr)) | _np(pc.equal(_trim(arr), ""))


def _distribution(lists: pa.Array, keys: tuple[str, ...], field: str, n: int):
    """Columns of a breakdown plus, per row, the Reject of its first bad entry (or None)."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = pc.list_flatten(lists)
    parts = {k: flat.field(k) for k in (*keys, "percentage")}
    pct = parts["percentage"]
    key_bad = np.zeros(len(flat), dtype=bool)
    for k in keys:
        key_bad |= ~_np(pc.is_valid(parts[k]))
    try:  # usually every percentage parses: one cast, no regex
        shares = np.array(pc.cast(pc.fill_null(pct, "nan"), pa.float64()).to_numpy(zero_copy_only=False))
        syntax_ok = _np(pc.is_valid(pct))
    except pa.ArrowInvalid:
        syntax_ok = _np(pc.match_substring_regex(pct, _SHARE_RE2))
        shares = np.array(pc.cast(pc.if_else(pa.array(syntax_ok), pct, pa.scalar("0")), pa.float64()).to_numpy(zero_copy_only=False))
    share_bad = ~(syntax_ok & (shares >= 0.0) & (shares <= 1.0 + 1e-6))  # NaN fails, as in parse_share
    rejects: dict[int, Reject] = {}
    bad = key_bad | share_bad | ~_np(pc.is_valid(flat))
    if bad.any():
        rows = np.searchsorted(offsets, np.nonzero(bad)[0], side="right") - 1
        for row in np.unique(rows):
            entries = lists[int(row)].as_py()
            try:
                ads._distribution([dict((k, v) for k, v in e.items() if v is not None) if e else e for e in entries], keys, field)
            except Reject as rej:
                rejects[int(row)] = rej
            else:  # a value Python's float() reads but the RE2 syntax check does not: trust Python
                bad[offsets[row]:offsets[row + 1]] = False
                fixed = [ads.parse_share(e["percentage"], field) for e in entries]
                shares[offsets[row]:offsets[row + 1]] = fixed
    values = {k: parts[k] for k in keys}
    return offsets, values, pa.array(shares, pa.float64()), rejects


def _ranges(table: pa.Table, field: str, legacy: str | None, n: int):
    struct = pc.coalesce(_col(table, field), _col(table, legacy)) if legacy else _col(table, field)
    out, rejects = [], {}
    for bound in ("lower_bound", "upper_bound"):
        text = pc.if_else(pc.is_valid(struct), struct.field(bound), pa.scalar(None, pa.string()))
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        digits = _np(pc.match_substring_regex(text, _BOUND_RE2))
        odd = _np(pc.is_valid(text)) & ~digits
        values = pc.cast(pc.if_else(pa.array(digits), text, pa.scalar(None, pa.string())), pa.int64()).to_pylist() if odd.any() else None
        if values is None:
            out.append(pc.cast(text, pa.int64()))
            continue
        raw = text.to_pylist()
        for row in np.nonzero(odd)[0]:
            try:
                values[row] = ads.parse_int(raw[row], field)
            except Reject as rej:
                rejects.setdefault(int(row), rej)
        out.append(pa.array(values, pa.int64()))
    return out, rejects


def _list_of(table: pa.Table, list_name: str, single_name: str) -> pa.Array:
    lists = _col(table, list_name)
    single = _col(table, single_name)
    if single.null_count == len(single):
        return lists
    wrapped = pa.ListArray.from_arrays(pa.array(np.arange(len(single) + 1, dtype=np.int32)), single)
    wrapped = pc.if_else(pc.is_valid(single), wrapped, pa.scalar(None, _STRINGS))
    return pc.coalesce(lists, wrapped)


def clean_block(
    raw: pa.Table, options: CleaningOptions, media: Mapping[str, str] | None = None
) -> tuple[pa.Table, np.ndarray, list[tuple[int, Reject]]]:
    """Clean a parsed block: (kept rows in ADS_SCHEMA order minus provenance, their row indices, rejects)."""
    n = raw.num_rows
    fail = {name: np.zeros(n, dtype=bool) for name in _ORDER}
    details: dict[str, dict[int, Reject]] = {}

    url = _col(raw, "ad_snapshot_url")
    raw_id = _trim(_coalesce(raw, "id", "ad_id", "ad_archive_id"))
    from_url = pc.struct_field(pc.extract_regex(url, r"[?&]id=(?P<id>[0-9]+)"), "id")
    id_ok = _np(pc.match_substring_regex(raw_id, _DIGITS_RE2))
    ad_id = pc.if_else(pa.array(id_ok), raw_id, from_url)
    id_source = np.where(id_ok, "id", "snapshot_url").astype(object)
    odd = np.nonzero(~id_ok)[0]  # rare: an exact float, a document-store _id, or no id at all
    if len(odd):
        ids, urls, docs = raw_id.to_pylist(), url.to_pylist(), _col(raw, ads.DOCUMENT_ID).to_pylist()
        ad_ids = ad_id.to_pylist()
        for row in odd:
            ad_ids[row], id_source[row] = ads.resolve_ad_id_source(ids[row], urls[row], docs[row])
        ad_id = pa.array(ad_ids, pa.string())
    fail["missing_id"] = ~_np(pc.is_valid(ad_id))

    page_raw = _col(raw, "page_id")
    page_id = _trim(page_raw)
    page_ok = _np(pc.match_substring_regex(page_id, _DIGITS_RE2))
    page_source = np.full(n, "page_id", dtype=object)
    odd = np.nonzero(~page_ok)[0]  # rare: no id, text, or a spreadsheet-rounded id to repair or refuse
    details["page"] = {}
    if len(odd):
        raw_pages, page_ids = page_raw.to_pylist(), page_id.to_pylist()
        page_urls = _coalesce(raw, "page_profile_uri", "page_url", "page_link").to_pylist()
        for row in odd:
            try:
                page_ids[row], page_source[row] = ads.resolve_page_id(raw_pages[row], page_urls[row])
            except Reject as rej:
                details["page"][int(row)] = rej
                page_ids[row] = None
        page_id = pa.array(page_ids, pa.string())
    fail["page"][list(details["page"])] = True
    page_name = _trim(pc.fill_null(_redact(_col(raw, "page_name")), ""))
    if options.drop_unnamed_pages:
        fail["unnamed_page"] = _np(pc.equal(page_name, ""))
    page_name = pc.if_else(pc.equal(page_name, ""), pa.scalar(None, pa.string()), page_name)

    bodies = _list_of(raw, "ad_creative_bodies", "ad_creative_body")
    frame_lengths = pc.fill_null(pc.list_value_length(bodies), 0).to_numpy(zero_copy_only=False)
    frames = _clean_text(pc.fill_null(pc.list_flatten(bodies), ""))
    body_list, n_frames = [], np.zeros(n, dtype=np.int16)
    frames_py = frames.to_pylist()
    pos = 0
    for i, length in enumerate(frame_lengths):
        kept = list(dict.fromkeys(f for f in frames_py[pos:pos + length] if f))
        pos += length
        body_list.append("\n".join(kept))
        n_frames[i] = len(kept)
    body = pa.array(body_list, pa.string())
    fail["empty_body"] = n_frames == 0
    n_words = (
        pc.add(pc.add(pc.count_substring(body, " "), pc.count_substring(body, "\n")), 1).to_numpy(zero_copy_only=False)
        - pc.count_substring(body, "[URL]").to_numpy(zero_copy_only=False)
    )
    fail["too_short"] = n_words < options.min_words

    date_raw = {k: _col(raw, k) for k in ads.DATE_FIELDS}
    dates = {k: _parse_date(v) for k, v in date_raw.items()}
    start_raw, created_raw = date_raw["ad_delivery_start_time"], date_raw["ad_creation_time"]
    start = pc.coalesce(dates["ad_delivery_start_time"], dates["ad_creation_time"])
    fail["dates"] = ~_np(pc.is_valid(start))
    details["dates"] = {}
    if fail["dates"].any():
        written = {"ad_delivery_start_time": (start_raw.to_pylist(), ~_blank(start_raw)),
                   "ad_creation_time": (created_raw.to_pylist(), ~_blank(created_raw))}
        for row in np.nonzero(fail["dates"])[0]:
            seen = [f"{k}={values[row]!r}" for k, (values, present) in written.items() if present[row]]
            details["dates"][int(row)] = (Reject("bad_date", ", ".join(seen)) if seen
                                          else Reject("missing_dates", "no ad_delivery_start_time or ad_creation_time"))

    regions = _coalesce(raw, "delivery_by_region", "region_distribution")
    r_off, r_vals, r_share, r_bad = _distribution(regions, ("region",), "delivery_by_region", n)
    demos = _col(raw, "demographic_distribution")
    d_off, d_vals, d_share, d_bad = _distribution(demos, ("age", "gender"), "demographic_distribution", n)
    details["distribution"] = {**d_bad, **r_bad}  # region errors are found first, as in normalise_record
    fail["distribution"][list(details["distribution"])] = True
    fail["missing_location"] = np.diff(r_off) == 0
    if options.require_demographics:
        fail["missing_location"] |= np.diff(d_off) == 0

    ranges, range_bad = {}, {}
    for field, legacy in (("spend", None), ("impressions", None), ("estimated_audience_size", "potential_reach")):
        ranges[field], bad = _ranges(raw, field, legacy, n)
        for row, rej in bad.items():
            range_bad.setdefault(row, rej)
    details["range"] = range_bad
    fail["range"][list(range_bad)] = True

    failed = np.zeros(n, dtype=bool)
    rejects: list[tuple[int, Reject]] = []
    ids_py = ad_id.to_pylist()
    reason_of = np.full(n, -1)
    for k, name in enumerate(_ORDER):
        new = fail[name] & ~failed
        reason_of[new] = k
        failed |= fail[name]
    for row in np.nonzero(failed)[0]:
        name = _ORDER[reason_of[row]]
        rej = details.get(name, {}).get(int(row)) or Reject(name)
        rejects.append((int(row), Reject(rej.reason, rej.detail, None if name == "missing_id" else ids_py[row])))

    titles = _list_of(raw, "ad_creative_link_titles", "ad_creative_link_title")
    title_lengths = pc.fill_null(pc.list_value_length(titles), 0).to_numpy(zero_copy_only=False)
    clean_titles = _clean_text(pc.fill_null(pc.list_flatten(titles), "")).to_pylist()
    link_title, pos = [], 0
    for length in title_lengths:
        link_title.append(next((t for t in clean_titles[pos:pos + length] if t), None))
        pos += length

    media_text = pa.array([media.get(x) if x else None for x in ids_py] if media else [None] * n, pa.string())
    snapshot = pc.replace_substring_regex(url, _TOKEN_RE2, "")
    needs_q = pc.and_(pc.invert(pc.match_substring(snapshot, "?")), pc.match_substring(snapshot, "&"))
    snapshot = pc.if_else(needs_q, pc.replace_substring(snapshot, "&", "?", max_replacements=1), snapshot)
    snapshot = pc.if_else(pc.equal(snapshot, ""), pa.scalar(None, pa.string()), snapshot)

    def nonempty(arr):
        arr = _trim(arr)
        return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)

    def as_list(offsets, values, typ):
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=pa.list_(typ))

    columns = {
        "ad_id": ad_id,
        "page_id": page_id,
        "page_name": page_name,
        "bylines": nonempty(_redact(_coalesce(raw, "bylines", "funding_entity"))),
        "body": body,
        "n_frames": pa.array(n_frames, pa.int16()),
        "link_title": pa.array(link_title, pa.string()),
        "media_verbalisation": pc.if_else(pc.is_valid(media_text), _clean_text(media_text), media_text),
        "created": dates["ad_creation_time"],
        "delivery_start": start,
        "delivery_stop": dates["ad_delivery_stop_time"],
        "currency": _upper(nonempty(_redact(_col(raw, "currency")))),
        "spend_lower": ranges["spend"][0],
        "spend_upper": ranges["spend"][1],
        "impressions_lower": ranges["impressions"][0],
        "impressions_upper": ranges["impressions"][1],
        "audience_lower": ranges["estimated_audience_size"][0],
        "audience_upper": ranges["estimated_audience_size"][1],
        "demo_age": as_list(d_off, d_vals["age"], pa.string()),
        "demo_gender": as_list(d_off, d_vals["gender"], pa.string()),
        "demo_share": as_list(d_off, d_share, pa.float64()),
        "region_name": as_list(r_off, r_vals["region"], pa.string()),
        "region_share": as_list(r_off, r_share, pa.float64()),
        "languages": _redact_lists(pc.fill_null(_col(raw, "languages"), pa.scalar([], _STRINGS))),
        "platforms": _redact_lists(pc.fill_null(_col(raw, "publisher_platforms"), pa.scalar([], _STRINGS))),
        "snapshot_url": snapshot,
        "id_source": pa.array(id_source, pa.string()),  # counted in the report, not written
        "page_id_source": pa.array(page_source, pa.string()),
        **{f"unparsed:{k}": pa.array(~_np(pc.is_valid(dates[k])) & ~_blank(date_raw[k])) for k in ads.DATE_FIELDS},
    }
    keep = ~failed
    names = [f.name for f in ADS_SCHEMA if f.name in columns] + ["id_source", "page_id_source"]
    names += [f"unparsed:{k}" for k in ads.DATE_FIELDS]
    table = pa.table([columns[k] for k in names], names=names).filter(pa.array(keep))
    return table, np.nonzero(keep)[0], rejects
