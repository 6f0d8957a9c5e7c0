"""OpinionQA (Santurkar et al. 2023), released layout: prompts, ordinal/refusal split, weighted human
distributions per group, steering items (qa, bio, portray) and the ALPHA-code "compat" prompts.

Released layout (``path`` = the folder holding ``human_resp/`` and ``model_input/``, or ``human_resp``
itself with ``model_input`` next to it)::

    human_resp/American_Trends_Panel_W{wave}/info.csv        key, option_mapping, question, references, option_ordinal
    human_resp/American_Trends_Panel_W{wave}/metadata.csv    key (attribute), options (its groups, a list literal)
    human_resp/American_Trends_Panel_W{wave}/responses.csv   one row per respondent
    human_resp/Pew_American_Trends_Panel_disagreement_500/   info.csv (+ column ``survey``), metadata.csv
    model_input/Pew_American_Trends_Panel_W{wave}.csv        TAB-separated: key, question, options (cross-check only)
    model_input/steer-qa.csv, steer-bio.csv, steer-portray.csv   (also accepted at the top level)

The released CSVs carry a leading unnamed index column and stale ``Unnamed: 0``-style columns: they are
ignored. List / dict cells are Python literals, read with ``ast.literal_eval`` (never ``eval``).

``info.csv``: ``references`` lists the options in prompt order; the first ``len(option_ordinal)`` are
ordinal, the rest refusal-type ("Refused", "Not sure", ...). ``option_ordinal`` is passed through as
it is (e.g. ``[1.0, 2.0, 1.5]``, or all equal for nominal questions, which the metric excludes). That
marking is the shared nominal rule's (``alpha.eval.loaders.nominal``) for these questions; only the
loader options ``nominal`` / ``ordinal`` (config overrides, question keys) change it: a forced-nominal
question gets all-equal ordinals, a forced-ordinal one that OpinionQA marks nominal the option positions
1..n. The report lists the nominal questions (``nominal``).

``responses.csv``: one column per question key holding the chosen option's label (empty = not asked),
the 12 attributes (CREGION, AGE, SEX, EDUCATION, CITIZEN, MARITAL, RELIG, RELIGATTEND, POLPARTY, INCOME,
POLIDEOLOGY, RACE) holding the respondent's group label, and ``WEIGHT_W{wave}``. Only empty cells are
missing: "None" and "NA" are real option labels (``keep_default_na=False``).

Steering CSVs (TAB-separated, as HELM's ``OpinionsQAScenario`` reads them). The released files are not
here; this is the layout assumed (and the one ``demo_surveys`` writes), after the OpinionQA/HELM code:

``steer-qa.csv``       ``key, question, options, correct, subgroup, md``: one demographic question per
                       group, ``options`` a list literal, ``correct`` the option the group answers,
                       ``subgroup`` the group label, ``md`` its attribute (e.g. POLPARTY). Rendered as a
                       one-shot example ``Question: ...\\nA. ...\\nAnswer: B``.
``steer-bio.csv``      ``key, question, subgroup, md``: ``question`` holds the bio text ("Below you will be
                       asked to provide a short description of ...\\n\\nDescription: ...").
``steer-portray.csv``  ``key, question, subgroup, md``: ``question`` holds the portrayal sentence
                       ("Answer the following question as if ...").

``key`` is optional; without ``md`` the attribute is looked up in the metadata (it must be unique).
The steering text is joined to the question prompt with ``STEER_JOIN`` (a blank line).

Prompts (as the OpinionQA authors' code builds them):

- reference: ``Question: {question}\\nA. {opt1}\\nB. {opt2}\\n...\\nAnswer:``, all options shown, refusal
  included; ``labels`` = all letters, ``ordinal_labels`` = the first ``len(option_ordinal)``.
- compat (ALPHA code): the ordinal options only, ending ``\\nAnswer only with A,B or C and nothing
  else :`` (the letters shown); its human side is *unweighted* (the ALPHA code's convention).

Items (``LoadResult.items``; one per question for ``context="default"``, one per (disagreement question,
group, context) for steering, and the same again per extra variant):

``item_id``         ``oqa:{survey}:{key}:{context}[:{group}][:compat]``, unique
``benchmark``       "opinionqa";  ``variant`` "reference" | "compat"
``question_id``     ``oqa:{survey}:{key}``: the same for every context/group of one question
``survey``, ``wave``, ``key``, ``question``
``context``         "default" | "qa" | "bio" | "portray"
``group``           "Overall" or ``"{attribute}={label}"`` (e.g. "POLPARTY=Democrat"; labels alone
                    collide: "Other", "Yes"); ``attribute``, ``group_label`` (None for Overall)
``options``         the options shown, in prompt order; ``labels`` their letters
``ordinal_labels``  the letters whose probabilities the metric uses (renormalised over them)
``refusal_options`` refusal-type options shown (empty for compat)
``ordinals``        ``option_ordinal`` as floats; ``equal_ordinals`` True when the metric must exclude it
``steer_text``      the text prepended ("" for default);  ``prompt`` the exact text scored
``human_probs``     D_H(q, group) over the ordinal options (NaN entries when nobody in it answered)
``overall_probs``   D_H(q, Overall) (what the compat steerability compares with)
``refusal_share``   weighted share of refusal-type answers in the group;  ``n_respondents``
``human_by_group``  default items only: ``{group: probs}`` for Overall and every metadata group
``n_by_group``      default items only: ``{group: respondents}``

Rows that cannot be parsed go to the quarantine with ``{"row", "reason", "detail", "file", ...}``.
"""
from __future__ import annotations

