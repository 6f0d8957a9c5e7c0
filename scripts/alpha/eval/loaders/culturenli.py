"""CultureNLI (Huang & Yang 2023): premise/hypothesis pairs rated by US and Indian annotators; one item
per (pair, culture).

Released ``data.tsv``: header ``premise\\thypothesis\\tus_ratings\\tin_ratings``; ratings are Python
list literals of 'E' / 'N' / 'C'. The file is read as plain tab-separated lines, without CSV quoting
(as the reference's ``np.loadtxt``), so a premise holding a double quote stays as written.

Items are keyed by (premise, hypothesis): a later row with the same pair REPLACES the earlier one
(its ratings win) but the pair keeps its first position; the count of replaced rows is reported.
Item order follows the reference's nested ``{premise: {hypothesis: ...}}``: pairs grouped by premise
in first-seen order, hypotheses in first-seen order within a premise; all US items, then all IN.
Gold label per culture: the most common rating, a tie going to the label seen first in the list.

Row handling follows the reference evaluation: a row is kept whenever its two ratings parse, even with
an empty (or blank) premise or hypothesis -- the prompt then shows the field empty, and the empty pair
is a key like any other. The report counts such kept rows (``empty_fields``: {"premise": n,
"hypothesis": n}). A malformed row (field count, ratings that do not parse or hold other labels) is
quarantined with its reason and replaces nothing.

Item fields: ``item_id`` (``culturenli:{pair_id}:{culture}``), ``benchmark``, ``pair_id`` (first 16
hex digits of sha1 of ``premise + "\\t" + hypothesis``), ``row`` (0-based data row of the kept line),
``culture`` ("US" / "IN"), ``culture_name``, ``premise``, ``hypothesis``, ``ratings`` (that
culture's list), ``gold`` ("E" / "N" / "C"), ``labels`` (["E", "N", "C"]), ``prompt``.
"""
from __future__ import annotations

import ast
import hashlib
import logging
import os
from collections import Counter

from alpha.core.errors import RowError
from alpha.eval.loaders import LoadResult, quarantine_counts, register_loader, released_file

log = logging.getLogger("alpha.eval.loaders.culturenli")

NAME = "culturenli"
FILE = "data.tsv"
HEADER = ("premise", "hypothesis", "us_ratings", "in_ratings")
LABELS = ["E", "N", "C"]
CULTURES = {"US": "the United States", "IN": "India"}
RATING_COLUMN = {"US": 2, "IN": 3}

# byte-exact, as the benchmark authors' code builds it: two-space indents, a space after "Entail", U+2019 in "Let’s"
NLI_PROMPT = (
    "Premise: {premise}\n"
    "  Hypothesis: {hypothesis}\n"
    "\n"
    "  Let\u2019s think as someone who lives in {culture}. What do you think is the relationship between "
    "the premise and the hypothesis?\n"
    "  (E) Entail \n"
    "  (N) Neutral\n"
    "  (C) Contradict\n"
    "\n"
    "  Your Answer (E/N/C): ("
)


def culturenli_prompt(premise: str, hypothesis: str, culture: str) -> str:
    """``culture``: "US" or "IN"."""
    return NLI_PROMPT.format(premise=premise, hypothesis=hypothesis, culture=CULTURES[culture])


def majority_label(ratings: list[str]) -> str:
    """The most common rating; among tied labels the one that appears first in ``ratings``."""
    counts = Counter(ratings)
    top = max(counts.values())
    return next(r for r in ratings if counts[r] == top)


def parse_ratings(text: str, column: str) -> list[str]:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise RowError("ratings_unparseable", f"{column}: {type(exc).__name__}: {exc}"[:200]) from None
    if not isinstance(value, (list, tuple)) or not value:
        raise RowError("ratings_invalid", f"{column}: not a non-empty list")
    bad = [r for r in value if r not in LABELS]
    if bad:
        raise RowError("ratings_invalid", f"{column}: rating {bad[0]!r} is not one of {LABELS}")
    return list(value)


