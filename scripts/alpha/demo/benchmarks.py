"""Small synthetic benchmark files in exactly the released layouts, deterministic from a seed.

``write_demo_globalopinionqa(out_dir, seed)`` -> ``out_dir/global_opinions.csv``
    ~40 questions (GAS and WVS) x 3-6 countries; options as Python list literals, some numeric
    (``[1, 2, ..., 'No answer']``, ``[1.0, 2.0, ...]``), "DK/Refused" and "Don't know" options; raw
    selections rounded so they do not always sum to 1; a country spelt with an apostrophe and one
    with a "(Non-national sample)" suffix; one question asked twice (two rows, other countries);
    two malformed rows: truncated ``selections`` text and a country whose list is one short.
``write_demo_culturebank(out_dir, seed)`` -> ``out_dir/tiktok/culturebank_tiktok.csv``,
    ``out_dir/reddit/culturebank_reddit.csv``: 200 and 207 rows (test splits of 20, an exact tenth,
    and 21, a tenth rounded up), the 18 released columns; empty
    recipient / goal fields, literal "None" descriptions, non-ASCII group names, agreement in tenths
    (0.5 included, a target of False).
``write_demo_culturenli(out_dir, seed)`` -> ``out_dir/data.tsv``: 150 rows, 3-15 raters per culture,
    premises with several hypotheses (interleaved), a premise holding double quotes, rating ties,
    and 3 later rows repeating an earlier (premise, hypothesis) with other ratings.
``write_demo_benchmarks(out_dir, seed)`` writes all three under ``globalopinionqa/``,
    ``culturebank/`` and ``culturenli/``.

Each writer returns a summary of what it planted (paths, row counts, malformed rows, duplicates),
for tests. Randomness comes only from ``numpy.random.default_rng((seed, stream))``; the same seed
gives the same bytes.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from alpha.core.io import write_text

__all__ = ["write_demo_globalopinionqa", "write_demo_culturebank", "write_demo_culturenli", "write_demo_benchmarks"]

GOQA_STREAM, CULTUREBANK_STREAMS, CULTURENLI_STREAM = 1, {"tiktok": 2, "reddit": 3}, 4


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng((int(seed), stream))


def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # QUOTE_MINIMAL, as pandas' to_csv writes them
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _pick(rng: np.random.Generator, pool):
    return pool[int(rng.integers(len(pool)))]


# ------------------------------------------------------------------------------ GlobalOpinionQA

GOQA_COUNTRIES = ("United States", "Nigeria", "Japan", "Brazil", "Germany", "India", "Indonesia", "Mexico",
                  "Côte d'Ivoire", "Britain (Non-national sample)", "Turkey", "Kenya")
GOQA_SCALES = {
    "good_bad": ("GAS", ["Very good", "Somewhat good", "Somewhat bad", "Very bad", "DK/Refused"]),
    "agree": ("GAS", ["Completely agree", "Mostly agree", "Mostly disagree", "Completely disagree", "DK/Refused"]),
    "yes_no": ("GAS", ["Yes", "No", "DK/Refused"]),
    "favor": ("GAS", ["Very favorable", "Somewhat favorable", "Somewhat unfavorable", "Very unfavorable", "DK/Refused"]),
    "important": ("WVS", ["Very important", "Rather important", "Not very important", "Not at all important",
                          "Don't know", "No answer"]),
    "numeric_int": ("WVS", [1, 2, 3, 4, 5, "Don't know", "No answer"]),
    "numeric_float": ("WVS", [1.0, 2.0, 3.0, 4.0]),
}
GOQA_TOPICS = ("the national government", "religious leaders", "the news media", "the military", "large companies",
               "the police", "international organizations", "labor unions", "the courts", "foreign investment")
GOQA_VALUES = ("family", "friends", "leisure time", "politics", "work", "religion")
GOQA_ISSUES = ("economic growth", "protecting the environment", "reducing crime", "helping the poor",
               "improving schools")


def _goqa_question(kind: str, rng: np.random.Generator) -> str:
    if kind == "good_bad":
        return (f"Is the influence of {_pick(rng, GOQA_TOPICS)} on the way things are going in our country very "
                "good, somewhat good, somewhat bad or very bad?")
    if kind == "agree":
        return f'How much do you agree with the statement: "Most people can be trusted, when it comes to {_pick(rng, GOQA_ISSUES)}"?'
    if kind == "yes_no":
        return f"Have you ever contacted a public official about {_pick(rng, GOQA_ISSUES)}?"
    if kind == "favor":
        return ("Please tell me if you have a very favorable, somewhat favorable, somewhat unfavorable, or very unfavorable opinion of "
                f"{_pick(rng, GOQA_TOPICS)}.")
    if kind == "important":
        return ("For each of the following, indicate how important it is in your life. Would you say it is very important, "
                "rather important, not very important or not important at all? - "
                f"{_pick(rng, GOQA_VALUES).capitalize()}")
    if kind == "numeric_int":
        return f"On a scale from 1 (not at all) to 5 (completely), how much confidence do you have in {_pick(rng, GOQA_TOPICS)}?"
    return f"How often, if at all, do you think about {_pick(rng, GOQA_ISSUES)}? (1 = never, 4 = very often)"


def _goqa_fractions(rng: np.random.Generator, options: list, source: str) -> list[float]:
    p = rng.dirichlet(np.full(len(options), 1.5))
    if isinstance(options[-1], str) and options[-1] in ("DK/Refused", "No answer") and rng.random() < 0.3:
        p[-1] = 0.0
    digits = 2 if source == "GAS" else 4  # rounded: the raw lists need not sum to 1
    return [round(float(x), digits) for x in p]


def _defaultdict_text(selections: dict) -> str:
    return f"defaultdict(<class 'list'>, {selections!r})"


def write_demo_globalopinionqa(out_dir: str | os.PathLike, seed: int = 0, n_questions: int = 40) -> dict:
    if n_questions < 13:
        raise ValueError("n_questions must be at least 13 (rows 3, 7 and 12 are reused for the quirks)")
    rng = _rng(seed, GOQA_STREAM)
    kinds = list(GOQA_SCALES)
    questions = []  # (question, {country: fractions}, options, source)
    for i in range(n_questions):
        kind = kinds[i] if i < len(kinds) else _pick(rng, kinds)  # every scale at least once
        source, options = GOQA_SCALES[kind]
        k = int(rng.integers(3, 7))
        countries = [GOQA_COUNTRIES[j] for j in rng.choice(len(GOQA_COUNTRIES), size=k, replace=False)]
        question = _goqa_question(kind, rng)
        questions.append((question, {c: _goqa_fractions(rng, options, source) for c in countries}, options, source))
    # the same question asked again (another wave, other countries), as in the released file
    question, first_sel, options, source = questions[3]
    others = [c for c in GOQA_COUNTRIES if c not in first_sel][:3]
    questions.append((question, {c: _goqa_fractions(rng, options, source) for c in others}, options, source))
    rows = [[q, _defaultdict_text(sel), repr(opts), src] for q, sel, opts, src in questions]
    # malformed rows: the selections text cut in half; one country's list one option short
    question, sel, options, source = questions[7]
    truncated = [question, _defaultdict_text(sel)[: len(_defaultdict_text(sel)) // 2], repr(options), source]
    question, sel, options, source = questions[12]
    short_sel = dict(sel)
    first = next(iter(short_sel))
    short_sel[first] = short_sel[first][:-1]
    short = [question, _defaultdict_text(short_sel), repr(options), source]
    malformed = {9: ("selections_unparseable", truncated), 25: ("selection_length_mismatch", short)}
    for at, (_, row) in sorted(malformed.items()):
        rows.insert(at, row)
    path = write_text(Path(out_dir) / "global_opinions.csv", _csv_text(["question", "selections", "options", "source"], rows))
    return {
        "path": path,
        "rows": len(rows),
        "items": sum(len(sel) for _, sel, _, _ in questions),
        "malformed_rows": {at: reason for at, (reason, _) in malformed.items()},
        "repeated_question_rows": (3, len(rows) - 1),
    }


# ------------------------------------------------------------------------------------ CultureBank

CB_GROUPS = ("American", "Japanese", "Indian", "German", "Brazilian", "Nigerian", "Mexican", "Korean", "Chinese",
             "French", "British", "Filipino", "Italian", "Québécois", "Middle Eastern", "Türkiye residents")
CB_SCENES = (  # context, actor, actor behavior, recipient, relation, recipient behavior, goal, topic
    ("in restaurants", "customers", "tip 15-20% of the bill", "waiters", "customer to server",
     "expect the tip as part of their income", "to show appreciation for the service", "Food and Dining"),
    ("when visiting someone's home", "guests", "remove their shoes at the door", "hosts", "guest to host", "",
     "to keep the house clean", "Social Norms and Etiquette"),
    ("at weddings", "guests", "give money in an envelope", "the couple", "guest to host", "",
     "to help the couple start their life together", "Cultural Traditions and Festivals"),
    ("in the workplace", "employees", "arrive a few minutes early to meetings", "colleagues", "peers", "",
     "to show respect for others' time", "Workplace"),
    ("on public transport", "passengers", "stay quiet and avoid phone calls", "", "", "", "",
     "Transportation"),
    ("during family meals", "children", "wait for the eldest to start eating", "elders", "child to elder", "",
     "to show respect", "Family Dynamics"),
    ("when greeting friends", "people", "kiss each other on the cheek", "friends", "friends", "kiss back", "",
     "Social Interactions"),
    ("in supermarkets", "shoppers", "bring their own bags", "", "", "", "to reduce plastic waste",
     "Environmental Adaptation and Sustainability"),
    ("at the dinner table", "diners", "eat with their right hand only", "", "", "", "",
     "Food and Dining"),
    ("during holidays", "families", "travel long distances to their hometown", "relatives", "family", "",
     "to reunite with relatives", "Family Traditions and Heritage"),
)
CB_DESCRIPTIONS = ("None", "None", "", "This is more common in big cities", "Younger people, less so",
                   "often seen as a sign of good manners, though it varies")


def _culturebank_rows(rng: np.random.Generator, n: int) -> list[list]:
    ids = np.sort(rng.choice(20000, size=n, replace=False))
    rows = []
    for cluster_id in ids:
        group = _pick(rng, CB_GROUPS)
        context, actor, behavior, recipient, relation, rec_behavior, goal, topic = _pick(rng, CB_SCENES)
        other = _pick(rng, CB_DESCRIPTIONS)
        agreement = round(float(np.clip(rng.beta(4.0, 1.6), 0.0, 1.0)), 1)
        low = int(rng.integers(0, 60)) * 10
        years = sorted(int(y) for y in rng.choice(np.arange(2019, 2024), size=int(rng.integers(1, 4)), replace=False))
        time_range = "{" + ", ".join(f"{y}: '[{low}, {low + 10})'" for y in years) + "}"
        whole = (f"In {group} culture, {context}, {actor} {behavior}"
                 + (f" towards {recipient}" if recipient else "") + (f" {goal}" if goal else "") + ".")
        rows.append([
            int(cluster_id), group, context, goal, relation, actor, behavior, recipient, rec_behavior, other, topic,
            repr(agreement), f"[{low}, {low + 10})", time_range, whole,
            f"A visitor from abroad spends time with {group} people {context}.",
            f"A curious traveller who is new to {group} customs",
            f"I will soon be with some {group} friends {context}. What should I keep in mind?",
        ])
    return rows


CB_HEADER = ["cluster_id", "cultural group", "context", "goal", "relation", "actor", "actor_behavior", "recipient",
             "recipient_behavior", "other_descriptions", "topic", "agreement", "num_support_bin", "time_range",
             "eval_whole_desc", "eval_scenario", "eval_persona", "eval_question"]


def write_demo_culturebank(out_dir: str | os.PathLike, seed: int = 0, n_rows: int = 200) -> dict:
    out = {}
    for subset, stream in CULTUREBANK_STREAMS.items():
        extra = 7 if subset == "reddit" else 0  # a size that is no multiple of 10: the split rounds
        rows = _culturebank_rows(_rng(seed, stream), n_rows + extra)
        out[subset] = {"path": write_text(Path(out_dir) / subset / f"culturebank_{subset}.csv", _csv_text(CB_HEADER, rows)),
                       "rows": len(rows)}
    return out


# ------------------------------------------------------------------------------------- CultureNLI

NLI_PEOPLE = ("Priya", "John", "Arjun", "Emily", "Meera", "Michael", "Ravi", "Sarah", "Ananya", "David")
NLI_PREMISES = (
    "{p} touched the feet of {pos} grandmother when she arrived.",
    "{p} brought a box of sweets to the new neighbours.",
    "{p} ate dinner at ten in the evening.",
    "{p} moved back in with {pos} parents after the wedding.",
    "{p} called {pos} teacher by her first name.",
    "{p} wore white to the funeral.",
    "{p} asked the waiter for the bill \"as soon as possible\".",
    "{p} paid for everyone's lunch at the office.",
    "{p} took off {pos} shoes before entering the kitchen.",
    "{p}'s parents chose the person {p} will marry.",
)
NLI_HYPOTHESES = (
    "{p} respects {pos} elders.", "{p} is being polite.", "{p} is in a hurry.", "{p} follows tradition.",
    "{p} is rude.", "{p} is celebrating.", "{p} is unhappy.", "{p} is close to {pos} family.",
)


def _ratings(rng: np.random.Generator) -> list[str]:
    p = rng.dirichlet([1.2, 1.0, 0.8])
    return [str(x) for x in rng.choice(["E", "N", "C"], size=int(rng.integers(3, 16)), p=p)]


def write_demo_culturenli(out_dir: str | os.PathLike, seed: int = 0, n_pairs: int = 147) -> dict:
    rng = _rng(seed, CULTURENLI_STREAM)
    seen, rows = set(), []
    while len(rows) < n_pairs:
        person = _pick(rng, NLI_PEOPLE)
        pos = "her" if person in ("Priya", "Emily", "Meera", "Sarah", "Ananya") else "his"
        premise = _pick(rng, NLI_PREMISES).format(p=person, pos=pos)
        hypothesis = _pick(rng, NLI_HYPOTHESES).format(p=person, pos=pos)
        if (premise, hypothesis) in seen:
            continue
        seen.add((premise, hypothesis))
        rows.append([premise, hypothesis, _ratings(rng), _ratings(rng)])
    # rating ties, decided by the first label seen: US N/E 2-2 (gold N), IN C/E 2-2 (gold C)
    ties = {5: (["N", "E", "E", "N", "C"], ["C", "E", "E", "C"]), 40: (["E", "C", "C", "E"], ["N", "C", "N", "C", "E"])}
    tie_gold = {}
    for r, (us, india) in ties.items():
        rows[r][2], rows[r][3] = us, india
        tie_gold[(rows[r][0], rows[r][1])] = (us[0], india[0])
    # later rows repeating an earlier pair with other ratings: the later one wins
    duplicates = {}
    for src, at in ((2, 60), (17, 101), (33, 149)):
        dup = [rows[src][0], rows[src][1], _ratings(rng), _ratings(rng)]
        rows.insert(min(at, len(rows)), dup)
        duplicates[(dup[0], dup[1])] = (dup[2], dup[3])
    lines = ["premise\thypothesis\tus_ratings\tin_ratings"]
    lines += ["\t".join([p, h, repr(us), repr(india)]) for p, h, us, india in rows]
    path = write_text(Path(out_dir) / "data.tsv", "\n".join(lines) + "\n")
    return {
        "path": path,
        "rows": len(rows),
        "pairs": len(seen),
        "duplicates": duplicates,  # (premise, hypothesis) -> the (us, in) ratings that must win
        "ties": tie_gold,  # (premise, hypothesis) -> the (us, in) gold labels, decided by first seen
    }


def write_demo_benchmarks(out_dir: str | os.PathLike, seed: int = 0) -> dict:
    out_dir = Path(out_dir)
    return {
        "globalopinionqa": write_demo_globalopinionqa(out_dir / "globalopinionqa", seed),
        "culturebank": write_demo_culturebank(out_dir / "culturebank", seed),
        "culturenli": write_demo_culturenli(out_dir / "culturenli", seed),
    }