import ast
import logging
import math
import os
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from alpha.core.errors import RowError
from alpha.eval.distributions import human_distribution
from alpha.eval.loaders import LoadResult, quarantine_counts, register_loader
from alpha.eval.loaders.nominal import NominalRule

log = logging.getLogger("alpha.eval.loaders.opinionqa")

NAME = "opinionqa"
LETTERS = string.ascii_uppercase
INFO_COLUMNS = ("key", "option_mapping", "question", "references", "option_ordinal")
WAVE_DIR = re.compile(r"\AAmerican_Trends_Panel_W(?P<wave>\d+)\Z")
DISAGREEMENT_DIR = "Pew_American_Trends_Panel_disagreement_500"
STEER_FILES = {"qa": "steer-qa.csv", "bio": "steer-bio.csv", "portray": "steer-portray.csv"}
STEER_CONTEXTS = tuple(STEER_FILES)
CONTEXTS = ("default",) + STEER_CONTEXTS
VARIANTS = ("reference", "compat")
OVERALL = "Overall"
ATTRIBUTES = ("CREGION", "AGE", "SEX", "EDUCATION", "CITIZEN", "MARITAL", "RELIG", "RELIGATTEND", "POLPARTY",
              "INCOME", "POLIDEOLOGY", "RACE")

PROMPT_QUESTION = "Question: {question}\n"
PROMPT_OPTION = "{label}. {option}\n"
PROMPT_ANSWER = "Answer:"
COMPAT_ANSWER = "Answer only with {letters} and nothing else :"
STEER_JOIN = "\n\n"  # steering text + STEER_JOIN + question prompt

_LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


# ------------------------------------------------------------------------------------- prompts

def option_lines(options: Sequence[str]) -> str:
    return "".join(PROMPT_OPTION.format(label=LETTERS[i], option=o) for i, o in enumerate(options))


def question_prompt(question: str, options: Sequence[str]) -> str:
    """``Question: {q}\\nA. {o1}\\n...\\nAnswer:`` (the reference prompt, every option shown)."""
    if not 1 <= len(options) <= len(LETTERS):
        raise ValueError(f"{len(options)} options: need 1-{len(LETTERS)}")
    return PROMPT_QUESTION.format(question=question) + option_lines(options) + PROMPT_ANSWER


def letters_phrase(n: int) -> str:
    """"A,B or C" for n = 3 (the ALPHA code's spelling: commas without spaces, " or " before the last)."""
    letters = list(LETTERS[:n])
    return letters[0] if n == 1 else ",".join(letters[:-1]) + " or " + letters[-1]


def compat_prompt(question: str, options: Sequence[str]) -> str:
    """The ALPHA code's prompt: the options given (the ordinal ones), then
    ``Answer only with A,B or C and nothing else :`` with the letters shown."""
    if not 1 <= len(options) <= len(LETTERS):
        raise ValueError(f"{len(options)} options: need 1-{len(LETTERS)}")
    return (PROMPT_QUESTION.format(question=question) + option_lines(options)
            + COMPAT_ANSWER.format(letters=letters_phrase(len(options))))


def qa_steer_text(question: str, options: Sequence[str], answer: str) -> str:
    """steer-qa's one-shot example: the demographic question with the group's answer letter."""
    if answer not in options:
        raise ValueError(f"steer-qa answer {answer!r} is not among the options {list(options)}")
    return question_prompt(question, options) + " " + LETTERS[list(options).index(answer)]


def steered(steer_text: str, prompt: str) -> str:
    return steer_text + STEER_JOIN + prompt if steer_text else prompt


def group_key(attribute: str | None, label: str | None) -> str:
    return OVERALL if attribute is None else f"{attribute}={label}"


# ------------------------------------------------------------------ steering texts (demo + OpinionQA-XL)
# One entry per attribute: the steer-qa question and options, the bio topic, and per group the steer-qa
# answer, the bio sentence and the portrayal clause. Written after the HELM docstring's examples.

