"""Small synthetic survey files in the real layouts, deterministic from a seed, with planted opinions.

``write_demo_opinionqa(out_dir, seed, lean)`` -> ``out_dir/human_resp/American_Trends_Panel_W{26,27}/``
    (info, metadata, responses), ``human_resp/Pew_American_Trends_Panel_disagreement_500/`` (info with
    ``survey``, metadata), ``model_input/Pew_American_Trends_Panel_W{26,27}.csv`` and
    ``..._disagreement_500.csv`` (TAB: key, question, options), ``model_input/steer-{qa,bio,portray}.csv``
    (OpinionQA's 22 groups, the layout documented in ``opinionqa``). 300 respondents and 20 questions
    per wave; quirks of the released files: a leading unnamed index column and stale ``Unnamed: 0``
    columns, ``option_ordinal`` like ``[1.0, 2.0, 1.5]``, a nominal question with equal ordinals, a
    "None" option label, "Not sure" + "Refused" refusal options, a question asked of a random half
    (form split), respondents with a "Refused" attribute, and one malformed info row (truncated
    ``option_ordinal``) in W27.
``write_demo_atp(out_dir, seed, lean)`` -> ``out_dir/ATP W{123,126,132}.sav`` (+ ``field_dates.json``):
    raw waves with variable labels (some echoing the variable name), value labels, user-missing 99
    (``missing_ranges``), Pew's demographic columns (W132 spells sex and income the newer way,
    ``F_GENDER`` / ``F_INC_SDT1``), ``WEIGHT_W{wave}`` and planted items that must be skipped:
    non-item columns, no value labels, <= 5 words, 51 options, 30 options, one substantive option.
    Field dates (invented for the demo): W123 2023-02-21..03-05 (straddles March: not Table 2),
    W126 2023-05-01..05-07 (Table 2), W132 2023-09-05..09-11 (after August).
``write_demo_gss(out_dir, seed, lean)`` -> ``out_dir/gss_demo.dta``: 16 years x 100 respondents;
    Stata extended missing (.d .i .n .y), the older in-range 0/8/9 IAP/DK/NA convention, Data
    Explorer negative codes, ``childs`` (8 = "eight or more" is an answer), a nominal ``relig``, a
    question asked in one year only, ``wtssall`` (to 2018) and ``wtssps``, region (9 divisions), age, sex.
``write_demo_surveys(out_dir, seed, lean)`` writes all three under ``opinionqa/``, ``atp/``, ``gss/``.

Planted opinions: every respondent has a latent lean = ``lean[region] + lean["{sex} {age}"]`` (+ small
noise; + a per-question time trend in the GSS), ``region`` one of the 4 census regions, ``{sex} {age}``
e.g. "Female 30-49" (``LEAN_GROUPS``). Each question has a direction (+1/-1) and a strength; the
respondent's option probabilities are softmax(base + strength * direction * lean * x) over the ordinal
positions x in [-1, 1], so group distributions differ systematically by region and by age x sex.
``lean`` is a dict group -> float in [-1, 1]; missing groups count 0; default ``default_lean(seed)``.
Each writer returns a summary (paths, the lean used, per-question direction/strength, planted quirks and
expected skip counts) for tests.

Randomness comes only from ``numpy.random.default_rng((seed, stream))``. The same seed gives the same
bytes: pyreadstat stamps the write time into ``.sav`` (header creation date/time) and ``.dta``
(``<timestamp>``) files, so the writers overwrite those stamps with a fixed date (``FIXED_STAMP``).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from alpha.core.io import write_bytes, write_text
from alpha.eval.loaders import opinionqa as oqa

__all__ = ["write_demo_opinionqa", "write_demo_atp", "write_demo_gss", "write_demo_surveys", "default_lean",
           "LEAN_GROUPS", "REGIONS", "AGES", "SEXES"]

REGIONS = ("Northeast", "Midwest", "South", "West")
AGES = ("18-29", "30-49", "50-64", "65+")
SEXES = ("Male", "Female")
LEAN_GROUPS = REGIONS + tuple(f"{s} {a}" for s in SEXES for a in AGES)
OQA_STREAM, ATP_STREAM, GSS_STREAM, LEAN_STREAM = 11, 12, 13, 14
OQA_WAVES = (26, 27)
ATP_WAVES = {123: ("2023-02-21", "2023-03-05"), 126: ("2023-05-01", "2023-05-07"), 132: ("2023-09-05", "2023-09-11")}
GSS_YEARS = (1972, 1974, 1976, 1978, 1980, 1984, 1988, 1991, 1994, 1998, 2002, 2006, 2010, 2014, 2018, 2022)
N_RESPONDENTS, N_QUESTIONS, GSS_PER_YEAR = 300, 20, 100
FIXED_STAMP = {"sav": b"01 Jan 0000:00:00", "dta": b"01 Jan 2000 00:00"}


def _rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng((int(seed), stream, *more))


def default_lean(seed: int = 0) -> dict[str, float]:
    """A fixed seeded lean per group (regions and sex x age), in [-0.8, 0.8], two decimals."""
    rng = _rng(seed, LEAN_STREAM)
    return {g: round(float(rng.uniform(-0.8, 0.8)), 2) for g in LEAN_GROUPS}


def _check_lean(lean: Mapping[str, float] | None, seed: int) -> dict[str, float]:
    if lean is None:
        return default_lean(seed)
    unknown = sorted(set(lean) - set(LEAN_GROUPS))
    if unknown:
        raise ValueError(f"unknown lean group(s) {unknown}; known: {list(LEAN_GROUPS)}")
    bad = {g: v for g, v in lean.items() if not (-1.0 <= float(v) <= 1.0)}
    if bad:
        raise ValueError(f"lean values must lie in [-1, 1]: {bad}")
    return {g: float(lean.get(g, 0.0)) for g in LEAN_GROUPS}


def latent(lean: Mapping[str, float], region, sex, age, rng: np.random.Generator, noise: float = 0.25) -> np.ndarray:
    """lean[region] + lean["{sex} {age}"] + N(0, noise); unknown / refused groups add 0."""
    out = np.array([lean.get(r, 0.0) + lean.get(f"{s} {a}", 0.0) for r, s, a in zip(region, sex, age)], dtype=np.float64)
    return out + rng.normal(0.0, noise, size=len(out))


def sample_answers(rng: np.random.Generator, lat: np.ndarray, n_ord: int, direction: int, strength: float,
                   base: np.ndarray) -> np.ndarray:
    """Ordinal position (0..n_ord-1) per respondent: softmax(base + strength * direction * lat * x)."""
    x = np.linspace(-1.0, 1.0, n_ord)
    logits = base[None, :] + strength * direction * lat[:, None] * x[None, :]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(len(lat))
    return np.minimum((u[:, None] > np.cumsum(p, axis=1)).sum(axis=1), n_ord - 1)


# ------------------------------------------------------------------------------------- files

def _csv_text(header, rows, sep=",") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _fix_stamp(data: bytes, kind: str) -> bytes:
    if kind == "sav":
        if data[:4] not in (b"$FL2", b"$FL3") or not re.fullmatch(rb"\d\d [A-Za-z]{3} \d\d\d\d:\d\d:\d\d", data[92:109]):
            raise ValueError("unexpected .sav header: cannot fix its creation stamp")
        return data[:92] + FIXED_STAMP["sav"] + data[109:]
    fixed, n = re.subn(rb"<timestamp>\x11.{17}</timestamp>", b"<timestamp>\x11" + FIXED_STAMP["dta"] + b"</timestamp>",
                       data, count=1, flags=re.S)
    if n != 1:
        raise ValueError("unexpected .dta header: cannot fix its timestamp")
    return fixed


def _write_stat(path: Path, kind: str, writer, df: pd.DataFrame, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    writer(df, str(tmp), **kwargs)
    data = _fix_stamp(tmp.read_bytes(), kind)
    tmp.unlink()
    return write_bytes(path, data)


# ------------------------------------------------------------------------------------- question pool

REFUSED = ["Refused"]
SCALES = {  # name -> (ordinal options, ordinals, refusal-type options)
    "likely4": (["Very likely", "Somewhat likely", "Not too likely", "Not at all likely"], None, REFUSED),
    "worry3": (["Worry a lot", "Worry a little", "Do not worry at all"], None, REFUSED),
    "favor4": (["Strongly favor", "Favor", "Oppose", "Strongly oppose"], None, REFUSED),
    "amount4": (["A great deal", "A fair amount", "Not too much", "Not at all"], None, REFUSED),
    "good4": (["Very good", "Somewhat good", "Somewhat bad", "Very bad"], None, REFUSED),
    "often4": (["Often", "Sometimes", "Rarely", "Never"], None, REFUSED),
    "howmany4": (["All or most", "Some", "Only a few", "None"], None, REFUSED),  # "None" is an answer
    "yesno": (["Yes", "No"], None, REFUSED),
    "impact3": (["Positive impact", "Negative impact", "No impact either way"], [1.0, 2.0, 1.5], REFUSED),
    "heard3": (["A lot", "A little", "Nothing at all"], None, ["Not sure", "Refused"]),
    "reason4": (["For protection", "For hunting", "For sport shooting", "For my job"], [1.0, 1.0, 1.0, 1.0], REFUSED),
}
TOPICS = ("the economy", "gun violence", "climate change", "the cost of health care", "crime in your community",
          "artificial intelligence", "immigration", "the federal budget deficit", "public schools", "housing costs",
          "drug addiction", "the quality of local roads", "foreign trade", "online privacy", "religious freedom")
TEMPLATES = {
    "likely4": "How likely is it that, at some point in the next ten years, {t} will get much worse?",
    "worry3": "How much, if at all, do you worry about {t} affecting you and your family?",
    "favor4": "Would you favor or oppose the federal government spending more money to address {t}?",
    "amount4": "How much, if at all, do you think {t} is a problem in the country today?",
    "good4": "Thinking about your local area, would you say the situation with {t} is very good, somewhat good, somewhat bad or very bad?",
    "often4": "How often, if ever, do you talk with friends or family members about {t}?",
    "howmany4": "As far as you know, how many of your friends are very concerned about {t}?",
    "yesno": "Have you ever contacted an elected official to share your views about {t}?",
    "impact3": "What impact, if any, has {t} had on you and your job or career?",
    "heard3": "How much, if anything, have you heard or read about new proposals dealing with {t}?",
    "reason4": "Which of the following is the most important reason why you own a gun, thinking about {t}?",
}


def _questions(rng: np.random.Generator, n: int, prefix: str) -> list[dict]:
    kinds = list(SCALES)
    out = []
    for i in range(n):
        kind = kinds[i] if i < len(kinds) else kinds[int(rng.integers(len(kinds)))]
        ordinal, ordinals, refusal = SCALES[kind]
        topic = TOPICS[int(rng.integers(len(TOPICS)))]
        out.append({
            "stem": f"{prefix}{chr(ord('A') + i % 26)}{i // 26 or ''}",
            "kind": kind, "question": TEMPLATES[kind].format(t=topic), "ordinal": list(ordinal),
            "ordinals": list(ordinals) if ordinals else [float(k + 1) for k in range(len(ordinal))],
            "refusal": list(refusal), "direction": int(rng.choice([-1, 1])),
            "strength": round(float(rng.uniform(1.2, 2.2)), 3),
            "base": np.round(rng.normal(0.0, 0.4, size=len(ordinal)), 3),
        })
    return out


def _answers(rng, q: dict, lat: np.ndarray, refuse_rate: float = 0.03) -> list[str | None]:
    pos = sample_answers(rng, lat, len(q["ordinal"]), q["direction"], q["strength"], q["base"])
    refuse = rng.random(len(lat)) < refuse_rate
    which = rng.integers(len(q["refusal"]), size=len(lat))
    return [q["refusal"][which[i]] if refuse[i] else q["ordinal"][pos[i]] for i in range(len(lat))]


# ------------------------------------------------------------------------------------- demographics

OQA_GROUPS = {
    "CREGION": list(REGIONS),
    "AGE": list(AGES),
    "SEX": list(SEXES),
    "EDUCATION": ["Less than high school", "High school graduate", "Some college, no degree", "Associate's degree",
                  "College graduate/some postgrad", "Postgraduate"],
    "CITIZEN": ["Yes", "No"],
    "MARITAL": ["Married", "Divorced", "Separated", "Widowed", "Never been married"],
    "RELIG": ["Protestant", "Roman Catholic", "Mormon", "Orthodox", "Jewish", "Muslim", "Buddhist", "Hindu", "Atheist",
              "Agnostic", "Other", "Nothing in particular"],
    "RELIGATTEND": ["More than once a week", "Once a week", "Once or twice a month", "A few times a year", "Seldom",
                    "Never"],
    "POLPARTY": ["Republican", "Democrat", "Independent", "Other"],
    "INCOME": ["Less than $30,000", "$30,000-$50,000", "$50,000-$75,000", "$75,000-$100,000", "$100,000 or more"],
    "POLIDEOLOGY": ["Very conservative", "Conservative", "Moderate", "Liberal", "Very liberal"],
    "RACE": ["White", "Black", "Asian", "Hispanic", "Other"],
}
SHARES = {"CREGION": [0.17, 0.21, 0.38, 0.24], "AGE": [0.2, 0.33, 0.26, 0.21], "CITIZEN": [0.92, 0.08],
          "RACE": [0.6, 0.12, 0.07, 0.16, 0.05], "RELIG": [0.36, 0.2, 0.02, 0.01, 0.03, 0.03, 0.02, 0.03, 0.05,
                                                          0.05, 0.04, 0.16]}


def _draw(rng, values, n, shares=None, refused=0.0, extra: tuple[str, float] | None = None):
    vals, p = list(values), np.array(shares if shares else [1.0] * len(values), dtype=np.float64)
    if extra:
        vals.append(extra[0])
        p = np.append(p, extra[1] * p.sum() / (1 - extra[1]))
    if refused:
        vals.append("Refused")
        p = np.append(p, refused * p.sum() / (1 - refused))
    idx = rng.choice(len(vals), size=n, p=p / p.sum())
    return [vals[i] for i in idx]


def _oqa_demographics(rng, n: int) -> dict[str, list[str]]:
    out = {}
    for attr, groups in OQA_GROUPS.items():
        refused = 0.0 if attr in ("CREGION", "SEX") else 0.01
        extra = ("Living with a partner", 0.07) if attr == "MARITAL" else None  # in no metadata group
        out[attr] = _draw(rng, groups, n, SHARES.get(attr), refused, extra)
    return out


# ------------------------------------------------------------------------------------- OpinionQA layout

def _info_rows(questions, wave) -> list[list]:
    rows = []
    for i, q in enumerate(questions):
        refs = q["ordinal"] + q["refusal"]
        codes = [float(k + 1) for k in range(len(q["ordinal"]))]
        if len(q["refusal"]) == 2:
            codes.append(float(len(q["ordinal"]) + 1))
        codes.append(99.0)
        mapping = dict(zip(codes, refs))
        rows.append([i, i, q["key"], repr(mapping), q["question"], repr(refs), repr(q["ordinals"])])
    return rows


def write_demo_opinionqa(out_dir: str | os.PathLike, seed: int = 0, lean: Mapping[str, float] | None = None,
                         n_respondents: int = N_RESPONDENTS, n_questions: int = N_QUESTIONS) -> dict:
    lean = _check_lean(lean, seed)
    out_dir = Path(out_dir)
    human, model_input = out_dir / "human_resp", out_dir / "model_input"
    info_header = ["", "Unnamed: 0", "key", "option_mapping", "question", "references", "option_ordinal"]
    meta_rows = [[i, attr, repr(groups)] for i, (attr, groups) in enumerate(OQA_GROUPS.items())]
    summary = {"root": out_dir, "waves": {}, "lean": lean, "malformed": {}, "disagreement_keys": []}
    all_questions = []
    for wave in OQA_WAVES:
        rng = _rng(seed, OQA_STREAM, wave)
        questions = _questions(rng, n_questions, "OQ")
        for q in questions:
            q["key"] = f"{q['stem']}_W{wave}"
        demo = _oqa_demographics(rng, n_respondents)
        lat = latent(lean, demo["CREGION"], demo["SEX"], demo["AGE"], rng)
        weights = np.round(rng.lognormal(0.0, 0.35, size=n_respondents), 6)
        cols = {}
        for j, q in enumerate(questions):
            answers = _answers(rng, q, lat)
            if j == 3:  # a form split: asked of a random half only
                asked = rng.random(n_respondents) < 0.5
                answers = [a if asked[i] else None for i, a in enumerate(answers)]
            cols[q["key"]] = answers
        header = ["QKEY"] + list(cols) + list(OQA_GROUPS) + [f"WEIGHT_W{wave}"]
        rows = []
        for i in range(n_respondents):
            rows.append([100000 + i] + [("" if cols[k][i] is None else cols[k][i]) for k in cols]
                        + [demo[a][i] for a in OQA_GROUPS] + [repr(float(weights[i]))])
        folder = human / f"American_Trends_Panel_W{wave}"
        info_rows = _info_rows(questions, wave)
        if wave == 27:  # a malformed row, as a broken export would leave it: truncated option_ordinal
            info_rows[5][6] = info_rows[5][6][:-1]
            summary["malformed"][questions[5]["key"]] = "option_ordinal_unparseable"
        write_text(folder / "info.csv", _csv_text(info_header, info_rows))
        write_text(folder / "metadata.csv", _csv_text(["", "key", "options"], meta_rows))
        write_text(folder / "responses.csv", _csv_text(header, rows))
        mi_rows = [[i, q["key"], q["question"], repr(q["ordinal"] + q["refusal"])] for i, q in enumerate(questions)]
        write_text(model_input / f"Pew_American_Trends_Panel_W{wave}.csv", _csv_text(["", "key", "question", "options"], mi_rows, "\t"))
        summary["waves"][wave] = {"folder": folder, "questions": {q["key"]: {k: q[k] for k in ("kind", "direction", "strength")}
                                                                  for q in questions},
                                  "respondents": n_respondents, "form_split_key": questions[3]["key"]}
        all_questions += [(wave, q) for q in questions]
    # disagreement set: every third question of each wave (not the malformed one)
    chosen = [(w, q) for w, q in all_questions if int(re.sub(r"\D", "", q["stem"]) or 0) == 0 and
              (ord(q["stem"][2]) - ord("A")) % 3 == 0 and q["key"] not in summary["malformed"]]
    dis_rows = []
    for i, (w, q) in enumerate(chosen):
        row = _info_rows([q], w)[0]
        dis_rows.append([i, i * 3] + row[1:] + [f"Pew_American_Trends_Panel_W{w}"])
        summary["disagreement_keys"].append((f"W{w}", q["key"]))
    dis = human / oqa.DISAGREEMENT_DIR
    write_text(dis / "info.csv", _csv_text(["", "index"] + info_header[1:] + ["survey"], dis_rows))
    write_text(dis / "metadata.csv", _csv_text(["", "key", "options"], meta_rows))
    write_text(model_input / f"{oqa.DISAGREEMENT_DIR}.csv",
               _csv_text(["", "key", "question", "options"],
                         [[i, q["key"], q["question"], repr(q["ordinal"] + q["refusal"])] for i, (w, q) in enumerate(chosen)], "\t"))
    qa_rows, bio_rows, portray_rows = [], [], []
    for attr, label in oqa.OQA_STEER_GROUPS:
        persona = oqa.STEER_PERSONAS[attr]
        answer, _, _ = persona["groups"][label]
        texts = oqa.persona_texts(attr, label)
        qa_rows.append([f"STEER_{attr}", persona["question"], repr(persona["options"]), answer, label, attr])
        bio_rows.append([f"STEER_{attr}", texts["bio"], label, attr])
        portray_rows.append([f"STEER_{attr}", texts["portray"], label, attr])
    write_text(model_input / "steer-qa.csv", _csv_text(["key", "question", "options", "correct", "subgroup", "md"], qa_rows, "\t"))
    write_text(model_input / "steer-bio.csv", _csv_text(["key", "question", "subgroup", "md"], bio_rows, "\t"))
    write_text(model_input / "steer-portray.csv", _csv_text(["key", "question", "subgroup", "md"], portray_rows, "\t"))
    summary["steer_groups"] = [oqa.group_key(a, g) for a, g in oqa.OQA_STEER_GROUPS]
    return summary


# ------------------------------------------------------------------------------------- raw ATP waves

ATP_DEMOGRAPHICS = {  # column -> (value labels, OpinionQA-style group of each code for the lean, shares)
    "F_CREGION_FINAL": {1.0: "Northeast", 2.0: "Midwest", 3.0: "South", 4.0: "West"},
    "F_AGECAT_FINAL": {1.0: "18-29", 2.0: "30-49", 3.0: "50-64", 4.0: "65+", 99.0: "DK/REF"},
    "F_SEX_FINAL": {1.0: "Male", 2.0: "Female", 99.0: "Refused"},
    "F_EDUCCAT2_FINAL": {1.0: "Less than high school", 2.0: "High school graduate", 3.0: "Some college, no degree",
                         4.0: "Associate's degree", 5.0: "College graduate/some post grad", 6.0: "Postgraduate",
                         99.0: "Don't know/Refused"},
    "F_CITIZEN_FINAL": {1.0: "Yes", 2.0: "No", 99.0: "Refused"},
    "F_MARITAL_FINAL": {1.0: "Married", 2.0: "Living with a partner", 3.0: "Divorced", 4.0: "Separated",
                        5.0: "Widowed", 6.0: "Never been married", 99.0: "Refused"},
    "F_RELIG_FINAL": {1.0: "Protestant (for example, Baptist, Methodist, Non-denominational, Lutheran, Presbyterian, "
                           "Pentecostal, Episcopalian, Reformed, Church of Christ, etc.)",
                      2.0: "Roman Catholic (Catholic)", 3.0: "Mormon (Church of Jesus Christ of Latter-day Saints or LDS)",
                      4.0: "Orthodox (such as Greek, Russian, or some other Orthodox church)", 5.0: "Jewish (Judaism)",
                      6.0: "Muslim (Islam)", 7.0: "Buddhist", 8.0: "Hindu", 9.0: "Atheist (do not believe in God)",
                      10.0: "Agnostic (not sure if there is a God)", 11.0: "Something else, Specify:",
                      12.0: "Nothing in particular", 99.0: "Refused"},
    "F_ATTEND_FINAL": {1.0: "More than once a week", 2.0: "Once a week", 3.0: "Once or twice a month",
                       4.0: "A few times a year", 5.0: "Seldom", 6.0: "Never", 99.0: "Refused"},
    "F_PARTY_FINAL": {1.0: "Republican", 2.0: "Democrat", 3.0: "Independent", 4.0: "Something else", 99.0: "Refused"},
    "F_INCOME_FINAL": {1.0: "Less than $10,000", 2.0: "10 to under $20,000", 3.0: "20 to under $30,000",
                       4.0: "30 to under $40,000", 5.0: "40 to under $50,000", 6.0: "50 to under $75,000",
                       7.0: "75 to under $100,000", 8.0: "100 to under $150,000", 9.0: "$150,000 or more",
                       99.0: "Refused"},
    "F_IDEO_FINAL": {1.0: "Very conservative", 2.0: "Conservative", 3.0: "Moderate", 4.0: "Liberal",
                     5.0: "Very liberal", 99.0: "Refused"},
    "F_RACECMB_RECRUITMENT": {1.0: "White", 2.0: "Black or African-American", 3.0: "Asian or Asian-American",
                              4.0: "Mixed Race", 5.0: "Or some other race", 99.0: "Refused"},
    "F_HISP_RECRUITMENT": {1.0: "Yes", 2.0: "No", 99.0: "Refused"},
}
NEWER = {  # W132 spells two of them the newer way
    "F_SEX_FINAL": ("F_GENDER", {1.0: "A man", 2.0: "A woman", 3.0: "In some other way", 99.0: "Refused"}),
    "F_INCOME_FINAL": ("F_INC_SDT1", {1.0: "Less than $30,000", 2.0: "$30,000 to less than $40,000",
                                      3.0: "$40,000 to less than $50,000", 4.0: "$50,000 to less than $60,000",
                                      5.0: "$60,000 to less than $70,000", 6.0: "$70,000 to less than $80,000",
                                      7.0: "$80,000 to less than $90,000", 8.0: "$90,000 to less than $100,000",
                                      9.0: "$100,000 or more", 99.0: "Refused"}),
}
ATP_SHARES = {"F_CREGION_FINAL": [0.17, 0.21, 0.38, 0.24], "F_AGECAT_FINAL": [0.2, 0.33, 0.26, 0.21, 0.01],
              "F_SEX_FINAL": [0.49, 0.5, 0.01], "F_GENDER": [0.49, 0.49, 0.01, 0.01],
              "F_HISP_RECRUITMENT": [0.16, 0.83, 0.01]}
STATES = ["Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware",
          "District of Columbia", "Florida", "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas",
          "Kentucky", "Louisiana", "Maine", "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi",
          "Missouri", "Montana", "Nebraska", "Nevada", "New Hampshire", "New Jersey", "New Mexico", "New York",
          "North Carolina", "North Dakota", "Ohio", "Oklahoma", "Oregon", "Pennsylvania", "Rhode Island",
          "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah", "Vermont", "Virginia", "Washington",
          "West Virginia", "Wisconsin", "Wyoming"]


def write_demo_atp(out_dir: str | os.PathLike, seed: int = 0, lean: Mapping[str, float] | None = None,
                   n_respondents: int = N_RESPONDENTS, n_questions: int = 14) -> dict:
    import pyreadstat

    lean = _check_lean(lean, seed)
    out_dir = Path(out_dir)
    summary = {"dir": out_dir, "lean": lean, "waves": {},
               "field_dates": {w: {"start": s, "end": e} for w, (s, e) in ATP_WAVES.items()}, "table2": [126]}
    for wave, _ in ATP_WAVES.items():
        rng = _rng(seed, ATP_STREAM, wave)
        data, labels, var_labels, missing = {"QKEY": np.arange(1, n_respondents + 1, dtype=np.float64)}, {}, {}, {}
        demo_cols, demo_names = {}, []
        for col, vlabels in ATP_DEMOGRAPHICS.items():
            name, vlabels = NEWER[col] if (wave == 132 and col in NEWER) else (col, vlabels)
            demo_names.append(name)
            codes = list(vlabels)
            shares = ATP_SHARES.get(name)
            p = np.array(shares if shares else [1.0] * (len(codes) - 1) + [0.02], dtype=np.float64)
            data[name] = np.array(codes, dtype=np.float64)[rng.choice(len(codes), size=n_respondents, p=p / p.sum())]
            labels[name] = vlabels
            missing[name] = [99.0]
            demo_cols[col] = [vlabels[c] for c in data[name]]
        sex_col = "F_SEX_FINAL"
        sex = [{"A man": "Male", "A woman": "Female"}.get(s, s) for s in demo_cols[sex_col]]
        lat = latent(lean, demo_cols["F_CREGION_FINAL"], sex, demo_cols["F_AGECAT_FINAL"], rng)
        questions = _questions(rng, n_questions, "AQ")
        planted = {}
        for j, q in enumerate(questions):
            name = f"{q['stem']}_W{wave}"
            q["key"] = name
            answers = _answers(rng, q, lat)
            order = q["ordinal"] + q["refusal"]
            codes = [float(k + 1) for k in range(len(q["ordinal"]))]
            codes += [8.0] if len(q["refusal"]) == 2 else []  # "Not sure" coded 8: refusal-type by its label
            codes += [99.0]
            code_of = dict(zip(order, codes))
            col = np.array([code_of[a] for a in answers], dtype=np.float64)
            if j == 3:
                col[rng.random(n_respondents) < 0.5] = np.nan  # form split: not asked
            data[name] = col
            labels[name] = dict(zip(codes, order))
            missing[name] = [99.0]
            # some labels echo the variable name, as ATP exports do
            var_labels[name] = f"{name}. {q['question']}" if j % 4 == 1 else q["question"]
        # planted items the builder must skip, one per reason
        data[f"DEVICE_TYPE_W{wave}"] = rng.integers(1, 4, size=n_respondents).astype(np.float64)
        labels[f"DEVICE_TYPE_W{wave}"] = {1.0: "Mobile phone", 2.0: "Tablet", 3.0: "Desktop or laptop"}
        var_labels[f"DEVICE_TYPE_W{wave}"] = "Device type used to take the survey this time"
        planted["non_item_column"] = ["QKEY", f"DEVICE_TYPE_W{wave}", f"WEIGHT_W{wave}"] + demo_names
        data[f"DURATION_W{wave}"] = np.round(rng.uniform(5, 60, size=n_respondents), 1)
        var_labels[f"DURATION_W{wave}"] = "Minutes taken to complete this survey, rounded to a tenth"
        data[f"THERMO_W{wave}"] = rng.integers(1, 4, size=n_respondents).astype(np.float64)
        labels[f"THERMO_W{wave}"] = {1.0: "Cold", 2.0: "Neutral", 3.0: "Warm", 99.0: "Refused"}
        var_labels[f"THERMO_W{wave}"] = "Feeling thermometer: Congress"  # 4 words
        data[f"STATE_W{wave}"] = rng.integers(1, 52, size=n_respondents).astype(np.float64)
        labels[f"STATE_W{wave}"] = {float(i + 1): s for i, s in enumerate(STATES)}
        var_labels[f"STATE_W{wave}"] = "In which state of the United States do you currently live?"
        data[f"COUNTRY_W{wave}"] = rng.integers(1, 31, size=n_respondents).astype(np.float64)
        labels[f"COUNTRY_W{wave}"] = {float(i + 1): f"Country number {i + 1}" for i in range(30)}
        var_labels[f"COUNTRY_W{wave}"] = "Which of these countries have you ever visited for at least a week?"
        data[f"SELECTED_W{wave}"] = np.where(rng.random(n_respondents) < 0.95, 1.0, 99.0)
        labels[f"SELECTED_W{wave}"] = {1.0: "Selected", 99.0: "Refused"}
        missing[f"SELECTED_W{wave}"] = [99.0]
        var_labels[f"SELECTED_W{wave}"] = "Which of the following sources did you use for news last week?"
        planted.update(no_value_labels=[f"DURATION_W{wave}"], short_text=[f"THERMO_W{wave}"],
                       too_many_options=[f"STATE_W{wave}"], options_exceed_letters=[f"COUNTRY_W{wave}"],
                       too_few_substantive=[f"SELECTED_W{wave}"])
        data[f"WEIGHT_W{wave}"] = np.round(rng.lognormal(0.0, 0.35, size=n_respondents), 6)
        df = pd.DataFrame(data)
        path = _write_stat(out_dir / f"ATP W{wave}.sav", "sav", pyreadstat.write_sav, df, column_labels=var_labels,
                           variable_value_labels=labels, missing_ranges=missing)
        summary["waves"][wave] = {"path": path, "respondents": n_respondents, "planted_skips": planted,
                                  "questions": {q["key"]: {k: q[k] for k in ("kind", "direction", "strength", "question")}
                                                for q in questions},
                                  "form_split_key": questions[3]["key"],
                                  "sex_column": "F_GENDER" if wave == 132 else "F_SEX_FINAL"}
    write_text(out_dir / "field_dates.json", json.dumps(summary["field_dates"], indent=1, sort_keys=True) + "\n")
    return summary


# ------------------------------------------------------------------------------------- GSS

GSS_DIVISIONS = {1.0: ("new england", "Northeast"), 2.0: ("middle atlantic", "Northeast"),
                 3.0: ("e. nor. central", "Midwest"), 4.0: ("w. nor. central", "Midwest"),
                 5.0: ("south atlantic", "South"), 6.0: ("e. sou. central", "South"), 7.0: ("w. sou. central", "South"),
                 8.0: ("mountain", "West"), 9.0: ("pacific", "West")}
GSS_ITEMS = {  # name -> (label, options {code: label}, convention, years asked)
    "cappun": ("favor or oppose death penalty for murder", {1: "favor", 2: "oppose"}, "extended", "all"),
    "gunlaw": ("favor or oppose gun permits", {1: "favor", 2: "oppose"}, "extended", "not1974,1998"),
    "natspac": ("space exploration program", {1: "too little", 2: "about right", 3: "too much"}, "extended", "from1974"),
    "polviews": ("think of self as liberal or conservative",
                 {1: "extremely liberal", 2: "liberal", 3: "slightly liberal", 4: "moderate, middle of the road",
                  5: "slightly conservative", 6: "conservative", 7: "extremely conservative"}, "extended", "from1974"),
    "abany": ("abortion if woman wants for any reason", {1: "yes", 2: "no"}, "old089", "from1978"),
    "courts": ("courts dealing with criminals", {1: "too harsh", 2: "not harsh enough", 3: "about right"},
               "negative", "from1974"),
    "childs": ("number of children", {0: "none", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six",
                                      7: "seven", 8: "eight or more"}, "childs", "all"),
    "aiworry": ("worried about artificial intelligence taking jobs", {1: "very worried", 2: "somewhat worried",
                                                                     3: "not worried"}, "extended", "only2022"),
}


def _asked(rule: str, year: int) -> bool:
    if rule == "all":
        return True
    if rule.startswith("not"):
        return str(year) not in rule[3:].split(",")
    if rule.startswith("from"):
        return year >= int(rule[4:])
    if rule.startswith("only"):
        return year == int(rule[4:])
    raise ValueError(rule)


def write_demo_gss(out_dir: str | os.PathLike, seed: int = 0, lean: Mapping[str, float] | None = None,
                   per_year: int = GSS_PER_YEAR) -> dict:
    import pyreadstat

    lean = _check_lean(lean, seed)
    rng = _rng(seed, GSS_STREAM)
    # newest year first: pyreadstat (through narwhals) types an object column by its first 100 values, and
    # a column holding only extended-missing letters there would be written as text, not as numbers
    years = np.repeat(np.array(GSS_YEARS[::-1], dtype=np.float64), per_year)
    n = len(years)
    division = rng.choice(list(GSS_DIVISIONS), size=n, p=[0.05, 0.13, 0.15, 0.07, 0.2, 0.06, 0.12, 0.07, 0.15])
    region4 = [GSS_DIVISIONS[d][1] for d in division]
    age = rng.integers(18, 90, size=n).astype(np.float64)
    age_band = np.select([age < 30, age < 50, age < 65], ["18-29", "30-49", "50-64"], "65+")
    sex = rng.choice([1.0, 2.0], size=n)
    base_lat = latent(lean, region4, ["Male" if s == 1.0 else "Female" for s in sex], age_band, rng)
    data: dict[str, object] = {"year": years, "id": np.tile(np.arange(1, per_year + 1, dtype=np.float64), len(GSS_YEARS))}
    labels: dict[str, dict] = {}
    var_labels = {"year": "gss year for this respondent", "id": "respondent id number",
                  "wtssall": "weight variable", "wtssps": "post-stratification weight"}
    missing_user: dict[str, list[str]] = {}
    planted = {}
    t = (years - 1997.0) / 25.0
    for name, (label, opts, convention, rule) in GSS_ITEMS.items():
        qrng = _rng(seed, GSS_STREAM, sum(map(ord, name)))
        codes = [float(c) for c in opts]
        direction, strength = int(qrng.choice([-1, 1])), round(float(qrng.uniform(1.0, 2.0)), 3)
        trend = round(float(qrng.uniform(-1.0, 1.0)), 3)
        base = np.round(qrng.normal(0.0, 0.4, size=len(codes)), 3)
        pos = sample_answers(qrng, base_lat + trend * t, len(codes), direction, strength, base)
        value = np.array(codes)[pos]
        asked = np.array([_asked(rule, int(y)) for y in years])
        u = qrng.random(n)
        planted[name] = {"direction": direction, "strength": strength, "trend": trend, "convention": convention,
                         "years": [y for y in GSS_YEARS if _asked(rule, y)]}
        if convention == "extended":
            col = np.array(value, dtype=object)
            col[u < 0.04] = "d"
            col[(u >= 0.04) & (u < 0.05)] = "n"
            col[~asked] = "y" if rule.startswith("only") else "i"
            if name == "gunlaw":  # split ballot from 1988: a third not asked
                col[asked & (years >= 1988) & (qrng.random(n) < 0.33)] = "i"
            data[name] = col
            labels[name] = {**{float(c): text for c, text in opts.items()}, "d": "dk", "i": "iap", "n": "na",
                            "y": "not available in this year"}
            missing_user[name] = ["d", "i", "n", "y"]
        elif convention == "old089":
            col = value.copy()
            col[u < 0.04] = 8.0
            col[(u >= 0.04) & (u < 0.05)] = 9.0
            col[~asked] = 0.0
            data[name] = col
            labels[name] = {0.0: "iap", **{float(c): text for c, text in opts.items()}, 8.0: "dk", 9.0: "na"}
        elif convention == "negative":
            col = value.copy()
            col[u < 0.04] = -98.0
            col[(u >= 0.04) & (u < 0.05)] = -99.0
            col[~asked] = -100.0
            data[name] = col
            labels[name] = {-100.0: ".i:  Inapplicable", -99.0: ".n:  No answer", -98.0: ".d:  Do not Know/Cannot Choose",
                            **{float(c): text for c, text in opts.items()}}
        else:  # childs: 0 "none" and 8 "eight or more" are answers, 9 "dk, na" is missing
            col = value.copy()
            col[u < 0.02] = 9.0
            data[name] = col
            labels[name] = {**{float(c): text for c, text in opts.items()}, 9.0: "dk, na"}
        var_labels[name] = label
    data["relig"] = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 98.0], size=n, p=[0.5, 0.25, 0.02, 0.15, 0.06, 0.02])
    labels["relig"] = {1.0: "protestant", 2.0: "catholic", 3.0: "jewish", 4.0: "none", 5.0: "other", 98.0: "dk",
                       99.0: "na"}
    var_labels["relig"] = "rs religious preference"
    data["region"] = division.astype(np.float64)
    labels["region"] = {c: d for c, (d, _) in GSS_DIVISIONS.items()}
    var_labels["region"] = "region of interview"
    data["age"] = age
    labels["age"] = {89.0: "89 or older", 98.0: "dk", 99.0: "na"}
    var_labels["age"] = "age of respondent"
    data["sex"] = sex
    labels["sex"] = {1.0: "male", 2.0: "female"}
    var_labels["sex"] = "respondents sex"
    wts = np.round(rng.lognormal(0.0, 0.3, size=n), 6)
    data["wtssall"] = np.where(years <= 2018, wts, np.nan)
    data["wtssps"] = np.round(wts * rng.uniform(0.9, 1.1, size=n), 6)
    df = pd.DataFrame(data)
    for name in missing_user:
        head = df[name].iloc[:100]
        if not any(isinstance(v, float) and not np.isnan(v) for v in head):
            raise AssertionError(f"{name}: no numeric answer among the first 100 rows (it would be written as text)")
    path = _write_stat(Path(out_dir) / "gss_demo.dta", "dta", pyreadstat.write_dta, df, column_labels=var_labels,
                       variable_value_labels=labels, missing_user_values=missing_user)
    return {"path": path, "lean": lean, "years": list(GSS_YEARS), "respondents": n, "items": planted,
            "nominal": ["relig", "region", "sex"], "expected_skips": {"age": "too_few_options", "aiworry": "asked_in_fewer_years"}}


def write_demo_surveys(out_dir: str | os.PathLike, seed: int = 0, lean: Mapping[str, float] | None = None) -> dict:
    out_dir = Path(out_dir)
    return {"opinionqa": write_demo_opinionqa(out_dir / "opinionqa", seed, lean),
            "atp": write_demo_atp(out_dir / "atp", seed, lean),
            "gss": write_demo_gss(out_dir / "gss", seed, lean)}
