"""Census normalisation of ad delivery (paper §3.1, Figure 2): per-capita interest index and ROI.

Meta reports, per ad, the share of impressions delivered to each region and to each age × gender
cell. Large groups get more impressions simply because they are large, so the paper divides by the
2020 US Census::

    per-capita interest index(segment) = (segment's share of delivery) / (segment's share of population)

An index of 1 means the segment saw the ad exactly in proportion to its size; 2 means twice as much
per head. Segments are ranked by the index (descending; ties broken by segment name ascending), and
impressions per dollar (range midpoints) estimate ROI.

``normalise_ads`` streams the cleaned ads table batch by batch (memory bounded by ``batch_rows``),
vectorised with numpy, and writes one row per ad (``SEGMENTS_SCHEMA``) in fixed-size row groups, so
the output is byte-identical whatever the batch size. ``delivery_views`` gives the same numbers for
one ad as pandas Series for the Figure-2 plot (``alpha.ads.figures``); both call ``_compute``.

Output (``SEGMENTS_SCHEMA``), one row per ad, in input order:

- ``ad_id``, ``page_id`` (string); ``census_status`` (string, see "status" below);
- ``state_ranked`` list<string> (census state names, e.g. "District of Columbia") and
  ``state_index_ranked`` list<double>, in rank order;
- ``region_unmapped_share`` double (null without a region breakdown), ``region_unmapped`` list<string>;
- ``age_gender_ranked`` ("female 18-24") / ``age_gender_index_ranked``, ``gender_ranked`` /
  ``gender_index_ranked``, ``age_ranked`` / ``age_index_ranked`` (list<string> / list<double>);
- ``share_13_17``, ``share_gender_unknown``, ``share_demo_other`` double (null without demographics);
- ``spend_mid``, ``impressions_mid``, ``impressions_per_dollar`` double (nullable).

Treatment
---------

The decisions below are also exported as ``TREATMENT`` (dict) and ``TREATMENT_MD`` (markdown), which
the README quotes; a unit test checks that every entry of ``TREATMENT`` appears in this docstring.

states: Denominators are the 2020 census resident populations of the 50 states and the District
of Columbia, plus Puerto Rico when include_puerto_rico is true. An ad's state delivery shares are
renormalised over the reported regions that have a denominator, and each population share is taken
over all census regions. Region names are matched accent-, case- and whitespace-insensitively
against the census state name and Meta's region name, so "Washington, District of Columbia" (Meta)
and "District of Columbia" both mean District of Columbia; outputs use the census state names.

puerto_rico: 2019-style dumps split Puerto Rico into its 78 municipios (config/census/pr_municipios.csv,
proper Spanish spelling; "Bayamon" and "Bayamón" both match). Their shares are summed into Puerto
Rico. "Florida" is also a municipio name, but a region called "Florida" always means the US state:
Meta names the state "Florida", and the municipio (about 11,000 people) cannot be told apart from it.
With include_puerto_rico false, Puerto Rico and its municipios are unmapped.

unmapped: "Unknown", territories without a census row (Guam, Northern Mariana Islands, US Virgin
Islands, American Samoa's "Eastern District"/"Western District") and foreign regions have no
denominator. Their summed share, as Meta reported it (a fraction of all the ad's impressions), is
region_unmapped_share, and their names, as given, are listed in region_unmapped (sorted, unique).

absent_states: States below Meta's reporting threshold are absent from an ad's list. They get no
index (not zero) and are not in state_ranked: they rank after every reported state. A state that
is reported with a share of 0 gets index 0 and is ranked.

no_denominator: When no reported region has a denominator, or the regions that do carry no delivery
(e.g. an Australian dump, or only "Unknown"), census_status is "no_denominator" and every ranked
list, the age × gender ones included, is empty, because the US census is the wrong denominator for
such an audience. The raw shares and ROI columns are still filled.

age_gender: Only the 12 adult cells (male/female × 18-24, 25-34, 35-44, 45-54, 55-64, 65+) have
census denominators. share_13_17 is the total 13-17 share (any gender, unknown included);
share_gender_unknown is the unknown-gender share of the other ages; share_demo_other is any cell
that is neither (an unrecognised age or gender). The three are disjoint, are reported as Meta gave
them, and are excluded; the adult male/female cells are renormalised to sum to 1 and divided by the
cell's share of the adult population. Cells Meta did not report get no index and are not ranked,
as for states. Segment names read "female 18-24".

aggregates: gender index = the gender's share of adult male/female delivery (summed over reported
ages) / the gender's share of the adult population; age index = the age bracket's share (summed
over genders) / the bracket's share of the adult population. A gender or age with no reported cell
gets no index.

ranking: Segments are ranked by index, descending; exact ties are broken by segment name ascending
(deterministic).

roi: spend_mid and impressions_mid are the midpoints of Meta's ranges. When impressions_upper is
missing (Meta's top bucket has no upper bound) impressions_mid is the lower bound: the only figure
Meta guarantees, so impressions per dollar is conservative (never overstated). When spend_upper is
missing spend_mid is the lower bound, but impressions_per_dollar is null, because dividing by a lower
bound on spend would overstate ROI. impressions_per_dollar is also null when the currency is not USD
(spend is then in that currency; no exchange rate is applied), when the currency is missing, and when
spend_mid is 0.

status: census_status is one of "ok"; "malformed" (region or demographic lists of unequal lengths,
or a null name or a null, negative or non-finite share: nothing is computed); "no_denominator" (see
above); "no_regions" (no region breakdown: no state ranking, age × gender still computed);
"no_demographics" (no age × gender breakdown: state ranking only); "no_adult_demographics" (only
13-17, unknown-gender or unrecognised cells: state ranking only). The first that applies, in that
order, wins.

The census tables it reads: docs/inputs.md, "The 2020 Census tables".
"""
from __future__ import annotations