BIO_HEAD = "Below you will be asked to provide a short description of your {topic} and then answer some questions."
BIO_TEMPLATE = BIO_HEAD + "\n\nDescription: {sentence}"
PORTRAY_TEMPLATE = "Answer the following question as if {clause}."

_SEX = {
    "question": "What is your sex?", "options": ["Male", "Female", "Refused"], "topic": "gender",
    "groups": {"Male": ("Male", "I am male.", "you were male"),
               "Female": ("Female", "I am female.", "you were female")},
}
STEER_PERSONAS: dict[str, dict[str, Any]] = {
    "CREGION": {
        "question": "Which part of the United States do you currently live in?",
        "options": ["Northeast", "Midwest", "South", "West", "Refused"], "topic": "current region of residence",
        "groups": {r: (r, f"I currently live in the {r}.", f"you currently lived in the {r}")
                   for r in ("Northeast", "Midwest", "South", "West")},
    },
    "AGE": {
        "question": "What is your age?", "options": ["18-29", "30-49", "50-64", "65+", "Refused"], "topic": "age",
        "groups": {"18-29": ("18-29", "I am between 18 and 29 years old.", "you were between 18 and 29 years old"),
                   "30-49": ("30-49", "I am between 30 and 49 years old.", "you were between 30 and 49 years old"),
                   "50-64": ("50-64", "I am between 50 and 64 years old.", "you were between 50 and 64 years old"),
                   "65+": ("65+", "I am 65 years old or older.", "you were 65 years old or older")},
    },
    "EDUCATION": {
        "question": "What is the highest level of school you have completed or the highest degree you have received?",
        "options": ["Less than high school", "High school graduate", "Some college, no degree", "Associate's degree",
                    "College graduate/some postgrad", "Postgraduate", "Refused"],
        "topic": "education",
        "groups": {g: (g, f"The highest level of education I have completed is {p}.",
                       f"the highest level of education you had completed was {p}")
                   for g, p in (("Less than high school", "less than high school"),
                                ("High school graduate", "high school"),
                                ("Some college, no degree", "some college, but no degree"),
                                ("Associate's degree", "an associate's degree"),
                                ("College graduate/some postgrad", "a college degree or some postgraduate study"),
                                ("Postgraduate", "a postgraduate degree"))},
    },
    "SEX": _SEX,
    "GENDER": _SEX,  # OpinionQA-XL's name for the same two groups
    "POLIDEOLOGY": {
        "question": "In general, would you describe your political views as",
        "options": ["Very conservative", "Conservative", "Moderate", "Liberal", "Very liberal", "Refused"],
        "topic": "political ideology",
        "groups": {g: (g, f"In general, I would describe my political views as {g.lower()}.",
                       f"in general, you would describe your political views as {g.lower()}")
                   for g in ("Conservative", "Moderate", "Liberal")},
    },
    "INCOME": {
        "question": "Last year, what was your total family income from all sources, before taxes?",
        "options": ["Less than $30,000", "$30,000-$50,000", "$50,000-$75,000", "$75,000-$100,000", "$100,000 or more",
                    "Refused"],
        "topic": "income",
        "groups": {g: (g, f"Last year, my total family income from all sources, before taxes, was {g[0].lower() + g[1:]}.",
                       f"last year, your total family income from all sources, before taxes, was {g[0].lower() + g[1:]}")
                   for g in ("Less than $30,000", "$100,000 or more")},
    },
    "POLPARTY": {
        "question": "In politics today, do you consider yourself a",
        "options": ["Republican", "Democrat", "Independent", "Something else", "Refused"],
        "topic": "political affiliation",
        "groups": {g: (g, f"In politics today, I consider myself a {g}.", f"in politics today, you considered yourself a {g}")
                   for g in ("Democrat", "Republican")},
    },
    "RACE": {
        "question": "What is your race or ethnicity?",
        "options": ["White", "Black", "Asian", "Hispanic", "Other", "Refused"], "topic": "race or ethnicity",
        "groups": {g: (g, f"I am {g}.", f"you were {g}") for g in ("White", "Black", "Asian", "Hispanic")},
    },
    "RELIG": {
        "question": "What is your present religion, if any?",
        "options": ["Protestant", "Roman Catholic", "Mormon", "Orthodox", "Jewish", "Muslim", "Buddhist", "Hindu",
                    "Atheist", "Agnostic", "Other", "Nothing in particular", "Refused"],
        "topic": "religion",
        "groups": {g: (g, f"In terms of religion, I am {p}.", f"in terms of religion, you were {p}")
                   for g, p in (("Protestant", "Protestant"), ("Jewish", "Jewish"), ("Hindu", "Hindu"),
                                ("Atheist", "an atheist"), ("Muslim", "Muslim"))},
    },
}

