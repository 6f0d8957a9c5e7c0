"""Fuzz records for every Ad Library dump layout the ingestion reads, and the files that hold them.

One generator, two sources of randomness: hypothesis (tests/unit/test_fuzz_ingest.py, which shrinks
a failure to a small corpus and prints it) and a seeded ``random.Random`` (tests/fuzz/fuzz_ingest.py,
``make fuzz``, hundreds of thousands of records). Every choice is drawn from a `Source` while a
`Corpus` of plain data is built (records, CSV cells, the file-level damage to apply), so writing the
files is deterministic: a corpus, or a seed, reproduces a finding.

Layouts: JSON Lines with the current API names and with the legacy ones (``ad_creative_body``,
``region_distribution``, ``potential_reach``, ``funding_entity`` ...), API JSON pages, one ad object
per JSON file (``_id`` / ``{"$oid"}`` ids), CSV exports with ``*_demos.csv`` / ``*_regions.csv`` side
tables, and wide CSVs (a column per region and age / gender band). Quirks: fields missing, types
swapped, nulls nested, huge and negative numbers, percentages as strings in every notation, unicode
and control characters, lone surrogates, truncated lines, duplicated ids and records, byte-order
marks, CRLF, gzip (whole and cut), UTF-16 and Latin-1 bytes; an ``access_token`` carrying `SECRET` sits
in every URL field and in free text, so a leak of it into any output is detectable.
"""
from __future__ import annotations

import csv
import gzip
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from alpha.ads import cleaning as ads
from alpha.ads.ingest import DumpSpec

SECRET = "FzSecret7Qx2Tk"  # the access_token value; no output may ever contain it
TOKEN_KEYS = ("access_token", "ACCESS_TOKEN", "Access_Token")
MISSING = object()  # a field left out of the record