import csv
import logging
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpha.core.io import PARQUET_OPTIONS_WITH_STATS, atomic_path, iter_parquet_batches

log = logging.getLogger("alpha.ads.census")

TREATMENT: dict[str, str] = {
    "states": (
        "Denominators are the 2020 census resident populations of the 50 states and the District of "
        "Columbia, plus Puerto Rico when include_puerto_rico is true. An ad's state delivery shares are "
        "renormalised over the reported regions that have a denominator, and each population share is "
        "taken over all census regions. Region names are matched accent-, case- and "
        "whitespace-insensitively against the census state name and Meta's region name, so \"Washington, "
        "District of Columbia\" (Meta) and \"District of Columbia\" both mean District of Columbia; "
        "outputs use the census state names."
    ),
    "puerto_rico": (
        "2019-style dumps split Puerto Rico into its 78 municipios (config/census/pr_municipios.csv, "
        "proper Spanish spelling; \"Bayamon\" and \"Bayamón\" both match). Their shares are summed into "
        "Puerto Rico. \"Florida\" is also a municipio name, but a region called \"Florida\" always means "
        "the US state: Meta names the state \"Florida\", and the municipio (about 11,000 people) cannot "
        "be told apart from it. With include_puerto_rico false, Puerto Rico and its municipios are "
        "unmapped."
    ),
    "unmapped": (
        "\"Unknown\", territories without a census row (Guam, Northern Mariana Islands, US Virgin "
        "Islands, American Samoa's \"Eastern District\"/\"Western District\") and foreign regions have no "
        "denominator. Their summed share, as Meta reported it (a fraction of all the ad's impressions), "
        "is region_unmapped_share, and their names, as given, are listed in region_unmapped (sorted, "
        "unique)."
    ),
    "absent_states": (
        "States below Meta's reporting threshold are absent from an ad's list. They get no index (not "
        "zero) and are not in state_ranked: they rank after every reported state. A state that is "
        "reported with a share of 0 gets index 0 and is ranked."
    ),
    "no_denominator": (
        "When no reported region has a denominator, or the regions that do carry no delivery (e.g. an "
        "Australian dump, or only \"Unknown\"), census_status is \"no_denominator\" and every ranked "
        "list, the age × gender ones included, is empty, because the US census is the wrong denominator "
        "for such an audience. The raw shares and ROI columns are still filled."
    ),
    "age_gender": (
        "Only the 12 adult cells (male/female × 18-24, 25-34, 35-44, 45-54, 55-64, 65+) have census "
        "denominators. share_13_17 is the total 13-17 share (any gender, unknown included); "
        "share_gender_unknown is the unknown-gender share of the other ages; share_demo_other is any "
        "cell that is neither (an unrecognised age or gender). The three are disjoint, are reported as "
        "Meta gave them, and are excluded; the adult male/female cells are renormalised to sum to 1 and "
        "divided by the cell's share of the adult population. Cells Meta did not report get no index "
        "and are not ranked, as for states. Segment names read \"female 18-24\"."
    ),
    "aggregates": (
        "gender index = the gender's share of adult male/female delivery (summed over reported ages) / "
        "the gender's share of the adult population; age index = the age bracket's share (summed over "
        "genders) / the bracket's share of the adult population. A gender or age with no reported cell "
        "gets no index."
    ),
    "ranking": (
        "Segments are ranked by index, descending; exact ties are broken by segment name ascending "
        "(deterministic)."
    ),
    "roi": (
        "spend_mid and impressions_mid are the midpoints of Meta's ranges. When impressions_upper is "
        "missing (Meta's top bucket has no upper bound) impressions_mid is the lower bound: the only "
        "figure Meta guarantees, so impressions per dollar is conservative (never overstated). When "
        "spend_upper is missing spend_mid is the lower bound, but impressions_per_dollar is null, "
        "because dividing by a lower bound on spend would overstate ROI. impressions_per_dollar is also "
        "null when the currency is not USD (spend is then in that currency; no exchange rate is "
        "applied), when the currency is missing, and when spend_mid is 0."
    ),
    "status": (
        "census_status is one of \"ok\"; \"malformed\" (region or demographic lists of unequal lengths, or "
        "a null name or a null, negative or non-finite share: nothing is computed); \"no_denominator\" "
        "(see above); \"no_regions\" (no region breakdown: no state ranking, age × gender still "
        "computed); \"no_demographics\" (no age × gender breakdown: state ranking only); "
        "\"no_adult_demographics\" (only 13-17, unknown-gender or unrecognised cells: state ranking "
        "only). The first that applies, in that order, wins."
    ),
}

TREATMENT_MD = "\n".join(f"- **{key.replace('_', ' ')}**: {text}" for key, text in TREATMENT.items()) + "\n"

