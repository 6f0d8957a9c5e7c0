"""GSS temporal alignment (ALPHA): repeated GSS questions, weighted distributions per year and pooled.

Input: the GSS cumulative Stata file (``gss7222_r4.dta``, ``gss7224_r*.dta``, or an older / Data
Explorer extract), read with ``pyreadstat.read_dta(..., apply_value_formats=False, user_missing=True)``
in column chunks (the cumulative file has ~6,900 variables). The reading rules are
this docstring's; docs/benchmarks.md, "GSS temporal benchmark", and docs/metrics.md, "Temporal steerability".

Missing values -- a code is *missing* (never an option, never counted in a distribution) when:

1. it is a Stata extended missing value ``.a``-``.z``: pyreadstat 1.3.7 with ``user_missing=True``
   returns them as the letters ``'d'``, ``'i'``, ... in an object column, with their labels under the
   letter keys of ``meta.variable_value_labels`` (and ``meta.missing_user_values`` listing the letters
   used); without ``user_missing`` they would be NaN. Letters and NaN are both missing here;
2. it is a negative number (Data Explorer extracts: -100 .i, -99 .n, -98 .d, -97 .s, -90 .r, ...;
   the GSS has no negative substantive codes);
3. its value label says so (the older convention: in-range 0/8/9 labelled IAP/DK/NA): the label
   starts with an extended-missing tag (``".d:  Do not Know"``) or every part of it (split on ``,``
   ``/`` ``;`` and " or ") is in ``MISSING_PHRASES`` ("iap", "dk", "na", "don't know", "no answer",
   "refused", "can't choose", "not applicable", "skipped on web", ...). So 0/8/9 are missing only
   when labelled as such: ``childs`` 8 = "eight or more" stays an option.

Numeric answers with no value label are not options either; a variable whose non-missing answers are
more than ``UNLABELLED_MAX`` (5%) unlabelled is continuous (age, income in dollars) and skipped.

Questions: every labelled variable (minus ``NON_ITEMS``: year, ids, weights, ballot, ...) with >= 2
substantive options (at most 26 letters) and asked -- at least ``min_year_respondents`` substantive
answers -- in >= ``min_years`` (2) years. Question text = variable label; options = the value labels
of the substantive codes in code order; ordinals = those codes, or all equal (excluded from the W1
metrics, and counted) for a nominal question. Nominal or ordinal: the shared rule of
``alpha.eval.loaders.nominal`` -- the options ``ordinal`` / ``nominal`` (config overrides, variable names),
then its name list (``NOMINAL``: race, relig, region, marital, wrkstat, spwrksta, born, parborn, sex,
...), then the label heuristic on the substantive value labels; the report lists the nominal questions
and why (``nominal``).

Weights: ``weights`` is one name or a priority list (default ``("wtssps", "wtssall")``); per year the
first listed weight with a positive value among that year's respondents is used (respondents of
that year without a valid weight are dropped and counted); a year with none is unweighted, and the
report says so (``weights_by_year``). The pooled distribution sums the weighted counts of all years
asked (so larger samples count more), mixing weight variables across years if the list does.

Representative years (``representative_years``): all asked years when there are at most ``n_years``
(10); otherwise ``n_years`` of them evenly spaced by rank over the sorted asked years, always
including the first and the last (indices round(i * (k - 1) / (n - 1)))).

Items: per question one ``context="default"`` item (the unconditioned prompt, pooled human side) and
one ``context="year"`` item per representative year (``YEAR_CONTEXT`` + a blank line + the prompt,
that year's human side). Fields as in ``opinionqa`` (item_id ``gss:{var}:pooled`` / ``gss:{var}:{year}``,
question_id ``gss:{var}``, question, options, labels, ordinal_labels (= labels), ordinals,
equal_ordinals, steer_text, prompt, human_probs, n_respondents, year) plus on the default item
``years``, ``years_selected``, ``human_by_year``, ``n_by_year``, ``weight_by_year``.
"""
from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from alpha.eval.distributions import human_distribution
from alpha.eval.loaders import LoadResult, quarantine_counts, register_loader
from alpha.eval.loaders import opinionqa as oqa
from alpha.eval.loaders.nominal import NOMINAL_NAMES, NominalRule

log = logging.getLogger("alpha.eval.loaders.gss")

