"""Survey benchmarks: OpinionQA (released layout), raw ATP .sav (OpinionQA-XL / OpinionQA-from-raw), GSS .dta,
and the seeded demo writers. Fixtures are written here by hand (CSV text) or with pyreadstat; expected
numbers are worked out in the comments."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from alpha.demo import surveys as ds
from alpha.eval import metrics
from alpha.eval.loaders import atp, get_loader, gss, loader_names
from alpha.eval.loaders import opinionqa as oqa


def close(a, b, tol=1e-12):
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=tol, rtol=0)


def test_loaders_registered():
    assert {"opinionqa", "opinionqa_xl", "opinionqa_raw", "gss"} <= set(loader_names())


# ------------------------------------------------------------------------------ OpinionQA, released layout

INFO_HEADER = ",Unnamed: 0,key,option_mapping,question,references,option_ordinal\n"


def write_oqa_fixture(root: Path, sentinel: Path) -> Path:
    wave = root / "human_resp" / "American_Trends_Panel_W26"
    wave.mkdir(parents=True)
    (wave / "info.csv").write_text(
        INFO_HEADER
        + "0,0,Q1_W26,\"{1.0: 'Very safe', 2.0: 'Somewhat safe', 3.0: 'Not too safe', 99.0: 'Refused'}\","
          "\"How safe, if at all, would you say your local community is from crime?\","
          "\"['Very safe', 'Somewhat safe', 'Not too safe', 'Refused']\",\"[1.0, 2.0, 3.0]\"\n"
        + "1,1,Q2_W26,\"{1.0: 'Mostly positive', 2.0: 'Mostly negative', 3.0: 'A mix of both', 99.0: 'Refused'}\","
          "\"Has what you've seen or heard about driverless vehicles been mostly positive, mostly negative, or a mix of both?\","
          "\"['Mostly positive', 'Mostly negative', 'A mix of both', 'Refused']\",\"[1.0, 2.0, 1.5]\"\n"
        + "2,2,Q3_W26,\"{1.0: 'All or most', 2.0: 'Some', 3.0: 'Only a few', 4.0: 'None', 5.0: 'Not sure', 99.0: 'Refused'}\","
          "\"As far as you know, how many of your friends, if any, own guns?\","
          "\"['All or most', 'Some', 'Only a few', 'None', 'Not sure', 'Refused']\",\"[1.0, 2.0, 3.0, 4.0]\"\n"
        + "3,3,Q4_W26,\"{1.0: 'For protection', 2.0: 'For hunting', 99.0: 'Refused'}\","
          "Which of the following is the most important reason why you own a gun?,"
          "\"['For protection', 'For hunting', 'Refused']\",\"[1, 1]\"\n"
        # code instead of a literal: quarantined, never run
        + f"4,4,Q5_W26,\"{{1.0: 'Yes', 2.0: 'No'}}\",Is this safe?,\"['Yes', 'No']\",\"__import__('pathlib').Path('{sentinel}').touch()\"\n"
        # more ordinals than options
        + "5,5,Q6_W26,\"{1.0: 'Yes', 2.0: 'No'}\",Do you own a car?,\"['Yes', 'No']\",\"[1.0, 2.0, 3.0]\"\n"
        # not a column of responses.csv
        + "6,6,Q7_W26,\"{1.0: 'Yes', 2.0: 'No'}\",Do you own a boat?,\"['Yes', 'No']\",\"[1.0, 2.0]\"\n",
        encoding="utf-8")
    meta = (",key,options\n0,CREGION,\"['Northeast', 'Midwest', 'South', 'West']\"\n"
            "1,SEX,\"['Male', 'Female']\"\n")
    (wave / "metadata.csv").write_text(meta, encoding="utf-8")
    (wave / "responses.csv").write_text(
        "QKEY,Q1_W26,Q2_W26,Q3_W26,Q4_W26,Q5_W26,Q6_W26,CREGION,SEX,WEIGHT_W26\n"
        "1,Very safe,Mostly positive,None,For protection,Yes,Yes,Northeast,Male,2.0\n"
        "2,Somewhat safe,A mix of both,Some,For hunting,No,No,Northeast,Female,1.0\n"
        "3,Very safe,Refused,Not sure,For protection,Yes,No,South,Female,0.5\n"
        "4,Refused,Mostly negative,None,For hunting,No,Yes,South,Male,1.5\n"
        "5,,Mostly positive,All or most,For protection,Yes,Yes,West,Refused,1.0\n"
        "6,Not too safe,,None,Refused,No,No,Midwest,Male,3.0\n", encoding="utf-8")
    dis = root / "human_resp" / oqa.DISAGREEMENT_DIR
    dis.mkdir()
    (dis / "info.csv").write_text(
        ",index,Unnamed: 0,key,option_mapping,question,references,option_ordinal,survey\n"
        "0,0,0,Q1_W26,\"{1.0: 'Very safe', 2.0: 'Somewhat safe', 3.0: 'Not too safe', 99.0: 'Refused'}\","
        "\"How safe, if at all, would you say your local community is from crime?\","
        "\"['Very safe', 'Somewhat safe', 'Not too safe', 'Refused']\",\"[1.0, 2.0, 3.0]\",Pew_American_Trends_Panel_W26\n"
        "1,7,7,Q9_W41,\"{1.0: 'Yes', 2.0: 'No'}\",Is this from a wave we do not have?,\"['Yes', 'No']\",\"[1.0, 2.0]\","
        "Pew_American_Trends_Panel_W41\n", encoding="utf-8")
    (dis / "metadata.csv").write_text(meta, encoding="utf-8")
    mi = root / "model_input"
    mi.mkdir()
    (mi / "Pew_American_Trends_Panel_W26.csv").write_text(
        "\tkey\tquestion\toptions\n"
        "0\tQ1_W26\tHow safe, if at all, would you say your local community is from crime?\t"
        "['Very safe', 'Somewhat safe', 'Not too safe', 'Refused']\n"
        "1\tQ2_W26\tAn older wording of the question\t['Mostly positive', 'Mostly negative', 'A mix of both', 'Refused']\n",
        encoding="utf-8")
    (mi / "steer-qa.csv").write_text(
        "key\tquestion\toptions\tcorrect\tsubgroup\tmd\n"
        "CREGION\tWhich part of the United States do you currently live in?\t"
        "['Northeast', 'Midwest', 'South', 'West', 'Refused']\tNortheast\tNortheast\tCREGION\n"
        "SEX\tWhat is your sex?\t['Male', 'Female', 'Refused']\tMale\tMale\tSEX\n", encoding="utf-8")
    (mi / "steer-bio.csv").write_text(
        "key\tquestion\tsubgroup\tmd\n"
        "CREGION\t\"Below you will be asked to provide a short description of your current region of residence and then "
        "answer some questions.\n\nDescription: I currently live in the Northeast.\"\tNortheast\tCREGION\n"
        "SEX\tI am male.\tMale\t\n", encoding="utf-8")  # no md: found in the metadata
    (mi / "steer-portray.csv").write_text(
        "key\tquestion\tsubgroup\tmd\n"
        "CREGION\tAnswer the following question as if you currently lived in the Northeast.\tNortheast\tCREGION\n",
        encoding="utf-8")
    return root


@pytest.fixture
def oqa_result(tmp_path, monkeypatch):
    sentinel = tmp_path / "pwned"

    def no_eval(*args, **kwargs):
        raise AssertionError("eval must never be called")

    monkeypatch.setattr(oqa, "eval", no_eval, raising=False)
    root = write_oqa_fixture(tmp_path / "oqa", sentinel)
    result = get_loader("opinionqa")(root, variants=("reference", "compat"))
    assert not sentinel.exists()
    return result


def by_id(result):
    return {i["item_id"]: i for i in result.items}


def test_oqa_prompt_and_ordinal_refusal_split(oqa_result):
    items = by_id(oqa_result)
    q1 = items["oqa:W26:Q1_W26:default"]
    assert q1["prompt"] == ("Question: How safe, if at all, would you say your local community is from crime?\n"
                            "A. Very safe\nB. Somewhat safe\nC. Not too safe\nD. Refused\nAnswer:")
    assert q1["labels"] == ["A", "B", "C", "D"] and q1["ordinal_labels"] == ["A", "B", "C"]
    assert q1["refusal_options"] == ["Refused"] and q1["group"] == "Overall" and q1["context"] == "default"
    q3 = items["oqa:W26:Q3_W26:default"]
    assert q3["options"][-2:] == ["Not sure", "Refused"] and q3["refusal_options"] == ["Not sure", "Refused"]
    assert q3["ordinal_labels"] == ["A", "B", "C", "D"] and q3["prompt"].endswith("E. Not sure\nF. Refused\nAnswer:")


def test_oqa_option_ordinal_passed_through(oqa_result):
    items = by_id(oqa_result)
    assert items["oqa:W26:Q2_W26:default"]["ordinals"] == [1.0, 2.0, 1.5]
    assert items["oqa:W26:Q2_W26:default"]["equal_ordinals"] is False
    q4 = items["oqa:W26:Q4_W26:default"]
    assert q4["ordinals"] == [1.0, 1.0] and q4["equal_ordinals"] is True
    assert oqa_result.report["equal_ordinals"] == 1


def test_oqa_weighted_distributions_by_hand(oqa_result):
    q1 = by_id(oqa_result)["oqa:W26:Q1_W26:default"]
    # Very safe: w 2.0 + 0.5; Somewhat safe: 1.0; Not too safe: 3.0; Refused 1.5; respondent 5 not asked
    assert close(q1["human_probs"], [2.5 / 6.5, 1.0 / 6.5, 3.0 / 6.5])
    assert q1["refusal_share"] == pytest.approx(1.5 / 8.0) and q1["n_respondents"] == 5
    g = q1["human_by_group"]
    assert close(g["CREGION=Northeast"], [2 / 3, 1 / 3, 0.0])
    assert close(g["SEX=Male"], [2 / 5, 0.0, 3 / 5])
    assert np.isnan(g["CREGION=West"]).all()  # its one respondent was not asked
    assert q1["n_by_group"]["SEX=Female"] == 2  # respondent 5 ("Refused" sex) is only in Overall
    # "None" is an option label, not a missing value: 2.0 + 1.5 + 3.0 of it
    q3 = by_id(oqa_result)["oqa:W26:Q3_W26:default"]
    assert close(q3["human_probs"], [1 / 8.5, 1 / 8.5, 0.0, 6.5 / 8.5])
    assert q3["refusal_share"] == pytest.approx(0.5 / 9.0)


def test_oqa_compat_prompt_and_unweighted(oqa_result):
    items = by_id(oqa_result)
    c1 = items["oqa:W26:Q1_W26:default:compat"]
    assert c1["prompt"] == ("Question: How safe, if at all, would you say your local community is from crime?\n"
                            "A. Very safe\nB. Somewhat safe\nC. Not too safe\n"
                            "Answer only with A,B or C and nothing else :")
    assert c1["labels"] == c1["ordinal_labels"] == ["A", "B", "C"] and c1["refusal_options"] == []
    assert close(c1["human_probs"], [2 / 4, 1 / 4, 1 / 4])  # counts, not weights
    c4 = items["oqa:W26:Q4_W26:default:compat"]
    assert c4["prompt"].endswith("B. For hunting\nAnswer only with A or B and nothing else :")
    assert oqa.letters_phrase(4) == "A,B,C or D"


def test_oqa_steering_items(oqa_result):
    items = by_id(oqa_result)
    qa = items["oqa:W26:Q1_W26:qa:CREGION=Northeast"]
    assert qa["prompt"] == (
        "Question: Which part of the United States do you currently live in?\n"
        "A. Northeast\nB. Midwest\nC. South\nD. West\nE. Refused\nAnswer: A\n\n"
        "Question: How safe, if at all, would you say your local community is from crime?\n"
        "A. Very safe\nB. Somewhat safe\nC. Not too safe\nD. Refused\nAnswer:")
    assert close(qa["human_probs"], [2 / 3, 1 / 3, 0.0])
    assert close(qa["overall_probs"], [2.5 / 6.5, 1 / 6.5, 3 / 6.5])
    bio = items["oqa:W26:Q1_W26:bio:SEX=Male"]
    assert bio["prompt"].startswith("I am male.\n\nQuestion: How safe") and bio["attribute"] == "SEX"
    assert close(bio["human_probs"], [2 / 5, 0.0, 3 / 5])
    assert items["oqa:W26:Q1_W26:bio:CREGION=Northeast"]["prompt"].startswith(
        "Below you will be asked to provide a short description of your current region of residence and then answer "
        "some questions.\n\nDescription: I currently live in the Northeast.\n\nQuestion: How safe")
    assert "oqa:W26:Q1_W26:portray:CREGION=Northeast" in items
    assert not any(k.startswith("oqa:W26:Q1_W26:portray:SEX") for k in items)
    assert oqa_result.report["steering"]["no_portray_text"] == 2  # Male x 2 variants
    # compat steering: unweighted, overall = whole population
    cq = items["oqa:W26:Q1_W26:qa:SEX=Male:compat"]
    assert close(cq["human_probs"], [1 / 2, 0, 1 / 2]) and close(cq["overall_probs"], [2 / 4, 1 / 4, 1 / 4])


def test_oqa_quarantine_and_report(oqa_result):
    reasons = {(q["key"], q["reason"]) for q in oqa_result.quarantine}
    assert ("Q5_W26", "option_ordinal_unparseable") in reasons
    assert ("Q6_W26", "ordinal_count") in reasons
    assert ("Q7_W26", "no_responses") in reasons
    assert ("Q9_W41", "no_responses") in reasons  # a disagreement question of a wave not released
    assert oqa_result.report["questions"] == 4
    assert oqa_result.report["model_input"] == {"absent": 2, "differs": 1, "matched": 1}
    assert oqa_result.report["weights"] == {"W26": "WEIGHT_W26"}


def test_oqa_items_feed_the_metrics(oqa_result):
    df = oqa_result.frame()
    ref = df[(df.variant == "reference") & (df.context == "default")]
    perfect = ref.assign(model_probs=ref.human_probs)
    res = metrics.representativeness(perfect[["question_id", "model_probs", "human_probs", "ordinals"]]
                                     .rename(columns={"question_id": "question"}))
    assert res.value == pytest.approx(1.0) and res.excluded == {"equal_ordinals": 1}
    steer = df[(df.variant == "reference") & (df.context != "default")]
    s = steer.assign(model_probs=steer.human_probs).rename(columns={"question_id": "question"})
    out = metrics.steerability(s[["question", "group", "context", "model_probs", "human_probs", "ordinals"]])
    assert out.value == pytest.approx(1.0) and set(out.per_group) == {"CREGION=Northeast", "SEX=Male"}


# ------------------------------------------------------------------------------ raw ATP .sav

def write_sav(path: Path) -> Path:
    nan = np.nan
    df = pd.DataFrame({
        "QKEY": [1.0, 2, 3, 4, 5, 6],
        "SAFECRIME_W26": [1.0, 2, 99, nan, 4, 1],
        "HEARD_W26": [1.0, 8, 2, 3, 99, 1],
        "SHORT_W26": [1.0, 2, 1, 2, 1, 2],
        "STATE_W26": [1.0, 5, 9, 51, 33, 2],
        "ONLY_W26": [1.0, 1, 99, 1, 1, 1],
        "NOLAB_W26": [12.5, 3.0, 7.5, 1.0, 2.0, 4.0],
        "NEVER_W26": [nan] * 6,
        "F_CREGION_FINAL": [1.0, 1, 3, 3, 4, 2],
        "F_SEX_FINAL": [1.0, 2, 2, 1, 1, 2],
        "F_INCOME_FINAL": [1.0, 9, 5, 99, 3, 8],
        "F_RACECMB_RECRUITMENT": [1.0, 1, 2, 99, 3, 4],
        "F_HISP_RECRUITMENT": [2.0, 1, 2, 99, 2, 2],
        "WEIGHT_W26": [2.0, 1.0, 0.5, 1.5, 1.0, nan],
    })
    labels = {
        "SAFECRIME_W26": {1.0: "Very safe", 2.0: "Somewhat safe", 3.0: "Not too safe", 4.0: "Not at all safe",
                          98.0: "No response given", 99.0: "Refused"},
        "HEARD_W26": {1.0: "A lot", 2.0: "A little", 3.0: "Nothing at all", 8.0: "Not sure", 99.0: "Refused"},
        "SHORT_W26": {1.0: "Favorable", 2.0: "Unfavorable"},
        "STATE_W26": {float(i): f"State {i}" for i in range(1, 52)},
        "ONLY_W26": {1.0: "Selected", 99.0: "Refused"},
        "NEVER_W26": {1.0: "Yes", 2.0: "No"},
        "F_CREGION_FINAL": {1.0: "Northeast", 2.0: "Midwest", 3.0: "South", 4.0: "West"},
        "F_SEX_FINAL": {1.0: "Male", 2.0: "Female", 99.0: "Refused"},
        "F_INCOME_FINAL": {1.0: "Less than $10,000", 2.0: "10 to under $20,000", 3.0: "20 to under $30,000",
                           4.0: "30 to under $40,000", 5.0: "40 to under $50,000", 6.0: "50 to under $75,000",
                           7.0: "75 to under $100,000", 8.0: "100 to under $150,000", 9.0: "$150,000 or more",
                           99.0: "Refused"},
        "F_RACECMB_RECRUITMENT": {1.0: "White", 2.0: "Black or African-American", 3.0: "Asian or Asian-American",
                                  4.0: "Mixed Race", 5.0: "Or some other race", 99.0: "Refused"},
        "F_HISP_RECRUITMENT": {1.0: "Yes", 2.0: "No", 99.0: "Refused"},
    }
    var_labels = {
        "SAFECRIME_W26": "SAFECRIME_W26. How safe, if at all, would you say your local community is from crime?",
        "HEARD_W26": "How much have you heard about the  new city budget proposal?",
        "SHORT_W26": "Favorability of Congress",
        "STATE_W26": "In which state of the United States do you currently live?",
        "ONLY_W26": "Which of the following sources did you use for news last week?",
        "NOLAB_W26": "Minutes taken to complete this survey, rounded",
        "NEVER_W26": "Would you ever consider moving to another country for work?",
    }
    pyreadstat.write_sav(df, str(path), column_labels=var_labels, variable_value_labels=labels,
                         missing_ranges={"SAFECRIME_W26": [{"lo": 98.0, "hi": 99.0}], "ONLY_W26": [99.0]})
    return path


def test_sav_builder_round_trip(tmp_path):
    path = write_sav(tmp_path / "ATP W26.sav")
    df, meta = atp.read_wave(path)
    assert df["SAFECRIME_W26"].tolist()[2] == 99.0  # user-missing kept as its code
    b = atp.build_wave(df, meta, "W26", 26)
    qs = {q["key"]: q for q in b.questions}
    assert list(qs) == ["SAFECRIME_W26", "HEARD_W26"]
    s = qs["SAFECRIME_W26"]
    assert s["question"] == "How safe, if at all, would you say your local community is from crime?"
    # 98 is refusal-type only because the file declares 98-99 user-missing
    assert s["references"] == ["Very safe", "Somewhat safe", "Not too safe", "Not at all safe", "No response given", "Refused"]
    assert s["n_ordinal"] == 4 and s["ordinals"] == [1.0, 2.0, 3.0, 4.0] and s["codes"][-2:] == [98.0, 99.0]
    h = qs["HEARD_W26"]
    assert h["question"] == "How much have you heard about the new city budget proposal?"
    assert h["references"][3:] == ["Not sure", "Refused"] and h["codes"] == [1.0, 2.0, 3.0, 8.0, 99.0]
    assert h["n_ordinal"] == 3 and h["ordinals"] == [1.0, 2.0, 3.0]  # "Not sure" (8) is refusal-type by its label
    assert b.skipped == {"non_item_column": 7, "short_text": 1, "too_many_options": 1, "too_few_substantive": 1,
                         "no_value_labels": 1, "never_asked": 1}
    skipped = {i["key"]: i["reason"] for i in b.skipped_items}
    assert skipped["SHORT_W26"] == "short_text" and skipped["STATE_W26"] == "too_many_options"
    assert b.weight == "WEIGHT_W26" and b.dropped_no_weight == 1  # respondent 6: no weight
    # weighted: Very safe 2.0, Somewhat 1.0, Not too safe 0, Not at all 1.0; Refused 0.5; 4 not asked
    d = s["human"]["Overall"]
    assert close(d.probs, [0.5, 0.25, 0.0, 0.25]) and d.refusal_share == pytest.approx(0.5 / 4.5)
    assert close(s["human"]["CREGION=Northeast"].probs, [2 / 3, 1 / 3, 0, 0])
    assert close(s["human"]["RACE=White"].probs, [1, 0, 0, 0])  # respondent 2 is Hispanic (override)
    assert close(s["human"]["RACE=Hispanic"].probs, [0, 1, 0, 0])
    assert close(s["human"]["INCOME=Less than $30,000"].probs, [2 / 3, 0, 0, 1 / 3])  # <$10k and 20-30k
    assert close(s["human"]["INCOME=$100,000 or more"].probs, [0, 1, 0, 0])
    assert "RELIG" in b.missing_attributes and b.unmapped == {}


def test_sav_options_over_26_letters_skipped(tmp_path):
    df = pd.DataFrame({"COUNTRY_W5": [1.0, 2, 3], "WEIGHT_W5": [1.0, 1, 1]})
    pyreadstat.write_sav(df, str(tmp_path / "w5.sav"),
                         column_labels={"COUNTRY_W5": "Which of these countries have you ever visited for a week?"},
                         variable_value_labels={"COUNTRY_W5": {float(i): f"Country {i}" for i in range(1, 31)}})
    b = atp.build_wave(*atp.read_wave(tmp_path / "w5.sav"), "W5", 5)
    assert b.skipped == {"non_item_column": 1, "options_exceed_letters": 1}


def test_sav_loaders_xl_and_raw(tmp_path):
    folder = tmp_path / "waves"
    folder.mkdir()
    write_sav(folder / "ATP W26.sav")
    xl = get_loader("opinionqa_xl")(folder, field_dates={"W26": {"start": "2017-04-04", "end": "2017-04-18"}},
                                     steer_questions=1)
    items = by_id(xl)
    d = items["oqaxl:W26:SAFECRIME_W26:default"]
    assert d["prompt"] == ("Question: How safe, if at all, would you say your local community is from crime?\n"
                           "A. Very safe\nB. Somewhat safe\nC. Not too safe\nD. Not at all safe\nE. No response given\n"
                           "F. Refused\nAnswer:")
    assert d["field_start"] == "2017-04-04" and d["ordinal_labels"] == ["A", "B", "C", "D"]
    # groups of the attributes present: CREGION 4, GENDER 2, INCOME 2, RACE 4 (+ Overall); the rest reported missing
    assert len(d["human_by_group"]) == 1 + 12
    assert set(xl.report["surveys"]["W26"]["missing_attributes"]) == {"AGE", "EDUCATION", "POLIDEOLOGY", "POLPARTY", "RELIG"}
    assert xl.report["steering"]["steer_questions"] == 1
    assert {i["context"] for i in xl.items} == {"default", "qa", "bio", "portray"}
    steer = [i for i in xl.items if i["context"] == "portray" and i["group"] == "CREGION=West"]
    assert steer and steer[0]["prompt"].startswith("Answer the following question as if you currently lived in the West.\n\n")
    assert not any(i["group"] == "AGE=65+" for i in xl.items)
    assert xl.report["steering"]["group_not_built"] == 32 - 12
    # OpinionQA from raw with the released question set and ordinals
    rel = tmp_path / "released" / "human_resp" / "American_Trends_Panel_W26"
    rel.mkdir(parents=True)
    (rel / "info.csv").write_text(
        INFO_HEADER + "0,0,HEARD_W26,\"{}\",\"How much have you heard?\","
        "\"['A lot', 'A little', 'Nothing at all', 'Not sure', 'Refused']\",\"[1.0, 2.0, 2.5]\"\n", encoding="utf-8")
    raw = get_loader("opinionqa_raw")(folder, released=tmp_path / "released")
    assert [i["key"] for i in raw.items] == ["HEARD_W26"]
    assert raw.items[0]["ordinals"] == [1.0, 2.0, 2.5]
    assert "RELIGATTEND=Never" not in raw.items[0]["human_by_group"]  # no such column in this wave
    assert "RELIGATTEND" in raw.report["surveys"]["W26"]["missing_attributes"]


def test_labels_and_income_ranges():
    assert atp.is_refusal_label("Refused") and atp.is_refusal_label("Don't know/Refused (VOL.)")
    assert atp.is_refusal_label("DK/REF") and atp.is_refusal_label("Not sure")
    assert not atp.is_refusal_label("No, not sure") and not atp.is_refusal_label("Agnostic (not sure if there is a God)")
    assert atp.income_range("Less than $10,000") == (0.0, 10000.0)
    assert atp.income_range("10 to under $20,000") == (10000.0, 20000.0)
    assert atp.income_range("$90,000 to less than $100,000") == (90000.0, 100000.0)
    assert atp.income_range("$150,000 or more")[0] == 150000.0
    assert atp.clean_question("SAFECRIME. How safe is it?", "SAFECRIME_W26") == "How safe is it?"
    assert atp.clean_question("SAFECRIMEX is a word", "SAFECRIME_W26") == "SAFECRIMEX is a word"


def test_field_dates_and_table2():
    dates = atp.field_dates({"W123": {"start": "2023-02-21", "end": "2023-03-05"}, 126: {"start": "2023-05-01", "end": "2023-05-07"},
                             "132": {"start": "2023-08-25", "end": "2023-09-02"}, 140: {"start": "2023-03-01", "end": "2023-08-31"}})
    assert atp.table2_waves(dates) == [126, 140]
    assert atp.waves_fielded_between(dates, rule="start") == [126, 132, 140]
    with pytest.raises(ValueError, match="after end"):
        atp.field_dates({1: {"start": "2023-02-02", "end": "2023-02-01"}})


# ------------------------------------------------------------------------------ GSS

def write_dta(path: Path) -> Path:
    nan = np.nan
    year = [2000.0] * 4 + [2002.0] * 4 + [2004.0] * 3
    cappun = pd.Series([1.0, 2.0, "d", 1.0, 2.0, 2.0, "i", 1.0, 1.0, "n", 2.0], dtype=object)
    df = pd.DataFrame({
        "year": year,
        "id": [float(i) for i in range(1, 12)],
        "cappun": cappun,  # Stata extended missing .d .i .n
        "abany": [0.0, 0, 0, 0, 1, 8, 2, 9, 2, 1, 0],  # 0 iap, 8 dk, 9 na: in range, labelled
        "courts": [1.0, -98, 3, 2, -100, -100, -100, -100, 2, 1, -99],  # Data Explorer negatives
        "childs": [0.0, 8, 9, 2, 0, 1, 8, 8, 2, 9, 0],  # 8 "eight or more" is an answer
        "realinc": [12000.0, 5000, 800, 50000, 1, 2, 3, 4, 5, 6, 7],  # no labels
        "tvhours": [0.0, 1, 5, 7, 9, 3, 4, 2, 6, 12, 98],  # few labels: continuous
        "wtssall": [1.0, 2.0, 1.0, 1.0, 0.5, 0.5, 1.0, 2.0, nan, nan, nan],
    })
    labels = {
        "cappun": {1.0: "favor", 2.0: "oppose", "d": "dk", "i": "iap", "n": "na"},
        "abany": {0.0: "IAP", 1.0: "YES", 2.0: "NO", 8.0: "DON'T KNOW", 9.0: "NO ANSWER"},
        "courts": {-100.0: ".i:  Inapplicable", -99.0: ".n:  No answer", -98.0: ".d:  Do not Know/Cannot Choose",
                   1.0: "too harsh", 2.0: "not harsh enough", 3.0: "about right"},
        "childs": {0.0: "none", 1.0: "one", 2.0: "two", 8.0: "eight or more", 9.0: "dk, na"},
        "tvhours": {0.0: "none", 1.0: "one hour", 98.0: "dk"},
    }
    pyreadstat.write_dta(df, str(path), column_labels={
        "year": "gss year for this respondent", "cappun": "favor or oppose death penalty for murder",
        "abany": "abortion if woman wants for any reason", "courts": "courts dealing with criminals",
        "childs": "number of children", "realinc": "family income in constant $", "tvhours": "hours per day watching tv"},
        variable_value_labels=labels, missing_user_values={"cappun": ["d", "i", "n"]})
    return path


def test_gss_missing_conventions_by_hand(tmp_path):
    res = get_loader("gss")(write_dta(tmp_path / "gss.dta"), min_year_respondents=1)
    items = by_id(res)
    cap = items["gss:cappun:pooled"]
    assert cap["options"] == ["favor", "oppose"] and cap["ordinals"] == [1.0, 2.0]
    assert cap["years"] == [2000, 2002, 2004]
    # 2000: favor 1 + 1, oppose 2 (wtssall); 2002: oppose .5 + .5, favor 2; 2004: no weight -> counts 1 / 1
    assert close(cap["human_by_year"][2000], [0.5, 0.5])
    assert close(cap["human_by_year"][2002], [2 / 3, 1 / 3])
    assert close(cap["human_by_year"][2004], [0.5, 0.5])
    assert close(cap["human_probs"], [5 / 9, 4 / 9])  # pooled: favor 2 + 2 + 1, oppose 2 + 1 + 1
    assert cap["weight_by_year"] == {2000: "wtssall", 2002: "wtssall", 2004: "unweighted"}
    ab = items["gss:abany:pooled"]
    assert ab["options"] == ["YES", "NO"] and ab["years"] == [2002, 2004]  # 2000: all IAP = not asked
    assert close(ab["human_by_year"][2002], [0.5 / 1.5, 1.0 / 1.5])  # yes w .5, no w 1; dk/na dropped
    co = items["gss:courts:pooled"]
    assert co["options"] == ["too harsh", "not harsh enough", "about right"] and co["years"] == [2000, 2004]
    assert close(co["human_by_year"][2000], [1 / 3, 1 / 3, 1 / 3])  # too harsh w 1, (-98 dk), about right 1, not harsh 1
    ch = items["gss:childs:pooled"]
    assert ch["options"] == ["none", "one", "two", "eight or more"] and ch["ordinals"] == [0.0, 1.0, 2.0, 8.0]
    assert res.report["skipped"] == {"no_value_labels": 1, "unlabelled_values": 1}
    assert res.report["weights_by_year"] == {2000: "wtssall", 2002: "wtssall", 2004: "unweighted"}
    assert res.report["weights_absent"] == ["wtssps"]


def test_gss_prompts_and_metric(tmp_path):
    res = get_loader("gss")(write_dta(tmp_path / "gss.dta"), min_year_respondents=1, weights="nonexistent")
    items = by_id(res)
    assert set(res.report["weights_by_year"].values()) == {"unweighted"}
    y = items["gss:cappun:2002"]
    assert y["prompt"] == (gss.YEAR_CONTEXT.format(year=2002) + "\n\nQuestion: favor or oppose death penalty for murder\n"
                           "A. favor\nB. oppose\nAnswer:")
    assert "answering in 2002" in y["prompt"] and y["context"] == "year" and y["year"] == 2002
    assert items["gss:cappun:pooled"]["prompt"] == "Question: favor or oppose death penalty for murder\nA. favor\nB. oppose\nAnswer:"
    assert close(y["human_probs"], [1 / 3, 2 / 3])  # unweighted: favor 1, oppose 2
    df = res.frame()
    yr = df[df.context == "year"].assign(model_probs=lambda d: d.human_probs).rename(columns={"question_id": "question"})
    out = metrics.temporal_steerability(yr[["question", "year", "model_probs", "human_probs", "ordinals"]])
    assert out.value == pytest.approx(1.0)


def test_gss_missing_rule_and_years():
    for label in ("iap", "IAP", "dk", "DON'T KNOW", "NA", "no answer", "REFUSED", "dk, na", "dk,na,iap",
                  ".d:  Do not Know/Cannot Choose", "can't choose", "not available in this year"):
        assert gss.is_missing_label(label), label
    for label in ("none", "eight or more", "yes", "not sure", "about right"):
        assert not gss.is_missing_label(label), label
    assert gss.is_missing_code("d") and gss.is_missing_code(-98.0) and not gss.is_missing_code(8.0, "eight or more")
    assert gss.representative_years(range(2000, 2020)) == [2000, 2002, 2004, 2006, 2008, 2011, 2013, 2015, 2017, 2019]
    assert gss.representative_years([1990, 1972, 1990], 10) == [1972, 1990]
    # per year: the first listed weight with a valid value; rows of that year without one are dropped (NaN)
    frame = pd.DataFrame({"wtssps": [np.nan, np.nan, np.nan], "wtssall": [2.0, np.nan, np.nan]})
    w, by_year, dropped = gss.year_weights(np.array([1990.0, 1990.0, 1991.0]), frame, ["wtssps", "wtssall"])
    assert by_year == {1990: "wtssall", 1991: "unweighted"} and dropped == 1
    assert w[0] == 2.0 and np.isnan(w[1]) and w[2] == 1.0


# ------------------------------------------------------------------------------ demo writers

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_surveys")
    return root, ds.write_demo_surveys(root, seed=3)


def test_demo_opinionqa_round_trip(demo):
    root, summary = demo
    res = get_loader("opinionqa")(root / "opinionqa")
    assert res.report["waves"] == [26, 27]
    assert res.report["questions"] == 2 * ds.N_QUESTIONS - 1
    assert [(q["key"], q["reason"]) for q in res.quarantine] == [(k, r) for k, r in summary["opinionqa"]["malformed"].items()]
    assert res.report["steering"]["groups"] == summary["opinionqa"]["steer_groups"] and len(res.report["steering"]["groups"]) == 22
    assert res.report["steering"]["questions"] == len(summary["opinionqa"]["disagreement_keys"])
    assert res.report["model_input"] == {"matched": 2 * ds.N_QUESTIONS - 1}
    n_steer = len(summary["opinionqa"]["disagreement_keys"]) * 22 * 3
    assert res.report["items_by_context"] == {"default": 39, "qa": n_steer // 3, "bio": n_steer // 3, "portray": n_steer // 3}
    split = summary["opinionqa"]["waves"][26]["form_split_key"]
    item = by_id(res)[f"oqa:W26:{split}:default"]
    assert 100 < item["n_respondents"] < 200  # asked of a random half


def test_demo_atp_and_gss_round_trip(demo):
    root, summary = demo
    dates = json.loads((root / "atp" / "field_dates.json").read_text())
    xl = get_loader("opinionqa_xl")(root / "atp", field_dates=dates, contexts=("default",))
    assert xl.report["waves"] == [123, 126, 132] and xl.report["questions"] == 3 * 14
    for reason in ("no_value_labels", "short_text", "too_many_options", "options_exceed_letters", "too_few_substantive"):
        assert xl.report["skipped"][reason] == 3, reason
    assert all(not s["unmapped"] and not s["missing_attributes"] for s in xl.report["surveys"].values())
    assert xl.report["surveys"]["W132"]["attribute_columns"]["GENDER"] == "F_GENDER"
    t2 = get_loader("opinionqa_xl")(root / "atp", field_dates=dates, table2=True, contexts=("default",))
    assert t2.report["waves"] == summary["atp"]["table2"] == [126]
    g = get_loader("gss")(root / "gss")
    assert g.report["questions"] == 10 and g.report["skipped"] == {"asked_in_fewer_years": 1, "too_few_options": 1}
    items = by_id(g)
    assert items["gss:relig:pooled"]["equal_ordinals"] and items["gss:childs:pooled"]["options"][-1] == "eight or more"
    assert items["gss:gunlaw:pooled"]["years"] == summary["gss"]["items"]["gunlaw"]["years"]
    assert len(items["gss:cappun:pooled"]["years_selected"]) == 10


def _position_mean(probs):
    p = np.asarray(probs, dtype=float)
    return float(np.dot(p, np.arange(len(p))))


def test_demo_lean_shapes_group_opinions(tmp_path):
    lean = {"Northeast": 1.0, "South": -1.0, "Male 18-29": 1.0, "Female 65+": -1.0}
    summary = ds.write_demo_opinionqa(tmp_path, seed=5, lean=lean, n_respondents=600)
    res = get_loader("opinionqa")(tmp_path, contexts=("default",))
    agree_region = agree_cell = total = 0
    for item in res.items:
        direction = summary["waves"][item["wave"]]["questions"][item["key"]]["direction"]
        g = item["human_by_group"]
        total += 1
        agree_region += np.sign(_position_mean(g["CREGION=Northeast"]) - _position_mean(g["CREGION=South"])) == direction
        # AGE 18-29 holds Male 18-29 (+1), 65+ holds Female 65+ (-1): mean lean +0.5 vs -0.5
        young_old = _position_mean(g["AGE=18-29"]) - _position_mean(g["AGE=65+"])
        agree_cell += np.sign(young_old) == direction
    assert total == 39 and agree_region / total >= 0.9 and agree_cell / total >= 0.8
    assert summary["lean"]["Midwest"] == 0.0 and summary["lean"]["Northeast"] == 1.0
    with pytest.raises(ValueError, match="unknown lean"):
        ds.write_demo_opinionqa(tmp_path / "x", lean={"Nowhere": 0.5})
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ds.write_demo_opinionqa(tmp_path / "x", lean={"South": 1.5})


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_writers_are_byte_deterministic(tmp_path, demo):
    root, _ = demo
    ds.write_demo_surveys(tmp_path / "again", seed=3)
    assert _digests(root) == _digests(tmp_path / "again")
    assert (root / "atp" / "ATP W126.sav").read_bytes()[92:109] == ds.FIXED_STAMP["sav"]
    assert ds.FIXED_STAMP["dta"] in (root / "gss" / "gss_demo.dta").read_bytes()
    ds.write_demo_surveys(tmp_path / "other", seed=4)
    other = _digests(tmp_path / "other")
    assert other.keys() == _digests(root).keys() and other != _digests(root)
    assert ds.default_lean(3) == ds.default_lean(3) != ds.default_lean(4)
