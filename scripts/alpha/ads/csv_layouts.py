"""What a CSV dump's header says: the Ad Library field of each column, wide delivery columns, and
files that are not ad dumps at all (Ad Library Report downloads).

Wide layout (``ads.dumps[].layout: wide``, detected under ``auto``): delivery given as one column per
region and per age / gender band instead of (or beside) a list column. A column is

- a **region** when its header is ``region:<name>`` / ``region.<name>`` / ``delivery_by_region.<name>``
  (any region, US or not), a US state, DC, Puerto Rico or territory name as Meta spells them
  (``US_REGIONS``), or a name listed in ``ads.dumps[].wide_regions`` (e.g. Canadian provinces);
- a **demographic cell** when it names a gender and an age band (``female 25-34``, ``25-34_male``,
  ``demographic_distribution.female.25-34``);
- a **marginal** when it names only an age band (``age:25-34``, ``25-34``) or only a gender
  (``gender:female``, ``female``). A row with marginals and no cells gets cells under independence
  (share(age) × share(gender)); the report counts those rows (``wide_demographics_from_marginals``).

Cells hold fractions (``0.125``) or percentages (``12.5`` or ``12.5%``): a row's cells of one kind are
read as percentages when any carries ``%`` or they sum to more than 1.5 (fractions sum to about 1,
percentages to about 100). Empty and zero cells
are regions or bands the ad did not reach. A list column, where a row has one, wins over its wide
columns.

Accepted layouts: docs/inputs.md, "CSV".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

US_STATES = (
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware", "Florida",
    "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky", "Louisiana", "Maine",
    "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri", "Montana", "Nebraska",
    "Nevada", "New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Ohio",
    "Oklahoma", "Oregon", "Pennsylvania", "Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas",
    "Utah", "Vermont", "Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming",
)
US_REGIONS = US_STATES + (
    "Washington, District of Columbia", "District of Columbia", "Puerto Rico", "Guam", "American Samoa",
    "Northern Mariana Islands", "US Virgin Islands", "United States Virgin Islands",
)
_US_REGION_KEYS = {name.lower(): name for name in US_REGIONS}
# A row's cells sum to about 1 as fractions (Meta's rounding lets them pass 1 a little) and to about
# 100 as percentages: above this sum they are percentages.
PERCENT_ROW_SUM = 1.5
_REGION_PREFIX = re.compile(r"\A(?:delivery_by_region|region_distribution|region)\s*[.:]\s*(?P<name>.+)\Z", re.I)
_AGE = r"(?:13-17|\d{2}-\d{2}|\d{2}\+)"
_GENDER = r"(?:male|female|unknown|men|women)"
_GENDER_NAMES = {"men": "male", "women": "female"}
_SEP = r"[\s_.:|/]+"
_CELL = re.compile(
    rf"\A(?:demographic_distribution{_SEP}|demo(?:graphics?)?{_SEP})?"
    rf"(?:(?P<g1>{_GENDER}){_SEP}(?P<a1>{_AGE})|(?P<a2>{_AGE}){_SEP}(?P<g2>{_GENDER}))\Z", re.I)
_AGE_ONLY = re.compile(rf"\A(?:age(?:_band|_group)?{_SEP})?(?P<age>{_AGE})\Z", re.I)
# a bare "Unknown" column is Meta's unknown *region*; an unknown gender needs the "gender" prefix
_GENDER_ONLY = re.compile(rf"\A(?:gender{_SEP}(?P<gender>{_GENDER})|(?P<bare>male|female|men|women))\Z", re.I)

# Ad Library Report downloads (advertiser and location spend totals): recognised by their headers.
REPORT_LAYOUTS = {
    "advertiser spend totals": ({"page id", "page name"}, {"number of ads in library"}),
    "location spend totals": ({"location name"}, set()),
}


def header_key(column: str) -> str:
    """A header cell as compared with aliases: BOM and spaces trimmed, lower case."""
    return column.replace("\ufeff", "").strip().lower()


def report_layout(header: Sequence[str]) -> str | None:
    """The kind of Ad Library Report file this header belongs to, or None for anything else."""
    keys = {header_key(c) for c in header}
    if not any(k.startswith("amount spent") for k in keys):
        return None
    for kind, (any_of, all_of) in REPORT_LAYOUTS.items():
        if keys & any_of and all_of <= keys:
            return kind
    return None


@dataclass
class WideColumns:
    """Header positions of the wide layout's columns."""

    regions: dict[int, str] = field(default_factory=dict)  # column index -> region name
    cells: dict[int, tuple[str, str]] = field(default_factory=dict)  # -> (age, gender)
    ages: dict[int, str] = field(default_factory=dict)
    genders: dict[int, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.regions or self.cells or self.ages or self.genders)

    @property
    def indices(self) -> set[int]:
        return set(self.regions) | set(self.cells) | set(self.ages) | set(self.genders)