NAME = "gss"
WEIGHTS = ("wtssps", "wtssall")
YEAR_CONTEXT = "Answer the following question as if you were an adult living in the United States, answering in {year}."
N_YEARS, MIN_YEARS, MIN_YEAR_RESPONDENTS = 10, 2, 30
UNLABELLED_MAX = 0.05
CHUNK_COLUMNS = 200
MISSING_PHRASES = frozenset({
    "iap", "inap", "inapplicable", "not applicable", "dk", "don't know", "dont know", "do not know",
    "don't know/cannot choose", "cannot choose", "can't choose", "cant choose", "na", "no answer",
    "not answered", "refused", "ref", "skipped on web", "skipped", "uncodeable", "uncodable",
    "not available in this year", "not available in this release", "not available", "no issp", "see codebook",
    "iap (no issp)", "dk/na", "dk, na", "missing", "no response", "other/dk/na",
})
NON_ITEMS = (r"year", r"id_?", r"wt\w*", r"\w*wt", r"ballot", r"version", r"form", r"sample", r"sampcode",
             r"samptype", r"vpsu", r"vstrat", r"oversamp", r"phase", r"mode", r"issp", r"dateintv", r"respnum",
             r"intyear", r"spanself", r"spaneng", r"spanint", r"cohort")
NOMINAL = NOMINAL_NAMES  # the shared rule's name list of categorical GSS variables (alpha.eval.loaders.nominal)
_TAG = re.compile(r"\A\.[a-z]\s*:")


def is_missing_label(label: Any) -> bool:
    """True for IAP/DK/NA-type labels ("iap", "dk, na", "DON'T KNOW", ".d:  Do not Know/Cannot Choose")."""
    raw = str(label).replace("\u2019", "'").strip().lower()
    if _TAG.match(raw):
        return True
    parts = [p.strip(" .:") for p in re.split(r",|/|;|\bor\b", raw)]
    parts = [p for p in parts if p]
    return bool(parts) and (raw.strip(" .:") in MISSING_PHRASES or all(p in MISSING_PHRASES for p in parts))


def is_missing_code(code: Any, label: Any | None = None) -> bool:
    """The module's rule for one code (a letter = Stata extended missing; negative; or labelled missing)."""
    if isinstance(code, str):
        return True
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return True
    if float(code) < 0:
        return True
    return label is not None and is_missing_label(label)


def options_of(labels: Mapping[Any, str]) -> tuple[list[float], list[str], set[float]]:
    """(substantive codes in code order, their labels, numeric codes that are missing) from value labels."""
    numeric = {}
    for code, label in (labels or {}).items():
        if isinstance(code, str):
            continue  # extended missing letter
        numeric[float(code)] = str(label)
    missing = {c for c, lab in numeric.items() if is_missing_code(c, lab)}
    codes = sorted(c for c in numeric if c not in missing)
    return codes, [numeric[c] for c in codes], missing


def representative_years(years: Iterable[int], n: int = N_YEARS) -> list[int]:
    """``n`` years evenly spaced by rank over the sorted distinct ``years`` (first and last included);
    all of them when there are at most ``n``."""
    ys = sorted({int(y) for y in years})
    if len(ys) <= n:
        return ys
    if n == 1:
        return [ys[-1]]
    return [ys[round(i * (len(ys) - 1) / (n - 1))] for i in range(n)]


def numeric_codes(values) -> np.ndarray:
    """Float codes; letters (extended missing) and anything non-numeric -> NaN."""
    return np.array(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=np.float64)


def _dta_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".dta")
        if len(found) == 1:
            return found[0]
        raise FileNotFoundError(f"{path}: expected one .dta file, found {[p.name for p in found]}")
    raise FileNotFoundError(f"GSS file not found: {path}")


def year_weights(year: np.ndarray, frame: pd.DataFrame, weights: Sequence[str]) -> tuple[np.ndarray, dict[int, str], int]:
    """Per-respondent weight (NaN = no valid weight in a weighted year: dropped), {year: weight name or
    "unweighted"}, respondents dropped."""
    w = np.ones(len(year), dtype=np.float64)
    by_year, dropped = {}, 0
    cols = {name: pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
            for name in weights if name in frame.columns}
    for y in np.unique(year[~np.isnan(year)]).astype(int):
        rows = year == y
        chosen = next((name for name, v in cols.items() if np.any(np.isfinite(v[rows]) & (v[rows] > 0))), None)
        by_year[int(y)] = chosen or "unweighted"
        if chosen is None:
            continue
        v = cols[chosen][rows]
        bad = ~(np.isfinite(v) & (v >= 0))
        dropped += int(bad.sum())
        w[rows] = np.where(bad, np.nan, v)
    return w, by_year, dropped