# ---------------------------------------------------------------- segments and statuses

ADULT_AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS = ("female", "male")
CELL_NAMES = tuple(f"{g} {a}" for g in GENDERS for a in ADULT_AGES)  # alphabetical by construction
MINOR_AGE = "13-17"
UNKNOWN_GENDER = "unknown"
_CAT_13_17, _CAT_GENDER_UNKNOWN, _CAT_OTHER = len(CELL_NAMES), len(CELL_NAMES) + 1, len(CELL_NAMES) + 2
_N_DEMO_CATS = len(CELL_NAMES) + 3

PUERTO_RICO = "Puerto Rico"
USD = "USD"

STATUS_OK = "ok"
STATUS_MALFORMED = "malformed"
STATUS_NO_DENOMINATOR = "no_denominator"
STATUS_NO_REGIONS = "no_regions"
STATUS_NO_DEMOGRAPHICS = "no_demographics"
STATUS_NO_ADULT_DEMOGRAPHICS = "no_adult_demographics"
STATUSES = (
    STATUS_OK,
    STATUS_MALFORMED,
    STATUS_NO_DENOMINATOR,
    STATUS_NO_REGIONS,
    STATUS_NO_DEMOGRAPHICS,
    STATUS_NO_ADULT_DEMOGRAPHICS,
)

INPUT_COLUMNS = (
    "ad_id",
    "page_id",
    "currency",
    "spend_lower",
    "spend_upper",
    "impressions_lower",
    "impressions_upper",
    "demo_age",
    "demo_gender",
    "demo_share",
    "region_name",
    "region_share",
)

_STR_LIST = pa.list_(pa.string())
_F64_LIST = pa.list_(pa.float64())
SEGMENTS_SCHEMA = pa.schema(
    [
        ("ad_id", pa.string()),
        ("page_id", pa.string()),
        ("census_status", pa.string()),
        ("state_ranked", _STR_LIST),
        ("state_index_ranked", _F64_LIST),
        ("region_unmapped_share", pa.float64()),
        ("region_unmapped", _STR_LIST),
        ("age_gender_ranked", _STR_LIST),
        ("age_gender_index_ranked", _F64_LIST),
        ("gender_ranked", _STR_LIST),
        ("gender_index_ranked", _F64_LIST),
        ("age_ranked", _STR_LIST),
        ("age_index_ranked", _F64_LIST),
        ("share_13_17", pa.float64()),
        ("share_gender_unknown", pa.float64()),
        ("share_demo_other", pa.float64()),
        ("spend_mid", pa.float64()),
        ("impressions_mid", pa.float64()),
        ("impressions_per_dollar", pa.float64()),
    ]
)

ROW_GROUP_ROWS = 65_536  # fixed, independent of batch_rows, so the file bytes do not depend on it
BATCH_ROWS = 8_192  # ads per batch: with larger batches, reading and the temporaries outweigh everything else
TOP_UNMAPPED = 25  # unmapped region names listed in the report

_DEFAULT_MUNICIPIOS = Path(__file__).resolve().parents[2] / "config" / "census" / "pr_municipios.csv"


