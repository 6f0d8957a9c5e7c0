"""Stream Ad Library dumps into Parquet: one job per dump file, then one merge that deduplicates.

Memory stays bounded: records are read one at a time and written in row groups of ``batch_rows``;
the merge keeps only two sorted arrays of 64-bit keys (ad id, content fingerprint), 16 bytes per ad.
A JSON document (an API page, a top-level array) is read in chunks too: its records are parsed one at
a time from a sliding window of text. The exceptions, by design, are a one-object JSON file (one ad,
parsed whole) and a CSV export's side tables (``*_demos.csv`` / ``*_regions.csv``, held as a dict keyed
by ad id).

Accepted inputs: docs/inputs.md, "Meta Ad Library dumps"; quarantine reasons and report counters: docs/quarantine.md.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpha.ads import arrow as ads_arrow
from alpha.ads import cleaning as ads
from alpha.ads import csv_layouts
from alpha.ads.cleaning import ADS_SCHEMA, QUARANTINE_SCHEMA, CleaningOptions, Reject
from alpha.ads.fingerprint import row_fingerprints
from alpha.core.io import PARQUET_OPTIONS_WITH_STATS, iter_parquet_batches

log = logging.getLogger("alpha.ads.ingest")

RAW_LIMIT = 2000  # characters of a bad record kept in quarantine (redacted)
MIN_ARROW_BLOCK = 64  # below this many lines, a block Arrow rejects is read record by record
JSONL_BLOCK_BYTES = 16 << 20  # JSON Lines are parsed in blocks of this size (bounds memory)
JSON_CHUNK_BYTES = 1 << 20  # a JSON document is read in chunks of this size (memory: a chunk and the record being read)
# The largest table, rewritten by every dump: the shared options with statistics, at zstd's fastest level.
ADS_PARQUET_OPTIONS = {**PARQUET_OPTIONS_WITH_STATS, "compression_level": 1}
MIN_KEPT_SHARE = 0.01  # a dump keeping fewer of its records than this fails its rule (ads.min_kept_share)
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
_LINE_BOM = re.compile(rb"(\A|\n)\xef\xbb\xbf")
CSV_DELIMITERS = (",", "\t", ";")
csv.field_size_limit(2**31 - 1)  # an ad body may be longer than the csv module's 128 KiB default

# CSV column aliases → the current API field (dotted names are range bounds).
CSV_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "ad_id", "ad_archive_id", "archive_id", "ad_library_id"),
    "_id": ("_id",),
    "page_id": ("page_id",),
    "page_profile_uri": ("page_profile_uri", "page_url", "page_link", "page_profile_url"),
    "page_name": ("page_name",),
    "bylines": ("bylines", "funding_entity", "paid_for_by"),
    "ad_creation_time": ("ad_creation_time", "created_time"),
    "ad_delivery_start_time": ("ad_delivery_start_time", "delivery_start"),
    "ad_delivery_stop_time": ("ad_delivery_stop_time", "delivery_stop"),
    "ad_creative_bodies": ("ad_creative_bodies", "ad_creative_body", "body"),
    "ad_creative_link_titles": ("ad_creative_link_titles", "ad_creative_link_title"),
    "ad_creative_link_captions": ("ad_creative_link_captions", "ad_creative_link_caption"),
    "ad_creative_link_descriptions": ("ad_creative_link_descriptions", "ad_creative_link_description"),
    "currency": ("currency",),
    "languages": ("languages",),
    "publisher_platforms": ("publisher_platforms",),
    "ad_snapshot_url": ("ad_snapshot_url", "snapshot_url"),
    "demographic_distribution": ("demographic_distribution",),
    "delivery_by_region": ("delivery_by_region", "region_distribution"),
    "spend": ("spend",),
    "impressions": ("impressions",),
    "estimated_audience_size": ("estimated_audience_size", "potential_reach"),
}
for _rng in ("spend", "impressions", "estimated_audience_size"):
    _legacy = ["potential_reach"] if _rng == "estimated_audience_size" else []
    for _bound, _short in (("lower_bound", ("lower", "min")), ("upper_bound", ("upper", "max"))):
        CSV_ALIASES[f"{_rng}.{_bound}"] = tuple(
            f"{base}{sep}{suffix}"
            for base in [_rng, *_legacy]
            for sep in (".", "_")
            for suffix in (_bound, *_short)
        )
SIDE_ID_ALIASES = ("ad_id", "id", "_id", "ad_archive_id")


class IngestError(RuntimeError):
    """A dump that is unusable as a whole (missing, undecodable, unknown schema, no records, or far
    too few records kept)."""


@dataclass(frozen=True)
class DumpSpec:
    name: str
    path: Path
    format: str | None = None  # jsonl | json | csv; inferred from the suffix when None
    demographics: Path | None = None  # CSV exports: side table keyed by ad id
    regions: Path | None = None
    columns: Mapping[str, str] = field(default_factory=dict)  # extra CSV column → API field
    layout: str = "auto"  # CSV: auto | long | wide (wide delivery columns, see alpha.ads.csv_layouts)
    wide_regions: tuple[str, ...] = ()  # CSV: extra column names that are region names (non-US)
    encoding: str | None = None  # CSV: None = UTF-8, or UTF-16 when the file starts with its BOM

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        suffixes = [s.lower() for s in self.path.suffixes if s.lower() != ".gz"]
        ext = suffixes[-1] if suffixes else ""
        fmt = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}.get(ext)
        if fmt is None:
            raise IngestError(f"{self.path}: cannot tell the format from the suffix; set format: jsonl|json|csv")
        return fmt


@dataclass
class RawRecord:
    index: int
    record: dict | None
    raw: str = ""
    error: str | None = None  # quarantine reason when the record itself could not be read


class _TolerantGzip(io.RawIOBase):
    """A gzip stream that ends quietly where a truncated file ends (``truncated`` is then True):
    everything decompressed before the cut is returned; the last, partial line is quarantined as a
    malformed record by the reader that splits lines."""

    def __init__(self, path: Path):
        self._gz = gzip.open(path, "rb")
        self.truncated = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.truncated:
            return 0
        try:
            data = self._gz.read1(len(buffer))  # one step: what came before a cut is never lost
        except (EOFError, gzip.BadGzipFile, OSError) as err:
            log.warning("%s: compressed stream ends early (%s); reading what was there", self._gz.name, err)
            self.truncated = True
            return 0
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gz.close()
        super().close()


def _open_binary(path: Path):
    """The file's bytes, gunzipped when it is gzip (by its first bytes, whatever its suffix)."""
    if not path.exists():
        raise IngestError(f"{path}: file not found")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return io.BufferedReader(_TolerantGzip(path), buffer_size=1 << 20)
    return open(path, "rb")