def build_question(name: str, text: str, values, labels: Mapping[Any, str], year: np.ndarray, w: np.ndarray,
                   weighted_years: Mapping[int, str], min_years: int = MIN_YEARS,
                   min_year_respondents: int = MIN_YEAR_RESPONDENTS, max_options: int = len(oqa.LETTERS),
                   nominal: bool = False) -> tuple[dict | None, str | None, str]:
    """One variable -> (question record, None, "") or (None, skip reason, detail)."""
    if not labels:
        return None, "no_value_labels", ""
    if not text:
        return None, "no_variable_label", ""
    codes, opt_labels, missing = options_of(labels)
    if len(codes) < 2:
        return None, "too_few_options", f"{len(codes)} substantive option(s)"
    if len(codes) > max_options:
        return None, "too_many_options", f"{len(codes)} options"
    x = numeric_codes(values)
    x[(x < 0) | np.isin(x, list(missing))] = np.nan
    answered = ~np.isnan(x)
    labelled = answered & np.isin(x, codes)
    n_unlabelled = int((answered & ~labelled).sum())
    if answered.sum() and n_unlabelled / answered.sum() > UNLABELLED_MAX:
        return None, "unlabelled_values", f"{n_unlabelled} of {int(answered.sum())} answers have no value label"
    x[answered & ~labelled] = np.nan
    x[np.isnan(w)] = np.nan  # no valid weight in a weighted year
    per_year, n_by_year = {}, {}
    for y in sorted(np.unique(year[labelled & ~np.isnan(year)]).astype(int)):
        rows = year == y
        ww = None if weighted_years.get(int(y), "unweighted") == "unweighted" else w[rows]
        d = human_distribution(x[rows], codes, len(codes), ww)
        if d.n_respondents >= min_year_respondents:
            per_year[int(y)], n_by_year[int(y)] = d, d.n_respondents
    if len(per_year) < min_years:
        return None, "asked_in_fewer_years", f"{len(per_year)} year(s) with >= {min_year_respondents} answers"
    pooled_rows = np.isin(year, list(per_year))
    any_weighted = any(weighted_years.get(y, "unweighted") != "unweighted" for y in per_year)
    pooled = human_distribution(x[pooled_rows], codes, len(codes), w[pooled_rows] if any_weighted else None)
    ordinals = [1.0] * len(codes) if nominal else list(codes)
    return {"key": name, "question": text, "references": opt_labels, "codes": codes, "ordinals": ordinals,
            "n_ordinal": len(codes), "per_year": per_year, "pooled": pooled, "n_unlabelled": n_unlabelled,
            "weight_by_year": {y: weighted_years.get(y, "unweighted") for y in per_year}}, None, ""


def question_items(q: Mapping[str, Any], n_years: int = N_YEARS, contexts: Sequence[str] = ("default", "year")) -> list[dict]:
    years = sorted(q["per_year"])
    chosen = representative_years(years, n_years)
    out = []
    if "default" in contexts:
        item = oqa.base_item(NAME, "GSS", None, q, "default", "reference", oqa.OVERALL, None, None, "")
        item.update(item_id=f"gss:{q['key']}:pooled", question_id=f"gss:{q['key']}", year=None,
                    human_probs=oqa._probs(q["pooled"].probs), n_respondents=q["pooled"].n_respondents,
                    codes=list(q["codes"]), years=years, years_selected=chosen,
                    human_by_year={y: oqa._probs(d.probs) for y, d in q["per_year"].items()},
                    n_by_year={y: d.n_respondents for y, d in q["per_year"].items()},
                    weight_by_year=dict(q["weight_by_year"]))
        out.append(item)
    if "year" in contexts:
        for y in chosen:
            d = q["per_year"][y]
            item = oqa.base_item(NAME, "GSS", None, q, "year", "reference", oqa.OVERALL, None, None,
                                 YEAR_CONTEXT.format(year=y))
            item.update(item_id=f"gss:{q['key']}:{y}", question_id=f"gss:{q['key']}", year=y,
                        human_probs=oqa._probs(d.probs), n_respondents=d.n_respondents, codes=list(q["codes"]),
                        weight=q["weight_by_year"][y])
            out.append(item)
    for item in out:
        for k in ("survey", "wave", "key"):
            item.pop(k, None)
        item["variable"] = q["key"]
        item["refusal_options"] = []
    return out


