"""One Ad Library record → one clean row (or a `Reject` with the reason).

Every dump format (JSON Lines, JSON pages, CSV exports, legacy field names) is first turned into a
dict with the *current* API field names; `normalise_record` then does all the cleaning, so the
rules are written once. The output row layout is `ADS_SCHEMA`.
"""
from __future__ import annotations

import ast
import datetime as dt
import json
import re
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Iterable, Mapping

import pyarrow as pa

# Legacy (pre-2021) API names → current names.
LEGACY_FIELDS = {
    "ad_creative_body": "ad_creative_bodies",
    "ad_creative_link_title": "ad_creative_link_titles",
    "ad_creative_link_caption": "ad_creative_link_captions",
    "ad_creative_link_description": "ad_creative_link_descriptions",
    "region_distribution": "delivery_by_region",
    "potential_reach": "estimated_audience_size",
    "funding_entity": "bylines",
    "ad_id": "id",
    "_id": "id",
    "ad_archive_id": "id",
}

# The characters str.split() treats as whitespace, spelled out so that the vectorised twin
# (alpha.ads_arrow, RE2 syntax) uses exactly the same set.
WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
URL_PATTERN = "(?:https?://|www\\.)[^<>\"'" + WHITESPACE + "]+"
URL_RE = re.compile(URL_PATTERN, re.IGNORECASE)
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Any access_token (or its value) in free text or a URL query; values run to the next delimiter.
TOKEN_RE = re.compile(r"[?&]?access_token=[^&#\s\"'<>]*", re.IGNORECASE)
SNAPSHOT_ID_RE = re.compile(r"[?&]id=(\d+)")

