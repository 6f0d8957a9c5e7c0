"""Pew ATP raw waves (SPSS ``.sav``) -> OpinionQA-style questions with weighted group distributions.

Used by OpinionQA-XL (loader ``"opinionqa_xl"``, 9 attributes) and by OpinionQA-from-raw (loader
``"opinionqa_raw"``, OpinionQA's 12 attributes and, given the released ``human_resp``, its question set
and ordinals). The reading rules are this docstring's; docs/benchmarks.md, "Raw Pew ATP waves", has the group rules and docs/metrics.md the metrics.

Reading: ``pyreadstat.read_sav(path, apply_value_formats=False, user_missing=True)``: codes stay
numbers, value labels come from ``meta.variable_value_labels``, the question text from
``meta.column_names_to_labels``, and user-missing codes (``meta.missing_ranges`` /
``meta.missing_user_values``, e.g. 99) are kept as their codes instead of becoming NaN, so a refusal
is told apart from "not asked" (system-missing, NaN).

One question per survey column (``build_wave``), in file order. Columns checked, in this order, with
the first failing check counted as the skip reason (``WaveBuild.skipped``):

``non_item_column``       demographics ``F_*``, weights, ids and interview metadata (``NON_ITEM_COLUMNS``)
``no_value_labels``       not a categorical item
``no_variable_label``     no question text
``short_text``            question text of <= ``short_words`` (5) words
``too_many_options``      more than ``max_options`` (50) value labels
``too_few_substantive``   fewer than 2 options once refusal-type codes are set aside
``options_exceed_letters``  27-50 options: more than the 26 answer letters A-Z
``never_asked``           nobody gave a labelled answer

Question text = the variable label, whitespace collapsed, with a leading ``NAME.`` / ``NAME:`` echo
of the variable name removed (``strip_name_prefix``; ATP labels often start so). Options = the value
labels in code order; refusal-type options (code in ``refusal_codes`` (99), a user-missing code, or a
label made only of phrases in ``REFUSAL_PHRASES``: "Refused", "Don't know", "Not sure", ...) go last,
in code order, as OpinionQA's ``references`` do. Ordinals = the substantive codes (as floats), unless
``ordinal_overrides`` gives a list for the key (e.g. OpinionQA's ``option_ordinal``), or all equal
(excluded from the W1 metrics, and counted) for a question the shared nominal rule calls nominal
(``alpha.eval.loaders.nominal``: config overrides ``nominal`` / ``ordinal``, then OpinionQA's marking
where known, then the name list, then the label heuristic); the report lists them (``nominal``).

Human distributions: ``metrics.human_distribution`` over the codes, weighted by ``WEIGHT_W{wave}``
(respondents with a missing or negative weight dropped and counted); no weight column -> unweighted,
recorded in the report. Per group from ``AttributeRule``s: a respondent's group is read from the value
*label* of their code (labels are steadier across waves than codes), matched against regexes (full
match on the normalised label) or, for income, against dollar bands parsed from the label. Labels that
match no group, no ``ignore`` pattern and are not refusals are reported as ``unmapped``; attributes
with none of their candidate columns present as ``missing_attributes`` (a wave without an income
variable builds no INCOME groups and says so; it does not fail). Names and spellings drift between
waves: extend the candidate columns / patterns from config (``attribute_rules``).

Group rules of OpinionQA-from-raw (``OQA_ATTRIBUTES``), the groups of OpinionQA's per-group files:

- RACE from ``F_RACECMB`` + ``F_HISP``: White, Black and Asian respondents stay in their race whatever
  the Hispanic flag says; respondents of mixed, some other or refused race who are Hispanic are
  Hispanic; non-Hispanic mixed race is "Mixed Race", non-Hispanic "some other race" is "Other".
  A wave with only a combined race-ethnicity variable (``F_RACETHNMOD``, ``F_RACETHN_RECRUITMENT``)
  maps "White/Black/Asian non-Hispanic" to White/Black/Asian and "Hispanic" to Hispanic; it cannot
  give back OpinionQA's Hispanic White/Black/Asian respondents (they are Hispanic there) nor split its
  "Other" into Mixed Race and Other (neither is built); the wave's report says so (``attribute_notes``).
- INCOME in OpinionQA's five bands; a variable whose brackets straddle a band edge is read through its
  bracket table (``INCOME_BRACKETS``, written with ``bracket_band``: the band holding the bracket's
  midpoint, so ``$70,000 to less than $80,000`` is ``$75,000-$100,000``).
- Spellings of W26-W92: sex from ``F_SEX`` or ``F_GENDER`` ("A man"/"A woman"), citizenship "Yes"/"No"
  or "US Citizen"/"Not US Citizen", party "Something else" (or "other") is Other.

OpinionQA-XL (``XL_ATTRIBUTES``) keeps its own grouping: Hispanic of any race, no Mixed Race/Other.

Field dates come from config, ``{wave: {"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}}``; Table 2 uses
the waves fielded entirely within March-August 2023 (``table2_waves``).
"""  # noqa: E501  (a docstring line; wrapping would change the text)
from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from alpha.eval.distributions import HumanDistribution, human_distribution, normalised_wd
from alpha.eval.loaders import LoadResult, quarantine_counts, register_loader
from alpha.eval.loaders import opinionqa as oqa
from alpha.eval.loaders.nominal import NominalRule

log = logging.getLogger("alpha.eval.loaders.atp")

REFUSAL_CODES = (99,)
REFUSAL_PHRASES = frozenset({
    "refused", "refuse", "ref", "don't know", "dont know", "do not know", "dk", "not sure", "no answer", "na",
    "skipped", "web skip", "skipped on web", "prefer not to say", "prefer not to answer", "no opinion",
})
NON_ITEM_COLUMNS = (r"F_.*", r"WEIGHT.*", r"QKEY", r"CASEID", r"RESP_?ID", r"INTERVIEW_(START|END).*",
                    r"DEVICE_TYPE.*", r"LANG(UAGE)?(_W\d+)?", r"FORM(_W\d+)?", r"XTABLET.*", r"XPANEL.*",
                    r"XW\d+.*", r"WAVE(_W\d+)?")
SHORT_WORDS, MAX_OPTIONS = 5, 50
TABLE2_WINDOW = ("2023-03-01", "2023-08-31")
SAV_WAVE = re.compile(r"W(\d+)", re.I)


# ------------------------------------------------------------------------------------- labels