@register_loader(NAME)
def load_gss(path: str | os.PathLike, weights: str | Sequence[str] = WEIGHTS, variables: Iterable[str] | None = None,
             min_years: int = MIN_YEARS, n_years: int = N_YEARS, min_year_respondents: int = MIN_YEAR_RESPONDENTS,
             nominal: Iterable[str] = (), ordinal: Iterable[str] = (), contexts: Sequence[str] = ("default", "year"),
             encoding: str | None = None, chunk_columns: int = CHUNK_COLUMNS) -> LoadResult:
    """GSS items from a cumulative ``.dta`` (or a folder holding exactly one). ``variables`` restricts
    the questions (default: every labelled variable but ``NON_ITEMS``); ``nominal`` / ``ordinal``:
    variables forced nominal / ordinal (``alpha.eval.loaders.nominal``); other options: module docstring."""
    import pyreadstat

    dta = _dta_file(path)
    weights = (weights,) if isinstance(weights, str) else tuple(weights)
    rule = NominalRule(nominal=nominal, ordinal=ordinal)
    _, meta = pyreadstat.read_dta(str(dta), metadataonly=True, encoding=encoding)
    columns = list(meta.column_names)
    if "year" not in columns:
        raise ValueError(f"{dta}: no 'year' variable; columns start {columns[:10]}")
    present_w = [c for c in weights if c in columns]
    base, _ = pyreadstat.read_dta(str(dta), usecols=["year"] + present_w, encoding=encoding)
    year = pd.to_numeric(base["year"], errors="coerce").to_numpy(dtype=np.float64)
    w, weighted_years, dropped = year_weights(year, base, present_w)
    if variables is None:
        candidates = [c for c in columns if not any(re.fullmatch(p, c, flags=re.I) for p in NON_ITEMS)]
        non_items = len(columns) - len(candidates)
    else:
        variables = list(dict.fromkeys(variables))
        candidates = [c for c in variables if c in columns]
        non_items = 0
    skipped, skipped_items, items, quarantine = Counter(), [], [], []
    if variables is not None:
        for v in variables:
            if v not in columns:
                quarantine.append({"row": None, "reason": "variable_not_in_file", "detail": v, "variable": v})
    labelled = [c for c in candidates if meta.variable_value_labels.get(c)]
    for c in candidates:
        if not meta.variable_value_labels.get(c):
            skipped["no_value_labels"] += 1
            skipped_items.append({"variable": c, "reason": "no_value_labels", "detail": ""})
    n_questions = 0
    for start in range(0, len(labelled), max(1, int(chunk_columns))):
        chunk = labelled[start:start + chunk_columns]
        df, cmeta = pyreadstat.read_dta(str(dta), usecols=chunk, user_missing=True, apply_value_formats=False,
                                        encoding=encoding)
        for c in chunk:
            text = re.sub(r"\s+", " ", str(cmeta.column_names_to_labels.get(c) or "")).strip()
            q, reason, detail = build_question(c, text, df[c].to_numpy(dtype=object), cmeta.variable_value_labels.get(c, {}),
                                               year, w, weighted_years, min_years, min_year_respondents)
            if q is None:
                skipped[reason] += 1
                skipped_items.append({"variable": c, "reason": reason, "detail": detail})
                continue
            q["ordinals"] = rule.apply(c, q["references"], q["ordinals"], q["codes"])
            n_questions += 1
            items.extend(question_items(q, n_years, contexts))
    report = {
        "benchmark": NAME, "file": dta.name, "respondents": int(len(year)),
        "years": sorted(int(y) for y in np.unique(year[~np.isnan(year)])),
        "weights_by_year": weighted_years, "weights_requested": list(weights),
        "weights_absent": [c for c in weights if c not in columns],
        "respondents_dropped_no_weight": dropped, "variables": len(columns), "non_item_variables": non_items,
        "questions": n_questions, "skipped": dict(sorted(skipped.items())), "skipped_items": skipped_items,
        "items": len(items), "items_by_context": dict(sorted(Counter(i["context"] for i in items).items())),
        "nominal": rule.report(),
        "quarantined": quarantine_counts(quarantine),
    }
    if all(v == "unweighted" for v in weighted_years.values()):
        log.warning("gss: none of the weights %s found: distributions are unweighted", list(weights))
    log.info("gss: %d variables -> %d repeated questions -> %d items", len(columns), n_questions, len(items))
    return LoadResult(items, quarantine, report)