ADS_SCHEMA = pa.schema(
    [
        ("ad_id", pa.string()),
        ("page_id", pa.string()),
        ("page_name", pa.string()),
        ("bylines", pa.string()),
        ("body", pa.string()),
        ("n_frames", pa.int16()),
        ("link_title", pa.string()),
        ("media_verbalisation", pa.string()),
        ("created", pa.date32()),
        ("delivery_start", pa.date32()),
        ("delivery_stop", pa.date32()),
        ("currency", pa.string()),
        ("spend_lower", pa.int64()),
        ("spend_upper", pa.int64()),
        ("impressions_lower", pa.int64()),
        ("impressions_upper", pa.int64()),
        ("audience_lower", pa.int64()),
        ("audience_upper", pa.int64()),
        ("demo_age", pa.list_(pa.string())),
        ("demo_gender", pa.list_(pa.string())),
        ("demo_share", pa.list_(pa.float64())),
        ("region_name", pa.list_(pa.string())),
        ("region_share", pa.list_(pa.float64())),
        ("languages", pa.list_(pa.string())),
        ("platforms", pa.list_(pa.string())),
        ("snapshot_url", pa.string()),
        ("source_file", pa.string()),
        ("source_record", pa.int64()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_record", pa.int64()),
        ("ad_id", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
    ]
)

# Reasons a record is quarantined; the report counts each.
REASONS = (
    "malformed_json",
    "not_an_object",
    "missing_id",
    "missing_page",
    "unnamed_page",
    "empty_body",
    "too_short",
    "missing_dates",
    "missing_location",
    "bad_number",
    "bad_distribution",
)


class Reject(Exception):
    """A record that cannot be kept; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str = "", ad_id: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.ad_id = reason, detail, ad_id


@dataclass(frozen=True)
class CleaningOptions:
    min_words: int = 4
    drop_unnamed_pages: bool = True
    require_demographics: bool = False


# ---------------------------------------------------------------- small parsers


def redact(text: str) -> str:
    """Remove every ``access_token=...`` from a string (URL or free text)."""
    if "access_token" not in text.lower():
        return text
    return TOKEN_RE.sub("", text)


def strip_token(url: str | None) -> str | None:
    """Snapshot URL without its access_token (query delimiters kept well-formed)."""
    if not url:
        return None
    cleaned = redact(url)
    if "?" not in cleaned and "&" in cleaned:  # the token was the first parameter
        cleaned = cleaned.replace("&", "?", 1)
    return cleaned


def resolve_ad_id(raw_id: Any, snapshot_url: str | None) -> str | None:
    """The ad archive id; a spreadsheet-mangled id ('1.23457E+15') is recovered from the snapshot URL."""
    ad_id = str(raw_id or "").strip(WHITESPACE)
    if ad_id.isascii() and ad_id.isdigit():
        return ad_id
    m = SNAPSHOT_ID_RE.search(snapshot_url or "")
    return m.group(1) if m else None


def parse_int(value: Any, field: str) -> int | None:
    """Ad Library bounds are strings of integers ("1000"); tolerate ints, floats and '1,000'."""
    if value is None or value == "":
        return None
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            pass
    if isinstance(value, bool):
        raise Reject("bad_number", f"{field}={value!r}")
    if isinstance(value, int):
        return value
    try:
        if isinstance(value, float):
            return int(value)
        text = str(value).strip().replace(",", "")
        return int(text) if text.isdigit() else int(float(text))
    except (TypeError, ValueError):
        raise Reject("bad_number", f"{field}={value!r}") from None


def parse_share(value: Any, field: str) -> float:
    """Percentages are string fractions, sometimes in scientific notation ("2.6E-5")."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise Reject("bad_number", f"{field} percentage={value!r}") from None
    if not (0.0 <= share <= 1.0 + 1e-6):
        raise Reject("bad_number", f"{field} percentage={value!r} outside [0, 1]")
    return share


def parse_date(value: Any) -> dt.date | None:
    """'2019-10-30T22:24:19+0000' (old dumps) or '2021-12-08' (new): the calendar date as written."""
    if not value:
        return None
    text = str(value).strip(WHITESPACE)[:10]
    if not DATE_RE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def parse_list_cell(value: Any) -> list:
    """A list that may arrive as a list, JSON text, a Python literal or a bare string."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    text = str(value).strip()
    if not text:
        return []
    if text[0] in "[{":
        try:
            parsed = json.loads(text)
        except ValueError:
            try:
                parsed = ast.literal_eval(text)  # safe: literals only
            except (ValueError, SyntaxError):
                return [text]
        return parsed if isinstance(parsed, list) else [parsed]
    return [text]


def clean_text(text: str) -> str:
    """URLs → [URL], whitespace runs → one space."""
    if "://" in text or "www." in text.lower():
        text = URL_RE.sub("[URL]", text)
    return " ".join(text.split())


def merge_frames(bodies: Iterable[Any]) -> tuple[str, int]:
    """Multi-frame (carousel) ads: clean each frame, drop empty and repeated frames, join in order."""
    frames: list[str] = []
    for raw in bodies:
        if raw is None:
            continue
        frame = clean_text(str(raw))
        if frame and frame not in frames:
            frames.append(frame)
    return "\n".join(frames), len(frames)


_LEGACY_KEYS = frozenset(LEGACY_FIELDS)


def canonical_fields(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """Legacy names → current names (current wins if both are present)."""
    if _LEGACY_KEYS.isdisjoint(record):
        return record
    out = dict(record)
    for old, new in LEGACY_FIELDS.items():  # in table order: id, then ad_id, _id, ad_archive_id
        if old in out:
            value = out.pop(old)
            if out.get(new) is None:
                out[new] = value
    return out


# ---------------------------------------------------------------- the record


def _distribution(items: Any, keys: tuple[str, ...], field: str) -> tuple[list, ...]:
    """Aligned columns (one list per key, then the shares) of a delivery breakdown."""
    if not isinstance(items, list):
        items = parse_list_cell(items)
    if not items:
        return tuple([] for _ in keys) + ([],)
    try:  # fast path: well-formed entries, converted at C speed
        columns = tuple(list(map(itemgetter(key), items)) for key in keys)
        shares = list(map(float, map(itemgetter("percentage"), items)))
        for col in columns:
            "".join(col)  # TypeError unless every value is a string (at C speed)
        if 0.0 <= min(shares) and max(shares) <= 1.0 + 1e-6:
            return columns + (shares,)
    except (TypeError, KeyError, ValueError):
        pass
    for item in items:  # slow path: find the entry at fault and say what is wrong with it
        if type(item) is not dict:
            raise Reject("bad_distribution", f"{field} entry {item!r}")
        for key in keys:
            if not isinstance(item.get(key), str):
                raise Reject("bad_distribution", f"{field} entry without a {key}: {item!r}")
        parse_share(item.get("percentage"), field)
    raise AssertionError("unreachable")  # pragma: no cover


def _range(record: Mapping[str, Any], field: str) -> tuple[int | None, int | None]:
    value = record.get(field)
    if value is None or value == "":
        return None, None
    if isinstance(value, str):
        parsed = parse_list_cell(value)
        value = parsed[0] if parsed and isinstance(parsed[0], dict) else None
    if not isinstance(value, dict):
        raise Reject("bad_number", f"{field}={value!r}")
    return parse_int(value.get("lower_bound"), field), parse_int(value.get("upper_bound"), field)


def normalise_record(
    record: Mapping[str, Any],
    options: CleaningOptions,
    media: Mapping[str, str] | None = None,
) -> dict:
    """Clean one record (current or legacy field names) into a row of ADS_SCHEMA (minus provenance)."""
    rec = canonical_fields(record)
    url = rec.get("ad_snapshot_url")
    ad_id = resolve_ad_id(rec.get("id"), url)
    if ad_id is None:
        raise Reject("missing_id", f"id={rec.get('id')!r} and no id in ad_snapshot_url")

    page_id = str(rec.get("page_id") or "").strip(WHITESPACE)
    if not page_id:
        raise Reject("missing_page", "no page_id", ad_id)
    page_name = str(rec.get("page_name") or "").strip(WHITESPACE)
    if not page_name and options.drop_unnamed_pages:
        raise Reject("unnamed_page", f"page_id={page_id}", ad_id)

    bodies = rec.get("ad_creative_bodies")
    body, n_frames = merge_frames([bodies] if isinstance(bodies, str) else bodies or [])
    if not body:
        raise Reject("empty_body", "", ad_id)
    media_text = media.get(ad_id) if media else None
    n_words = len(body.split()) - body.count("[URL]")
    if n_words < options.min_words:
        raise Reject("too_short", f"{n_words} words < min_words={options.min_words}", ad_id)

    start = parse_date(rec.get("ad_delivery_start_time")) or parse_date(rec.get("ad_creation_time"))
    if start is None:
        raise Reject("missing_dates", f"start={rec.get('ad_delivery_start_time')!r}", ad_id)

    try:
        region_name, region_share = _distribution(rec.get("delivery_by_region"), ("region",), "delivery_by_region")
        demo_age, demo_gender, demo_share = _distribution(
            rec.get("demographic_distribution"), ("age", "gender"), "demographic_distribution"
        )
    except Reject as err:
        err.ad_id = ad_id
        raise
    if not region_name:
        raise Reject("missing_location", "no delivery_by_region", ad_id)
    if not demo_age and options.require_demographics:
        raise Reject("missing_location", "no demographic_distribution", ad_id)

    try:
        spend = _range(rec, "spend")
        impressions = _range(rec, "impressions")
        audience = _range(rec, "estimated_audience_size")
    except Reject as err:
        err.ad_id = ad_id
        raise

    titles = [clean_text(str(t)) for t in parse_list_cell(rec.get("ad_creative_link_titles")) if t]
    return {
        "ad_id": ad_id,
        "page_id": page_id,
        "page_name": page_name or None,
        "bylines": (str(rec.get("bylines")).strip(WHITESPACE) or None) if rec.get("bylines") else None,
        "body": body,
        "n_frames": n_frames,
        "link_title": next((t for t in titles if t), None),
        "media_verbalisation": clean_text(media_text) if media_text else None,
        "created": parse_date(rec.get("ad_creation_time")),
        "delivery_start": start,
        "delivery_stop": parse_date(rec.get("ad_delivery_stop_time")),
        "currency": (str(rec.get("currency") or "").strip(WHITESPACE).upper() or None),
        "spend_lower": spend[0],
        "spend_upper": spend[1],
        "impressions_lower": impressions[0],
        "impressions_upper": impressions[1],
        "audience_lower": audience[0],
        "audience_upper": audience[1],
        "demo_age": demo_age,
        "demo_gender": demo_gender,
        "demo_share": demo_share,
        "region_name": region_name,
        "region_share": region_share,
        "languages": [str(x) for x in parse_list_cell(rec.get("languages"))],
        "platforms": [str(x) for x in parse_list_cell(rec.get("publisher_platforms"))],
        "snapshot_url": strip_token(url),
    }