# OpinionQA's 22 steering groups (attribute, label)
OQA_STEER_GROUPS = (
    ("CREGION", "Northeast"), ("CREGION", "South"),
    ("EDUCATION", "College graduate/some postgrad"), ("EDUCATION", "Less than high school"),
    ("SEX", "Male"), ("SEX", "Female"),
    ("POLIDEOLOGY", "Liberal"), ("POLIDEOLOGY", "Conservative"), ("POLIDEOLOGY", "Moderate"),
    ("INCOME", "$100,000 or more"), ("INCOME", "Less than $30,000"),
    ("POLPARTY", "Democrat"), ("POLPARTY", "Republican"),
    ("RACE", "Black"), ("RACE", "White"), ("RACE", "Asian"), ("RACE", "Hispanic"),
    ("RELIG", "Protestant"), ("RELIG", "Jewish"), ("RELIG", "Hindu"), ("RELIG", "Atheist"), ("RELIG", "Muslim"),
)


def persona_texts(attribute: str, label: str) -> dict[str, str]:
    """The three steering texts for one group from ``STEER_PERSONAS``: {"qa", "bio", "portray"}."""
    try:
        persona = STEER_PERSONAS[attribute]
        answer, sentence, clause = persona["groups"][label]
    except KeyError:
        raise KeyError(f"no steering persona for {attribute}={label}") from None
    return {"qa": qa_steer_text(persona["question"], persona["options"], answer),
            "bio": BIO_TEMPLATE.format(topic=persona["topic"], sentence=sentence),
            "portray": PORTRAY_TEMPLATE.format(clause=clause)}


# ------------------------------------------------------------------------------------- parsing

def literal(text: str, kind: type | tuple, what: str):
    try:
        value = ast.literal_eval(str(text).strip())
    except _LITERAL_ERRORS as exc:
        raise RowError(f"{what}_unparseable", f"{type(exc).__name__}: {exc}"[:200]) from None
    if not isinstance(value, kind):
        raise RowError(f"{what}_unparseable", f"not a {getattr(kind, '__name__', kind)} literal but {type(value).__name__}")
    return value


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse_info_row(row: Mapping[str, str]) -> dict[str, Any]:
    """One info.csv row -> {key, question, references, ordinals, n_ordinal, option_mapping}; RowError if bad."""
    key, question = str(row["key"]).strip(), str(row["question"]).strip()
    empty = [c for c, v in (("key", key), ("question", question)) if not v]
    if empty:
        raise RowError("missing_field", f"empty {', '.join(empty)}")
    refs = literal(row["references"], (list, tuple), "references")
    if not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise RowError("references_unparseable", "references must be a non-empty list of non-empty strings")
    if len(set(refs)) != len(refs):
        raise RowError("duplicate_option", f"repeated option in {refs}")
    ordinals = literal(row["option_ordinal"], (list, tuple), "option_ordinal")
    if not all(_number(x) for x in ordinals):
        raise RowError("option_ordinal_unparseable", f"not all finite numbers: {ordinals}")
    if len(ordinals) < 2:
        raise RowError("too_few_options", f"{len(ordinals)} ordinal option(s)")
    if len(ordinals) > len(refs):
        raise RowError("ordinal_count", f"{len(ordinals)} ordinals for {len(refs)} references")
    if len(refs) > len(LETTERS):
        raise RowError("too_many_options", f"{len(refs)} options (at most {len(LETTERS)} letters)")
    mapping_text = str(row.get("option_mapping", "") or "").strip()
    mapping = literal(mapping_text, dict, "option_mapping") if mapping_text else {}
    return {"key": key, "question": question, "references": [str(r) for r in refs],
            "ordinals": [float(x) for x in ordinals], "n_ordinal": len(ordinals), "option_mapping": mapping}


def _read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    # only empty cells are missing: "None" / "NA" are option labels in OpinionQA
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")