def _was_truncated(fh) -> bool:
    return bool(getattr(getattr(fh, "raw", None), "truncated", False))


def _strip_line_boms(data: bytes) -> bytes:
    """Byte-order marks at line starts (files concatenated from several downloads repeat them)."""
    return _LINE_BOM.sub(rb"\1", data) if UTF8_BOM in data else data


def _raw_text(raw: Any) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return ads.redact(text)[:RAW_LIMIT]


# ---------------------------------------------------------------- readers


def _line_content(line: bytes) -> bytes:
    """A JSON Lines line without the whitespace and byte-order marks around it (one per download,
    sometimes doubled): the same in the per-record and the vectorised path. Empty: a blank line."""
    line = line.strip()
    while line.startswith(UTF8_BOM):
        line = line[len(UTF8_BOM):].strip()
    return line


def _jsonl_record(index: int, line: bytes) -> RawRecord:
    line = _line_content(line)
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        return RawRecord(index, None, _raw_text(line), f"malformed_json: {err}")
    if isinstance(obj, dict):
        return RawRecord(index, obj)
    return RawRecord(index, None, _raw_text(line), "not_an_object")


def read_jsonl(spec: DumpSpec, notes: dict | None = None) -> Iterator[RawRecord]:
    with _open_binary(spec.path) as fh:
        index = 0
        for line in fh:
            if _line_content(line):
                yield _jsonl_record(index, line)
                index += 1
        if notes is not None and _was_truncated(fh):
            notes["truncated_input"] = True


_AD_FIELDS = frozenset(CSV_ALIASES) | frozenset(ads.LEGACY_FIELDS) | {ads.DOCUMENT_ID}


_JSON_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, no other
_JSON_DECODER = json.JSONDecoder()
_NEAR_END = 16  # a parse error this close to the end of the text read so far may be a value cut by the chunk end
_JSON_DEPTH = 1024  # orjson's nesting limit (json's own stops at Python's recursion limit)


class _JsonSyntax(ValueError):
    """Where a JSON document stops being JSON."""


class _JsonText:
    """A JSON document's text read ``chunk_bytes`` at a time: a window that drops what was parsed.

    Leading byte-order-mark bytes are dropped as ``read_json_pages`` always did; bytes that are not UTF-8
    become lone surrogates, which orjson then refuses, as it refused them in the whole document. ``keep``
    (an index into ``buf``) holds text from there on, for a value that is kept whole."""

    def __init__(self, fh, chunk_bytes: int):
        self._fh, self._chunk = fh, max(1, int(chunk_bytes))
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf, self.pos, self.base = "", 0, 0  # base: characters dropped before buf
        self.keep: int | None = None
        self.eof = self._started = False

    def _read(self, n: int) -> bytes:
        data = self._fh.read(n)
        if not self._started:
            self._started = True
            while len(data) < len(UTF8_BOM) and (more := self._fh.read(n)):
                data += more
            if data.startswith(UTF8_BOM):
                data = data.lstrip(UTF8_BOM)  # every leading byte of the mark, as bytes.lstrip did on the whole file
                while not data and (more := self._fh.read(n)):
                    data = more.lstrip(UTF8_BOM)
        return data

    def fill(self, at_least: int = 0) -> bool:
        """Append the next chunk (at least ``at_least`` bytes, so a long value is re-read O(log) times) and
        drop the text before ``pos`` (and ``keep``). False once the file is read to its end."""
        if self.eof:
            return False
        data = self._read(max(self._chunk, at_least))
        self.eof = not data
        drop = self.pos if self.keep is None else min(self.pos, self.keep)
        self.buf = self.buf[drop:] + self._decoder.decode(data, final=self.eof)
        self.base, self.pos = self.base + drop, self.pos - drop
        if self.keep is not None:
            self.keep -= drop
        return True

    def at(self) -> int:
        """Characters of the document before ``pos``."""
        return self.base + self.pos

    def error(self, message: str) -> _JsonSyntax:
        return _JsonSyntax(f"{message} at character {self.at()}")

    def peek(self) -> str:
        """The next character that is not JSON whitespace, with ``pos`` on it ('' at the end)."""
        while True:
            self.pos = _JSON_WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def expect(self, char: str, message: str) -> None:
        if self.peek() != char:
            raise self.error(message)
        self.pos += 1

    def value(self) -> tuple[Any, str]:
        """The value at ``pos`` (as json reads it) and its text; ``pos`` moves past it."""
        while True:
            start = self.pos
            try:
                found, end = _raw_decode(self.buf, start)
            except json.JSONDecodeError as err:
                cut = err.pos >= len(self.buf) - _NEAR_END or err.msg.startswith("Unterminated string")
                if cut and self.fill(len(self.buf) - start):
                    continue
                raise _JsonSyntax(f"{err.msg} at character {self.base + err.pos}") from None
            if type(found) in (int, float) and end > len(self.buf) - _NEAR_END and self.fill(len(self.buf) - start):
                continue  # a number may go on in the next chunk ("1" of "1e5")
            self.pos = end
            return found, self.buf[start:end]