def pair_id(premise: str, hypothesis: str) -> str:
    return hashlib.sha1(f"{premise}\t{hypothesis}".encode("utf-8")).hexdigest()[:16]


def parse_line(line: str) -> tuple[str, str, list[str], list[str]]:
    fields = line.split("\t")
    if len(fields) != len(HEADER):
        raise RowError("field_count", f"{len(fields)} tab-separated fields, expected {len(HEADER)}")
    premise, hypothesis, us, india = fields  # empty texts are kept (the reference keeps them), and counted
    return premise, hypothesis, parse_ratings(us, "us_ratings"), parse_ratings(india, "in_ratings")


@register_loader(NAME)
def load_culturenli(path: str | os.PathLike, cultures=tuple(CULTURES)) -> LoadResult:
    """``path``: ``data.tsv`` or a folder holding it."""
    unknown = [c for c in cultures if c not in CULTURES]
    if unknown:
        raise ValueError(f"unknown CultureNLI culture(s) {unknown}; choose from {list(CULTURES)}")
    tsv = released_file(path, FILE)
    lines = tsv.read_text(encoding="utf-8-sig").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise ValueError(f"{tsv}: header must be {chr(9).join(HEADER)!r}, found {lines[0] if lines else ''!r}")
    pairs: dict[str, dict[str, tuple[int, list[str], list[str]]]] = {}
    quarantine = []
    rows_read = blank = replaced = 0
    empty = {"premise": 0, "hypothesis": 0}  # kept rows with an empty / blank field
    for row, line in enumerate(lines[1:]):
        if not line.strip():
            blank += 1
            continue
        rows_read += 1
        try:
            premise, hypothesis, us, india = parse_line(line)
        except RowError as err:
            quarantine.append({"row": row, "reason": err.reason, "detail": err.detail, "line": line[:200]})
            continue
        empty["premise"] += not premise.strip()
        empty["hypothesis"] += not hypothesis.strip()
        by_hypothesis = pairs.setdefault(premise, {})
        replaced += hypothesis in by_hypothesis
        by_hypothesis[hypothesis] = (row, us, india)
    ordered = [(p, h, kept) for p, hs in pairs.items() for h, kept in hs.items()]
    ids = [pair_id(p, h) for p, h, _ in ordered]
    if len(set(ids)) != len(ids):  # 64-bit prefixes: never expected, but ids must be unique
        raise RuntimeError(f"{tsv}: pair_id collision")
    items = []
    gold_counts = {}
    for culture in cultures:
        counts: Counter = Counter()
        for pid, (premise, hypothesis, (row, us, india)) in zip(ids, ordered):
            ratings = us if culture == "US" else india
            gold = majority_label(ratings)
            counts[gold] += 1
            items.append({
                "item_id": f"culturenli:{pid}:{culture}",
                "benchmark": NAME,
                "pair_id": pid,
                "row": row,
                "culture": culture,
                "culture_name": CULTURES[culture],
                "premise": premise,
                "hypothesis": hypothesis,
                "ratings": ratings,
                "gold": gold,
                "labels": list(LABELS),
                "prompt": culturenli_prompt(premise, hypothesis, culture),
            })
        gold_counts[culture] = {label: counts[label] for label in LABELS}
    report = {
        "benchmark": NAME,
        "file": tsv.name,
        "rows_read": rows_read,
        "blank_lines": blank,
        "duplicates_replaced": replaced,
        "empty_fields": empty,
        "pairs": len(ordered),
        "items": len(items),
        "gold_counts": gold_counts,
        "quarantined": quarantine_counts(quarantine),
    }
    if quarantine:
        log.warning("%s: %d row(s) quarantined %s", tsv.name, len(quarantine), report["quarantined"])
    if any(empty.values()):
        log.warning("%s: kept rows with an empty premise / hypothesis (as the reference does): %s", tsv.name, empty)
    log.info("%s: %d rows, %d duplicate(s) replaced -> %d pairs, %d items", tsv.name, rows_read, replaced,
             len(ordered), len(items))
    return LoadResult(items, quarantine, report)