def region_key(name: str) -> str:
    """Accent-, case- and whitespace-insensitive key of a region name ("Bayamón " → "bayamon")."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", stripped).strip().casefold()


def _age_key(age: str) -> str:
    return re.sub(r"\s+", "", age).casefold()


# ---------------------------------------------------------------- the census


class CensusError(ValueError):
    """A census table that is unusable as a whole (missing file or column, bad or duplicate row)."""


@dataclass(frozen=True, eq=False)
class Census:
    """Denominators: states (census names, sorted) with populations, and the 12 adult age × gender cells.

    ``aliases`` maps a region key (``region_key``) to a state name; it holds every census state name and
    Meta region name, and, when Puerto Rico is included, its municipios.
    """

    states: tuple[str, ...]
    state_population: tuple[int, ...]
    cell_population: tuple[int, ...]  # aligned with CELL_NAMES
    aliases: Mapping[str, str]
    include_puerto_rico: bool
    pr_municipios: tuple[str, ...] = ()

    @cached_property
    def state_pop(self) -> np.ndarray:
        return np.asarray(self.state_population, dtype=np.float64)

    @cached_property
    def cell_pop(self) -> np.ndarray:
        return np.asarray(self.cell_population, dtype=np.float64)

    @cached_property
    def state_code(self) -> dict[str, int]:
        """Region key → column of ``states``."""
        column = {s: i for i, s in enumerate(self.states)}
        return {key: column[state] for key, state in self.aliases.items()}

    def map_region(self, name: str) -> str | None:
        """The census state a Meta region name counts towards, or None (no denominator)."""
        return self.aliases.get(region_key(name))


def _read_csv(path: str | os.PathLike, required: Iterable[str], what: str) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise CensusError(f"{what} file not found: {path} (set it under census: in the config)")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise CensusError(f"{path}: missing column(s) {missing}; expected {list(required)}")
        rows = [row for row in reader if any((v or "").strip() for v in row.values())]
    if not rows:
        raise CensusError(f"{path}: no rows")
    return rows


def _population(value: str, path: Path | str, row: Mapping[str, str]) -> int:
    try:
        pop = int(str(value).strip().replace(",", ""))
    except ValueError:
        raise CensusError(f"{path}: population_2020 is not an integer in {dict(row)}") from None
    if pop <= 0:
        raise CensusError(f"{path}: population_2020 must be positive in {dict(row)}")
    return pop


def load_census_for_rule(smk) -> Census:
    """The census tables a rule lists as inputs (state_population, sex_age, pr_municipios)."""
    return load_census(
        smk.input.state_population,
        smk.input.sex_age,
        smk.input.pr_municipios,
        include_puerto_rico=bool(smk.params.include_puerto_rico),
    )


def load_census(
    state_csv: str | os.PathLike,
    sex_age_csv: str | os.PathLike,
    pr_municipios_csv: str | os.PathLike | None = None,
    include_puerto_rico: bool = True,
) -> Census:
    """Read the census tables (see config/census/). ``pr_municipios_csv=None`` uses the repository's list."""
    rows = _read_csv(state_csv, ("state", "meta_region_name", "population_2020"), "census state population")
    pops: dict[str, int] = {}
    aliases: dict[str, str] = {}
    for row in rows:
        state = row["state"].strip()
        if not state:
            raise CensusError(f"{state_csv}: empty state name in {dict(row)}")
        if state in pops:
            raise CensusError(f"{state_csv}: duplicate state {state!r}")
        pop = _population(row["population_2020"], state_csv, row)
        if state == PUERTO_RICO and not include_puerto_rico:
            continue
        pops[state] = pop
        for name in (state, (row.get("meta_region_name") or "").strip()):
            if not name:
                continue
            key = region_key(name)
            if aliases.get(key, state) != state:
                raise CensusError(f"{state_csv}: region name {name!r} names both {aliases[key]!r} and {state!r}")
            aliases[key] = state

    municipios: tuple[str, ...] = ()
    path = Path(pr_municipios_csv) if pr_municipios_csv is not None else _DEFAULT_MUNICIPIOS
    if pr_municipios_csv is not None or path.is_file():
        municipios = tuple(r["municipio"].strip() for r in _read_csv(path, ("municipio",), "Puerto Rico municipios"))
    if include_puerto_rico and PUERTO_RICO in pops:
        for name in municipios:
            # A name that is also a state's ("Florida") keeps meaning the state: see TREATMENT["puerto_rico"].
            aliases.setdefault(region_key(name), PUERTO_RICO)
    elif include_puerto_rico and municipios:
        log.warning("%s has no %r row: its municipios stay unmapped", state_csv, PUERTO_RICO)

    cells: dict[str, int] = {}
    for row in _read_csv(sex_age_csv, ("sex", "age", "population_2020"), "census sex × age"):
        cell = f"{row['sex'].strip().casefold()} {_age_key(row['age'])}"
        if cell not in CELL_NAMES:
            raise CensusError(
                f"{sex_age_csv}: unexpected row {dict(row)}; only male/female × {', '.join(ADULT_AGES)} have "
                f"denominators (13-17 is excluded by design)"
            )
        if cell in cells:
            raise CensusError(f"{sex_age_csv}: duplicate row for {cell!r}")
        cells[cell] = _population(row["population_2020"], sex_age_csv, row)
    missing = [c for c in CELL_NAMES if c not in cells]
    if missing:
        raise CensusError(f"{sex_age_csv}: missing rows for {missing}")

    states = tuple(sorted(pops))
    return Census(
        states=states,
        state_population=tuple(pops[s] for s in states),
        cell_population=tuple(cells[c] for c in CELL_NAMES),
        aliases=aliases,
        include_puerto_rico=bool(include_puerto_rico and PUERTO_RICO in pops),
        pr_municipios=municipios,
    )


# ---------------------------------------------------------------- core formulas (shared by every caller)


def _seq_sum(values: np.ndarray, axis: int) -> np.ndarray:
    """Sum along ``axis`` in a fixed order (element by element), so a row's result never depends on how
    many rows share the batch (numpy may reorder a reduction by array shape)."""
    values = np.moveaxis(values, axis, -1)
    total = np.zeros(values.shape[:-1], dtype=np.float64)
    for j in range(values.shape[-1]):
        total += values[..., j]
    return total