def _raw_decode(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _JSON_DECODER.raw_decode(text, pos)
    except RecursionError:  # nesting orjson reads (up to _JSON_DEPTH levels) but the recursion limit stops
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + _JSON_DEPTH + 100)
        try:
            return _JSON_DECODER.raw_decode(text, pos)
        except RecursionError:
            raise _JsonSyntax(f"nested deeper than {_JSON_DEPTH} levels") from None
        finally:
            sys.setrecursionlimit(limit)


class _TwoDataKeys(ValueError):
    """A top-level object with a second "data" key after the one whose array was read."""


def _json_records(doc: _JsonText) -> Iterator[tuple[str, str]]:
    """The events of a JSON document: ``("item", text)`` for each element of the array that holds the
    records (a top-level array, or the array of a top-level object's ``data`` key: nested ``data`` keys
    are record fields), one at a time; then ``("whole", text)`` for a top-level value that holds no such
    array (one ad object, or not a dump), kept whole. Raises _JsonSyntax where the text is not JSON."""

    def items() -> Iterator[tuple[str, str]]:
        doc.pos += 1  # past "["
        if doc.peek() == "]":
            doc.pos += 1
            return
        while True:
            doc.peek()
            yield "item", doc.value()[1]
            char = doc.peek()
            if char == "]":
                doc.pos += 1
                return
            if char != ",":
                raise doc.error("Expecting ',' delimiter")
            doc.pos += 1

    first = doc.peek()
    whole = None
    if first == "[":
        yield from items()
    elif first == "{":
        doc.keep, streamed = doc.pos, False
        doc.pos += 1
        char = doc.peek()
        if char == "}":
            doc.pos += 1
        while char != "}":
            if char != '"':
                raise doc.error("Expecting property name enclosed in double quotes")
            key = doc.value()[0]
            doc.expect(":", "Expecting ':' delimiter")
            if key == "data" and streamed:
                raise _TwoDataKeys("a second top-level 'data' key after the 'data' array that was read")
            if key == "data" and doc.peek() == "[":
                doc.keep, streamed = None, True  # a page: what came before "data" is not needed
                yield from items()
            else:
                doc.peek()
                doc.value()
            char = doc.peek()
            if char == ",":
                doc.pos += 1
                char = doc.peek()
                if char == "}":
                    raise doc.error("Expecting property name enclosed in double quotes")
            elif char == "}":
                doc.pos += 1
            else:
                raise doc.error("Expecting ',' delimiter")
        if not streamed:
            whole, doc.keep = doc.buf[doc.keep:doc.pos], None
    elif first == "":
        raise doc.error("Expecting value")
    else:
        whole = doc.value()[1]
    if doc.peek():
        raise doc.error("Extra data")
    if whole is not None:
        yield "whole", whole


def _json_item(index: int, obj: Any) -> RawRecord:
    if isinstance(obj, dict):
        return RawRecord(index, obj)
    return RawRecord(index, None, _raw_text(orjson.dumps(obj)), "not_an_object")


def _first_line_is_a_record(spec: DumpSpec, limit: int) -> bool:
    """Whether the file's first non-blank line is one JSON object (read at most ``limit`` bytes of it:
    a longer line holds more than the document's first value, so it is not one)."""
    with _open_binary(spec.path) as fh:
        while (line := fh.readline(limit)) and not line.strip():
            pass
    if len(line) >= limit and not line.endswith(b"\n"):
        return False
    return _jsonl_record(0, line).record is not None


def read_json_pages(spec: DumpSpec, notes: dict | None = None, chunk_bytes: int | None = None) -> Iterator[RawRecord]:
    """One API page (``{"data": [...], "paging": ...}``), a plain JSON array of ads, or one ad object
    (a document store's one-document-per-file export). A ``.json`` file that turns out to hold JSON
    Lines is read as JSON Lines (``notes["format_detected"]``).

    Streamed: the file is read ``chunk_bytes`` (default JSON_CHUNK_BYTES) at a time and the records of
    the page's ``data`` array (or of the top-level array) are parsed one at a time, each by orjson as the
    whole document was before; memory is a chunk and the record being read, not the file. Keys around
    ``data`` are parsed and skipped. A document that is not valid JSON stops the job as before (the
    message names the character where it stops); the records before that point were already handed on,
    and the job fails all the same. A second top-level ``data`` key after the array was read stops the
    job too (a whole-document parse kept the last one)."""
    index = 0
    doc = None
    try:
        with _open_binary(spec.path) as fh:
            doc = _JsonText(fh, chunk_bytes or JSON_CHUNK_BYTES)
            for kind, text in _json_records(doc):
                found = orjson.loads(text)
                if kind == "item":
                    yield _json_item(index, found)
                    index += 1
                    continue
                if isinstance(found, dict) and isinstance(found.get("data"), list):
                    items = found["data"]
                elif isinstance(found, dict) and not _AD_FIELDS.isdisjoint(found) and "data" not in found:
                    if notes is not None:
                        notes["single_object"] = True
                    items = [found]
                elif isinstance(found, list):
                    items = found
                else:
                    raise IngestError(f"{spec.path}: expected an API page with a 'data' list, a JSON array of ads or one ad object")
                for obj in items:
                    yield _json_item(index, obj)
                    index += 1
        return
    except _TwoDataKeys as err:
        raise IngestError(f"{spec.path}: {err}; the reader streams the first one") from None
    except (_JsonSyntax, orjson.JSONDecodeError) as err:
        failure = err
    limit = (4 * doc.at() if doc is not None else 0) + (1 << 20)  # bytes: the first value and more
    if index == 0 and _first_line_is_a_record(spec, limit):
        if notes is not None:
            notes["format_detected"] = "jsonl"
        log.warning("%s: not one JSON document but JSON Lines; read as JSON Lines", spec.path.name)
        yield from read_jsonl(spec, notes)
        return
    raise IngestError(f"{spec.path}: not valid JSON ({failure}); JSON Lines dumps need a .jsonl suffix") from None