def _gender(text: str) -> str:
    text = text.lower()
    return _GENDER_NAMES.get(text, text)


def wide_columns(header: Sequence[str], skip: Iterable[int] = (), extra_regions: Iterable[str] = ()) -> WideColumns:
    """Classify the header cells that are not already mapped (``skip``) as wide delivery columns."""
    declared = {header_key(r): r.strip() for r in extra_regions}
    skip = set(skip)
    wide = WideColumns()
    for i, column in enumerate(header):
        if i in skip:
            continue
        text = column.replace("\ufeff", "").strip()
        key = text.lower()
        prefixed = _REGION_PREFIX.match(text)
        if prefixed:
            wide.regions[i] = _US_REGION_KEYS.get(prefixed.group("name").strip().lower(), prefixed.group("name").strip())
        elif key in _US_REGION_KEYS:
            wide.regions[i] = _US_REGION_KEYS[key]
        elif key in declared:
            wide.regions[i] = declared[key]
        elif m := _CELL.match(text):
            wide.cells[i] = (m.group("a1") or m.group("a2"), _gender(m.group("g1") or m.group("g2")))
        elif m := _AGE_ONLY.match(text):
            wide.ages[i] = m.group("age")
        elif m := _GENDER_ONLY.match(text):
            wide.genders[i] = _gender(m.group("gender") or m.group("bare"))
    if wide.regions:  # beside region columns, a bare "Unknown" is Meta's unknown region
        for i, column in enumerate(header):
            if i not in skip and i not in wide.indices and header_key(column) == "unknown":
                wide.regions[i] = "Unknown"
    return wide


def _shares(cells: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, share text) for the non-empty, non-zero cells; percentages become fractions. A cell
    that is not a number is passed on as written, so that the cleaning quarantines the record."""
    present = {k: v.strip() for k, v in cells.items() if v is not None and v.strip()}
    numbers: dict[str, float] = {}
    for name, text in present.items():
        try:
            numbers[name] = float(text.rstrip("%").strip())
        except ValueError:
            return [(n, t) for n, t in present.items()]
    percent = any(t.endswith("%") for t in present.values()) or sum(numbers.values()) > PERCENT_ROW_SUM
    return [(n, repr(v / 100.0 if percent else v)) for n, v in numbers.items() if v != 0.0]


def wide_values(wide: WideColumns, row: Sequence[str]) -> tuple[list[dict], list[dict], bool]:
    """(delivery_by_region entries, demographic_distribution entries, cells built from marginals)."""

    def cell(i: int) -> str:
        return row[i] if i < len(row) else ""

    regions = [{"region": n, "percentage": s} for n, s in _shares({wide.regions[i]: cell(i) for i in wide.regions})]
    demos = [{"age": k[0], "gender": k[1], "percentage": s}
             for k, s in _shares({wide.cells[i]: cell(i) for i in wide.cells})]
    from_marginals = False
    if not demos and (wide.ages and wide.genders):
        ages = _shares({wide.ages[i]: cell(i) for i in wide.ages})
        genders = _shares({wide.genders[i]: cell(i) for i in wide.genders})
        try:
            demos = [{"age": a, "gender": g, "percentage": repr(float(sa) * float(sg))} for a, sa in ages for g, sg in genders]
        except ValueError:  # a cell that is not a number: let the cleaning name it
            demos = [{"age": a, "gender": "unknown", "percentage": sa} for a, sa in ages]
        from_marginals = bool(demos)
    return regions, demos, from_marginals