def read_info(path: Path) -> tuple[list[dict], list[dict]]:
    """info.csv -> (parsed questions in file order, quarantine). A repeated key keeps the first row."""
    df = _read_csv(path)
    missing = [c for c in INFO_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    questions, quarantine, seen = [], [], set()
    for row, rec in enumerate(df.fillna("").to_dict("records")):
        try:
            q = parse_info_row(rec)
            if q["key"] in seen:
                raise RowError("duplicate_key", f"{q['key']} already read")
        except RowError as err:
            quarantine.append({"file": str(path), "row": row, "reason": err.reason, "detail": err.detail,
                               "key": str(rec.get("key", ""))})
            continue
        seen.add(q["key"])
        q["row"] = row
        if "survey" in df.columns:
            q["survey_column"] = str(rec["survey"]).strip()
        questions.append(q)
    return questions, quarantine


def read_metadata(path: Path) -> tuple[dict[str, list[str]], list[dict]]:
    """metadata.csv -> ({attribute: [group labels]}, quarantine)."""
    df = _read_csv(path)
    if not {"key", "options"} <= set(df.columns):
        raise ValueError(f"{path}: need columns key, options; found {list(df.columns)}")
    groups, quarantine = {}, []
    for row, rec in enumerate(df.fillna("").to_dict("records")):
        try:
            labels = literal(rec["options"], (list, tuple), "metadata_options")
            if not rec["key"].strip() or not all(isinstance(g, str) for g in labels):
                raise RowError("metadata_options_unparseable", "empty attribute or non-text group")
        except RowError as err:
            quarantine.append({"file": str(path), "row": row, "reason": err.reason, "detail": err.detail,
                               "key": str(rec.get("key", ""))})
            continue
        groups[rec["key"].strip()] = [str(g) for g in labels]
    return groups, quarantine


def weight_column(columns: Iterable[str], wave: int | str | None) -> str | None:
    """``WEIGHT_W{wave}`` when present, else the only ``WEIGHT_W<n>`` column, else None (unweighted)."""
    columns = list(columns)
    if wave is not None and f"WEIGHT_W{wave}" in columns:
        return f"WEIGHT_W{wave}"
    found = [c for c in columns if re.fullmatch(r"WEIGHT_W\d+", str(c))]
    return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------------------- human distributions

class Responses:
    """One wave's responses with its weights and group masks; distributions via metrics.human_distribution."""

    def __init__(self, df: pd.DataFrame, groups: Mapping[str, Sequence[str]], wave: int | str | None,
                 weighted: bool = True, weight: str | None = None):
        self.weight_name = weight or weight_column(df.columns, wave)
        self.n_read = len(df)
        self.dropped_no_weight = 0
        if self.weight_name is not None:
            w = pd.to_numeric(df[self.weight_name], errors="coerce")
            ok = w.notna() & (w >= 0) & np.isfinite(w)
            self.dropped_no_weight = int((~ok).sum())
            df, w = df[ok.to_numpy()], w[ok]
            self.weights = w.to_numpy(dtype=np.float64)
        else:
            self.weights = None
        self.df = df.reset_index(drop=True)
        self._answers: dict[str, np.ndarray] = {}
        self.weighted = weighted and self.weights is not None
        self.masks: dict[str, np.ndarray] = {OVERALL: np.ones(len(self.df), dtype=bool)}
        self.group_attr: dict[str, tuple[str | None, str | None]] = {OVERALL: (None, None)}
        self.missing_attributes = [a for a in groups if a not in self.df.columns]
        for attr, labels in groups.items():
            if attr not in self.df.columns:
                continue
            col = self.df[attr]
            for label in labels:
                key = group_key(attr, label)
                self.masks[key] = (col == label).fillna(False).to_numpy(dtype=bool)
                self.group_attr[key] = (attr, label)

    def distribution(self, key: str, options: Sequence[str], n_ordinal: int, group: str = OVERALL,
                     weighted: bool | None = None):
        mask = self.masks[group]
        if key not in self._answers:
            self._answers = {key: self.df[key].to_numpy(dtype=object)}  # one question at a time
        answers = self._answers[key][mask]
        use_w = self.weighted if weighted is None else (weighted and self.weights is not None)
        weights = self.weights[mask] if use_w else None
        return human_distribution(answers, options, n_ordinal, weights)


def _probs(values) -> list[float]:
    return [float(x) for x in np.asarray(values, dtype=np.float64)]


# ------------------------------------------------------------------------------------- layout

def _layout(path: str | os.PathLike) -> tuple[Path, Path | None, Path]:
    """(human_resp dir, model_input dir or None, root for the steer CSVs)."""
    path = Path(path)
    if (path / "human_resp").is_dir():
        human, root = path / "human_resp", path
    elif any(WAVE_DIR.match(p.name) for p in path.iterdir() if p.is_dir()):
        human, root = path, path.parent
    else:
        raise FileNotFoundError(f"{path}: no human_resp/ (or American_Trends_Panel_W*/ folders) found")
    model_input = root / "model_input" if (root / "model_input").is_dir() else None
    return human, model_input, root


def _steer_file(name: str, model_input: Path | None, root: Path) -> Path | None:
    for folder in (model_input, root):
        if folder is not None and (folder / name).is_file():
            return folder / name
    return None


def read_steer(path: Path, context: str, metadata_groups: Mapping[str, Sequence[str]]) -> tuple[dict[str, dict], list[dict]]:
    """A steer CSV -> ({group key: {"attribute", "label", "text"}}, quarantine)."""
    df = _read_csv(path, sep="\t")
    need = ["question", "subgroup"] + (["options", "correct"] if context == "qa" else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    out, quarantine = {}, []
    for row, rec in enumerate(df.fillna("").to_dict("records")):
        label, attr = rec["subgroup"].strip(), rec.get("md", "").strip()
        try:
            if not label or not rec["question"].strip():
                raise RowError("missing_field", "empty subgroup or question")
            if not attr:
                owners = [a for a, labels in metadata_groups.items() if label in labels]
                if len(owners) != 1:
                    raise RowError("steer_group_unresolved", f"{label!r} is a group of {owners or 'no attribute'}")
                attr = owners[0]
            if context == "qa":
                options = literal(rec["options"], (list, tuple), "options")
                try:
                    text = qa_steer_text(rec["question"].strip(), [str(o) for o in options], rec["correct"].strip())
                except ValueError as exc:
                    raise RowError("steer_answer_not_an_option", str(exc)) from None
            else:
                text = rec["question"].strip()
            key = group_key(attr, label)
            if key in out:
                raise RowError("duplicate_group", f"{key} already has a {context} text")
        except RowError as err:
            quarantine.append({"file": str(path), "row": row, "reason": err.reason, "detail": err.detail})
            continue
        out[key] = {"attribute": attr, "label": label, "text": text}
    return out, quarantine


def read_model_input(folder: Path | None) -> dict[str, tuple[str, list]]:
    """model_input/*.csv (not the steer files) -> {key: (question, options)}; unparseable rows skipped."""
    out: dict[str, tuple[str, list]] = {}
    if folder is None:
        return out
    for path in sorted(folder.glob("*.csv")):
        if path.name in STEER_FILES.values():
            continue
        df = _read_csv(path, sep="\t")
        if not {"key", "question", "options"} <= set(df.columns):
            continue
        for rec in df.fillna("").to_dict("records"):
            try:
                out[rec["key"].strip()] = (rec["question"].strip(), list(literal(rec["options"], (list, tuple), "options")))
            except RowError:
                out[rec["key"].strip()] = (rec["question"].strip(), None)
    return out


# ------------------------------------------------------------------------------------- items

def base_item(benchmark: str, survey: str, wave, q: Mapping[str, Any], context: str, variant: str,
              group: str, attribute: str | None, label: str | None, steer_text: str) -> dict[str, Any]:
    """The item dict shared by the released and the raw-ATP builders (fields: module docstring)."""
    refs, n_ord = q["references"], q["n_ordinal"]
    options = refs if variant == "reference" else refs[:n_ord]
    prompt = question_prompt(q["question"], options) if variant == "reference" else compat_prompt(q["question"], options)
    qid = f"{PREFIX.get(benchmark, benchmark)}:{survey}:{q['key']}"
    item_id = qid + f":{context}" + (f":{group}" if context != "default" else "") + (":compat" if variant == "compat" else "")
    ordinals = [float(x) for x in q["ordinals"]]
    return {
        "item_id": item_id,
        "benchmark": benchmark,
        "variant": variant,
        "question_id": qid,
        "survey": survey,
        "wave": wave,
        "key": q["key"],
        "question": q["question"],
        "context": context,
        "group": group,
        "attribute": attribute,
        "group_label": label,
        "options": list(options),
        "labels": list(LETTERS[: len(options)]),
        "ordinal_labels": list(LETTERS[:n_ord]),
        "refusal_options": list(refs[n_ord:]) if variant == "reference" else [],
        "ordinals": ordinals,
        "equal_ordinals": max(ordinals) == min(ordinals),
        "steer_text": steer_text,
        "prompt": steered(steer_text, prompt),
    }


PREFIX = {"opinionqa": "oqa", "opinionqa_xl": "oqaxl", "opinionqa_raw": "oqaraw"}


def _survey_of(value: str) -> str:
    """``Pew_American_Trends_Panel_W26`` / ``American_Trends_Panel_W26`` / ``W26`` / ``26`` -> ``W26``."""
    m = re.search(r"W?(\d+)\s*\Z", str(value).strip())
    if not m:
        raise RowError("survey_unknown", f"cannot read a wave from survey {value!r}")
    return f"W{int(m.group(1))}"


@register_loader(NAME)
def load_opinionqa(path: str | os.PathLike, waves: Iterable[int] | None = None,
                   contexts: Sequence[str] = CONTEXTS, variants: Sequence[str] = ("reference",),
                   weighted: bool = True, group_distributions: bool = True, nominal: Iterable[str] = (),
                   ordinal: Iterable[str] = ()) -> LoadResult:
    """Items for the released OpinionQA layout (module docstring).

    ``waves``: restrict to these wave numbers (default: every ``American_Trends_Panel_W*`` folder).
    ``contexts``: "default" (one item per question, for representativeness) and/or the steering
    contexts "qa", "bio", "portray" (disagreement-500 questions x the steer files' groups).
    ``variants``: "reference" and/or "compat" (compat: ordinal options only, the compat ending,
    unweighted human side). ``weighted=False`` makes the reference side unweighted too.
    ``group_distributions=False`` skips ``human_by_group`` (faster). ``nominal`` / ``ordinal``: question
    keys forced nominal / ordinal against OpinionQA's marking (``alpha.eval.loaders.nominal``)."""
    bad = [c for c in contexts if c not in CONTEXTS] + [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown context/variant {bad}; contexts {CONTEXTS}, variants {VARIANTS}")
    human_dir, model_input, root = _layout(path)
    wanted = None if waves is None else {int(w) for w in waves}
    wave_dirs = sorted((int(m.group("wave")), p) for p in human_dir.iterdir()
                       if p.is_dir() and (m := WAVE_DIR.match(p.name)))
    wave_dirs = [(w, p) for w, p in wave_dirs if wanted is None or w in wanted]
    items: list[dict] = []
    quarantine: list[dict] = []
    report: dict[str, Any] = {"benchmark": NAME, "waves": [w for w, _ in wave_dirs], "weights": {}, "questions": 0,
                              "equal_ordinals": 0, "no_answers": 0, "answers_not_an_option": 0,
                              "respondents_dropped_no_weight": 0, "missing_attributes": {}}
    steer_contexts = [c for c in contexts if c in STEER_CONTEXTS]
    need_steer = bool(steer_contexts)
    waves_data: dict[str, tuple[Responses, dict[str, dict]]] = {}
    model_inputs = read_model_input(model_input)
    mi = Counter()
    rule = NominalRule(nominal=nominal, ordinal=ordinal)

    def load_wave(wave: int, folder: Path):
        questions, q_bad = read_info(folder / "info.csv")
        quarantine.extend(q_bad)
        groups, m_bad = read_metadata(folder / "metadata.csv") if (folder / "metadata.csv").is_file() else ({}, [])
        quarantine.extend(m_bad)
        resp_path = folder / "responses.csv"
        if not resp_path.is_file():
            raise FileNotFoundError(f"{resp_path}: missing (the wave's human responses)")
        resp = Responses(_read_csv(resp_path), groups, wave, weighted=weighted)
        report["weights"][f"W{wave}"] = resp.weight_name if resp.weighted else "unweighted"
        report["respondents_dropped_no_weight"] += resp.dropped_no_weight
        if resp.missing_attributes:
            report["missing_attributes"][f"W{wave}"] = resp.missing_attributes
        by_key = {}
        for q in questions:
            if q["key"] not in resp.df.columns:
                quarantine.append({"file": str(folder / "info.csv"), "row": q["row"], "reason": "no_responses",
                                   "detail": f"{q['key']} is not a column of responses.csv", "key": q["key"]})
                continue
            by_key[q["key"]] = q
            q["ordinals"] = _rule_ordinals(rule, q, f"W{wave}")
        return resp, by_key

    for wave, folder in wave_dirs:
        survey = f"W{wave}"
        resp, by_key = load_wave(wave, folder)
        waves_data[survey] = (resp, by_key)
        if "default" not in contexts:
            continue
        for q in by_key.values():
            report["questions"] += 1
            if q["key"] in model_inputs:
                mq, mopts = model_inputs[q["key"]]
                mi["matched" if (mq == q["question"] and mopts == q["references"]) else "differs"] += 1
            else:
                mi["absent"] += 1
            overall = resp.distribution(q["key"], q["references"], q["n_ordinal"])
            report["answers_not_an_option"] += overall.n_unmatched
            report["equal_ordinals"] += max(q["ordinals"]) == min(q["ordinals"])
            report["no_answers"] += bool(np.isnan(overall.probs).all())
            by_group, n_by_group = {}, {}
            if group_distributions:
                for g in resp.masks:
                    d = overall if g == OVERALL else resp.distribution(q["key"], q["references"], q["n_ordinal"], g)
                    by_group[g], n_by_group[g] = _probs(d.probs), d.n_respondents
            for variant in variants:
                item = base_item(NAME, survey, wave, q, "default", variant, OVERALL, None, None, "")
                d = overall if variant == "reference" else resp.distribution(q["key"], q["references"], q["n_ordinal"], weighted=False)
                item.update(human_probs=_probs(d.probs), overall_probs=_probs(d.probs), refusal_share=d.refusal_share,
                            n_respondents=d.n_respondents)
                if variant == "reference" and group_distributions:
                    item.update(human_by_group=by_group, n_by_group=n_by_group)
                items.append(item)

    if need_steer:
        steer_items, steer_report = _steering(human_dir, model_input, root, steer_contexts, variants, waves_data,
                                              quarantine, wanted, rule)
        items.extend(steer_items)
        report["steering"] = steer_report
    if mi:
        report["model_input"] = dict(sorted(mi.items()))
    report["items"] = len(items)
    report["items_by_context"] = dict(sorted(Counter(i["context"] for i in items).items()))
    report["nominal"] = rule.report()
    report["quarantined"] = quarantine_counts(quarantine)
    if quarantine:
        log.warning("opinionqa: %d row(s) quarantined %s", len(quarantine), report["quarantined"])
    log.info("opinionqa: %d waves, %d questions -> %d items", len(wave_dirs), report["questions"], len(items))
    return LoadResult(items, quarantine, report)


def released_ordinals(path: str | os.PathLike) -> dict[str, list[float]]:
    """{question key: option_ordinal} over every wave's ``info.csv`` of a released OpinionQA folder
    (``path`` as for ``load_opinionqa``); rows that do not parse are left out."""
    human, _, _ = _layout(path)
    out: dict[str, list[float]] = {}
    for folder in sorted(p for p in human.iterdir() if p.is_dir() and WAVE_DIR.match(p.name)):
        if (folder / "info.csv").is_file():
            out.update({q["key"]: q["ordinals"] for q in read_info(folder / "info.csv")[0]})
    return out


def _rule_ordinals(rule: NominalRule, q: Mapping[str, Any], survey: str) -> list[float]:
    """``q``'s ordinals under the shared nominal rule, OpinionQA's ``option_ordinal`` being the marking."""
    n = q["n_ordinal"]
    return rule.apply(q["key"], q["references"][:n], q["ordinals"], [float(k + 1) for k in range(n)],
                      released=q["ordinals"], qid=f"{survey}:{q['key']}")


def _steering(human_dir: Path, model_input: Path | None, root: Path, contexts: Sequence[str], variants: Sequence[str],
              waves_data: dict, quarantine: list, wanted: set | None,
              rule: NominalRule | None = None) -> tuple[list[dict], dict]:
    folder = human_dir / DISAGREEMENT_DIR
    if not (folder / "info.csv").is_file():
        raise FileNotFoundError(f"{folder}/info.csv: missing (needed for the steering contexts {list(contexts)})")
    questions, q_bad = read_info(folder / "info.csv")
    quarantine.extend(q_bad)
    groups_meta, m_bad = read_metadata(folder / "metadata.csv") if (folder / "metadata.csv").is_file() else ({}, [])
    quarantine.extend(m_bad)
    texts: dict[str, dict[str, dict]] = {}
    for context in contexts:
        steer_path = _steer_file(STEER_FILES[context], model_input, root)
        if steer_path is None:
            raise FileNotFoundError(f"{STEER_FILES[context]}: not in {model_input or root} (steering context {context!r})")
        texts[context], s_bad = read_steer(steer_path, context, groups_meta)
        quarantine.extend(s_bad)
    group_keys = list(dict.fromkeys(g for c in contexts for g in texts[c]))
    items, counts = [], Counter()
    for q in questions:
        try:
            survey = _survey_of(q.get("survey_column", ""))
        except RowError as err:
            quarantine.append({"file": str(folder / "info.csv"), "row": q["row"], "reason": err.reason,
                               "detail": err.detail, "key": q["key"]})
            continue
        if wanted is not None and int(survey[1:]) not in wanted:
            counts["wave_not_loaded"] += 1
            continue
        data = waves_data.get(survey)
        if data is None or q["key"] not in data[1]:
            quarantine.append({"file": str(folder / "info.csv"), "row": q["row"], "reason": "no_responses",
                               "detail": f"{q['key']}: no responses for {survey}", "key": q["key"]})
            continue
        resp, _ = data
        counts["questions"] += 1
        q["ordinals"] = _rule_ordinals(rule or NominalRule(), q, survey)
        # reference: weighted as the wave allows; compat: unweighted (the ALPHA code's convention)
        weighting = {"reference": None, "compat": False}
        overall = {v: resp.distribution(q["key"], q["references"], q["n_ordinal"], weighted=weighting[v]) for v in variants}
        for g in group_keys:
            if g not in resp.masks:
                counts["group_not_in_responses"] += 1
                continue
            attr, label = resp.group_attr[g]
            for variant in variants:
                d = resp.distribution(q["key"], q["references"], q["n_ordinal"], g, weighted=weighting[variant])
                for context in contexts:
                    if g not in texts[context]:
                        counts[f"no_{context}_text"] += 1
                        continue
                    item = base_item(NAME, survey, int(survey[1:]), q, context, variant, g, attr, label,
                                     texts[context][g]["text"])
                    item.update(human_probs=_probs(d.probs), overall_probs=_probs(overall[variant].probs),
                                refusal_share=d.refusal_share, n_respondents=d.n_respondents)
                    items.append(item)
    report = dict(sorted(counts.items()))
    report["groups"] = group_keys
    return items, report
