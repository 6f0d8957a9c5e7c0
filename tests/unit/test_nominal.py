"""The shared nominal-vs-ordinal rule (alpha.eval.loaders.nominal) in every survey loader: GSS .dta, raw ATP
.sav (OpinionQA-XL, OpinionQA-from-raw) and the released OpinionQA files. Fixtures are written here by
hand; a nominal question has all-equal ordinals, which the W1 metrics exclude and count."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from alpha.eval import metrics, prepare, task_spec
from alpha.eval.loaders import atp, get_loader
from alpha.eval.loaders.nominal import NominalRule, label_kind, labels_look_nominal

LABOUR = ["Working full time", "Working part time", "Temporarily not working", "Unemployed, laid off", "Retired",
          "In school", "Keeping house", "Other"]  # the GSS spwrksta labels
AGREE = ["Strongly agree", "Agree", "Neither agree nor disagree", "Disagree", "Strongly disagree"]


# ------------------------------------------------------------------------------ the label heuristic

@pytest.mark.parametrize("labels", [
    LABOUR,
    ["Yes, born in US", "No, born outside US", "Born in a US territory"],
    ["Yes, born in US", "No"],  # a yes/no naming a category
    ["protestant", "catholic", "jewish", "none", "other"],  # "none" is one scale word among categories
    ["new england", "middle atlantic", "e. nor. central", "south atlantic", "mountain", "pacific"],
    ["married", "widowed", "divorced", "separated", "never married"],
    ["Republican", "Democrat", "Independent", "Something else"],
    ["White", "Black or African-American", "Asian or Asian-American", "Mixed Race", "Or some other race"],
    ["For protection", "For hunting", "For sport shooting"],  # no scale word at all
    ["male", "female"],
])
def test_categorical_labels_are_nominal(labels):
    assert labels_look_nominal(labels), label_kind(labels)


@pytest.mark.parametrize("labels", [
    AGREE,
    ["Very safe", "Somewhat safe", "Not too safe", "Not at all safe"],
    ["A lot", "A little", "Nothing at all"],
    ["Often", "Sometimes", "Rarely", "Never"],
    ["none", "one", "two", "eight or more"],
    ["Less than $30,000", "$30,000-$50,000", "$100,000 or more"],
    ["Yes", "No"],
    ["Yes, I have", "No, I have not"],
    ["favor", "oppose"],
    ["Approve", "Disapprove"],
    ["Get better", "Get worse", "Stay about the same"],
    ["too harsh", "not harsh enough", "about right"],
    ["allowed", "not allowed"],  # graded variants of one word
    ["extremely liberal", "liberal", "slightly liberal", "moderate, middle of the road", "slightly conservative",
     "conservative", "extremely conservative"],
    ["strong democrat", "not very strong democrat", "independent, close to democrat", "independent",
     "independent, close to republican", "not very strong republican", "strong republican", "other party"],
])
def test_scale_labels_are_ordinal(labels):
    assert not labels_look_nominal(labels), label_kind(labels)


def test_rule_order_and_override_matching():
    rule = NominalRule(nominal=["agreeq"], ordinal=["LABOUR"], released={"OQ_W26": [1.0, 1.0]})
    assert rule.decide("LABOUR_W26", LABOUR) == (False, "config_ordinal")  # no suffix: every wave
    assert rule.decide("AgreeQ", AGREE) == (True, "config_nominal")  # case-blind
    assert rule.decide("OQ_W26", ["Yes", "No"]) == (True, "opinionqa")  # OpinionQA's marking beats the labels
    assert rule.decide("relig", ["a great deal", "some"]) == (True, "name_list")  # the name list beats the labels
    assert rule.decide("x", AGREE) == (False, "labels") and rule.decide("y", LABOUR) == (True, "labels")
    # an entry with a wave suffix matches that wave only
    assert NominalRule(nominal=["Q_W26"]).decide("Q_W27", AGREE) == (False, "labels")
    report = rule.report()
    assert report["nominal_questions"] == {"AgreeQ": "config_nominal", "OQ_W26": "opinionqa", "relig": "name_list",
                                           "y": "labels"}
    assert report["forced_ordinal"] == ["LABOUR_W26"] and report["labels_disagree_with_opinionqa"] == ["OQ_W26"]
    assert report["unused_overrides"] == {"nominal": [], "ordinal": []}
    with pytest.raises(ValueError, match="both lists"):
        NominalRule(nominal=["q1"], ordinal=["Q1"])
    # ordinals: nominal -> all equal; ordinal with all-equal released ordinals -> the codes given
    assert NominalRule().apply("y", LABOUR[:3], [1.0, 2.0, 5.0], [1.0, 2.0, 5.0]) == [1.0, 1.0, 1.0]
    forced = NominalRule(ordinal=["q"])
    assert forced.apply("q", AGREE[:3], [2.0, 2.0, 2.0], [1.0, 2.0, 3.0], released=[2.0, 2.0, 2.0]) == [1.0, 2.0, 3.0]


# ------------------------------------------------------------------------------ GSS

def write_gss(path: Path) -> Path:
    n = 12
    year = [2000.0] * 6 + [2002.0] * 6
    codes = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] * 2
    df = pd.DataFrame({"year": year, "lfstatus": codes, "spwrksta": codes, "agreeq": [c % 5 + 1 for c in codes],
                       "agreeq2": [c % 5 + 1 for c in codes], "born": [c % 2 + 1 for c in codes]})
    labour = {float(i + 1): lab.lower() for i, lab in enumerate(LABOUR[:6])}
    agree = {float(i + 1): lab.lower() for i, lab in enumerate(AGREE)}
    labels = {"lfstatus": labour, "spwrksta": labour, "agreeq": agree, "agreeq2": agree,
              "born": {1.0: "yes", 2.0: "no"}}
    var_labels = {"year": "gss year", "lfstatus": "labor force status of a household member",
                  "spwrksta": "spouse labor force status", "agreeq": "government should reduce income differences",
                  "agreeq2": "people should help the less fortunate", "born": "was r born in this country"}
    pyreadstat.write_dta(df.iloc[:n], str(path), column_labels=var_labels, variable_value_labels=labels)
    return path


def test_gss_nominal_rule_overrides_and_report(tmp_path):
    dta = write_gss(tmp_path / "gss.dta")
    res = get_loader("gss")(dta, min_year_respondents=1, weights="none")
    items = {i["item_id"]: i for i in res.items}
    # spwrksta: the name list; lfstatus: the same labour-force labels, not in the name list -> the labels
    assert items["gss:spwrksta:pooled"]["ordinals"] == [1.0] * 6 and items["gss:spwrksta:pooled"]["equal_ordinals"]
    assert items["gss:lfstatus:pooled"]["ordinals"] == [1.0] * 6
    assert items["gss:agreeq:pooled"]["ordinals"] == [1.0, 2.0, 3.0, 4.0, 5.0]  # an agree scale: its codes
    # born: "yes" / "no" would be a scale by its labels, but the name list says categorical
    assert items["gss:born:2000"]["ordinals"] == [1.0, 1.0]
    nom = res.report["nominal"]
    assert nom["nominal_questions"] == {"born": "name_list", "lfstatus": "labels", "spwrksta": "name_list"}
    assert nom["questions"] == 5 and nom["nominal"] == 3
    assert nom["nominal_by_reason"] == {"labels": 1, "name_list": 2}
    # the metric leaves the nominal questions out and counts them
    frame = res.frame()
    default = frame[frame.context == "default"].assign(model_probs=lambda d: d.human_probs)
    out = metrics.representativeness(default.rename(columns={"question_id": "question"})[
        ["question", "model_probs", "human_probs", "ordinals"]])
    assert out.excluded == {"equal_ordinals": 3} and out.n_items == 2 and out.value == pytest.approx(1.0)
    # overrides, each way; an entry matching no variable is reported
    res = get_loader("gss")(dta, min_year_respondents=1, weights="none", nominal=["AGREEQ2", "nosuchvar"],
                            ordinal=["lfstatus", "spwrksta"])
    items = {i["item_id"]: i for i in res.items}
    assert items["gss:agreeq2:pooled"]["ordinals"] == [1.0] * 5 and items["gss:agreeq:pooled"]["ordinals"][-1] == 5.0
    assert items["gss:lfstatus:pooled"]["ordinals"] == items["gss:spwrksta:pooled"]["ordinals"] == [1.0, 2.0, 3.0, 4.0,
                                                                                                     5.0, 6.0]
    nom = res.report["nominal"]
    assert nom["nominal_questions"] == {"agreeq2": "config_nominal", "born": "name_list"}
    assert nom["forced_ordinal"] == ["lfstatus", "spwrksta"]
    assert nom["unused_overrides"] == {"nominal": ["nosuchvar"], "ordinal": []}


# ------------------------------------------------------------------------------ raw ATP waves

def write_wave(path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({
        "QKEY": np.arange(1.0, n + 1),
        # OpinionQA marks it nominal although its labels form an agree scale
        "QNOM_W26": rng.integers(1, 4, size=n).astype(float),
        # OpinionQA marks it ordinal although its labels are categories
        "QORD_W26": rng.integers(1, 4, size=n).astype(float),
        # not in OpinionQA: the labels decide
        "QCAT_W26": rng.integers(1, 4, size=n).astype(float),
        "QSCALE_W26": rng.integers(1, 4, size=n).astype(float),
        "WEIGHT_W26": np.ones(n),
    })
    df.loc[0, ["QNOM_W26", "QORD_W26", "QCAT_W26", "QSCALE_W26"]] = 99.0
    labels = {
        "QNOM_W26": {1.0: "Agree", 2.0: "Neither agree nor disagree", 3.0: "Disagree", 99.0: "Refused"},
        "QORD_W26": {1.0: "Working full time", 2.0: "Working part time", 3.0: "Retired", 99.0: "Refused"},
        "QCAT_W26": {1.0: "Working full time", 2.0: "Unemployed", 3.0: "Retired", 99.0: "Refused"},
        "QSCALE_W26": {1.0: "Very likely", 2.0: "Somewhat likely", 3.0: "Not at all likely", 99.0: "Refused"},
    }
    var_labels = {
        "QNOM_W26": "Do you agree or disagree that the economy is getting stronger?",
        "QORD_W26": "Which of these best describes your current work situation today?",
        "QCAT_W26": "Which of these best describes your spouse's work situation today?",
        "QSCALE_W26": "How likely is it that you will move to another state soon?",
    }
    pyreadstat.write_sav(df, str(path), column_labels=var_labels, variable_value_labels=labels,
                         missing_ranges={k: [99.0] for k in labels})
    return path


def write_released(root: Path) -> Path:
    wave = root / "human_resp" / "American_Trends_Panel_W26"
    wave.mkdir(parents=True)
    (wave / "info.csv").write_text(
        ",key,option_mapping,question,references,option_ordinal\n"
        "0,QNOM_W26,{},Do you agree or disagree?,\"['Agree', 'Neither agree nor disagree', 'Disagree', 'Refused']\","
        "\"[1.0, 1.0, 1.0]\"\n"
        "1,QORD_W26,{},Which best describes your work?,\"['Working full time', 'Working part time', 'Retired', "
        "'Refused']\",\"[1.0, 2.0, 3.0]\"\n", encoding="utf-8")
    (wave / "metadata.csv").write_text(",key,options\n", encoding="utf-8")
    (wave / "responses.csv").write_text(
        "QKEY,QNOM_W26,QORD_W26,WEIGHT_W26\n1,Agree,Retired,1.0\n2,Disagree,Working full time,1.0\n", encoding="utf-8")
    return root


def test_raw_waves_follow_opinionqa_marking_where_it_has_the_question(tmp_path):
    waves = tmp_path / "waves"
    waves.mkdir()
    write_wave(waves / "ATP W26.sav")
    released = write_released(tmp_path / "released")
    raw = get_loader("opinionqa_raw")(waves, released=released)
    items = {i["key"]: i for i in raw.items}
    assert set(items) == {"QNOM_W26", "QORD_W26"}
    assert items["QNOM_W26"]["ordinals"] == [1.0, 1.0, 1.0] and items["QNOM_W26"]["equal_ordinals"]
    assert items["QORD_W26"]["ordinals"] == [1.0, 2.0, 3.0] and not items["QORD_W26"]["equal_ordinals"]
    nom = raw.report["nominal"]
    assert nom["nominal_questions"] == {"W26:QNOM_W26": "opinionqa"}
    assert nom["labels_disagree_with_opinionqa"] == ["W26:QNOM_W26", "W26:QORD_W26"]  # the labels alone would not agree

    # OpinionQA-XL: the marking from the released folder where it has the question, the labels elsewhere
    xl = get_loader("opinionqa_xl")(waves, contexts=("default",), opinionqa_marking=released)
    items = {i["key"]: i for i in xl.items}
    assert items["QNOM_W26"]["equal_ordinals"]
    assert items["QORD_W26"]["ordinals"] == [1.0, 2.0, 3.0]  # OpinionQA: ordinal (the codes are kept)
    assert items["QCAT_W26"]["ordinals"] == [1.0, 1.0, 1.0]  # categories
    assert items["QSCALE_W26"]["ordinals"] == [1.0, 2.0, 3.0]  # very / somewhat / not at all likely
    assert xl.report["nominal"]["nominal_questions"] == {"W26:QNOM_W26": "opinionqa", "W26:QCAT_W26": "labels"}

    # without the released folder the labels decide everything; the overrides win over both
    plain = get_loader("opinionqa_xl")(waves, contexts=("default",))
    assert plain.report["nominal"]["nominal_questions"] == {"W26:QORD_W26": "labels", "W26:QCAT_W26": "labels"}
    forced = get_loader("opinionqa_xl")(waves, contexts=("default",), opinionqa_marking=released,
                                        nominal=["QSCALE"], ordinal=["QNOM_W26", "QCAT"])
    items = {i["key"]: i for i in forced.items}
    assert items["QNOM_W26"]["ordinals"] == [1.0, 2.0, 3.0]  # forced ordinal: the codes, not OpinionQA's equal ones
    assert items["QCAT_W26"]["ordinals"] == [1.0, 2.0, 3.0] and items["QSCALE_W26"]["equal_ordinals"]
    assert forced.report["nominal"]["nominal_questions"] == {"W26:QSCALE_W26": "config_nominal"}
    assert forced.report["nominal"]["forced_ordinal"] == ["W26:QNOM_W26", "W26:QCAT_W26"]

    # build_wave on its own applies the rule too (the correlation step's path)
    b = atp.build_wave(*atp.read_wave(waves / "ATP W26.sav"), "W26", 26, short_words=0)
    assert {q["key"]: q["ordinals"] for q in b.questions}["QCAT_W26"] == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------ released OpinionQA

def test_released_opinionqa_marking_stands_unless_overridden(tmp_path):
    released = write_released(tmp_path / "oqa")
    res = get_loader("opinionqa")(released, contexts=("default",))
    items = {i["key"]: i for i in res.items}
    assert items["QNOM_W26"]["equal_ordinals"] and items["QORD_W26"]["ordinals"] == [1.0, 2.0, 3.0]
    assert res.report["nominal"]["nominal_questions"] == {"W26:QNOM_W26": "opinionqa"}
    assert res.report["equal_ordinals"] == 1
    res = get_loader("opinionqa")(released, contexts=("default",), ordinal=["QNOM_W26"], nominal=["QORD"])
    items = {i["key"]: i for i in res.items}
    assert items["QNOM_W26"]["ordinals"] == [1.0, 2.0, 3.0]  # forced ordinal: option positions
    assert items["QORD_W26"]["ordinals"] == [1.0, 1.0, 1.0] and res.report["equal_ordinals"] == 1
    assert res.report["nominal"]["nominal_questions"] == {"W26:QORD_W26": "config_nominal"}


def test_config_options_reach_the_survey_loaders_only():
    for task in ("gss", "opinionqa_xl", "opinionqa_raw"):
        options = prepare.loader_options(task_spec.load_task(task), {"nominal": ["a"], "ordinal": ["b"]}, "reference")
        assert options["nominal"] == ["a"] and options["ordinal"] == ["b"]
    assert prepare.loader_options(task_spec.load_task("opinionqa"), {"nominal": ["a"]}, "reference")["nominal"] == ["a"]
    with pytest.raises(TypeError, match="takes no option"):
        prepare.loader_options(task_spec.load_task("culturenli"), {"nominal": ["a"]}, None)


def test_demo_surveys_nominal_questions(tmp_path):
    # the demo's categorical questions: GSS relig / region / sex; the ATP gun-reason lists (kind "reason4",
    # which the demo's OpinionQA files mark with equal ordinals); everything else is a recognised scale
    from alpha.demo import surveys as ds

    atp_summary = ds.write_demo_atp(tmp_path / "atp", seed=3)
    xl = get_loader("opinionqa_xl")(tmp_path / "atp", contexts=("default",))
    expected = {f"W{w}:{k}" for w, wave in atp_summary["waves"].items() for k, q in wave["questions"].items()
                if q["kind"] == "reason4"}
    assert expected and set(xl.report["nominal"]["nominal_questions"]) == expected
    gss_summary = ds.write_demo_gss(tmp_path / "gss", seed=3)
    g = get_loader("gss")(tmp_path / "gss")
    assert sorted(g.report["nominal"]["nominal_questions"]) == sorted(gss_summary["nominal"])
    o = get_loader("opinionqa")(ds.write_demo_opinionqa(tmp_path / "oqa", seed=3)["root"], contexts=("default",))
    assert o.report["nominal"]["labels_disagree_with_opinionqa"] == []  # the labels alone agree with the marking
    assert o.report["nominal"]["nominal"] == o.report["equal_ordinals"] > 0