class Source:
    """Every random choice of the generator; subclasses supply ``integer``. Choices shrink to their
    first option / to False, so the first option of every list is the plain, well-formed one."""

    def integer(self, lo: int, hi: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def pick(self, options):
        return options[self.integer(0, len(options) - 1)]

    def chance(self, per_mille: int) -> bool:
        return self.integer(0, 999) >= 1000 - per_mille


class RandomSource(Source):
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class HypothesisSource(Source):
    """Draws from a hypothesis ``draw`` (inside ``st.composite``)."""

    def __init__(self, draw: Callable):
        import hypothesis.strategies as st

        self.draw, self._st, self._cache = draw, st, {}

    def integer(self, lo: int, hi: int) -> int:
        strategy = self._cache.get((lo, hi))
        if strategy is None:
            strategy = self._cache[(lo, hi)] = self._st.integers(lo, hi)
        return self.draw(strategy)


# ---------------------------------------------------------------- vocabulary

WORDS = ("vote", "today", "for", "clean", "water", "our", "schools", "matter", "join", "us", "now", "save",
         "homes", "café", "naïve", "Ünïcode", "日本語", "مرحبا", "שלום", "🙂", "👍🏽", "e\u0301", "ß", "İstanbul")
ODD = ("\u00a0", "\u2009", "\u200b", "\ufeff", "\u2028", "\u3000", "\t", "\n", "\r\n", "\x00", "\x07", "\x1b[31m",
       "\x7f", "\u202e", "\x1c", "\x85", "\\", '"', "'", ",", ";", "<b>", "&amp;", "[URL]", "%", "{", "[", "\ud83d")
STATES = ("Ohio", "Texas", "California", "New York", "Washington, District of Columbia", "Unknown", "Puerto Rico")
AGES = ("18-24", "25-34", "65+", "13-17", "Unknown")
GENDERS = ("female", "male", "unknown")
# Numbers as dumps write range bounds: plain, formatted, huge, negative, not numbers, other types.
NUMBERS = ("100", "0", "-5", "1,000", "1e4", "1E4", "1.5", "99999999999999999999", "9223372036854775807",
           "9223372036854775808", "-9223372036854775809", "1e18", "1e19", "9.9e18", "1e400", "-1e400", "inf", "nan",
           "NaN", " 12 ", "\uff11\uff12", "1_000", "0x10", "", "lots", "\u0663", "+7", "1.", ".5", 100, -7, 1.5,
           10**25, 2**63, True, None, [1], {"v": 1})
# Percentages in every notation (fractions, percents, exponents, locales, other types).
PERCENTS = ("0.5", ".5", "5e-1", "5E-1", "2.6E-5", "1", "0", "1.0", "-0", "0.", "50%", "50", "12.5%", "-0.1", "1.5",
            "1.0000001", "1.000001", " 0.5", "0.5 ", "+0.5", "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1e-999",
            "0x1p-1", "1_0", "\uff10.\uff15", "0,5", "", "%", "\u00bd", "0.5\u00a0", 0.5, 1, 0, True, None, 10**30,
            10**400, 1e300, [0.5], {"v": 0.5})
WIDE_CELLS = ("", "0", "12.5", "12.5%", "0.125", ".125", "1.25e-1", "50", "100%", "abc", "-5", "1e999", "nan", " 7 ",
              "%", "0,5", "\uff11\uff12", "inf", "-0", "1e-320")
DATES = ("2023-01-02", "2023-1-2", "2019-10-30T22:24:19+0000", "2023-05-13 14:02", "2023-05-13T14:02:11-07:00",
         "2023-05-12T23:59:59.123Z", " 2024-2-29 ", "0000-01-01", "0001-01-01", "9999-12-31", "2023-02-29",
         "2023-13-01", "13/05/2023", "2023-05-13 25:00", "2023-05-13T10:61", "\uff12\uff10\uff12\uff13-01-02",
         "2023-05-13T", "", "  ", "soon", 20230513, 1.5, True, None, ["2023-01-02"], {"date": "2023-01-02"})


DEEP = "[" * 3000 + "]" * 3000  # nesting beyond every parser's recursion limit


def token_piece(src: Source) -> str:
    """An access_token in one of the forms URLs and pasted text carry it."""
    key, base = src.pick(TOKEN_KEYS), src.pick(("https://shop.example.com/p", "http://x.example.org", "www.example.org/a",
                                                  "example.com/offer", "HTTPS://Shop.Example.com"))
    return src.pick((
        f"{base}?{key}={SECRET}", f"{base}?a=1&{key}={SECRET}", f"{base}?{key}={SECRET}&b=2",
        f"{base}?{key}={SECRET}#frag", f"{key}={SECRET}", f"({key}={SECRET})",
        f"https://l.facebook.com/l.php?u=https%3A%2F%2Fx.example.com%2F%3F{key}%3D{SECRET}",
    ))


def text(src: Source, lo: int, hi: int, rate: int) -> str:
    parts = []
    for _ in range(src.integer(lo, hi)):
        if src.chance(rate // 3):
            parts.append(token_piece(src))
        elif src.chance(rate // 2):
            parts.append(src.pick(ODD) + src.pick(WORDS))
        else:
            parts.append(src.pick(WORDS))
    return src.pick((" ", "  ", "\u00a0", "\n")).join(parts) if src.chance(rate) else " ".join(parts)


def clean_body(src: Source) -> str:
    words = [src.pick(WORDS[:13]) for _ in range(src.integer(4, 9))]
    if src.chance(300):
        words.insert(src.integer(0, len(words)), token_piece(src))
    return " ".join(words)


def snapshot_url(src: Source, ad_id: Any, rate: int) -> Any:
    digits = ad_id if isinstance(ad_id, str) and ad_id.isdigit() else "1" + str(src.integer(10**14, 10**15))
    base = "https://www.facebook.com/ads/archive/render_ad/"
    key = src.pick(TOKEN_KEYS)
    normal = f"{base}?id={digits}&{key}={SECRET}"
    if not src.chance(rate):
        return normal
    return src.pick((
        f"{base}?{key}={SECRET}&id={digits}", f"{base}?id={digits}&{key}={SECRET}#x", f"{base}?{key}={SECRET}",
        f"{base}?id={digits}&{key}={SECRET}\u00a0tail", f"{base}?id={digits}&{key}={SECRET}\u2003x", f"{base}?id=abc&{key}={SECRET}",
        f" {normal} ", "", None, MISSING, 123, [normal], {"url": normal}, f"{base}?id={digits}",
    ))


def page_url(src: Source, page: Any, rate: int) -> Any:
    key = src.pick(TOKEN_KEYS)
    digits = page if isinstance(page, str) and page.isdigit() else "129585123456789"
    return src.pick((
        f"https://www.facebook.com/{digits}/?{key}={SECRET}",
        f"https://www.facebook.com/profile.php?id={digits}&{key}={SECRET}",
        f"https://www.facebook.com/pages/Brand/{digits}?{key}={SECRET}",
        f"https://www.facebook.com/BrandVanityName?{key}={SECRET}",
        "", None, 5, [f"https://www.facebook.com/{digits}"],
    ))


def maybe(src: Source, rate: int, normal: Any, quirks: tuple) -> Any:
    return src.pick(quirks) if src.chance(rate) else normal


def share_texts(src: Source, n: int) -> list[str]:
    weights = [src.integer(1, 9) for _ in range(n)]
    total = sum(weights)
    fmt = src.pick(("{:.6g}", "{!r}", "{:.3e}", "{:.2f}"))
    return [fmt.format(w / total) for w in weights]


def distribution(src: Source, keys: tuple[str, ...], rate: int) -> Any:
    n = src.integer(1, 4)
    entries = []
    for share in share_texts(src, n):
        entry = {"percentage": share}
        for key in keys:
            entry[key] = src.pick(STATES if key == "region" else AGES if key == "age" else GENDERS)
        if src.chance(rate // 2):  # one entry's value is odd
            which = src.pick(("percentage", *keys))
            entry[which] = src.pick(PERCENTS) if which == "percentage" else src.pick(("", None, 5, ["x"], "Ünïcode\x00"))
        if src.chance(rate // 4):
            del entry[src.pick(("percentage", *keys))]
        entries.append(entry)
    if src.chance(rate // 2):
        entries.insert(src.integer(0, len(entries)), src.pick((None, "Ohio", ["Ohio", "1"], 5, {}, [None])))
    if not src.chance(rate // 2):
        return entries
    return src.pick((
        [], None, MISSING, "", json.dumps(entries), repr(entries), "{[1]: 2}", "{1, [2]}", "[[[]]]", 5, DEEP,
        entries[0] if entries else {}, {"data": entries}, "not a list",
    ))


def number_range(src: Source, rate: int) -> Any:
    lower = src.integer(0, 50) * 100
    value: Any = {"lower_bound": str(lower), "upper_bound": str(lower + 99)}
    if src.chance(rate):
        value[src.pick(("lower_bound", "upper_bound"))] = src.pick(NUMBERS)
    if src.chance(rate // 3):
        value.pop(src.pick(("lower_bound", "upper_bound")))
    if src.chance(rate // 3):
        value = src.pick((None, "", "{'lower_bound': '5'}", '{"lower_bound": "1e400"}', "[]", 5, [value], {},
                          {"lower_bound": {"x": None}}, "{[1]: 2}"))
    return value


@dataclass
class Context:
    rate: int  # per mille: how often a field is odd
    ids: list = field(default_factory=list)
    pages: list = field(default_factory=list)


def ad_id(src: Source, ctx: Context) -> str:
    if ctx.ids and src.chance(120):
        return src.pick(ctx.ids)  # a duplicated id (same or another file)
    new = str(10**15 + src.integer(0, 10**6))
    ctx.ids.append(new)
    return new


def record(src: Source, ctx: Context, clean: bool) -> dict:
    """One ad with the current API field names; ``clean`` records are well-formed and must be kept."""
    rate = 0 if clean else ctx.rate
    the_id = ad_id(src, ctx)
    if not ctx.pages or src.chance(300):
        ctx.pages.append(str(900000000 + src.integer(0, 999)))
    page = src.pick(ctx.pages)
    rec: dict[str, Any] = {
        "id": maybe(src, rate, the_id, (
            int(the_id), float(the_id), "1.23457E+15", f" {the_id} ", f"{the_id}.0", "-5", "", "nan", "N/A", "abc", None,
            MISSING, "9" * 25, 10**20, True, [the_id], {"$oid": the_id}, "\uff11\uff12\uff13", "0", "00012")),
        "page_id": maybe(src, rate, page, (
            int(page), "1.29585E+14", "129585123456789.0", "#N/A", "brand-page", "", None, MISSING, 1.29585e14, "9" * 30,
            "-3", [page], {"x": 1}, "nan", f"https://www.facebook.com/{page}?access_token={SECRET}")),
        "page_name": maybe(src, rate, text(src, 1, 3, rate), ("", " ", "\u00a0", None, MISSING, 5, ["x"], {"a": None})),
        "ad_delivery_start_time": maybe(src, rate, src.pick(DATES[:7]), DATES + (MISSING,)),
        "ad_creative_bodies": [clean_body(src) for _ in range(src.integer(1, 3))],
        "delivery_by_region": distribution(src, ("region",), rate),
        "ad_snapshot_url": snapshot_url(src, the_id, rate),
    }
    if rec["page_id"] == "1.29585E+14" or src.chance(300):
        rec["page_profile_uri"] = page_url(src, "129585123456789" if src.chance(500) else page, rate)
    if src.chance(rate):
        rec["ad_creative_bodies"] = src.pick((
            [], [""], [None, "one two three four five"], clean_body(src), None, MISSING, 5, 5.5, True, {"a": "b c d e"},
            [[None, ["x y z w"]]], ["one two"], DEEP, ["[URL] [URL] x https://a.b/c"], [text(src, 1, 12, 1000)],
            [rec["ad_creative_bodies"][0]] * 2, [" ".join(["word"] * 3000)]))
    elif src.chance(rate):
        rec["ad_creative_bodies"].append(text(src, 0, 12, rate))
    if src.chance(400):
        rec["demographic_distribution"] = distribution(src, ("age", "gender"), rate)
    if src.chance(400):
        rec["ad_creation_time"] = maybe(src, rate, src.pick(DATES[:7]), DATES)
    if src.chance(300):
        rec["ad_delivery_stop_time"] = maybe(src, rate, src.pick(DATES[:7]), DATES)
    if src.chance(400):
        rec["bylines"] = maybe(src, rate, text(src, 1, 4, rate), (None, "", "  ", {"n": 1}, 7))
    if src.chance(300):
        rec["ad_creative_link_titles"] = maybe(src, rate, [text(src, 1, 5, rate)], ([], [None], "title", 5, [["x"]], [""]))
    if src.chance(200):
        rec["ad_creative_link_descriptions"] = [text(src, 0, 6, rate), token_piece(src)]
    if src.chance(500):
        rec["currency"] = maybe(src, rate, "USD", ("usd ", "ß", "\ufb01", "€", "", None, 5, ["USD"], "\u01c6", "eur\u00a0"))
    for key in ("spend", "impressions", "estimated_audience_size"):
        if src.chance(500):
            rec[key] = number_range(src, rate)
    if src.chance(300):
        rec["languages"] = maybe(src, rate, ["en"], ("en", [None, 5], 5, {"a": 1}, [["x"]], []))
    if src.chance(300):
        rec["publisher_platforms"] = maybe(src, rate, ["facebook", "instagram"], ("facebook", [None], 5, [""]))
    if src.chance(rate // 2):
        rec["_id"] = src.pick(({"$oid": "64b7f0a1c2d3e4f5a6b7c8d9"}, "doc-7", {"$oid": None}, {"$oid": 5}, {}, [], 5, "",
                               " doc 8 ", {"$oid": "x", "extra": [None]}))
    if src.chance(rate // 2):
        rec[src.pick(("nested", "paging_note", "unknown_number"))] = src.pick((
            {"a": [None, {"b": None}]}, token_piece(src), 10**30, -1e300, [[[None]]], float("nan")))
    if src.chance(rate // 3):  # a field of a wrong type anywhere
        rec[src.pick(tuple(rec))] = src.pick((None, 0, -1, 1e308, True, [], {}, [None, {"x": [None]}], "", "\x00"))
    return {k: v for k, v in rec.items() if v is not MISSING}


LEGACY = {"ad_creative_bodies": "ad_creative_body", "ad_creative_link_titles": "ad_creative_link_title",
          "delivery_by_region": "region_distribution", "estimated_audience_size": "potential_reach",
          "bylines": "funding_entity", "id": "ad_id", "page_profile_uri": "page_url"}


def legacy(src: Source, rec: dict, rate: int) -> dict:
    """The pre-2021 names (a current name kept beside its legacy twin now and then)."""
    out = {}
    for key, value in rec.items():
        old = LEGACY.get(key)
        if old is None or (rate and src.chance(rate // 3)):
            out[key] = value
            continue
        if key == "id":
            old = src.pick(("ad_id", "ad_archive_id"))
        if key == "page_profile_uri":
            old = src.pick(("page_url", "page_link"))
        if key in ("ad_creative_bodies", "ad_creative_link_titles") and isinstance(value, list) and not (rate and src.chance(rate)):
            value = value[0] if value else ""  # legacy single body / title (one frame)
        out[old] = value
        if rate and src.chance(rate // 4):
            out[key] = src.pick((None, value, []))
    return out


# ---------------------------------------------------------------- files


@dataclass
class FileCase:
    """One dump file: its layout, content and the damage applied when it is written."""

    layout: str  # jsonl | jsonl_legacy | page | single | csv | wide
    name: str
    records: list  # dicts (JSON layouts), rows of cells (CSV layouts; row 0 is the header)
    clean: list  # positions in ``records`` of well-formed records (they must be kept)
    options: dict = field(default_factory=dict)
    quirks: list = field(default_factory=list)  # (kind, position, parameter)
    side: dict = field(default_factory=dict)  # CSV side tables: kind -> rows (row 0 the header)

    def n_records(self) -> int:
        return len(self.records) - (1 if self.layout in ("csv", "wide") else 0)


@dataclass
class Corpus:
    files: list

    def n_records(self) -> int:
        return sum(f.n_records() for f in self.files)


@dataclass
class Written:
    """A written file and what the generator knows of it."""

    case: FileCase
    spec: DumpSpec
    clean_indices: list  # record indices (as the reader numbers them) of clean records; None = unknown
    whole_file_damage: bool  # the file was damaged as a whole (cut document, cut stream, lost header)
    n_in: int | None = None  # records the reader must count; None = unknown


def _records(src: Source, ctx: Context, n: int, clean_share: int) -> tuple[list, list]:
    records, clean = [], []
    for i in range(n):
        is_clean = src.chance(clean_share)
        records.append(record(src, ctx, is_clean))
        if is_clean:
            clean.append(i)
    return records, clean


def _line_quirks(src: Source, n: int, rate: int) -> list:
    quirks = []
    for _ in range(src.integer(0, 1 + n // 8) if src.chance(max(rate, 100)) else 0):
        kind = src.pick(("cut_line", "garbage", "blank", "bom_line", "latin1_line", "raw_control", "dup_key", "two_objects",
                         "nan_field", "double_bom"))
        quirks.append((kind, src.integer(0, max(n - 1, 0)), src.integer(1, 99)))
    for kind in ("crlf", "bom_start", "no_final_newline", "gzip", "gzip_cut", "ascii"):
        if src.chance(80):
            quirks.append((kind, 0, src.integer(10, 90)))
    return quirks


def gen_jsonl(src: Source, ctx: Context, name: str, n: int, legacy_names: bool) -> FileCase:
    records, clean = _records(src, ctx, n, 250)
    if legacy_names:
        records = [legacy(src, r, 0 if i in clean else ctx.rate) for i, r in enumerate(records)]
    if src.chance(100) and records:  # a record repeated verbatim
        records.append(dict(records[src.integer(0, len(records) - 1)]))
    quirks = _line_quirks(src, len(records), ctx.rate)
    return FileCase("jsonl_legacy" if legacy_names else "jsonl", name, records, clean, quirks=quirks)


def _valid_json(value: Any) -> Any:
    """NaN and lone surrogates replaced: in a one-document file they would make the whole file invalid
    JSON, which the fuzzer then only tries now and then."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8") if any("\ud800" <= c <= "\udfff" for c in value) else value
    if isinstance(value, list):
        return [_valid_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _valid_json(v) for k, v in value.items()}
    return value


def gen_page(src: Source, ctx: Context, name: str, n: int) -> FileCase:
    records, clean = _records(src, ctx, n, 250)
    if not src.chance(100):
        records = _valid_json(records)
    options = {"form": src.pick(("page", "page", "array", "page_no_paging")), "indent": src.chance(200)}
    if src.chance(ctx.rate // 2) and records:
        records.insert(len(records), src.pick((None, "ad", 5, [records[0]], [])))
    quirks = [(k, 0, src.integer(5, 95)) for k in ("cut_doc", "bom_start", "gzip", "ascii") if src.chance(60)]
    return FileCase("page", name, records, clean, options, quirks)


def gen_single(src: Source, ctx: Context, name: str) -> FileCase:
    records, clean = _records(src, ctx, 1, 300)
    if not src.chance(100):
        records = _valid_json(records)
    if src.chance(300):
        records[0]["_id"] = {"$oid": "%024x" % src.integer(0, 2**40)}
        if src.chance(500):
            records[0].pop("id", None)
            records[0].pop("ad_snapshot_url", None)
    if src.chance(ctx.rate // 4):
        records[0] = src.pick(({}, {"hello": "world"}, {"data": records[0]}, {"id": None}))
        clean = []
    quirks = [(k, 0, src.integer(5, 95)) for k in ("cut_doc", "bom_start", "gzip", "ascii") if src.chance(50)]
    return FileCase("single", name, records, clean, {}, quirks)


ID_HEADERS = ("id", "ad_id", "ad_archive_id", "archive_id", "ad_library_id", "Ad ID", "\ufeffid")
RANGE_STYLES = ("{f}", "{f}_lower|{f}_upper", "{f}.lower_bound|{f}.upper_bound", "{f}_min|{f}_max", "{f} Lower|{f} Upper")


def cell(src: Source, value: Any, style: int) -> str:
    """A value as a CSV cell: text as is, lists and dicts as JSON or as a Python literal."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return repr(value) if style else json.dumps(value, ensure_ascii=src.chance(500))
    if isinstance(value, bool):
        return src.pick(("True", "true", "1"))
    return repr(value) if isinstance(value, float) else str(value)


def _csv_columns(src: Source, ctx: Context, wide: bool) -> tuple[list[tuple[str, str]], bool]:
    """(header text, record field) for each column (``field`` may name a range bound, spend.lower_bound),
    and whether a second column may claim the id or page id."""
    cols = [(src.pick(ID_HEADERS), "id")] if not src.chance(ctx.rate // 6) else []
    cols += [("page_id", "page_id"), (src.pick(("page_name", "Page Name")), "page_name"),
             (src.pick(("ad_delivery_start_time", "delivery_start")), "ad_delivery_start_time"),
             (src.pick(("ad_creative_bodies", "ad_creative_body", "body")), "ad_creative_bodies")]
    if src.chance(600) or not cols or cols[0][1] != "id":
        cols.append((src.pick(("ad_snapshot_url", "snapshot_url")), "ad_snapshot_url"))
    optional = [(src.pick(("page_profile_uri", "page_url", "page_link")), "page_profile_uri"),
                (src.pick(("bylines", "funding_entity", "paid_for_by")), "bylines"),
                ("ad_creation_time", "ad_creation_time"), ("ad_delivery_stop_time", "ad_delivery_stop_time"),
                (src.pick(("ad_creative_link_titles", "ad_creative_link_title")), "ad_creative_link_titles"),
                ("currency", "currency"), ("languages", "languages"), ("publisher_platforms", "publisher_platforms"),
                ("notes", "ad_creative_link_descriptions")]
    for col in optional:
        if src.chance(500):
            cols.append(col)
    if not wide:
        if src.chance(500):
            cols.append((src.pick(("delivery_by_region", "region_distribution")), "delivery_by_region"))
        if src.chance(400):
            cols.append(("demographic_distribution", "demographic_distribution"))
    for f in ("spend", "impressions", "estimated_audience_size"):
        if src.chance(400):
            base = f if f != "estimated_audience_size" or src.chance(500) else "potential_reach"
            style = src.pick(RANGE_STYLES)
            if "|" in style:
                lo, hi = style.format(f=base).split("|")
                cols += [(lo, f"{f}.lower_bound"), (hi, f"{f}.upper_bound")]
            else:
                cols.append((style.format(f=base), f))
    ambiguous = src.chance(ctx.rate // 3)
    if ambiguous:
        cols.append((src.pick(("page_id", "Page ID", "unmapped column", "id")), src.pick(("page_id", "notes", "id"))))
    order = list(range(len(cols)))
    for i in range(len(order) - 1, 0, -1):  # a shuffle the source can shrink
        j = src.integer(0, i)
        order[i], order[j] = order[j], order[i]
    return [cols[i] for i in order], ambiguous


def _row_value(rec: dict, target: str) -> Any:
    if "." in target:
        base, bound = target.split(".", 1)
        value = rec.get(base, MISSING)
        if isinstance(value, dict):
            return value.get(bound, MISSING)
        return value if bound == "lower_bound" else MISSING
    return rec.get(target, MISSING)


def _side_rows(src: Source, records: list, clean: list, key: str, fields: tuple[str, ...], rate: int) -> list:
    rows = [[src.pick(("ad_id", "id", "ad_archive_id")), *fields, "percentage"]]
    for i, rec in enumerate(records):
        dist = rec.get(key)
        if not isinstance(dist, list) or not isinstance(rec.get("id"), str):
            continue
        for entry in dist:
            if isinstance(entry, dict):
                rows.append([rec["id"], *[cell(src, entry.get(f), 0) for f in fields], cell(src, entry.get("percentage"), 0)])
    if src.chance(rate):
        rows.insert(src.integer(1, len(rows)), list(rows[0]))  # a repeated header
    if src.chance(rate):
        rows.append(["1000000000000001", *fields])  # a cut row: one cell short
    if src.chance(rate):
        rows.append(["424242", *["x"] * len(fields), src.pick(PERCENTS[:20])])  # no such ad
    return rows


def gen_csv(src: Source, ctx: Context, name: str, n: int, wide: bool) -> FileCase:
    records, clean = _records(src, ctx, n, 250)
    cols, ambiguous = _csv_columns(src, ctx, wide)
    side: dict[str, list] = {}
    options: dict[str, Any] = {"delimiter": src.pick((",", "\t", ";")), "encoding": "utf-8"}
    if src.chance(80):
        options["encoding"] = "utf-16"
    in_main = {f for _, f in cols}
    if not wide:
        if "delivery_by_region" not in in_main and src.chance(800):
            side["regions"] = _side_rows(src, records, clean, "delivery_by_region", ("region",), ctx.rate)
        if "demographic_distribution" not in in_main and src.chance(500):
            side["demographics"] = _side_rows(src, records, clean, "demographic_distribution", ("age", "gender"), ctx.rate)
    if wide:
        wide_cols = []
        wide_cols.append(src.pick(("Ohio", "Texas", "region:Bavaria", "Ontario", "new york")))
        for _ in range(src.integer(0, 4)):
            wide_cols.append(src.pick(("Ohio", "Texas", "California", "region:Bavaria", "delivery_by_region.Guam", "Unknown",
                                       "Washington, District of Columbia", "Ontario", "new york")))
        if src.chance(500):
            for _ in range(src.integer(1, 4)):
                wide_cols.append(src.pick(("female 25-34", "25-34_male", "demographic_distribution.female.65+",
                                           "men 18-24", "unknown|13-17")))
        elif src.chance(400):
            wide_cols += ["age:18-24", "age:65+", "gender:female", "gender:male"]
        if src.chance(200) and wide_cols:
            wide_cols.append(wide_cols[0])  # the same region twice
        options["wide_regions"] = ("Ontario",)
        options["layout"] = src.pick(("auto", "wide"))
        cols += [(c, "wide:" + c) for c in wide_cols]
    header = [c for c, _ in cols]
    rows = [header]
    for i, rec in enumerate(records):
        style = 0 if i in clean else src.integer(0, 1)
        row = [cell(src, _row_value(rec, f), style) for _, f in cols if not f.startswith("wide:")]
        if wide:
            region_share = share_texts(src, len(header) - len(row))
            scale = src.pick((1, 100)) if i in clean else src.pick((1, 100, 1))
            for j, share in enumerate(region_share):
                value = f"{float(share) * scale:.4g}" + ("%" if scale == 100 and src.chance(300) else "")
                row.append(src.pick(WIDE_CELLS) if i not in clean and src.chance(ctx.rate) else value)
        rows.append(row)
    # clean rows stay certain only with a region source, one reading of each id, and no id column in doubt
    keys = [ads.id_text(rec.get("id"))[0] for rec in records]
    clean = [i for i in clean if keys.count(keys[i]) == 1 or not side]
    if ambiguous or not (wide or "delivery_by_region" in in_main or "regions" in side):
        clean = []
    quirks = []
    if src.chance(max(ctx.rate, 100)):
        for _ in range(src.integer(1, 1 + n // 8)):
            quirks.append((src.pick(("cut_row", "extra_cell", "blank", "repeat_header", "latin1_row", "unbalanced_quote",
                                     "control_row", "empty_cells")), src.integer(1, max(len(rows) - 1, 1)), src.integer(1, 99)))
    for kind in ("crlf", "bom_start", "no_final_newline", "gzip", "gzip_cut", "report_header"):
        if src.chance(50 if kind == "report_header" else 80):
            quirks.append((kind, 0, src.integer(10, 90)))
    return FileCase("wide" if wide else "csv", name, rows, [c + 1 for c in clean], options, quirks, side)


LAYOUTS = ("jsonl", "jsonl_legacy", "page", "single", "csv", "wide")


def gen_corpus(src: Source, records_per_file: int, layouts: tuple[str, ...] = LAYOUTS) -> Corpus:
    """One dump per entry of ``layouts``; ids and pages are shared across them (duplicates for the merge)."""
    ctx = Context(rate=src.pick((60, 200, 450, 800)))
    files = []
    for k, layout in enumerate(layouts):
        name = f"f{k:02d}_{layout}"
        n = src.integer(1, records_per_file)
        if layout in ("jsonl", "jsonl_legacy"):
            files.append(gen_jsonl(src, ctx, name, n, layout == "jsonl_legacy"))
        elif layout == "page":
            files.append(gen_page(src, ctx, name, n))
        elif layout == "single":
            files.append(gen_single(src, ctx, name))
        else:
            files.append(gen_csv(src, ctx, name, n, layout == "wide"))
    return Corpus(files)


# ---------------------------------------------------------------- writing


def _json_text(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes no UTF-8 reader accepts


def _finish(data: bytes, quirks: list) -> tuple[bytes, bool]:
    """Whole-file framing: byte-order mark, gzip, a gzip stream cut short. True when the cut lost data."""
    kinds = {q[0]: q for q in quirks}
    if "bom_start" in kinds:
        data = b"\xef\xbb\xbf" + data
    if "gzip_cut" in kinds:
        packed = gzip.compress(data, mtime=0)
        return packed[: max(12, len(packed) * kinds["gzip_cut"][2] // 100)], True
    if "gzip" in kinds:
        return gzip.compress(data, mtime=0), False
    return data, False


def write_jsonl(case: FileCase, path: Path) -> tuple[list | None, bool, int | None]:
    """Returns the reader's indices of the clean records, whether the file is damaged as a whole, and
    how many records the reader must count (None where the generator cannot tell)."""
    ascii_only = any(q[0] == "ascii" for q in case.quirks)
    lines: list[bytes] = []
    origin: list[int | None] = []  # record position of each line (None: inserted)
    damaged: set[int] = set()
    exact = True
    for i, rec in enumerate(case.records):
        lines.append(_encode(_json_text(rec, ascii_only)))
        origin.append(i)
    for kind, pos, param in sorted((q for q in case.quirks if q[0] not in FRAMING), key=lambda q: -q[1]):
        if pos >= len(lines):
            continue
        line = lines[pos]
        if kind == "cut_line":
            lines[pos] = line[: max(1, len(line) * param // 100)]
            damaged.add(origin[pos])
        elif kind == "garbage":
            lines.insert(pos, [b"[1, 2]", b'"just a string"', b"null", b"5", b"{not json", b"\x00\x01", b"}{",
                               b"\xff\xfe{}", b'{"id": 1e999}', DEEP.encode()][param % 10])
            origin.insert(pos, None)
        elif kind == "blank":
            lines.insert(pos, [b"", b"   ", b"\t", b"\r", b"\xef\xbb\xbf", b"\x0c", b" \xef\xbb\xbf "][param % 7])
            origin.insert(pos, None)
        elif kind == "bom_line":
            lines[pos] = b"\xef\xbb\xbf" + line
        elif kind == "double_bom":
            lines[pos] = b"\xef\xbb\xbf\xef\xbb\xbf" + line
            damaged.add(origin[pos])
        elif kind == "latin1_line":
            cut = line.find(b'": "')
            if param % 2 and cut > 0:  # Latin-1 bytes inside a string value
                lines[pos] = line[: cut + 4] + b"caf\xe9 " + line[cut + 4:]
            else:
                lines[pos] = line.decode("utf-8", "replace").encode("latin-1", "replace")
            damaged.add(origin[pos])
        elif kind == "raw_control":
            cut = line.find(b'": "')
            if cut > 0:
                lines[pos] = line[: cut + 4] + bytes([param % 32]) + line[cut + 4:]
                damaged.add(origin[pos])
                exact = exact and param % 32 != 10  # a raw newline splits the record in two
        elif kind == "dup_key":
            lines[pos] = b'{"id": "' + str(param).encode() + b'", ' + line[1:] if line.startswith(b"{") and line != b"{}" else line
            damaged.add(origin[pos])
        elif kind == "two_objects":
            lines[pos] = line + line
            damaged.add(origin[pos])
        elif kind == "nan_field":
            lines[pos] = b'{"unknown_number": NaN, ' + line[1:] if line.startswith(b"{") and line != b"{}" else line
            damaged.add(origin[pos])
    sep = b"\r\n" if any(q[0] == "crlf" for q in case.quirks) else b"\n"
    data = sep.join(lines) + (b"" if any(q[0] == "no_final_newline" for q in case.quirks) else sep)
    data, cut = _finish(data, case.quirks)
    path.write_bytes(data)
    if cut:
        return None, True, None
    if not exact:
        return None, False, None
    # the readers' numbering: non-blank lines in order (a BOM-only line is blank)
    indices, index = {}, 0
    for k, line in enumerate(lines):
        body = line.strip()
        while body.startswith(b"\xef\xbb\xbf"):
            body = body[3:].strip()
        if body:
            if origin[k] is not None:
                indices[origin[k]] = (index, origin[k] in damaged)
            index += 1
    clean = [indices[i][0] for i in case.clean if i in indices and not indices[i][1]]
    return clean, False, index


FRAMING = ("crlf", "bom_start", "no_final_newline", "gzip", "gzip_cut", "ascii", "report_header", "cut_doc")


def write_json_doc(case: FileCase, path: Path) -> tuple[list | None, bool, int | None]:
    ascii_only = any(q[0] == "ascii" for q in case.quirks)
    form = case.options.get("form", "single")
    if case.layout == "single":
        doc: Any = case.records[0]
    elif form == "array":
        doc = case.records
    else:
        doc = {"data": case.records}
        if form == "page":
            doc["paging"] = {"cursors": {"after": "QVFI"},
                             "next": f"https://graph.facebook.com/v19.0/ads_archive?after=QVFI&access_token={SECRET}"}
    text = json.dumps(doc, ensure_ascii=ascii_only, indent=2 if case.options.get("indent") else None)
    data = _encode(text)
    try:  # NaN in a field or a lone surrogate makes the whole document invalid JSON
        orjson.loads(data)
        invalid = False
    except orjson.JSONDecodeError:
        invalid = True
    cut = next((q for q in case.quirks if q[0] == "cut_doc"), None)
    if cut:
        data = data[: max(1, len(data) * cut[2] // 100)]
    data, lost = _finish(data, case.quirks)
    path.write_bytes(data)
    damage = bool(cut or lost or invalid)
    return (None, True, None) if damage else (list(case.clean), False, len(case.records))


def _csv_line(cells: list[str], delimiter: str) -> str:
    out = []
    for c in cells:
        if any(ch in c for ch in (delimiter, '"', "\n", "\r")) or c != c.strip(" "):
            c = '"' + c.replace('"', '""') + '"'
        out.append(c)
    return delimiter.join(out)


REPORT_HEADER = ["Page ID", "Page name", "Disclaimer", "Amount spent (USD)", "Number of ads in Library"]


def write_csv(case: FileCase, path: Path) -> tuple[list | None, bool, dict, int | None]:
    delim = case.options["delimiter"]
    rows = [list(r) for r in case.records]
    kinds = {q[0] for q in case.quirks}
    whole_damage = False
    if "report_header" in kinds:
        rows[0] = REPORT_HEADER
        whole_damage = True
    lines: list[bytes | str] = [_csv_line(r, delim) for r in rows]
    origin: list[int | None] = list(range(len(rows)))
    damaged: set[int] = set()
    exact = True
    for kind, pos, param in sorted((q for q in case.quirks if q[0] not in FRAMING), key=lambda q: -q[1]):
        if pos >= len(lines) or pos == 0:
            continue
        o = origin[pos]
        if o is None and kind not in ("blank", "repeat_header"):
            continue
        if kind == "cut_row":
            lines[pos] = _csv_line(rows[o][: max(1, len(rows[o]) * param // 100)], delim)
            damaged.add(o)
        elif kind == "extra_cell":
            lines[pos] = _csv_line(rows[o] + ["extra"], delim)
            damaged.add(o)
        elif kind == "blank":
            lines.insert(pos, ["", " ", delim * (len(rows[0]) - 1)][param % 3])
            origin.insert(pos, None)
        elif kind == "repeat_header":
            lines.insert(pos, _csv_line(rows[0], delim))
            origin.insert(pos, None)
        elif kind == "latin1_row":
            lines[pos] = _csv_line(rows[o], delim).encode("latin-1", "replace") + b"\xe9"
            damaged.add(o)
        elif kind == "unbalanced_quote":
            lines[pos] = '"' + _csv_line(rows[o], delim)
            damaged.add(o)
            exact = False  # the open quote swallows the lines after it
        elif kind == "control_row":
            lines[pos] = _csv_line([c + chr(param % 32) if c else c for c in rows[o]], delim)
            damaged.add(o)
            exact = exact and param % 32 not in (10, 13)
        elif kind == "empty_cells":
            lines[pos] = _csv_line(["" for _ in rows[o]], delim)
            origin[pos] = None  # an all-empty row is no record
    sep = "\r\n" if "crlf" in kinds else "\n"
    utf16 = case.options.get("encoding") == "utf-16"
    piece = "utf-16-le" if utf16 else "utf-8"
    chunks = [(line.decode("latin-1") if utf16 else line) if isinstance(line, bytes) else line for line in lines]
    chunks = [c if isinstance(c, bytes) else c.encode(piece, "surrogatepass" if not utf16 else "replace") for c in chunks]
    data = sep.encode(piece).join(chunks) + (b"" if "no_final_newline" in kinds else sep.encode(piece))
    framing = case.quirks
    if utf16:
        data = b"\xff\xfe" + data
        framing = [q for q in case.quirks if q[0] != "bom_start"]
    data, cut = _finish(data, framing)
    path.write_bytes(data)
    sides = {}
    for kind, side_rows in case.side.items():
        side_path = path.with_name(path.stem + ("_demos.csv" if kind == "demographics" else "_regions.csv"))
        side_path.write_bytes(_encode("\n".join(_csv_line(r, ",") for r in side_rows) + "\n"))
        sides[kind] = side_path
    if cut or not exact or whole_damage:
        return None, whole_damage or cut, sides, None
    # the reader's numbering: rows that are neither blank nor a repeated header, in order
    header_keys = [c.replace("\ufeff", "").strip().lower() for c in rows[0]]
    indices, index = {}, 0
    for k, line in enumerate(lines[1:], start=1):
        if isinstance(line, str):
            cells = next(csv.reader([line], delimiter=delim), [])
            if not any(c.strip() for c in cells) or [c.replace("\ufeff", "").strip().lower() for c in cells] == header_keys:
                continue
        if origin[k] is not None:
            indices[origin[k]] = (index, origin[k] in damaged)
        index += 1
    return [indices[i][0] for i in case.clean if i in indices and not indices[i][1]], False, sides, index


def write_corpus(corpus: Corpus, folder: Path) -> list[Written]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for case in corpus.files:
        if case.layout in ("jsonl", "jsonl_legacy"):
            path = folder / f"{case.name}.jsonl"
            clean, damage, n_in = write_jsonl(case, path)
            spec = DumpSpec(case.name, path)
        elif case.layout in ("page", "single"):
            path = folder / f"{case.name}.json"
            clean, damage, n_in = write_json_doc(case, path)
            spec = DumpSpec(case.name, path)
        else:
            path = folder / f"{case.name}.csv"
            clean, damage, sides, n_in = write_csv(case, path)
            spec = DumpSpec(case.name, path, demographics=sides.get("demographics"), regions=sides.get("regions"),
                            layout=case.options.get("layout", "auto"), wide_regions=case.options.get("wide_regions", ()))
        out.append(Written(case, spec, clean, damage, n_in))
    return out