def _map_columns(header: list[str], extra: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    lookup = {alias: canonical for canonical, aliases in CSV_ALIASES.items() for alias in aliases}
    lookup.update({k.lower(): v for k, v in extra.items()})
    mapping, unmapped = {}, []
    for col in header:
        key = csv_layouts.header_key(col)
        key = key if key in lookup else key.replace(" ", "_")  # "Page ID" as spreadsheets title it
        if key in lookup:
            mapping[col] = lookup[key]
        else:
            unmapped.append(col)
    return mapping, unmapped


def _read_side_table(path: Path, keys: tuple[str, ...]) -> tuple[dict[str, list[dict]], set[str]]:
    """Rows by ad id, and the ids with a row holding bytes that are not text (their ads are quarantined)."""
    table: dict[str, list[dict]] = {}
    undecodable: set[str] = set()
    with CsvText(path, None) as (fh, delimiter):
        reader = csv.reader(fh, delimiter=delimiter)
        header = [csv_layouts.header_key(c) for c in next(reader, [])]
        id_col = next((i for i, c in enumerate(header) if c in SIDE_ID_ALIASES), None)
        missing = [k for k in (*keys, "percentage") if k not in header]
        if id_col is None or missing:
            raise IngestError(f"{path}: side table needs an ad id column and {', '.join((*keys, 'percentage'))}")
        cols = [header.index(k) for k in (*keys, "percentage")]
        for row in reader:
            if len(row) != len(header) or [csv_layouts.header_key(c) for c in row] == header:
                continue  # a repeated header (concatenated downloads) or a cut line: joins nothing
            ad_id = ads.id_text(row[id_col])[0]
            if ad_id and any(_SURROGATE.search(c) for c in row):
                undecodable.add(ad_id)
            elif ad_id:
                table.setdefault(ad_id, []).append({k: row[i] for k, i in zip((*keys, "percentage"), cols)})
    return table, undecodable


class CsvText:
    """A CSV file as text: UTF-16 when it starts with a UTF-16 byte-order mark, otherwise the declared
    encoding or UTF-8 (a leading BOM dropped). Undecodable bytes are kept as escapes so that the row
    holding them is quarantined (``bad_encoding``) instead of stopping the file. The delimiter is the
    one of ``,`` tab ``;`` that the header line holds most of (ties: the comma)."""

    def __init__(self, path: Path, encoding: str | None):
        self.path, self.encoding, self.truncated = Path(path), encoding, False

    def __enter__(self) -> tuple[io.TextIOWrapper, str]:
        self._fb = _open_binary(self.path)
        head = self._fb.peek(1 << 16)
        if self.encoding is None:
            self.encoding = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
        first = head.decode(self.encoding, "replace").splitlines()[:1] or [""]
        delimiter = max(CSV_DELIMITERS, key=lambda d: (first[0].count(d), d == ","))
        self.fh = io.TextIOWrapper(self._fb, encoding=self.encoding, errors="surrogateescape", newline="")
        return self.fh, delimiter

    def __exit__(self, *exc) -> None:
        self.truncated = _was_truncated(self._fb)
        self.fh.close()


_SURROGATE = re.compile("[\udc80-\udcff]")


def _csv_rows(reader) -> Iterator[tuple[list[str] | None, str | None]]:
    """(cells, None) per row, or (None, error) for a row the csv module cannot read; reading goes on."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield None, str(err)
            continue
        yield row, None


def _id_column_value(rec: dict, target: str, value: str) -> None:
    """Several columns may map to one id field (a mangled ``page_id`` beside a text copy): the first
    value that is a usable id wins."""
    if target not in rec or ads.id_text(rec[target])[1] not in ("ok", "other"):
        rec[target] = value


def read_csv(spec: DumpSpec, unmapped_out: list[str], notes: dict | None = None) -> Iterator[RawRecord]:
    notes = notes if notes is not None else {}
    demos, bad_demos = _read_side_table(spec.demographics, ("age", "gender")) if spec.demographics else ({}, set())
    regions, bad_regions = _read_side_table(spec.regions, ("region",)) if spec.regions else ({}, set())
    text = CsvText(spec.path, spec.encoding)
    with text as (fh, delimiter):
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise IngestError(f"{spec.path}: empty CSV")
        kind = csv_layouts.report_layout(header)
        if kind:
            raise IngestError(
                f"{spec.path}: this is an Ad Library Report download ({kind}), not an ad dump: it holds totals, "
                "not ads. The workflow needs one record per ad: Ad Library API results (JSON Lines or JSON "
                "pages) or a CSV export with one row per ad (an id or ad_snapshot_url column, page_id, "
                "ad_creative_bodies, delivery_by_region ...). Remove it from ads.dumps.")
        mapping, unmapped = _map_columns(header, spec.columns)
        wide = csv_layouts.WideColumns()
        if spec.layout != "long":
            skip = [i for i, col in enumerate(header) if col in mapping]
            wide = csv_layouts.wide_columns(header, skip, spec.wide_regions)
            if spec.layout == "wide" and not wide:
                raise IngestError(f"{spec.path}: layout wide, but no column names a region, age band or gender")
            unmapped = [col for i, col in enumerate(header) if col not in mapping and i not in wide.indices]
            if wide:
                notes["wide_columns"] = {"regions": len(wide.regions), "demographic_cells": len(wide.cells),
                                         "ages": len(wide.ages), "genders": len(wide.genders)}
        unmapped_out.extend(unmapped)
        if "id" not in mapping.values() and "ad_snapshot_url" not in mapping.values() and "_id" not in mapping.values():
            raise IngestError(f"{spec.path}: no ad id column among {header}; map one with ads.dumps[].columns")
        if unmapped:
            log.warning("%s: columns not mapped to any Ad Library field (kept out of the table): %s", spec.path.name, unmapped)
        header_keys = [csv_layouts.header_key(c) for c in header]
        counts: Counter[str] = Counter()
        index = -1
        for row, error in _csv_rows(reader):
            if row is not None and row and row[0].startswith("\ufeff"):
                row[0] = row[0].lstrip("\ufeff")
            if row is not None and [csv_layouts.header_key(c) for c in row] == header_keys:
                counts["repeated_headers"] += 1  # concatenated downloads: not a record
                continue
            if row is not None and not any(c.strip() for c in row):
                continue  # a blank line
            index += 1
            line = delimiter.join(row) if row is not None else ""
            if _SURROGATE.search(line):  # undecodable bytes (kept as escapes by CsvText) shown as U+FFFD
                line = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raw = _raw_text(line)
            if error is not None:
                yield RawRecord(index, None, raw, f"malformed_row: {error}")
                continue
            if len(row) != len(header):
                yield RawRecord(index, None, raw,
                                f"malformed_row: {len(row)} cells, the header has {len(header)} (a cut or misaligned line)")
                continue
            if any(_SURROGATE.search(c) for c in row):
                yield RawRecord(index, None, raw, f"bad_encoding: bytes that are not {text.encoding} text")
                continue
            rec: dict[str, Any] = {}
            for col, value in zip(header, row):
                target = mapping.get(col)
                if target is None or value == "":
                    continue
                if "." in target:
                    base, bound = target.split(".", 1)
                    rec.setdefault(base, {})[bound] = value
                elif target == "ad_creative_bodies":
                    rec[target] = ads.parse_list_cell(value)  # JSON or Python-literal list, or one body
                elif target in ("id", "page_id"):
                    _id_column_value(rec, target, value)
                else:
                    rec[target] = value
            if wide:
                wide_regions, wide_demos, from_marginals = csv_layouts.wide_values(wide, row)
                if wide_regions and not rec.get("delivery_by_region"):
                    rec["delivery_by_region"] = wide_regions
                    counts["wide_regions"] += 1
                if wide_demos and not rec.get("demographic_distribution"):
                    rec["demographic_distribution"] = wide_demos
                    counts["wide_demographics"] += 1
                    counts["wide_demographics_from_marginals"] += from_marginals
            ad_id = ads.resolve_ad_id(rec.get("id"), rec.get("ad_snapshot_url"), rec.get("_id"))
            if ad_id:
                if (("demographic_distribution" not in rec and ad_id in bad_demos)
                        or ("delivery_by_region" not in rec and ad_id in bad_regions)):
                    yield RawRecord(index, None, raw, f"bad_encoding: a side-table row of ad {ad_id} holds bytes that are not text")
                    continue
                if "demographic_distribution" not in rec and ad_id in demos:
                    rec["demographic_distribution"] = demos[ad_id]
                if "delivery_by_region" not in rec and ad_id in regions:
                    rec["delivery_by_region"] = regions[ad_id]
            yield RawRecord(index, rec, raw)
    notes.update({k: v for k, v in sorted(counts.items()) if v})
    if text.truncated:
        notes["truncated_input"] = True


def read_records(spec: DumpSpec, unmapped_out: list[str], notes: dict | None = None) -> Iterator[RawRecord]:
    fmt = spec.resolved_format
    if fmt == "jsonl":
        return read_jsonl(spec, notes)
    if fmt == "json":
        return read_json_pages(spec, notes)
    if fmt == "csv":
        return read_csv(spec, unmapped_out, notes)
    raise IngestError(f"{spec.path}: unknown format {fmt!r} (jsonl, json or csv)")


def _media_rows(spec: DumpSpec) -> Iterator[dict | None]:
    """Each row of a media verbalisation file as a dict (None for a row that cannot be read)."""
    fmt = spec.resolved_format
    if fmt in ("jsonl", "json"):
        for rec in read_jsonl(spec) if fmt == "jsonl" else read_json_pages(spec):
            yield rec.record
        return
    with CsvText(spec.path, None) as (fh, delimiter):
        reader = csv.reader(fh, delimiter=delimiter)
        header = [csv_layouts.header_key(c) for c in next(reader, [])]
        for row, _ in _csv_rows(reader):
            yield dict(zip(header, row)) if row is not None and len(row) == len(header) else None


def load_media(path: Path | None) -> dict[str, str]:
    """Media verbalisations: JSON Lines, JSON (a list, or an API-style page) or CSV with an ad id column
    (``ad_id`` or ``id``) and ``verbalisation`` (or ``media_verbalisation``). Rows without both are
    counted in the log, never silently dropped."""
    if path is None:
        return {}
    spec = DumpSpec("media", Path(path))
    media: dict[str, str] = {}
    unusable = 0
    for rec in _media_rows(spec):
        ad_id = rec and rec.get("id", rec.get("ad_id"))
        text = rec and (rec.get("verbalisation") or rec.get("media_verbalisation"))
        if ad_id and text:
            media[str(ad_id).strip()] = str(text)
        else:
            unusable += 1
    if unusable:
        log.warning("media verbalisations: %d rows of %s without an ad id and a verbalisation were skipped",
                    unusable, spec.path.name)
    log.info("media verbalisations: %d ads from %s", len(media), spec.path.name)
    return media


# ---------------------------------------------------------------- writing


class BatchWriter:
    """Accumulates rows column-wise and writes one Parquet row group per ``batch_rows``.

    List columns are kept flat (values + offsets) so building the Arrow arrays stays in C.
    """

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int):
        self.path, self.schema, self.batch_rows = Path(path), schema, batch_rows
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.path, schema, **ADS_PARQUET_OPTIONS)
        self._lists = [f.name for f in schema if pa.types.is_list(f.type)]
        self._scalars = [f.name for f in schema if f.name not in self._lists]
        self._reset()
        self.rows = 0

    def _reset(self) -> None:
        self._n = 0
        self._cols: dict[str, list] = {name: [] for name in self._scalars}
        self._flat: dict[str, list] = {name: [] for name in self._lists}
        self._offsets: dict[str, list[int]] = {name: [0] for name in self._lists}

    def add(self, row: Mapping[str, Any]) -> None:
        for name, col in self._cols.items():
            col.append(row[name])
        for name, flat in self._flat.items():
            flat.extend(row[name])
            self._offsets[name].append(len(flat))
        self._n += 1
        if self._n >= self.batch_rows:
            self.flush()

    def write_table(self, table: pa.Table) -> None:
        self.flush()
        if table.num_rows:
            self._writer.write_table(table.select(self.schema.names).cast(self.schema))
            self.rows += table.num_rows

    def flush(self) -> None:
        if not self._n:
            return
        arrays = []
        for f in self.schema:
            if f.name in self._flat:
                values = pa.array(self._flat[f.name], type=f.type.value_type)
                arrays.append(pa.ListArray.from_arrays(pa.array(self._offsets[f.name], pa.int32()), values, type=f.type))
            else:
                arrays.append(pa.array(self._cols[f.name], type=f.type))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += self._n
        self._reset()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _progress(name: str, n: int, started: float) -> None:
    rate = n / max(time.perf_counter() - started, 1e-9)
    log.info("%s: %d records read (%.0f/s)", name, n, rate)


# ---------------------------------------------------------------- one dump


class _DumpSink:
    """Where one dump's records go: kept rows, quarantine rows, and the counts for the report."""

    def __init__(self, source: str, kept: BatchWriter, bad: BatchWriter, options: CleaningOptions, media):
        self.source, self.kept, self.bad, self.options, self.media = source, kept, bad, options, media
        self.reasons: Counter[str] = Counter()
        self.id_sources: Counter[str] = Counter()
        self.page_id_sources: Counter[str] = Counter()
        self.unparsed_dates: Counter[str] = Counter()  # kept ads with a date field in no accepted form
        self.n_in = self.n_kept = self.n_objects = self.n_multi = 0

    def quarantine(self, index: int, ad_id: str | None, reason: str, detail: str, raw: str) -> None:
        self.reasons[reason] += 1
        self.bad.add(dict(source_file=self.source, source_record=index, ad_id=ad_id, reason=reason, detail=ads.redact(detail), raw=raw))

    def record(self, raw: RawRecord) -> None:
        """The per-record path (every format; JSON Lines blocks Arrow could not parse)."""
        self.n_in += 1
        if raw.record is None:
            reason, _, detail = (raw.error or "malformed_json").partition(": ")
            self.quarantine(raw.index, None, reason, detail, raw.raw)
            return
        self.n_objects += 1
        try:
            row = ads.normalise_record(raw.record, self.options, self.media)
        except Reject as rej:
            self.quarantine(raw.index, rej.ad_id, rej.reason, rej.detail, raw.raw or _raw_text(orjson.dumps(raw.record, default=str)))
            return
        row["source_file"], row["source_record"] = self.source, raw.index
        self.id_sources[row["id_source"]] += 1
        self.page_id_sources[row["page_id_source"]] += 1
        self.unparsed_dates.update(row["unparsed_dates"])
        self.n_multi += row["n_frames"] > 1
        self.kept.add(row)
        self.n_kept += 1

    def block(self, table: pa.Table, indices: list[int], lines: list[bytes]) -> None:
        """The vectorised path: a block of JSON Lines that Arrow parsed."""
        rows, kept_rows, rejects = ads_arrow.clean_block(table, self.options, self.media)
        self.n_in += len(indices)
        self.n_objects += len(indices)
        for row, rej in rejects:
            self.quarantine(indices[row], rej.ad_id, rej.reason, rej.detail, _raw_text(lines[row]))
        if rows.num_rows:
            rows = rows.append_column("source_file", pa.array([self.source] * rows.num_rows, pa.string()))
            rows = rows.append_column("source_record", pa.array(np.asarray(indices)[kept_rows], pa.int64()))
            for counter, column in ((self.id_sources, "id_source"), (self.page_id_sources, "page_id_source")):
                counter.update({k["values"]: k["counts"] for k in pc.value_counts(rows.column(column)).to_pylist()})
            for key in ads.DATE_FIELDS:
                self.unparsed_dates[key] += int(pc.sum(rows.column(f"unparsed:{key}")).as_py() or 0)
            self.kept.write_table(rows)
            self.n_kept += rows.num_rows
            self.n_multi += int(pc.sum(pc.greater(rows.column("n_frames"), 1)).as_py() or 0)


def _jsonl_blocks(spec: DumpSpec, block_bytes: int, notes: dict) -> Iterator[tuple[list[int], list[bytes], memoryview]]:
    """Blocks of whole lines, about ``block_bytes`` each: (record indices, non-blank lines, the
    block's bytes). Blank lines are not records; byte-order marks at line starts are dropped, as
    the per-record path drops them. Memory is bounded by the block size."""
    index = 0
    tail = b""
    with _open_binary(spec.path) as fh:
        while True:
            chunk = fh.read(block_bytes)
            data = tail + chunk if tail else chunk
            cut = len(data) if not chunk else data.rfind(b"\n") + 1
            if cut == 0 and chunk:  # one line longer than the block: read on
                tail = data
                continue
            block, tail = memoryview(data)[:cut], data[cut:]
            text = bytes(block)
            if b"\xef" in text and UTF8_BOM in text:  # memchr first: 0xEF is rare in ad text
                text = _strip_line_boms(text)
                block = memoryview(text)
                lines = [line for line in text.split(b"\n") if _line_content(line)]
            else:  # no byte-order mark: a blank line is plain whitespace
                lines = [line for line in text.split(b"\n") if line.strip()]
            if lines:
                yield list(range(index, index + len(lines))), lines, block
                index += len(lines)
            if not chunk:
                if _was_truncated(fh):
                    notes["truncated_input"] = True
                return


def _ingest_jsonl(spec: DumpSpec, sink: _DumpSink, block_bytes: int, progress: Callable[[int], None], notes: dict) -> None:
    """Arrow parses whole blocks; a block with a line it rejects is bisected so only the
    offending lines (at most MIN_ARROW_BLOCK around each) take the per-record path."""

    def handle(indices: list[int], lines: list[bytes], data) -> None:
        try:
            table = ads_arrow.parse_block(data if data is not None else b"\n".join(lines))
            if table.num_rows != len(lines):
                raise pa.ArrowInvalid("row count differs from line count")
        except pa.ArrowInvalid:
            if len(lines) > MIN_ARROW_BLOCK:
                half = len(lines) // 2
                handle(indices[:half], lines[:half], None)
                handle(indices[half:], lines[half:], None)
                return
            for index, line in zip(indices, lines):
                sink.record(_jsonl_record(index, line))
            return
        sink.block(table, indices, lines)

    for indices, lines, data in _jsonl_blocks(spec, block_bytes, notes):
        handle(indices, lines, data)
        progress(sink.n_in)


def ingest_dump(
    spec: DumpSpec,
    out_ads: Path,
    out_quarantine: Path,
    options: CleaningOptions,
    media: Mapping[str, str] | None = None,
    batch_rows: int = 10_000,
    progress_every: int = 100_000,
    vectorised: bool = True,
    min_kept_share: float = MIN_KEPT_SHARE,
) -> dict:
    """Parse and clean one dump; kept rows → ``out_ads``, failures → ``out_quarantine``; returns counts.

    JSON Lines go through Arrow's vectorised path unless ``vectorised`` is False (the per-record
    path, which the tests use as the reference the fast path must match). A dump that keeps no
    record, or fewer than ``min_kept_share`` of its records, raises IngestError with the counts by
    reason (``min_kept_share=0`` turns the check off).
    """
    source = spec.path.name
    unmapped: list[str] = []
    started = time.perf_counter()
    next_report = [progress_every]

    def progress(n: int) -> None:
        if n >= next_report[0]:
            _progress(source, n, started)
            next_report[0] = (n // progress_every + 1) * progress_every

    notes: dict[str, Any] = {}
    try:
        with BatchWriter(out_ads, ADS_SCHEMA, batch_rows) as kept, BatchWriter(out_quarantine, QUARANTINE_SCHEMA, batch_rows) as bad:
            sink = _DumpSink(source, kept, bad, options, media)
            if vectorised and spec.resolved_format == "jsonl":
                _ingest_jsonl(spec, sink, JSONL_BLOCK_BYTES, progress, notes)
            else:
                for raw in read_records(spec, unmapped, notes):
                    sink.record(raw)
                    progress(sink.n_in)
    except UnicodeDecodeError as err:
        raise IngestError(f"{spec.path}: not {spec.encoding or 'UTF-8'} text ({err}); "
                          "set ads.dumps[].encoding or re-encode the file") from None
    if sink.n_in == 0:
        raise IngestError(f"{spec.path}: no records in the file")
    if sink.n_objects == 0:
        raise IngestError(f"{spec.path}: none of its {sink.n_in} records could be parsed (wrong format?)")
    _progress(source, sink.n_in, started)
    if notes.get("truncated_input"):
        log.warning("%s: the file ends in the middle of its compressed stream; its last line is quarantined", source)
    report = {
        "dump": spec.name,
        "file": source,
        "format": spec.resolved_format,
        "in": sink.n_in,
        "parsed_kept": sink.n_kept,
        "quarantined": sum(sink.reasons.values()),
        "quarantined_by_reason": dict(sorted(sink.reasons.items())),
        "multi_frame_merged": sink.n_multi,
        "unmapped_columns": unmapped,
        "id_sources": dict(sorted(sink.id_sources.items())),
        "page_id_sources": dict(sorted(sink.page_id_sources.items())),
        "unparsed_dates": {k: v for k, v in sorted(sink.unparsed_dates.items()) if v},
        **notes,
    }
    share = sink.n_kept / sink.n_in
    if min_kept_share > 0 and (sink.n_kept == 0 or share < min_kept_share):
        raise IngestError(
            f"{spec.path}: kept {sink.n_kept} of {sink.n_in} records ({share:.1%}, below ads.min_kept_share="
            f"{min_kept_share:g}); quarantined by reason: {report['quarantined_by_reason']}. Check the file's layout "
            "(ads.dumps[].columns, layout) or lower ads.min_kept_share for this dump if that yield is expected.")
    return report


# ---------------------------------------------------------------- merge + dedupe


class SeenKeys:
    """A growing set of uint64 keys kept as one sorted array (8 bytes per key, vectorised lookups)."""

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._keys)

    def seen(self, keys: np.ndarray) -> np.ndarray:
        if not len(self._keys):
            return np.zeros(len(keys), dtype=bool)
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[pos] == keys

    def add(self, keys: np.ndarray) -> None:
        """Insert new keys in O(len(self) + len(keys)): no re-sort of what is already held."""
        new = np.unique(keys)
        new = new[~self.seen(new)]
        self._keys = np.insert(self._keys, np.searchsorted(self._keys, new), new)


def _first_occurrence(keys: np.ndarray) -> np.ndarray:
    _, first = np.unique(keys, return_index=True)
    mask = np.zeros(len(keys), dtype=bool)
    mask[first] = True
    return mask


def _id_keys(ad_ids: pa.Array) -> np.ndarray:
    """64-bit keys of ad ids, the same for an id whatever batch it is in (numeric or not)."""
    return row_fingerprints(pa.table({"ad_id": ad_ids}), ["ad_id"])


# What makes two records the same ad when their ids differ.
CONTENT_COLUMNS = ["page_id", "body", "delivery_start", "demo_age", "demo_gender", "demo_share", "region_name", "region_share"]

DUPLICATES_SCHEMA = pa.schema(
    [("source_file", pa.string()), ("source_record", pa.int64()), ("ad_id", pa.string()), ("key", pa.string())]
)


def merge_dumps(
    parts: list[tuple[Path, Path, dict]],
    out_ads: Path,
    out_quarantine: Path,
    out_duplicates: Path,
    batch_rows: int = 10_000,
) -> dict:
    """Concatenate per-dump tables in config order, dropping duplicates; returns the ingest report.

    A record is a duplicate when its ad id or its content fingerprint (page, body, start date,
    delivery) occurred in any earlier record: the first occurrence, in config order, is kept.
    """
    seen_ids, seen_content = SeenKeys(), SeenKeys()
    files: dict[str, dict] = {}
    with BatchWriter(out_ads, ADS_SCHEMA, batch_rows) as kept, BatchWriter(
        out_quarantine, QUARANTINE_SCHEMA, batch_rows
    ) as bad, BatchWriter(out_duplicates, DUPLICATES_SCHEMA, batch_rows) as dups:
        for ads_path, quarantine_path, report in parts:
            n_dup = n_kept = 0
            for batch in iter_parquet_batches(ads_path, batch_rows):
                ids = _id_keys(batch.column("ad_id"))
                content = row_fingerprints(batch, CONTENT_COLUMNS)
                dup_id = seen_ids.seen(ids) | ~_first_occurrence(ids)
                dup_content = seen_content.seen(content) | ~_first_occurrence(content)
                keep = ~(dup_id | dup_content)
                seen_ids.add(ids)
                seen_content.add(content)
                table = pa.Table.from_batches([batch])
                kept.write_table(table.filter(pa.array(keep)))
                dropped = table.filter(pa.array(~keep))
                if dropped.num_rows:
                    key = np.where(dup_id[~keep], "ad_id", "content")
                    dups.write_table(
                        pa.table(
                            {
                                "source_file": dropped.column("source_file"),
                                "source_record": dropped.column("source_record"),
                                "ad_id": dropped.column("ad_id"),
                                "key": pa.array(key.tolist(), pa.string()),
                            }
                        )
                    )
                n_dup += int((~keep).sum())
                n_kept += int(keep.sum())
            for qbatch in iter_parquet_batches(quarantine_path, batch_rows):
                bad.write_table(pa.Table.from_batches([qbatch]))
            entry = dict(report, duplicates=n_dup, kept=n_kept)
            entry.pop("parsed_kept")
            if entry["in"] != entry["kept"] + entry["quarantined"] + entry["duplicates"]:
                raise AssertionError(f"record accounting broken for {report['dump']}: {entry}")
            files[report["dump"]] = entry
    totals = {k: sum(f[k] for f in files.values()) for k in ("in", "kept", "quarantined", "duplicates", "multi_frame_merged")}
    by_reason: Counter[str] = Counter()
    for f in files.values():
        by_reason.update(f["quarantined_by_reason"])
    totals["quarantined_by_reason"] = dict(sorted(by_reason.items()))
    for key in ("id_sources", "page_id_sources"):
        summed: Counter[str] = Counter()
        for f in files.values():
            summed.update(f.get(key, {}))
        totals[key] = dict(sorted(summed.items()))
    log.info("merged %d files: %s", len(files), totals)
    return {"files": files, "totals": totals, "invariant": "in == kept + quarantined + duplicates"}
