"""CultureBank (Shi et al. 2024), direct evaluation: does the cultural group agree with a described
behaviour? One item per test-split row and subset (``tiktok``, ``reddit``).

Released ``tiktok/culturebank_tiktok.csv`` and ``reddit/culturebank_reddit.csv``, columns
``cluster_id, cultural group, context, goal, relation, actor, actor_behavior, recipient,
recipient_behavior, other_descriptions, topic, agreement, num_support_bin, time_range,
eval_whole_desc, eval_scenario, eval_persona, eval_question``.

Test split (per subset, on every row of the file, before any row is checked): shuffle with
``df.sample(frac=1, random_state=1234)``, then the rows from position ``start = floor(0.9 * n)``
(computed as ``9 * n // 10``, the same as ``int(n * 0.9)``) to the end: ``n - start`` rows, i.e. the
last 10% rounded up (20 rows -> the last 2, 25 rows -> the last 3). ``split="culturebank_code"``
reproduces CultureBank's released ``direct_eval.py`` instead: ``df.tail(int(n * ((1.0 - 0.8) / 2)))``,
whose float ``0.0999...`` rounds down (20 rows -> 1). ``split="full"`` keeps every row.

Text fields are read as written (``keep_default_na=False``: a literal "None" stays "None"); an empty
field is shown as JSON ``null``. A test row whose ``agreement`` is empty or not a number in [0, 1]
is quarantined (CultureBank's code drops such rows).

Item fields: ``item_id`` (``culturebank:{subset}:{row}``, ``row`` = 0-based data row of the
released CSV), ``benchmark``, ``subset``, ``row``, ``cluster_id`` (text as in the file),
``cultural_group``, ``topic``, ``agreement`` (float), ``target`` (``agreement > 0.5``), ``gold``
("Yes" / "No", the label of ``target``), ``labels`` (["Yes", "No"]), ``eval_question``,
``eval_whole_desc`` (for the grounded evaluation), ``prompt``.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pandas as pd

from alpha.eval.loaders import LoadResult, quarantine_counts, register_loader

log = logging.getLogger("alpha.eval.loaders.culturebank")

NAME = "culturebank"
SUBSETS = ("tiktok", "reddit")
FILES = {s: f"{s}/culturebank_{s}.csv" for s in SUBSETS}
COLUMNS = ("cluster_id", "cultural group", "context", "goal", "relation", "actor", "actor_behavior", "recipient",
           "recipient_behavior", "other_descriptions", "topic", "agreement", "num_support_bin", "time_range",
           "eval_whole_desc", "eval_scenario", "eval_persona", "eval_question")
SPLIT_SEED = 1234
SPLITS = ("test", "culturebank_code", "full")
LABELS = ["Yes", "No"]

# descriptor shown to the model: JSON key -> released column (the order and names of CultureBank's EVAL_FIELDS)
DESCRIPTOR_FIELDS = {
    "cultural group": "cultural group",
    "context": "context",
    "actor": "actor",
    "recipient": "recipient",
    "relation": "relation",
    "actor's behavior": "actor_behavior",
    "goal": "goal",
    "recipient's behavior": "recipient_behavior",
    "other descriptions": "other_descriptions",
}

# The one wording of the direct-evaluation question (the spec leaves it open). The answer is the
# next token after "Answer:"; the scorer looks up both "Yes" and " Yes" forms.
DIRECT_PROMPT = (
    "The following JSON describes a behaviour attributed to a cultural group: who does what, in which "
    "context, towards whom and why.\n"
    "{descriptor}\n"
    "Question: Would most people in the cultural group \"{group}\" agree with the behaviour described "
    "above? Answer Yes or No.\n"
    "Answer:"
)


def descriptor_json(record: dict) -> str:
    """The descriptor fields as indented JSON, empty fields as null, non-ASCII kept as is."""
    fields = {key: (record.get(col) or None) for key, col in DESCRIPTOR_FIELDS.items()}
    return json.dumps(fields, indent=4, ensure_ascii=False)


def culturebank_prompt(record: dict) -> str:
    """``record``: one released row (column name -> text)."""
    return DIRECT_PROMPT.format(descriptor=descriptor_json(record), group=record.get("cultural group", ""))


def split_positions(n: int, split: str = "test") -> slice:
    """Positions, in the seed-1234 shuffled order, of the split's rows (see the module docstring)."""
    if split == "test":
        return slice(9 * n // 10, n)
    if split == "culturebank_code":
        k = int(n * ((1.0 - 0.8) / 2))
        return slice(n - k, n)
    if split == "full":
        return slice(0, n)
    raise ValueError(f"unknown CultureBank split {split!r}; choose one of {SPLITS}")


def split_frame(df: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """The split's rows, in shuffled order; the index keeps each row's position in the file."""
    if split == "full":
        return df
    shuffled = df.sample(frac=1, random_state=SPLIT_SEED)
    return shuffled.iloc[split_positions(len(shuffled), split)]


def _agreement(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


def read_subset(root: str | os.PathLike, subset: str) -> tuple[Path, pd.DataFrame]:
    """The released CSV of ``subset`` under ``root``, every column as text, index = file row."""
    if subset not in FILES:
        raise ValueError(f"unknown CultureBank subset {subset!r}; choose from {SUBSETS}")
    path = Path(root) / FILES[subset]
    if not path.is_file():
        raise FileNotFoundError(f"CultureBank file not found: {path} (expected the released {FILES[subset]})")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return path, df.reset_index(drop=True)


@register_loader(NAME)
def load_culturebank(path: str | os.PathLike, subsets=SUBSETS, split: str = "test") -> LoadResult:
    """``path``: the folder holding ``tiktok/`` and ``reddit/``. Items subset by subset, each in the
    shuffled split order."""
    if split not in SPLITS:
        raise ValueError(f"unknown CultureBank split {split!r}; choose one of {SPLITS}")
    items, quarantine = [], []
    per_subset = {}
    for subset in subsets:
        csv_path, df = read_subset(path, subset)
        part = split_frame(df, split)
        bad = 0
        for row, record in zip(part.index, part.to_dict("records")):
            agreement = _agreement(record["agreement"])
            if agreement is None:
                bad += 1
                quarantine.append({"subset": subset, "row": int(row), "reason": "agreement_invalid",
                                   "detail": f"agreement {record['agreement']!r}"})
                continue
            target = agreement > 0.5
            items.append({
                "item_id": f"culturebank:{subset}:{row}",
                "benchmark": NAME,
                "subset": subset,
                "row": int(row),
                "cluster_id": record["cluster_id"],
                "cultural_group": record["cultural group"],
                "topic": record["topic"],
                "agreement": agreement,
                "target": target,
                "gold": "Yes" if target else "No",
                "labels": list(LABELS),
                "eval_question": record["eval_question"],
                "eval_whole_desc": record["eval_whole_desc"],
                "prompt": culturebank_prompt(record),
            })
        per_subset[subset] = {"file": FILES[subset], "rows_read": len(df), "split_rows": len(part),
                              "items": len(part) - bad}
        log.info("%s: %d rows -> %d %s rows -> %d items", csv_path.name, len(df), len(part), split, len(part) - bad)
    report = {
        "benchmark": NAME,
        "split": split,
        "split_seed": SPLIT_SEED,
        "subsets": per_subset,
        "rows_read": sum(s["rows_read"] for s in per_subset.values()),
        "items": len(items),
        "quarantined": quarantine_counts(quarantine),
    }
    if quarantine:
        log.warning("culturebank: %d test row(s) quarantined %s", len(quarantine), report["quarantined"])
    return LoadResult(items, quarantine, report)