def normalise_label(label: Any) -> str:
    """Lower case, typographic quotes straightened, "(VOL.)" dropped, whitespace collapsed."""
    text = str(label).replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-").replace("\u2014", "-")
    text = re.sub(r"\(\s*vol\.?\s*\)", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip(" .:;")


def is_refusal_label(label: Any) -> bool:
    """True when every part of the label (split on "/", "," and " or ") is a refusal-type phrase:
    "Refused", "Don't know/Refused", "Not sure"; not "No, not sure" ("no" is an answer)."""
    parts = [p.strip(" .:;") for p in re.split(r"/|,|\bor\b", normalise_label(label))]
    parts = [p for p in parts if p]
    return bool(parts) and all(p in REFUSAL_PHRASES for p in parts)


def clean_question(label: Any, name: str, strip_name_prefix: bool = True) -> str:
    """The variable label as question text: whitespace collapsed; ``SAFECRIME_W26. How safe ...``
    loses the echo of its own name (with or without the wave suffix)."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return ""
    text = re.sub(r"\s+", " ", str(label)).strip()
    if strip_name_prefix:
        stem = re.sub(r"_W\d+\Z", "", name, flags=re.I)
        pattern = rf"\A(?:{re.escape(name)}|{re.escape(stem)})(?:_W\d+)?\s*[.:]\s*"
        text = re.sub(pattern, "", text, flags=re.I)
    return text


# ------------------------------------------------------------------------------------- attributes

@dataclass(frozen=True)
class AttributeRule:
    """How one attribute's groups are read from a raw wave.

    ``columns``: candidate column names, the first present wins. ``groups``: group label -> regexes,
    full-matched against the normalised value label. ``bands``: group label -> (low, high) dollars,
    a label's parsed range [lo, hi) must lie inside (income). ``ignore``: regexes for labels that are
    known but belong to no target group. ``override``: (columns, regexes, group): respondents whose
    label in that column matches join ``group`` whatever ``columns`` say (XL: Hispanic, of any race),
    except those already in a group named in ``keep`` ("override only when not one of these";
    OpinionQA: White, Black and Asian stay in their race whatever the Hispanic flag says).
    ``by_column``: column -> the rule used instead when that column is the one present (a variable
    with other labels or another meaning, e.g. a combined race-ethnicity variable, or an income
    variable with its own bracket table); ``note``: what such a variant cannot recover, copied into
    the loader's per-wave report (``attribute_notes``)."""

    name: str
    columns: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    bands: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    override: tuple[tuple[str, ...], tuple[str, ...], str] | None = None
    keep: tuple[str, ...] = ()
    by_column: Mapping[str, "AttributeRule"] = field(default_factory=dict)
    note: str = ""

    def labels(self) -> list[str]:
        return list(self.groups) + [g for g in self.bands if g not in self.groups] + (
            [self.override[2]] if self.override and self.override[2] not in self.groups else [])

    def for_column(self, column: str | None) -> "AttributeRule":
        """The rule that reads ``column`` (its ``by_column`` variant, else this rule)."""
        return self.by_column.get(column, self) if column is not None else self


_MONEY = re.compile(r"\$?\s*(\d[\d,]*(?:\.\d+)?)\s*(k\b)?")


def income_range(label: Any) -> tuple[float, float] | None:
    """"Less than $30,000" -> (0, 30000); "30 to under $40,000" -> (30000, 40000); "$150,000 or more"
    -> (150000, inf); amounts under 1,000 are thousands (Pew writes "10 to under $20,000")."""
    text = normalise_label(label)
    amounts = []
    for m in _MONEY.finditer(text):
        x = float(m.group(1).replace(",", ""))
        amounts.append(x * 1000 if (m.group(2) or x < 1000) else x)
    if not amounts:
        return None
    if re.match(r"(less than|under|below|up to)\b", text):
        return (0.0, amounts[0])
    if re.search(r"(or more|or over|or higher|and over|and above|\+)", text):
        return (amounts[0], math.inf)
    if len(amounts) >= 2:
        return (amounts[0], amounts[1])
    return None


def bracket_band(label: Any, bands: Mapping[str, tuple[float | None, float | None]]) -> str | None:
    """The band an income bracket is counted in: the band holding the bracket's midpoint, bands read
    as half-open [low, high) (an open-ended bracket counts by its finite end: "$150,000 or more" ->
    150,000). A bracket inside one band lands in that band; a bracket straddling a band edge lands
    where most of its range lies, and on a tie (edge at the midpoint) in the upper band:
    "$70,000 to less than $80,000" -> 75,000 -> "$75,000-$100,000", as OpinionQA counts it. None:
    no parsable range, or a midpoint in no band. ``INCOME_BRACKETS`` is this rule written out per
    variable; the builder reads the tables, not this function."""
    rng = income_range(label)
    if rng is None:
        return None
    lo, hi = rng
    x = lo if math.isinf(hi) else (lo + hi) / 2
    return next((g for g, (blo, bhi) in bands.items() if (blo is None or x >= blo) and (bhi is None or x < bhi)), None)


def _exact(*labels: str) -> tuple[str, ...]:
    """Regexes full-matching exactly these value labels (normalised)."""
    return tuple(re.escape(normalise_label(label)) for label in labels)


def _age(lo: int, hi: int | None) -> tuple[str, ...]:
    if hi is None:
        return (rf"(ages? )?{lo} ?(\+|or older|and older|or over)( years)?",)
    return (rf"(ages? )?{lo} ?(-|to) ?{hi}( years)?",)


_REGION = {r: (r.lower(),) for r in ("Northeast", "Midwest", "South", "West")}
_AGE = {"18-29": _age(18, 29), "30-49": _age(30, 49), "50-64": _age(50, 64), "65+": _age(65, None)}
_EDUCATION = {
    "Less than high school": (r"less than (a )?high school.*",),
    "High school graduate": (r"high school grad(uate)?.*",),
    "Some college, no degree": (r"some college.*",),
    "Associate's degree": (r"associate'?s?( degree)?.*",),
    "College graduate/some postgrad": (r"college grad(uate)?.*", r"bachelor'?s?( degree)?.*"),
    "Postgraduate": (r"post-? ?grad(uate)?.*", r"master'?s?( degree)?.*"),
}
# F_SEX "Male"/"Female"; F_GENDER (later waves) "A man"/"A woman"/"In some other way"
_SEXES = {"Male": (r"male", r"a man", r"man", r"men"), "Female": (r"female", r"a woman", r"woman", r"women")}
_RELIG = {"Protestant": (r"protestant\b.*",), "Roman Catholic": (r"(roman )?catholic\b.*",), "Mormon": (r"mormon\b.*",),
          "Orthodox": (r"orthodox\b.*",), "Jewish": (r"jewish\b.*",), "Muslim": (r"muslim\b.*",),
          "Buddhist": (r"buddhist\b.*",), "Hindu": (r"hindu\b.*",), "Atheist": (r"atheist\b.*",),
          "Agnostic": (r"agnostic\b.*",), "Other": (r"(something else|other)\b.*",),
          "Nothing in particular": (r"nothing in particular\b.*",)}
# citizenship: "Yes"/"No", or "US Citizen"/"Not US Citizen" ("U.S. citizen", "Non-citizen")
_CITIZEN = {"Yes": (r"yes\b.*", r"(a )?u\.? ?s\.? citizen\b.*", r"citizen"),
            "No": (r"no\b.*", r"not (a )?(u\.? ?s\.? )?citizen\b.*", r"non-? ?(u\.? ?s\.? )?citizen\b.*")}
# party: "Something else" (also "Something else, specify") and "Other party" are OpinionQA's Other
_PARTY = {"Republican": (r"republican\b.*",), "Democrat": (r"democrat(ic)?\b.*",), "Independent": (r"independent\b.*",),
          "Other": (r"something else\b.*", r"other\b.*")}
# race (F_RACECMB): "White", "Black or African-American", "Asian or Asian-American", "Mixed Race",
# "Or some other race"
_RACE = {"White": (r"white\b.*",), "Black": (r"black\b.*",), "Asian": (r"asian\b.*",)}
_MIXED = (r"mixed\b.*", r"multiracial.*", r"multiple races?\b.*", r"two or more.*")
_SOME_OTHER = (r"(or )?some other race.*", r"other\b.*")
_RACE_OTHER = _MIXED + _SOME_OTHER  # XL: known, no target group
_HISPANIC = (("F_HISP_RECRUITMENT", "F_HISP"), (r"yes\b.*",), "Hispanic")
# OpinionQA's RACE groups as its per-group files spell them ("Mixed Race" is its own group there; the
# metadata lists the other five). "Hispanic" has no race label: it comes from the override, which
# leaves White, Black and Asian respondents in their race (``keep``) and moves Hispanic respondents of
# mixed, some other or refused race (or no race label) into Hispanic.
_RACE_OQA = {**_RACE, "Hispanic": (), "Other": _SOME_OTHER, "Mixed Race": _MIXED}
# combined race-ethnicity variables (one variable, Hispanic first), used only where a wave has no
# F_RACECMB: "White non-Hispanic", "Black non-Hispanic", "Asian non-Hispanic" (newer versions only),
# "Hispanic", "Other" (mixed and other races, non-Hispanic; also Asian where there is no Asian code)
RACETHN_COLUMNS = ("F_RACETHNMOD", "F_RACETHN_RECRUITMENT", "F_RACETHN")
_NON_HISP = r",? (non-? ?hispanic|not hispanic)\b.*"
_RACETHN = {"White": (r"white" + _NON_HISP,), "Black": (r"black" + _NON_HISP,), "Asian": (r"asian" + _NON_HISP,),
            "Hispanic": (r"hispanic\b.*",)}
_RACETHN_OTHER = (r"other\b.*", r"mixed\b.*", r"(or )?some other race.*", r"multiracial.*")
_IDEO5 = {g: (g.lower(),) for g in ("Very conservative", "Conservative", "Moderate", "Liberal", "Very liberal")}
_INCOME5 = {"Less than $30,000": (None, 30000.0), "$30,000-$50,000": (30000.0, 50000.0),
            "$50,000-$75,000": (50000.0, 75000.0), "$75,000-$100,000": (75000.0, 100000.0),
            "$100,000 or more": (100000.0, None)}
_INCOME_FINAL_BRACKETS = {
    "Less than $10,000": "Less than $30,000", "10 to under $20,000": "Less than $30,000",
    "20 to under $30,000": "Less than $30,000", "30 to under $40,000": "$30,000-$50,000",
    "40 to under $50,000": "$30,000-$50,000", "50 to under $75,000": "$50,000-$75,000",
    "75 to under $100,000": "$75,000-$100,000", "100 to under $150,000": "$100,000 or more",
    "$150,000 or more": "$100,000 or more"}
INCOME_BRACKETS: dict[str, dict[str, str]] = {
    # variable -> {bracket (value label): OpinionQA income band}; written out with ``bracket_band`` (the
    # midpoint rule). F_INCOME(_FINAL)'s brackets all lie inside one band.
    "F_INCOME_FINAL": _INCOME_FINAL_BRACKETS,
    "F_INCOME": _INCOME_FINAL_BRACKETS,
    # F_INC_SDT1 (later waves): $10,000 brackets from $30,000 to $100,000; "$70,000 to less than
    # $80,000" straddles the $75,000 edge and is counted in $75,000-$100,000 (OpinionQA does the same)
    "F_INC_SDT1": {
        "Less than $30,000": "Less than $30,000",
        "$30,000 to less than $40,000": "$30,000-$50,000", "$40,000 to less than $50,000": "$30,000-$50,000",
        "$50,000 to less than $60,000": "$50,000-$75,000", "$60,000 to less than $70,000": "$50,000-$75,000",
        "$70,000 to less than $80,000": "$75,000-$100,000", "$80,000 to less than $90,000": "$75,000-$100,000",
        "$90,000 to less than $100,000": "$75,000-$100,000", "$100,000 or more": "$100,000 or more"},
}


def _bracket_rule(name: str, bands: Mapping[str, tuple[float | None, float | None]],
                  table: Mapping[str, str]) -> AttributeRule:
    """An income rule reading a bracket table first (exact labels), then band containment."""
    groups = {g: _exact(*[label for label, band in table.items() if band == g]) for g in bands}
    return AttributeRule(name, (), {g: p for g, p in groups.items() if p}, bands)


C = {  # candidate columns per attribute, newest spellings after the FINAL ones
    "CREGION": ("F_CREGION_FINAL", "F_CREGION"), "AGE": ("F_AGECAT_FINAL", "F_AGECAT"),
    "SEX": ("F_SEX_FINAL", "F_SEX", "F_GENDER"), "GENDER": ("F_GENDER", "F_SEX_FINAL", "F_SEX"),
    "EDUCATION": ("F_EDUCCAT2_FINAL", "F_EDUCCAT2"),
    "CITIZEN": ("F_CITIZEN_RECODE_RECRUITMENT", "F_CITIZEN_FINAL", "F_CITIZEN", "F_CITIZEN_RECODE"),
    "MARITAL": ("F_MARITAL_FINAL", "F_MARITAL"), "RELIG": ("F_RELIG_FINAL", "F_RELIG"),
    "RELIGATTEND": ("F_ATTEND_FINAL", "F_ATTEND"), "POLPARTY": ("F_PARTY_FINAL", "F_PARTY"),
    "INCOME": ("F_INCOME_FINAL", "F_INC_SDT1", "F_INCOME"), "POLIDEOLOGY": ("F_IDEO_FINAL", "F_IDEO"),
    "RACE": ("F_RACECMB_RECRUITMENT", "F_RACECMB") + RACETHN_COLUMNS,  # combined variable: last resort
}

_OQA_RACETHN = AttributeRule(
    "RACE", (), _RACETHN, ignore=_RACETHN_OTHER,
    note="combined race-ethnicity variable (no separate race and Hispanic columns): White/Black/Asian "
         "non-Hispanic -> White/Black/Asian, Hispanic -> Hispanic; not recoverable: OpinionQA keeps Hispanic "
         "White, Black and Asian respondents in their race, this variable has them as Hispanic (White/Black/Asian "
         "undercounted, Hispanic overcounted); its 'Other' (mixed and some other race) cannot be split into "
         "Mixed Race and Other, so neither group is built; where it has no Asian code, Asian is empty")
_XL_RACETHN = AttributeRule(
    "RACE", (), _RACETHN, ignore=_RACETHN_OTHER,
    note="combined race-ethnicity variable: White/Black/Asian non-Hispanic -> White/Black/Asian, Hispanic "
         "(of any race) -> Hispanic, the same groups as race + Hispanic flag; where it has no Asian code, "
         "Asian respondents are in its 'Other' and Asian is empty")

OQA_ATTRIBUTES: dict[str, AttributeRule] = {r.name: r for r in (
    AttributeRule("CREGION", C["CREGION"], _REGION),
    AttributeRule("AGE", C["AGE"], _AGE),
    AttributeRule("SEX", C["SEX"], _SEXES, ignore=(r"in some other way.*", r"other.*")),
    AttributeRule("EDUCATION", C["EDUCATION"], _EDUCATION),
    AttributeRule("CITIZEN", C["CITIZEN"], _CITIZEN),
    AttributeRule("MARITAL", C["MARITAL"], {"Married": (r"married",), "Divorced": (r"divorced",),
                                            "Separated": (r"separated",), "Widowed": (r"widowed",),
                                            "Never been married": (r"never (been )?married",)},
                  ignore=(r"living with a partner.*",)),
    AttributeRule("RELIG", C["RELIG"], _RELIG),
    AttributeRule("RELIGATTEND", C["RELIGATTEND"], {g: (g.lower(),) for g in (
        "More than once a week", "Once a week", "Once or twice a month", "A few times a year", "Seldom", "Never")}),
    AttributeRule("POLPARTY", C["POLPARTY"], _PARTY),
    AttributeRule("INCOME", C["INCOME"], bands=_INCOME5,
                  by_column={c: _bracket_rule("INCOME", _INCOME5, t) for c, t in INCOME_BRACKETS.items()}),
    AttributeRule("POLIDEOLOGY", C["POLIDEOLOGY"], _IDEO5),
    AttributeRule("RACE", C["RACE"], _RACE_OQA, override=_HISPANIC, keep=tuple(_RACE),
                  by_column={c: _OQA_RACETHN for c in RACETHN_COLUMNS}),
)}

# OpinionQA-XL: 9 attributes, (n) groups: CREGION (4), AGE (4), EDUCATION (6), GENDER (2), POLIDEOLOGY (3),
# INCOME (2), POLPARTY (2), RACE (4), RELIG (5). XL's own grouping: RACE is White, Black, Asian and Hispanic
# of any race (the Hispanic flag wins; mixed and other races are no group); the income bands are the
# outer two, so no bracket straddles them.
XL_ATTRIBUTES: dict[str, AttributeRule] = {r.name: r for r in (
    AttributeRule("CREGION", C["CREGION"], _REGION),
    AttributeRule("AGE", C["AGE"], _AGE),
    AttributeRule("EDUCATION", C["EDUCATION"], _EDUCATION),
    AttributeRule("GENDER", C["GENDER"], _SEXES, ignore=(r"in some other way.*", r"other.*")),
    AttributeRule("POLIDEOLOGY", C["POLIDEOLOGY"], {"Conservative": (r"(very )?conservative",),
                                                    "Moderate": (r"moderate",), "Liberal": (r"(very )?liberal",)}),
    AttributeRule("INCOME", C["INCOME"], bands={"Less than $30,000": (None, 30000.0), "$100,000 or more": (100000.0, None)}),
    AttributeRule("POLPARTY", C["POLPARTY"], {g: _PARTY[g] for g in ("Republican", "Democrat")},
                  ignore=_PARTY["Independent"] + _PARTY["Other"]),
    AttributeRule("RACE", C["RACE"], _RACE, ignore=_RACE_OTHER, override=_HISPANIC,
                  by_column={c: _XL_RACETHN for c in RACETHN_COLUMNS}),
    AttributeRule("RELIG", C["RELIG"], {g: _RELIG[g] for g in ("Protestant", "Jewish", "Hindu", "Atheist", "Muslim")},
                  ignore=tuple(p for g, ps in _RELIG.items() if g not in ("Protestant", "Jewish", "Hindu", "Atheist", "Muslim")
                               for p in ps)),
)}
XL_GROUP_COUNTS = {"CREGION": 4, "AGE": 4, "EDUCATION": 6, "GENDER": 2, "POLIDEOLOGY": 3, "INCOME": 2, "POLPARTY": 2,
                   "RACE": 4, "RELIG": 5}
XL_STEER_GROUPS = tuple((a, g) for a, rule in XL_ATTRIBUTES.items() for g in rule.labels())


def _rule_from_spec(name: str, value: Mapping[str, Any], parent: AttributeRule | None = None) -> AttributeRule:
    """One rule from a config mapping; a ``by_column`` variant (``parent`` given) inherits what it omits."""
    def pick(key, convert, default):
        if key in value:
            return convert(value[key])
        return getattr(parent, key) if parent is not None else default

    def override(ov):
        return (tuple(ov["columns"]), tuple(ov["patterns"]), ov["group"]) if ov else None

    groups = pick("groups", lambda v: {g: tuple([p] if isinstance(p, str) else p) for g, p in (v or {}).items()}, {})
    bands = pick("bands", lambda v: {g: (b[0], b[1]) for g, b in (v or {}).items()}, {})
    if value.get("brackets"):  # {bracket label: band}: exact labels, read before the bands
        groups = dict(groups)
        for label, band in value["brackets"].items():
            groups[band] = tuple(groups.get(band, ())) + _exact(label)
    if "override" in value:
        keep = tuple((value["override"] or {}).get("keep") or ())
    else:
        keep = parent.keep if parent is not None else ()
    return AttributeRule(name=name, columns=tuple(value["columns"]) if parent is None else (), groups=groups,
                         bands=bands, ignore=pick("ignore", lambda v: tuple(v or ()), ()),
                         override=pick("override", override, None), keep=keep, note=str(value.get("note") or ""))


def attribute_rules(spec: Mapping[str, Any] | None, base: Mapping[str, AttributeRule] = XL_ATTRIBUTES,
                    column_map: Mapping[str, Sequence[str]] | None = None) -> dict[str, AttributeRule]:
    """Rules from config: ``spec`` maps attribute -> an ``AttributeRule`` or a plain mapping with
    ``columns``, ``groups`` ({group: [regex]}), ``bands`` ({group: [lo, hi]}), ``brackets`` ({bracket
    label: band}, an income bracket table), ``ignore``, ``override`` ({columns, patterns, group, keep:
    [groups the override leaves alone]}), ``by_column`` ({column: mapping as above without
    ``columns``, taking what it omits from the attribute's mapping}) and ``note``; ``None`` keeps
    ``base``. ``column_map`` ({attribute: [columns]}) puts extra candidate columns first (renamed
    variables in some wave)."""
    rules = dict(base)
    for name, value in (spec or {}).items():
        if isinstance(value, AttributeRule):
            rules[name] = value
            continue
        rule = _rule_from_spec(name, value)
        variants = {c: _rule_from_spec(name, v, parent=rule) for c, v in (value.get("by_column") or {}).items()}
        rules[name] = replace(rule, by_column=variants)
    for name, cols in (column_map or {}).items():
        if name not in rules:
            raise KeyError(f"column_map names unknown attribute {name!r}; known: {sorted(rules)}")
        r = rules[name]
        rules[name] = replace(r, columns=tuple(cols) + tuple(c for c in r.columns if c not in cols))
    return rules


def _label_map(meta, column: str) -> dict[float, str]:
    labels = meta.variable_value_labels.get(column, {}) or {}
    out = {}
    for code, label in labels.items():
        try:
            out[float(code)] = str(label)
        except (TypeError, ValueError):
            continue
    return out


def _match(rule: AttributeRule, label: str) -> list[str]:
    text = normalise_label(label)
    hits = [g for g, pats in rule.groups.items() if any(re.fullmatch(p, text) for p in pats)]
    if rule.bands:
        rng = income_range(label)
        if rng is not None:
            lo, hi = rng
            hits += [g for g, (blo, bhi) in rule.bands.items()
                     if (blo is None or lo >= blo) and (bhi is None or hi <= bhi) and g not in hits]
    return hits


def _between_bands(rule: AttributeRule, label: str) -> bool:
    """A parsed income range overlapping none of the rule's bands (a middle band, no target group);
    a range that straddles a band edge is not: it is reported as unmapped unless the variable's
    bracket table (``INCOME_BRACKETS``, a ``by_column`` variant) places it."""
    rng = income_range(label)
    if rng is None:
        return False
    lo, hi = rng
    return not any(lo < (math.inf if bhi is None else bhi) and hi > (-math.inf if blo is None else blo)
                   for blo, bhi in rule.bands.values())


def _people(n: int) -> str:
    return f"{n} respondent{'' if n == 1 else 's'}"


def assign_groups(df: pd.DataFrame, meta, rules: Mapping[str, AttributeRule]) -> tuple[dict[str, np.ndarray], dict, list, dict]:
    """({"ATTR=group": respondent mask}, {attribute: unmapped labels}, missing attributes, {attribute: column used}).

    Per attribute: the first candidate column present, read with its ``by_column`` variant if any;
    a respondent's group comes from the value label of their code. Unmapped (per attribute, each with
    its respondent count): labels of a group-less, non-refusal, non-ignored code that respondents
    hold (an income bracket straddling a band edge says so), ambiguous labels, codes respondents
    hold that have no value label, and an override column that is absent. Masks are built for the
    groups the rule used can produce (a combined race-ethnicity variable builds no Mixed Race/Other)."""
    masks: dict[str, np.ndarray] = {}
    unmapped: dict[str, list[str]] = {}
    missing: list[str] = []
    used: dict[str, str] = {}
    n = len(df)
    for name, base in rules.items():
        column = next((c for c in base.columns if c in df.columns), None)
        if column is None:
            missing.append(name)
            continue
        used[name] = column
        rule = base.for_column(column)
        labels = _label_map(meta, column)
        codes = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
        group_of = np.full(n, None, dtype=object)
        bad: set[str] = set()
        for code, label in labels.items():
            hits = _match(rule, label)
            held = codes == code
            if len(hits) > 1:
                bad.add(f"{label} (ambiguous: {', '.join(hits)})")
            if hits:
                group_of[held] = hits[0]
            elif held.any() and not (is_refusal_label(label)
                                     or any(re.fullmatch(p, normalise_label(label)) for p in rule.ignore)
                                     or (rule.bands and _between_bands(rule, label))):
                straddles = bool(rule.bands) and income_range(label) is not None
                bad.add(f"{label} ({_people(int(held.sum()))}" + ("; straddles an income band edge: no bracket "
                                                                   "table entry" if straddles else "") + ")")
        stray = ~np.isnan(codes) & ~np.isin(codes, list(labels))
        if stray.any():
            shown = ", ".join(f"{c:g}" for c in sorted(set(codes[stray].tolist())))
            bad.add(f"(codes without a value label: {shown}; {_people(int(stray.sum()))})")
        if rule.override:
            ocols, pats, ogroup = rule.override
            ocol = next((c for c in ocols if c in df.columns), None)
            if ocol is not None:
                olabels = _label_map(meta, ocol)
                ocodes = pd.to_numeric(df[ocol], errors="coerce").to_numpy(dtype=np.float64)
                open_to = np.array([g not in rule.keep for g in group_of], dtype=bool)  # "only when not one of these"
                for code, label in olabels.items():
                    if any(re.fullmatch(p, normalise_label(label)) for p in pats):
                        group_of[(ocodes == code) & open_to] = ogroup
            else:
                bad.add(f"(override column {'/'.join(ocols)} absent: no {ogroup!r} group)")
        for g in rule.labels():
            masks[oqa.group_key(name, g)] = group_of == g
        if bad:
            unmapped[name] = sorted(bad)
    return masks, unmapped, missing, used


def attribute_notes(rules: Mapping[str, AttributeRule], columns: Mapping[str, str]) -> dict[str, str]:
    """{attribute: note} for the attributes read with a rule that carries a ``note`` (what the column
    used cannot recover), given {attribute: column used} (``WaveBuild.attribute_columns``)."""
    out = {}
    for name, column in columns.items():
        rule = rules.get(name)
        note = rule.for_column(column).note if rule is not None else ""
        if note:
            out[name] = f"{column}: {note}"
    return out


# ------------------------------------------------------------------------------------- waves

def read_wave(path: str | os.PathLike, encoding: str | None = None, usecols: Sequence[str] | None = None):
    """``(df, meta)`` from ``pyreadstat.read_sav`` with codes (no value formats) and user-missing kept."""
    import pyreadstat

    return pyreadstat.read_sav(str(path), apply_value_formats=False, user_missing=True, encoding=encoding,
                               usecols=list(usecols) if usecols else None)


def user_missing_codes(meta, column: str, labels: Iterable[float]) -> set[float]:
    """Codes declared missing for ``column`` (SPSS missing values / ranges), among ``labels``."""
    out: set[float] = set()
    for spec in (getattr(meta, "missing_ranges", {}) or {}).get(column, []) or []:
        lo, hi = (spec.get("lo"), spec.get("hi")) if isinstance(spec, dict) else (spec, spec)
        try:
            lo, hi = float(lo), float(hi)
        except (TypeError, ValueError):
            continue
        out |= {c for c in labels if lo <= c <= hi}
        if lo == hi:
            out.add(lo)
    for v in (getattr(meta, "missing_user_values", {}) or {}).get(column, []) or []:
        try:
            out.add(float(v))
        except (TypeError, ValueError):
            continue
    return out


def wave_of(path: str | os.PathLike, columns: Iterable[str] = ()) -> int | None:
    """The wave number from the file name (``ATP W26.sav``) or else from a ``WEIGHT_W<n>`` column."""
    m = SAV_WAVE.search(Path(path).stem)
    if m:
        return int(m.group(1))
    found = [int(m.group(1)) for c in columns if (m := re.fullmatch(r"WEIGHT_W(\d+)", str(c)))]
    return found[0] if len(found) == 1 else None


@dataclass
class WaveBuild:
    survey: str
    wave: int | None
    questions: list[dict[str, Any]]
    skipped: Counter
    skipped_items: list[dict[str, str]]
    weight: str | None  # None: unweighted
    respondents: int
    dropped_no_weight: int
    groups: dict[str, int]  # group -> respondents
    unmapped: dict[str, list[str]]
    missing_attributes: list[str]
    attribute_columns: dict[str, str]
    keys_not_in_file: list[str]
    answers_not_an_option: int = 0
    overrides_ignored: list[str] = field(default_factory=list)


def build_wave(df: pd.DataFrame, meta, survey: str, wave: int | None = None,
               attributes: Mapping[str, AttributeRule] = XL_ATTRIBUTES, keys: Iterable[str] | None = None,
               ordinal_overrides: Mapping[str, Sequence[float]] | None = None, weight: str | None = None,
               weighted: bool = True, refusal_codes: Iterable[float] = REFUSAL_CODES, short_words: int = SHORT_WORDS,
               max_options: int = MAX_OPTIONS, non_item: Sequence[str] = NON_ITEM_COLUMNS,
               strip_name_prefix: bool = True, cross: Sequence[tuple[str, str]] = (),
               nominal_rule: NominalRule | None = None) -> WaveBuild:
    """Questions of one raw wave (module docstring). Each question: ``key, question, references``
    (option labels, substantive then refusal-type), ``codes`` (same order), ``ordinals``,
    ``n_ordinal``, ``human`` ({"Overall" | "ATTR=group": HumanDistribution}), ``unweighted``
    (Overall, unweighted, for the compat variant). ``cross``: attribute pairs whose groups are also
    crossed, e.g. ("AGE", "GENDER") adds "AGE=18-29&GENDER=Female" and the like. Nominal questions
    (``nominal_rule``, default the shared rule without overrides: ``alpha.eval.loaders.nominal``; an
    ``ordinal_overrides`` entry is OpinionQA's marking) get all-equal ordinals."""
    rule = nominal_rule if nominal_rule is not None else NominalRule()
    weight = weight or oqa.weight_column(df.columns, wave)
    if weight is not None and weight not in df.columns:
        raise KeyError(f"{survey}: weight column {weight!r} not in the file")
    dropped = 0
    if weight is not None:
        w = pd.to_numeric(df[weight], errors="coerce")
        ok = (w.notna() & np.isfinite(w) & (w >= 0)).to_numpy()
        dropped = int((~ok).sum())
        df = df[ok].reset_index(drop=True)
        weights = pd.to_numeric(df[weight], errors="coerce").to_numpy(dtype=np.float64)
    else:
        weights = None
    use_w = weights if weighted else None
    masks, unmapped, missing_attrs, used = assign_groups(df, meta, attributes)
    for first, second in cross:
        for ka, ma in [(k, m) for k, m in masks.items() if k.startswith(f"{first}=") and "&" not in k]:
            for kb, mb in [(k, m) for k, m in masks.items() if k.startswith(f"{second}=") and "&" not in k]:
                masks[f"{ka}&{kb}"] = ma & mb
    refusal_codes = {float(c) for c in refusal_codes}
    labels_of = meta.column_names_to_labels or {}
    wanted = None if keys is None else list(dict.fromkeys(keys))
    columns = list(df.columns) if wanted is None else [k for k in wanted if k in df.columns]
    skipped, skipped_items, questions = Counter(), [], []
    overrides_ignored: list[str] = []
    n_unmatched = 0

    def skip(col, reason, detail=""):
        skipped[reason] += 1
        skipped_items.append({"survey": survey, "key": col, "reason": reason, "detail": detail})

    for col in columns:
        if wanted is None and any(re.fullmatch(p, col, flags=re.I) for p in non_item):
            skip(col, "non_item_column")
            continue
        labels = _label_map(meta, col)
        if not labels:
            skip(col, "no_value_labels")
            continue
        text = clean_question(labels_of.get(col), col, strip_name_prefix)
        if not text:
            skip(col, "no_variable_label")
            continue
        if len(text.split()) <= short_words:
            skip(col, "short_text", text)
            continue
        if len(labels) > max_options:
            skip(col, "too_many_options", f"{len(labels)} value labels")
            continue
        missing_codes = user_missing_codes(meta, col, labels)
        codes = sorted(labels)
        refusal = [c for c in codes if c in refusal_codes or c in missing_codes or is_refusal_label(labels[c])]
        substantive = [c for c in codes if c not in refusal]
        if len(substantive) < 2:
            skip(col, "too_few_substantive", f"{len(substantive)} substantive option(s)")
            continue
        if len(codes) > len(oqa.LETTERS):
            skip(col, "options_exceed_letters", f"{len(codes)} options")
            continue
        order = substantive + refusal
        answers = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        overall = human_distribution(answers, order, len(substantive), use_w)
        if overall.n_respondents == 0 or np.isnan(overall.probs).all():
            skip(col, "never_asked")
            continue
        n_unmatched += overall.n_unmatched
        ordinals, released = [float(c) for c in substantive], None
        if ordinal_overrides and col in ordinal_overrides:
            over = [float(x) for x in ordinal_overrides[col]]
            if len(over) == len(substantive):
                ordinals = released = over
            else:  # kept, with the code ordinals; reported
                overrides_ignored.append(f"{col}: {len(over)} ordinals for {len(substantive)} substantive options")
        ordinals = rule.apply(col, [labels[c] for c in substantive], ordinals, [float(c) for c in substantive],
                              released=released, qid=f"{survey}:{col}")
        human = {oqa.OVERALL: overall}
        for g, mask in masks.items():
            human[g] = human_distribution(answers[mask], order, len(substantive), None if use_w is None else use_w[mask])
        questions.append({
            "key": col, "question": text, "references": [labels[c] for c in order], "codes": order,
            "ordinals": ordinals, "n_ordinal": len(substantive), "human": human,
            "unweighted": human_distribution(answers, order, len(substantive), None),
        })
    return WaveBuild(survey=survey, wave=wave, questions=questions, skipped=skipped, skipped_items=skipped_items,
                     weight=weight if weighted else None, respondents=len(df), dropped_no_weight=dropped,
                     groups={g: int(m.sum()) for g, m in masks.items()}, unmapped=unmapped,
                     missing_attributes=missing_attrs, attribute_columns=used,
                     keys_not_in_file=[] if wanted is None else [k for k in wanted if k not in df.columns],
                     answers_not_an_option=n_unmatched, overrides_ignored=overrides_ignored)


# ------------------------------------------------------------------------------------- field dates

def _date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


def field_dates(mapping: Mapping[Any, Mapping[str, Any]] | None) -> dict[int, tuple[dt.date, dt.date]]:
    """Config ``{wave: {"start", "end"}}`` (wave as 26, "26" or "W26"; dates ISO text or dates) ->
    {26: (start, end)}; a start after its end is an error."""
    out = {}
    for wave, span in (mapping or {}).items():
        m = re.fullmatch(r"W?(\d+)", str(wave).strip(), flags=re.I)
        if not m:
            raise ValueError(f"field dates: cannot read a wave number from {wave!r}")
        start, end = _date(span["start"]), _date(span["end"])
        if start > end:
            raise ValueError(f"field dates of W{m.group(1)}: start {start} is after end {end}")
        out[int(m.group(1))] = (start, end)
    return out


def waves_fielded_between(dates: Mapping[int, tuple[dt.date, dt.date]], start=TABLE2_WINDOW[0], end=TABLE2_WINDOW[1],
                          rule: str = "within") -> list[int]:
    """Waves whose field period lies within [start, end] (``rule="within"``, the default: fielding began
    on or after ``start`` and ended on or before ``end``) or that began within it (``rule="start"``)."""
    lo, hi = _date(start), _date(end)
    if rule == "within":
        return sorted(w for w, (s, e) in dates.items() if s >= lo and e <= hi)
    if rule == "start":
        return sorted(w for w, (s, e) in dates.items() if lo <= s <= hi)
    raise ValueError(f"rule must be 'within' or 'start', not {rule!r}")


def table2_waves(dates: Mapping[int, tuple[dt.date, dt.date]]) -> list[int]:
    """Table 2's subset: waves fielded March-August 2023 (entirely within 2023-03-01..2023-08-31)."""
    return waves_fielded_between(dates, *TABLE2_WINDOW)


# ------------------------------------------------------------------------------------- items

def disagreement(q: Mapping[str, Any], rules: Mapping[str, AttributeRule]) -> float:
    """Largest normalised W1 between two groups of one attribute (NaN if undefined, e.g. equal ordinals)."""
    best = math.nan
    for name, rule in rules.items():
        dists = [q["human"].get(oqa.group_key(name, g)) for g in rule.labels()]
        dists = [d for d in dists if d is not None and not np.isnan(d.probs).any()]
        for i in range(len(dists)):
            for j in range(i + 1, len(dists)):
                wd, reason = normalised_wd(dists[i].probs, dists[j].probs, q["ordinals"])
                if reason is None and (math.isnan(best) or wd > best):
                    best = wd
    return best


def _dist_fields(d: HumanDistribution) -> dict[str, Any]:
    return {"human_probs": oqa._probs(d.probs), "refusal_share": d.refusal_share, "n_respondents": d.n_respondents}


def raw_items(builds: Sequence[WaveBuild], benchmark: str, rules: Mapping[str, AttributeRule],
              steer_groups: Sequence[tuple[str, str]], contexts: Sequence[str], variants: Sequence[str],
              steer_keys: Iterable[tuple[str, str]] | None, steer_questions: int | None,
              dates: Mapping[int, tuple[dt.date, dt.date]]) -> tuple[list[dict], dict]:
    """Items (fields as in ``opinionqa``, plus ``field_start``/``field_end``/``codes``) for built waves.

    Steering questions: ``steer_keys`` ((survey, key) pairs) when given, else the ``steer_questions``
    questions with the largest ``disagreement`` (ties: file order); None/0 = no steering items."""
    items: list[dict] = []
    report: Counter = Counter()
    all_q = [(b, q) for b in builds for q in b.questions]

    def extra(b: WaveBuild, q) -> dict:
        start, end = dates.get(b.wave, (None, None)) if b.wave is not None else (None, None)
        return {"codes": list(q["codes"]), "field_start": start.isoformat() if start else None,
                "field_end": end.isoformat() if end else None}

    if "default" in contexts:
        for b, q in all_q:
            for variant in variants:
                item = oqa.base_item(benchmark, b.survey, b.wave, q, "default", variant, oqa.OVERALL, None, None, "")
                d = q["human"][oqa.OVERALL] if variant == "reference" else q["unweighted"]
                item.update(_dist_fields(d), overall_probs=oqa._probs(d.probs), **extra(b, q))
                if variant == "reference":
                    item["human_by_group"] = {g: oqa._probs(h.probs) for g, h in q["human"].items()}
                    item["n_by_group"] = {g: h.n_respondents for g, h in q["human"].items()}
                items.append(item)
    steer_contexts = [c for c in contexts if c in oqa.STEER_CONTEXTS]
    if steer_contexts:
        if steer_keys is not None:
            wanted = {tuple(k) for k in steer_keys}
            chosen = [(b, q) for b, q in all_q if (b.survey, q["key"]) in wanted]
            report["steer_keys_not_built"] = len(wanted) - len(chosen)
        elif steer_questions:
            scored = [(disagreement(q, rules), i) for i, (_, q) in enumerate(all_q)]
            ranked = sorted((s for s in scored if not math.isnan(s[0])), key=lambda s: (-s[0], s[1]))
            report["steer_undefined_disagreement"] = len(scored) - len(ranked)
            keep = sorted(i for _, i in ranked[: int(steer_questions)])
            chosen = [all_q[i] for i in keep]
        else:
            chosen = []
        report["steer_questions"] = len(chosen)
        texts = {(a, g): oqa.persona_texts(a, g) for a, g in steer_groups}
        for b, q in chosen:
            for a, g in steer_groups:
                gk = oqa.group_key(a, g)
                if gk not in q["human"]:
                    report["group_not_built"] += 1
                    continue
                for variant in variants:
                    if variant == "reference":
                        d, overall = q["human"][gk], q["human"][oqa.OVERALL]
                    else:  # compat: unweighted, compared with the whole population
                        d, overall = q["human"][gk], q["unweighted"]
                    for context in steer_contexts:
                        item = oqa.base_item(benchmark, b.survey, b.wave, q, context, variant, gk, a, g, texts[(a, g)][context])
                        item.update(_dist_fields(d), overall_probs=oqa._probs(overall.probs), **extra(b, q))
                        items.append(item)
    return items, dict(report)


def _sav_files(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"ATP waves not found: {path}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".sav", ".zsav"))
    if not files:
        raise FileNotFoundError(f"{path}: no .sav files")
    return files


def _load_raw(benchmark: str, path, base_rules, steer_groups, *, field_dates_cfg=None, waves=None, table2=False,
              attributes=None, column_map=None, contexts=oqa.CONTEXTS, variants=("reference",), steer_questions=500,
              steer_keys=None, keys_by_survey=None, ordinal_overrides=None, weighted=True, refusal_codes=REFUSAL_CODES,
              short_words=SHORT_WORDS, max_options=MAX_OPTIONS, encoding=None, nominal=(), ordinal=(),
              opinionqa_marking=None) -> LoadResult:
    bad = [c for c in contexts if c not in oqa.CONTEXTS] + [v for v in variants if v not in oqa.VARIANTS]
    if bad:
        raise ValueError(f"unknown context/variant {bad}; contexts {oqa.CONTEXTS}, variants {oqa.VARIANTS}")
    rules = attribute_rules(attributes, base_rules, column_map)
    nominal_rule = NominalRule(nominal=nominal, ordinal=ordinal, released=opinionqa_marking)
    dates = field_dates(field_dates_cfg)
    wanted = None if waves is None else {int(str(w).lstrip("Ww")) for w in waves}
    if table2:
        t2 = set(table2_waves(dates))
        wanted = t2 if wanted is None else wanted & t2
    quarantine, builds, files_report = [], [], {}
    skipped, skipped_items = Counter(), []
    for sav in _sav_files(path):
        df, meta = read_wave(sav, encoding=encoding)
        wave = wave_of(sav, df.columns)
        if wave is None:
            quarantine.append({"file": str(sav), "row": None, "reason": "wave_unknown",
                               "detail": "no W<n> in the file name and no single WEIGHT_W<n> column"})
            continue
        if wanted is not None and wave not in wanted:
            continue
        survey = f"W{wave}"
        keys = None if keys_by_survey is None else keys_by_survey.get(survey, [])
        b = build_wave(df, meta, survey, wave, rules, keys=keys, ordinal_overrides=ordinal_overrides,
                       weighted=weighted, refusal_codes=refusal_codes, short_words=short_words, max_options=max_options,
                       nominal_rule=nominal_rule)
        builds.append(b)
        skipped.update(b.skipped)
        skipped_items.extend(b.skipped_items)
        files_report[survey] = {"file": sav.name, "respondents": b.respondents, "questions": len(b.questions),
                                "weight": b.weight or "unweighted", "dropped_no_weight": b.dropped_no_weight,
                                "field_dates": [d.isoformat() for d in dates[wave]] if wave in dates else None,
                                "unmapped": b.unmapped, "missing_attributes": b.missing_attributes,
                                "attribute_columns": b.attribute_columns, "keys_not_in_file": b.keys_not_in_file,
                                "answers_not_an_option": b.answers_not_an_option,
                                "ordinal_overrides_ignored": b.overrides_ignored,
                                "attribute_notes": attribute_notes(rules, b.attribute_columns)}
    items, steer_report = raw_items(builds, benchmark, rules, steer_groups, contexts, variants, steer_keys,
                                    steer_questions, dates)
    report = {
        "benchmark": benchmark, "waves": [b.wave for b in builds], "surveys": files_report,
        "questions": sum(len(b.questions) for b in builds), "skipped": dict(sorted(skipped.items())),
        "skipped_items": skipped_items, "table2": bool(table2),
        "no_field_dates": sorted(b.wave for b in builds if b.wave not in dates),
        "groups": [oqa.group_key(a, g) for a, r in rules.items() for g in r.labels()],
        # per wave and attribute, the waves with any (details in "surveys")
        "unmapped": {b.survey: b.unmapped for b in builds if b.unmapped},
        "missing_attributes": {b.survey: b.missing_attributes for b in builds if b.missing_attributes},
        "nominal": nominal_rule.report(),
        "steering": steer_report, "items": len(items),
        "items_by_context": dict(sorted(Counter(i["context"] for i in items).items())),
        "quarantined": quarantine_counts(quarantine),
    }
    log.info("%s: %d waves, %d questions (%s skipped) -> %d items", benchmark, len(builds), report["questions"],
             sum(skipped.values()), len(items))
    return LoadResult(items, quarantine, report)


@register_loader("opinionqa_xl")
def load_opinionqa_xl(path: str | os.PathLike, field_dates: Mapping | None = None, waves: Iterable | None = None,
                      table2: bool = False, attributes: Mapping | None = None, column_map: Mapping | None = None,
                      contexts: Sequence[str] = oqa.CONTEXTS, variants: Sequence[str] = ("reference",),
                      steer_questions: int | None = 500, weighted: bool = True,
                      refusal_codes: Iterable[float] = REFUSAL_CODES, short_words: int = SHORT_WORDS,
                      max_options: int = MAX_OPTIONS, ordinal_overrides: Mapping | None = None,
                      encoding: str | None = None, nominal: Iterable[str] = (), ordinal: Iterable[str] = (),
                      opinionqa_marking: str | os.PathLike | None = None) -> LoadResult:
    """OpinionQA-XL from raw ATP ``.sav`` waves (a folder of them, or one file).

    ``field_dates``: config ``{wave: {start, end}}`` (copied onto items as ``field_start``/``field_end``);
    ``table2=True`` keeps only the waves fielded March-August 2023 (needs ``field_dates``). Groups: the
    9 XL attributes (``XL_ATTRIBUTES``, 32 groups), overridable by ``attributes`` / ``column_map``.
    Steering: the ``steer_questions`` most-disagreed questions x 32 groups x (qa, bio, portray), texts
    from ``opinionqa.STEER_PERSONAS``. Nominal questions (all-equal ordinals): the shared rule
    (``alpha.eval.loaders.nominal``) with the config overrides ``nominal`` / ``ordinal``; given
    ``opinionqa_marking`` (the released OpinionQA folder), OpinionQA's marking decides the questions it
    has (their code ordinals are kept when OpinionQA marks them ordinal)."""
    return _load_raw("opinionqa_xl", path, XL_ATTRIBUTES, XL_STEER_GROUPS, field_dates_cfg=field_dates, waves=waves,
                     table2=table2, attributes=attributes, column_map=column_map, contexts=contexts, variants=variants,
                     steer_questions=steer_questions, ordinal_overrides=ordinal_overrides, weighted=weighted,
                     refusal_codes=refusal_codes, short_words=short_words, max_options=max_options, encoding=encoding,
                     nominal=nominal, ordinal=ordinal,
                     opinionqa_marking=None if opinionqa_marking is None else oqa.released_ordinals(opinionqa_marking))


@register_loader("opinionqa_raw")
def load_opinionqa_raw(path: str | os.PathLike, released: str | os.PathLike | None = None,
                       field_dates: Mapping | None = None, waves: Iterable | None = None,
                       attributes: Mapping | None = None, column_map: Mapping | None = None,
                       contexts: Sequence[str] = ("default",), variants: Sequence[str] = ("reference",),
                       steer_questions: int | None = 500, weighted: bool = True,
                       refusal_codes: Iterable[float] = REFUSAL_CODES, encoding: str | None = None,
                       nominal: Iterable[str] = (), ordinal: Iterable[str] = ()) -> LoadResult:
    """OpinionQA built from raw ATP waves with OpinionQA's 12 attributes (``OQA_ATTRIBUTES``).

    With ``released`` (the released ``human_resp`` folder or its parent) the question set is each
    wave's ``info.csv`` keys, their ``option_ordinal`` replaces the code ordinals, and steering uses
    the disagreement-500 keys; the word-count / option-count filters are then off (OpinionQA's own
    selection stands). Steering groups: OpinionQA's 22 (``opinionqa.OQA_STEER_GROUPS``). Nominal
    questions: the shared rule (``alpha.eval.loaders.nominal``), OpinionQA's marking first where the
    released files are given; ``nominal`` / ``ordinal``: config overrides."""
    keys_by_survey = overrides = steer_keys = None
    if released is not None:
        human, _, _ = oqa._layout(released)
        keys_by_survey, overrides = {}, {}
        for folder in sorted(p for p in human.iterdir() if p.is_dir() and oqa.WAVE_DIR.match(p.name)):
            survey = f"W{int(oqa.WAVE_DIR.match(folder.name).group('wave'))}"
            questions, _ = oqa.read_info(folder / "info.csv")
            keys_by_survey[survey] = [q["key"] for q in questions]
            overrides.update({q["key"]: q["ordinals"] for q in questions})
        dis = human / oqa.DISAGREEMENT_DIR / "info.csv"
        if dis.is_file():
            steer_keys = [(oqa._survey_of(q.get("survey_column", "")), q["key"]) for q in oqa.read_info(dis)[0]]
    return _load_raw("opinionqa_raw", path, OQA_ATTRIBUTES, oqa.OQA_STEER_GROUPS, field_dates_cfg=field_dates,
                     waves=waves, attributes=attributes, column_map=column_map, contexts=contexts, variants=variants,
                     steer_questions=steer_questions, steer_keys=steer_keys, keys_by_survey=keys_by_survey,
                     ordinal_overrides=overrides, weighted=weighted, refusal_codes=refusal_codes,
                     short_words=0 if released is not None else SHORT_WORDS,
                     max_options=len(oqa.LETTERS) if released is not None else MAX_OPTIONS, encoding=encoding,
                     nominal=nominal, ordinal=ordinal)