def per_capita_index(delivered: np.ndarray, reported: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Per-capita interest index, row-wise: (share of the row's delivery) / (share of population).

    ``delivered`` (n × K) holds the raw shares, ``reported`` (n × K) says which segments Meta reported;
    the delivery shares are renormalised over the reported segments, the population shares over all K.
    Unreported segments, and rows with no delivery at all, get NaN (no index).
    """
    delivered = np.where(reported, delivered, 0.0)
    total = _seq_sum(delivered, axis=1)[:, None]
    pop_share = population / population.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        index = (delivered / total) / pop_share
    return np.where(reported & (total > 0), index, np.nan)


def rank_segments(index: np.ndarray, names: tuple[str, ...], keep: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Ranked segment names and indexes (two list arrays) per row of ``index`` (n × K, NaN = not ranked).

    Order: index descending, exact ties by name ascending (``names`` must be sorted, a stable sort then
    breaks ties by column). Rows where ``keep`` is False get empty lists.
    """
    if list(names) != sorted(names):
        raise ValueError("segment names must be sorted")
    n, k = index.shape
    key = np.where(np.isnan(index), np.inf, -index)
    order = np.argsort(key, axis=1, kind="stable")
    counts = np.where(keep, (~np.isnan(index)).sum(axis=1), 0)
    take = np.arange(k)[None, :] < counts[:, None]
    columns = order[take]
    values = np.take_along_axis(index, order, axis=1)[take]
    if n * k >= 2**31:
        raise ValueError("batch too large for 32-bit list offsets; lower batch_rows")
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    ranked_names = pa.ListArray.from_arrays(offsets, pc.take(pa.array(names, pa.string()), pa.array(columns)))
    ranked_values = pa.ListArray.from_arrays(offsets, pa.array(values, pa.float64()))
    return ranked_names, ranked_values


def _to_f64(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Numeric Arrow array → float64 numpy with NaN for nulls."""
    return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def roi_columns(
    currency: pa.Array, spend_lower: pa.Array, spend_upper: pa.Array, impr_lower: pa.Array, impr_upper: pa.Array
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """spend_mid, impressions_mid, impressions_per_dollar (NaN = null); see TREATMENT["roi"]."""
    s_lo, s_hi, i_lo, i_hi = (_to_f64(a) for a in (spend_lower, spend_upper, impr_lower, impr_upper))
    spend_mid = np.where(np.isnan(s_hi), s_lo, (s_lo + s_hi) / 2.0)
    impressions_mid = np.where(np.isnan(i_hi), i_lo, (i_lo + i_hi) / 2.0)
    usd = pc.fill_null(pc.equal(pc.utf8_upper(pc.utf8_trim_whitespace(currency)), USD), False)
    usd = usd.to_numpy(zero_copy_only=False).astype(bool)
    ok = usd & ~np.isnan(s_hi) & (spend_mid > 0) & np.isfinite(impressions_mid)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_dollar = np.where(ok, impressions_mid / spend_mid, np.nan)
    return spend_mid, impressions_mid, per_dollar


# ---------------------------------------------------------------- one batch


def _list_parts(batch: pa.RecordBatch, names: tuple[str, ...]) -> tuple[np.ndarray, list[pa.Array], np.ndarray, np.ndarray]:
    """Flatten aligned list columns: (parent row per element, flat arrays, list lengths, rows with unequal lengths).

    Rows whose lists have unequal lengths are nulled out before flattening (they are malformed).
    """
    cols = [batch.column(name) for name in names]
    lengths = [pc.fill_null(pc.list_value_length(c), 0).to_numpy(zero_copy_only=False) for c in cols]
    bad = np.zeros(batch.num_rows, dtype=bool)
    for other in lengths[1:]:
        bad |= other != lengths[0]
    if bad.any():
        keep = pa.array(~bad)
        cols = [pc.if_else(keep, c, pa.scalar(None, c.type)) for c in cols]
    parent = pc.list_parent_indices(cols[0]).to_numpy(zero_copy_only=False).astype(np.int64)
    flats = [pc.list_flatten(c) for c in cols]
    return parent, flats, np.where(bad, 0, lengths[0]), bad


def _bad_shares(shares: pa.Array) -> np.ndarray:
    values = _to_f64(shares)
    return ~np.isfinite(values) | (values < 0)


def _row_any(parent: np.ndarray, flag: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(parent[flag], minlength=n) > 0


@dataclass
class _Delivery:
    """Per-batch intermediate: raw matrices, indexes and statuses (row = ad)."""

    status: np.ndarray  # object array of STATUSES
    state_raw: np.ndarray  # n × S raw shares (as reported, municipios summed)
    state_reported: np.ndarray
    state_index: np.ndarray  # NaN = no index
    region_unmapped_share: np.ndarray  # NaN = null
    region_unmapped: pa.Array  # list<string>
    unmapped_pairs: list[tuple[str, int]]  # (name, ads) for the report
    cell_raw: np.ndarray  # n × 12
    cell_reported: np.ndarray
    cell_index: np.ndarray
    gender_index: np.ndarray  # n × 2
    age_index: np.ndarray  # n × 6
    share_13_17: np.ndarray
    share_gender_unknown: np.ndarray
    share_demo_other: np.ndarray
    keep_states: np.ndarray
    keep_cells: np.ndarray


class _RegionCodes:
    """Caches region name → state column (or -1) across batches; only distinct names hit Python."""

    def __init__(self, census: Census):
        self.census = census
        self.cache: dict[str, int] = {}

    def codes(self, names: list[str]) -> np.ndarray:
        out = np.empty(len(names), dtype=np.int64)
        for i, name in enumerate(names):
            code = self.cache.get(name)
            if code is None:
                code = self.cache[name] = self.census.state_code.get(region_key(name), -1)
            out[i] = code
        return out


def _demo_categories(ages: list[str | None], genders: list[str | None]) -> np.ndarray:
    cell = {name: i for i, name in enumerate(CELL_NAMES)}
    out = np.empty(len(ages), dtype=np.int64)
    for i, (age, gender) in enumerate(zip(ages, genders)):
        a = _age_key(age) if age is not None else ""
        g = re.sub(r"\s+", " ", gender).strip().casefold() if gender is not None else ""
        if a == MINOR_AGE:
            out[i] = _CAT_13_17
        elif g == UNKNOWN_GENDER:
            out[i] = _CAT_GENDER_UNKNOWN
        else:
            out[i] = cell.get(f"{g} {a}", _CAT_OTHER)
    return out


def _compute(batch: pa.RecordBatch, census: Census, regions: _RegionCodes | None = None) -> _Delivery:
    """Every formula of the census stage, vectorised over one batch of ads."""
    n = batch.num_rows
    regions = regions or _RegionCodes(census)
    n_states = len(census.states)

    # -- regions
    parent, (names, shares), n_regions, region_bad = _list_parts(batch, ("region_name", "region_share"))
    element_bad = _bad_shares(shares) | pc.is_null(names).to_numpy(zero_copy_only=False)
    region_bad |= _row_any(parent, element_bad, n)
    encoded = pc.dictionary_encode(pc.fill_null(names, ""))
    dictionary = encoded.dictionary.to_pylist()
    name_idx = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    codes = regions.codes(dictionary)[name_idx] if len(name_idx) else np.empty(0, dtype=np.int64)
    share = np.nan_to_num(_to_f64(shares), nan=0.0)
    mapped = codes >= 0
    flat = parent[mapped] * n_states + codes[mapped]
    state_raw = np.bincount(flat, weights=share[mapped], minlength=n * n_states).reshape(n, n_states)
    state_reported = np.bincount(flat, minlength=n * n_states).reshape(n, n_states) > 0
    unmapped_share = np.bincount(parent[~mapped], weights=share[~mapped], minlength=n)

    # unmapped names per ad: sorted, unique (one np.unique over (row, name rank) keys)
    order = sorted(range(len(dictionary)), key=lambda i: dictionary[i])
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[order] = np.arange(len(dictionary))
    u = max(len(dictionary), 1)
    listed = ~mapped & ~region_bad[parent]
    pairs = np.unique(parent[listed] * u + rank[name_idx[listed]])
    pair_rows, pair_rank = pairs // u, pairs % u
    sorted_names = pa.array([dictionary[i] for i in order], pa.string())
    counts = np.bincount(pair_rows, minlength=n)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    region_unmapped = pa.ListArray.from_arrays(offsets, pc.take(sorted_names, pa.array(pair_rank)))
    per_name = np.bincount(pair_rank, minlength=len(dictionary))
    unmapped_pairs = [(dictionary[order[r]], int(c)) for r, c in enumerate(per_name) if c]

    # -- demographics
    parent_d, (ages, genders, dshares), n_demo, demo_bad = _list_parts(batch, ("demo_age", "demo_gender", "demo_share"))
    demo_bad |= _row_any(parent_d, _bad_shares(dshares), n)
    age_enc = pc.dictionary_encode(ages)
    gen_enc = pc.dictionary_encode(genders)
    a_idx = pc.fill_null(age_enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    g_idx = pc.fill_null(gen_enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    a_dict, g_dict = age_enc.dictionary.to_pylist() + [None], gen_enc.dictionary.to_pylist() + [None]
    # category per distinct (age, gender) pair; -1 indexes the trailing None (a null age or gender)
    combo = (np.where(a_idx < 0, len(a_dict) - 1, a_idx)) * len(g_dict) + np.where(g_idx < 0, len(g_dict) - 1, g_idx)
    uniq, inverse = np.unique(combo, return_inverse=True)
    cats_u = _demo_categories([a_dict[c // len(g_dict)] for c in uniq], [g_dict[c % len(g_dict)] for c in uniq])
    cats = cats_u[inverse.reshape(-1)] if len(combo) else np.empty(0, dtype=np.int64)
    dshare = np.nan_to_num(_to_f64(dshares), nan=0.0)
    flat_d = parent_d * _N_DEMO_CATS + cats
    demo = np.bincount(flat_d, weights=dshare, minlength=n * _N_DEMO_CATS).reshape(n, _N_DEMO_CATS)
    demo_seen = np.bincount(flat_d, minlength=n * _N_DEMO_CATS).reshape(n, _N_DEMO_CATS) > 0
    n_cells = len(CELL_NAMES)
    cell_raw, cell_reported = demo[:, :n_cells], demo_seen[:, :n_cells]

    # -- statuses (first match wins; see TREATMENT["status"])
    malformed = region_bad | demo_bad
    has_regions = n_regions > 0
    no_denominator = ~malformed & has_regions & ~((state_raw * state_reported).sum(axis=1) > 0)
    has_demo = n_demo > 0
    no_adult = has_demo & ~((cell_raw * cell_reported).sum(axis=1) > 0)
    status = np.select(
        [malformed, no_denominator, ~has_regions, ~has_demo, no_adult],
        [STATUS_MALFORMED, STATUS_NO_DENOMINATOR, STATUS_NO_REGIONS, STATUS_NO_DEMOGRAPHICS, STATUS_NO_ADULT_DEMOGRAPHICS],
        STATUS_OK,
    ).astype(object)
    usable = ~malformed & ~no_denominator
    keep_states = usable & has_regions
    keep_cells = usable & has_demo & ~no_adult

    # -- indexes
    state_index = per_capita_index(state_raw, state_reported, census.state_pop)
    cell_index = per_capita_index(cell_raw, cell_reported, census.cell_pop)
    cells = np.where(cell_reported, cell_raw, 0.0).reshape(n, len(GENDERS), len(ADULT_AGES))
    seen = cell_reported.reshape(n, len(GENDERS), len(ADULT_AGES))
    pop = census.cell_pop.reshape(len(GENDERS), len(ADULT_AGES))
    gender_index = per_capita_index(_seq_sum(cells, axis=2), seen.any(axis=2), pop.sum(axis=1))
    age_index = per_capita_index(_seq_sum(cells, axis=1), seen.any(axis=1), pop.sum(axis=0))

    def share_col(j: int) -> np.ndarray:
        return np.where(has_demo & ~malformed, demo[:, j], np.nan)

    return _Delivery(
        status=status,
        state_raw=state_raw,
        state_reported=state_reported,
        state_index=state_index,
        region_unmapped_share=np.where(has_regions & ~malformed, unmapped_share, np.nan),
        region_unmapped=region_unmapped,
        unmapped_pairs=unmapped_pairs,
        cell_raw=cell_raw,
        cell_reported=cell_reported,
        cell_index=cell_index,
        gender_index=gender_index,
        age_index=age_index,
        share_13_17=share_col(_CAT_13_17),
        share_gender_unknown=share_col(_CAT_GENDER_UNKNOWN),
        share_demo_other=share_col(_CAT_OTHER),
        keep_states=keep_states,
        keep_cells=keep_cells,
    )


def _nullable(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.float64(), mask=np.isnan(values))


def normalise_batch(batch: pa.RecordBatch, census: Census, regions: _RegionCodes | None = None) -> tuple[pa.RecordBatch, _Delivery]:
    """One batch of cleaned ads → one batch of SEGMENTS_SCHEMA (and the intermediate, for the report)."""
    d = _compute(batch, census, regions)
    state_names, state_values = rank_segments(d.state_index, census.states, d.keep_states)
    cell_names, cell_values = rank_segments(d.cell_index, CELL_NAMES, d.keep_cells)
    gender_names, gender_values = rank_segments(d.gender_index, GENDERS, d.keep_cells)
    age_names, age_values = rank_segments(d.age_index, ADULT_AGES, d.keep_cells)
    spend_mid, impressions_mid, per_dollar = roi_columns(
        batch.column("currency"),
        batch.column("spend_lower"),
        batch.column("spend_upper"),
        batch.column("impressions_lower"),
        batch.column("impressions_upper"),
    )
    columns = [
        pc.cast(batch.column("ad_id"), pa.string()),
        pc.cast(batch.column("page_id"), pa.string()),
        pa.array(d.status, pa.string()),
        state_names,
        state_values,
        _nullable(d.region_unmapped_share),
        d.region_unmapped,
        cell_names,
        cell_values,
        gender_names,
        gender_values,
        age_names,
        age_values,
        _nullable(d.share_13_17),
        _nullable(d.share_gender_unknown),
        _nullable(d.share_demo_other),
        _nullable(spend_mid),
        _nullable(impressions_mid),
        _nullable(per_dollar),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SEGMENTS_SCHEMA), d


# ---------------------------------------------------------------- the stage


def _check_columns(schema: pa.Schema, path: Path) -> None:
    missing = [c for c in INPUT_COLUMNS if c not in schema.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected the cleaned ads table of rule merge_ads")


class _FixedRowGroups:
    """ParquetWriter that writes row groups of exactly ``rows`` rows (the last may be shorter).

    The file bytes depend on how a row group's columns are chunked, so each is written as one contiguous
    chunk. Pending rows are kept per column and concatenated one column at a time, each column's pieces
    released as soon as it is built: a flush holds one row group (plus the writer's encoders), not two.
    """

    def __init__(self, path: Path, schema: pa.Schema, rows: int):
        self.schema, self.rows = schema, rows
        self.writer = pq.ParquetWriter(path, schema, **PARQUET_OPTIONS_WITH_STATS)
        self.pending: list[list[pa.Array]] = [[] for _ in schema]
        self.n_pending = 0
        self.written = 0

    def add(self, batch: pa.RecordBatch) -> None:
        for pieces, column in zip(self.pending, batch.columns):
            pieces.append(column)
        self.n_pending += batch.num_rows
        while self.n_pending >= self.rows:
            self._flush(self.rows)

    def _flush(self, rows: int) -> None:
        head = []
        for k, field in enumerate(self.schema):
            pieces = pa.chunked_array(self.pending[k], field.type)
            self.pending[k] = []
            head.append(pieces.slice(0, rows).combine_chunks())
            # zero-copy views of the rows left over (an empty view would still pin the whole piece)
            self.pending[k] = [c for c in pieces.slice(rows).chunks if len(c)]
            del pieces
        self.writer.write_table(pa.Table.from_arrays(head, schema=self.schema), row_group_size=rows)
        self.written += rows
        self.n_pending -= rows

    def close(self) -> None:
        if self.n_pending:
            self._flush(self.n_pending)
        if self.written == 0:
            self.writer.write_table(self.schema.empty_table())
        self.writer.close()


def normalise_ads(
    ads_parquet: str | os.PathLike,
    out_parquet: str | os.PathLike,
    census: Census,
    batch_rows: int = BATCH_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> dict[str, Any]:
    """Stream the cleaned ads table into per-ad census-normalised segments (SEGMENTS_SCHEMA); return a report.

    Memory is one input batch of ``batch_rows`` ads (reading and the vectorised temporaries: about 10 KB
    an ad) plus one output row group of ``row_group_rows`` (built once, then encoded), whatever the
    number of ads. The output bytes depend on the input, the census and ``row_group_rows`` only, not on
    ``batch_rows``.
    """
    ads_parquet, out_parquet = Path(ads_parquet), Path(out_parquet)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    if not ads_parquet.is_file():
        raise FileNotFoundError(f"ads table not found: {ads_parquet} (run rule merge_ads first)")
    _check_columns(pq.read_schema(ads_parquet), ads_parquet)

    regions = _RegionCodes(census)
    status_counts: Counter[str] = Counter()
    unmapped_names: Counter[str] = Counter()
    n_in = n_unmapped = n_13_17 = n_roi = 0
    with atomic_path(out_parquet) as tmp:
        writer = _FixedRowGroups(tmp, SEGMENTS_SCHEMA, row_group_rows)
        for batch in iter_parquet_batches(ads_parquet, batch_rows, columns=list(INPUT_COLUMNS)):
            out, d = normalise_batch(batch, census, regions)
            writer.add(out)
            n_in += batch.num_rows
            status_counts.update(d.status.tolist())
            n_unmapped += int(np.count_nonzero(np.nan_to_num(d.region_unmapped_share) > 0))
            n_13_17 += int(np.count_nonzero(np.nan_to_num(d.share_13_17) > 0))
            n_roi += len(out.column("impressions_per_dollar")) - out.column("impressions_per_dollar").null_count
            unmapped_names.update(dict(d.unmapped_pairs))
            log.info("census: %d ads normalised", n_in)
        writer.close()

    top = sorted(unmapped_names.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_UNMAPPED]
    report = {
        "ads_in": n_in,
        "ads_out": writer.written,
        "census_status": {s: status_counts.get(s, 0) for s in STATUSES},
        "ads_with_unmapped_regions": n_unmapped,
        "unmapped_region_names": len(unmapped_names),
        "top_unmapped_regions": [{"region": name, "ads": count} for name, count in top],
        "ads_with_13_17_share": n_13_17,
        "ads_with_impressions_per_dollar": n_roi,
        "include_puerto_rico": census.include_puerto_rico,
        "census_states": len(census.states),
    }
    log.info("census report: %s", report)
    return report


# ---------------------------------------------------------------- one ad, for the figure


def _row_batch(ad_row: Mapping[str, Any]) -> pa.RecordBatch:
    types = {
        "ad_id": pa.string(),
        "page_id": pa.string(),
        "currency": pa.string(),
        "spend_lower": pa.int64(),
        "spend_upper": pa.int64(),
        "impressions_lower": pa.int64(),
        "impressions_upper": pa.int64(),
        "demo_age": _STR_LIST,
        "demo_gender": _STR_LIST,
        "demo_share": _F64_LIST,
        "region_name": _STR_LIST,
        "region_share": _F64_LIST,
    }
    arrays = []
    for name, typ in types.items():
        value = ad_row.get(name)
        if isinstance(typ, pa.ListType) and value is not None:
            value = list(value)  # numpy arrays from pandas rows
        elif value is not None and pd.isna(value):
            value = None
        arrays.append(pa.array([value], typ))
    return pa.RecordBatch.from_arrays(arrays, names=list(types))


def segment_row(ad_row: Mapping[str, Any], census: Census) -> dict[str, Any]:
    """The segments-table row (SEGMENTS_SCHEMA) of one ad, as a dict."""
    out, _ = normalise_batch(_row_batch(ad_row), census)
    return out.to_pylist()[0]


def delivery_views(ad_row: Mapping[str, Any], census: Census) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Figure-2 numbers for one ad: (state_raw, state_index, ag_raw, ag_index).

    state_raw: share of all the ad's impressions per census state as Meta reported it (municipios summed
    into Puerto Rico), reported states only, largest first. state_index: the per-capita index of the
    ranked states, in rank order. ag_raw: raw share per reported adult cell ("female 18-24"), in
    CELL_NAMES order. ag_index: the ranked cells' indexes, in rank order. Same code as normalise_ads.
    """
    batch = _row_batch(ad_row)
    out, d = normalise_batch(batch, census)
    row = out.to_pylist()[0]
    mask = d.state_reported[0]
    states = np.array(census.states, dtype=object)[mask]
    state_raw = pd.Series(d.state_raw[0][mask], index=pd.Index(states, dtype=object, name="state"), name="delivery_share")
    order = sorted(range(len(state_raw)), key=lambda i: (-state_raw.iloc[i], state_raw.index[i]))
    state_raw = state_raw.iloc[order]
    cmask = d.cell_reported[0]
    ag_raw = pd.Series(
        d.cell_raw[0][cmask],
        index=pd.Index(np.array(CELL_NAMES, dtype=object)[cmask], dtype=object, name="segment"),
        name="delivery_share",
    )
    state_index = pd.Series(row["state_index_ranked"], index=pd.Index(row["state_ranked"], dtype=object, name="state"),
                            name="per_capita_index", dtype=float)
    ag_index = pd.Series(row["age_gender_index_ranked"], index=pd.Index(row["age_gender_ranked"], dtype=object, name="segment"),
                         name="per_capita_index", dtype=float)
    return state_raw, state_index, ag_raw, ag_index
