"""Pew ATP demographic groups (alpha.eval.loaders.atp): OpinionQA's group rules on hand-written respondents.

Each test writes a few respondents as a DataFrame of codes and a stand-in for pyreadstat's ``meta``
(value labels per column), then reads back which group each respondent was put in."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from alpha.eval.loaders import atp, get_loader

NAN = np.nan
RACECMB = {1.0: "White", 2.0: "Black or African-American", 3.0: "Asian or Asian-American", 4.0: "Mixed Race",
           5.0: "Or some other race", 99.0: "Refused"}
HISP = {1.0: "Yes", 2.0: "No", 99.0: "Refused"}
RACETHNMOD = {1.0: "White non-Hispanic", 2.0: "Black non-Hispanic", 3.0: "Hispanic", 4.0: "Other",
              5.0: "Asian non-Hispanic", 99.0: "Refused"}
INC_SDT1 = {1.0: "Less than $30,000", 2.0: "$30,000 to less than $40,000", 3.0: "$40,000 to less than $50,000",
            4.0: "$50,000 to less than $60,000", 5.0: "$60,000 to less than $70,000",
            6.0: "$70,000 to less than $80,000", 7.0: "$80,000 to less than $90,000",
            8.0: "$90,000 to less than $100,000", 9.0: "$100,000 or more", 99.0: "Refused"}


def meta_of(labels: dict) -> SimpleNamespace:
    return SimpleNamespace(variable_value_labels=labels, column_names_to_labels={}, missing_ranges={},
                           missing_user_values={})


def groups(columns: dict, labels: dict, rules, attribute: str):
    """(each respondent's group of ``attribute`` or None, unmapped, missing, columns used, group keys built)."""
    df = pd.DataFrame({c: np.asarray(v, dtype=np.float64) for c, v in columns.items()})
    masks, unmapped, missing, used = atp.assign_groups(df, meta_of(labels), {attribute: rules[attribute]})
    mine = {k.split("=", 1)[1]: m for k, m in masks.items() if k.startswith(f"{attribute}=")}
    for i in range(len(df)):  # groups of one attribute never overlap
        assert sum(bool(m[i]) for m in mine.values()) <= 1
    who = [next((g for g, m in mine.items() if m[i]), None) for i in range(len(df))]
    return who, unmapped, missing, used, list(mine)


# ------------------------------------------------------------------------------------- race

# (race code, Hispanic code) -> OpinionQA's group; one respondent per row
RACE_CASES = [
    ((1, 1), "White"),        # White + Hispanic stays White
    ((2, 1), "Black"),        # Black + Hispanic stays Black
    ((3, 1), "Asian"),        # Asian + Hispanic stays Asian
    ((4, 1), "Hispanic"),     # Mixed + Hispanic
    ((5, 1), "Hispanic"),     # some other race + Hispanic
    ((99, 1), "Hispanic"),    # refused race + Hispanic
    ((NAN, 1), "Hispanic"),   # no race answer + Hispanic
    ((4, 2), "Mixed Race"),   # Mixed, not Hispanic
    ((5, 2), "Other"),        # some other race, not Hispanic
    ((1, 2), "White"),
    ((2, 99), "Black"),       # Hispanic flag refused: race stands
    ((4, 99), "Mixed Race"),
    ((99, 2), None),          # refused race, not Hispanic: no group
    ((99, 99), None),
]


def race_columns(cases):
    return {"F_RACECMB_RECRUITMENT": [c[0][0] for c in cases], "F_HISP_RECRUITMENT": [c[0][1] for c in cases]}


def test_oqa_race_keeps_white_black_asian_and_splits_mixed_from_other():
    who, unmapped, missing, used, built = groups(
        race_columns(RACE_CASES), {"F_RACECMB_RECRUITMENT": RACECMB, "F_HISP_RECRUITMENT": HISP},
        atp.OQA_ATTRIBUTES, "RACE")
    assert who == [g for _, g in RACE_CASES]
    assert built == ["White", "Black", "Asian", "Hispanic", "Other", "Mixed Race"]
    assert unmapped == {} and missing == [] and used == {"RACE": "F_RACECMB_RECRUITMENT"}


def test_oqa_race_later_wave_spellings_and_columns():
    labels = {"F_RACECMB": {1.0: "White", 2.0: "Black", 3.0: "Asian", 4.0: "Multiracial", 5.0: "Some other race",
                            99.0: "Refused"},
              "F_HISP": {1.0: "Yes, Hispanic", 2.0: "No", 99.0: "Refused"}}
    who, unmapped, _, used, _ = groups({"F_RACECMB": [1, 4, 4, 5, 3], "F_HISP": [1, 1, 2, 2, 1]}, labels,
                                       atp.OQA_ATTRIBUTES, "RACE")
    assert who == ["White", "Hispanic", "Mixed Race", "Other", "Asian"]
    assert unmapped == {} and used == {"RACE": "F_RACECMB"}


def test_xl_race_keeps_hispanic_of_any_race():
    who, unmapped, _, _, built = groups(
        race_columns(RACE_CASES), {"F_RACECMB_RECRUITMENT": RACECMB, "F_HISP_RECRUITMENT": HISP},
        atp.XL_ATTRIBUTES, "RACE")
    # every Hispanic respondent is Hispanic; otherwise White/Black/Asian, and mixed/other race is no group
    expected = [("Hispanic" if h == 1 else {1: "White", 2: "Black", 3: "Asian"}.get(r)) for (r, h), _ in RACE_CASES]
    assert who == expected
    assert built == ["White", "Black", "Asian", "Hispanic"] and unmapped == {}


def test_combined_race_ethnicity_wave():
    codes = [1, 2, 3, 4, 5, 99]
    who, unmapped, _, used, built = groups({"F_RACETHNMOD": codes}, {"F_RACETHNMOD": RACETHNMOD},
                                           atp.OQA_ATTRIBUTES, "RACE")
    assert who == ["White", "Black", "Hispanic", None, "Asian", None]
    assert built == ["White", "Black", "Asian", "Hispanic"]  # no Mixed Race / Other from this variable
    assert unmapped == {} and used == {"RACE": "F_RACETHNMOD"}
    note = atp.attribute_notes(atp.OQA_ATTRIBUTES, used)["RACE"]
    assert note.startswith("F_RACETHNMOD: ") and "not recoverable" in note and "Mixed Race" in note
    # XL: the same four groups (Hispanic of any race is what the variable holds)
    who, unmapped, _, _, built = groups({"F_RACETHNMOD": codes}, {"F_RACETHNMOD": RACETHNMOD}, atp.XL_ATTRIBUTES, "RACE")
    assert who == ["White", "Black", "Hispanic", None, "Asian", None] and unmapped == {}
    # a wave holding both: the race + Hispanic columns win
    both = {"F_RACECMB": [1.0], "F_HISP": [1.0], "F_RACETHNMOD": [3.0]}
    who, *_ = groups(both, {"F_RACECMB": RACECMB, "F_HISP": HISP, "F_RACETHNMOD": RACETHNMOD}, atp.OQA_ATTRIBUTES, "RACE")
    assert who == ["White"]


def test_override_keep_from_config():
    rules = atp.attribute_rules({"RACE": {
        "columns": ["RACE_X"], "groups": {"White": "white", "Other": ["other"]},
        "override": {"columns": ["HISP_X"], "patterns": ["yes"], "group": "Hispanic", "keep": ["White"]},
        "by_column": {"RACETHN_X": {"groups": {"White": "white non-hispanic", "Hispanic": "hispanic"},
                                    "override": None, "note": "combined"}}}}, base={})
    labels = {"RACE_X": {1.0: "White", 2.0: "Other"}, "HISP_X": {1.0: "Yes", 2.0: "No"},
              "RACETHN_X": {1.0: "White non-Hispanic", 2.0: "Hispanic"}}
    who, *_ = groups({"RACE_X": [1, 2, 2], "HISP_X": [1, 1, 2]}, labels, rules, "RACE")
    assert who == ["White", "Hispanic", "Other"]
    assert rules["RACE"].keep == ("White",) and rules["RACE"].by_column["RACETHN_X"].keep == ()
    rules = atp.attribute_rules(None, base=rules, column_map={"RACE": ["RACETHN_X"]})
    who, _, _, used, _ = groups({"RACETHN_X": [1, 2]}, labels, rules, "RACE")
    assert who == ["White", "Hispanic"] and used == {"RACE": "RACETHN_X"}
    assert atp.attribute_notes(rules, used) == {"RACE": "RACETHN_X: combined"}


# ------------------------------------------------------------------------------------- income

def test_straddling_income_bracket_counts_in_the_band_of_its_midpoint():
    codes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 99]
    who, unmapped, _, used, _ = groups({"F_INC_SDT1": codes}, {"F_INC_SDT1": INC_SDT1}, atp.OQA_ATTRIBUTES, "INCOME")
    assert who == ["Less than $30,000", "$30,000-$50,000", "$30,000-$50,000", "$50,000-$75,000", "$50,000-$75,000",
                   "$75,000-$100,000", "$75,000-$100,000", "$75,000-$100,000", "$100,000 or more", None]
    assert unmapped == {} and used == {"INCOME": "F_INC_SDT1"}
    # XL's two outer bands: the middle brackets belong to no group and are not unmapped
    who, unmapped, *_ = groups({"F_INC_SDT1": codes}, {"F_INC_SDT1": INC_SDT1}, atp.XL_ATTRIBUTES, "INCOME")
    assert who == ["Less than $30,000"] + [None] * 7 + ["$100,000 or more", None] and unmapped == {}


def test_bracket_tables_are_the_midpoint_rule():
    assert atp.bracket_band("$70,000 to less than $80,000", atp._INCOME5) == "$75,000-$100,000"
    assert atp.bracket_band("$60,000 to less than $70,000", atp._INCOME5) == "$50,000-$75,000"
    assert atp.bracket_band("$150,000 or more", atp._INCOME5) == "$100,000 or more"
    assert atp.bracket_band("Less than $10,000", atp._INCOME5) == "Less than $30,000"
    assert atp.bracket_band("Refused", atp._INCOME5) is None
    for variable, table in atp.INCOME_BRACKETS.items():
        for bracket, band in table.items():
            assert atp.bracket_band(bracket, atp._INCOME5) == band, (variable, bracket)
    # the OpinionQA rule reads every variable with a table through it
    assert set(atp.INCOME_BRACKETS) == set(atp.OQA_ATTRIBUTES["INCOME"].by_column)
    assert set(atp.INCOME_BRACKETS) <= set(atp.OQA_ATTRIBUTES["INCOME"].columns)


def test_straddling_bracket_without_a_table_is_reported():
    labels = {"F_INCOME": {1.0: "Less than $30,000", 2.0: "$70,000 to less than $80,000", 3.0: "$65,000 to $85,000"}}
    rules = atp.attribute_rules({"INCOME": {"columns": ["F_INCOME"], "bands": atp._INCOME5}}, base={})
    who, unmapped, *_ = groups({"F_INCOME": [1, 2, 2, 3]}, labels, rules, "INCOME")
    assert who == ["Less than $30,000", None, None, None]
    assert unmapped == {"INCOME": [
        "$65,000 to $85,000 (1 respondent; straddles an income band edge: no bracket table entry)",
        "$70,000 to less than $80,000 (2 respondents; straddles an income band edge: no bracket table entry)"]}
    # a bracket table from config places them
    rules = atp.attribute_rules({"INCOME": {"columns": ["F_INCOME"], "bands": atp._INCOME5, "brackets": {
        "$70,000 to less than $80,000": "$75,000-$100,000", "$65,000 to $85,000": "$75,000-$100,000"}}}, base={})
    who, unmapped, *_ = groups({"F_INCOME": [1, 2, 2, 3]}, labels, rules, "INCOME")
    assert who == ["Less than $30,000"] + ["$75,000-$100,000"] * 3 and unmapped == {}


def test_older_income_variable_brackets():
    labels = {"F_INCOME_FINAL": {1.0: "Less than $10,000", 2.0: "10 to under $20,000", 3.0: "20 to under $30,000",
                                 4.0: "30 to under $40,000", 5.0: "40 to under $50,000", 6.0: "50 to under $75,000",
                                 7.0: "75 to under $100,000", 8.0: "100 to under $150,000", 9.0: "$150,000 or more",
                                 99.0: "Refused"}}
    who, unmapped, *_ = groups({"F_INCOME_FINAL": [1, 3, 4, 5, 6, 7, 8, 9, 99]}, labels, atp.OQA_ATTRIBUTES, "INCOME")
    assert who == ["Less than $30,000", "Less than $30,000", "$30,000-$50,000", "$30,000-$50,000", "$50,000-$75,000",
                   "$75,000-$100,000", "$100,000 or more", "$100,000 or more", None]
    assert unmapped == {}


def test_wave_without_income_variable_reports_it():
    df = pd.DataFrame({"F_CREGION": [1.0, 2.0], "WEIGHT_W54": [1.0, 1.0]})
    masks, unmapped, missing, used = atp.assign_groups(df, meta_of({"F_CREGION": {1.0: "Northeast", 2.0: "South"}}),
                                                       atp.OQA_ATTRIBUTES)
    assert "INCOME" in missing and "CREGION" not in missing and not any(k.startswith("INCOME=") for k in masks)
    b = atp.build_wave(df, meta_of({"F_CREGION": {1.0: "Northeast", 2.0: "South"}}), "W54", 54, atp.OQA_ATTRIBUTES)
    assert "INCOME" in b.missing_attributes and b.groups["CREGION=Northeast"] == 1


# ------------------------------------------------------------------------------------- spellings

@pytest.mark.parametrize("column, labels, codes, expected", [
    ("F_CITIZEN_RECODE_RECRUITMENT", {1.0: "Yes", 2.0: "No", 99.0: "Refused"}, [1, 2, 99], ["Yes", "No", None]),
    ("F_CITIZEN", {1.0: "US Citizen", 2.0: "Not US Citizen", 99.0: "Refused"}, [1, 2, 99], ["Yes", "No", None]),
    ("F_CITIZEN_FINAL", {1.0: "Yes, a U.S. citizen", 2.0: "No, not a U.S. citizen"}, [1, 2], ["Yes", "No"]),
    ("F_CITIZEN_RECODE", {1.0: "U.S. citizen", 2.0: "Non-citizen"}, [2, 1], ["No", "Yes"]),
])
def test_citizenship_spellings(column, labels, codes, expected):
    who, unmapped, _, used, _ = groups({column: codes}, {column: labels}, atp.OQA_ATTRIBUTES, "CITIZEN")
    assert who == expected and unmapped == {} and used == {"CITIZEN": column}


def test_party_something_else_is_other():
    labels = {"F_PARTY_FINAL": {1.0: "Republican", 2.0: "Democrat", 3.0: "Independent", 4.0: "Something else",
                                5.0: "Something else, specify:", 99.0: "Refused"}}
    codes = [1, 2, 3, 4, 5, 99]
    who, unmapped, *_ = groups({"F_PARTY_FINAL": codes}, labels, atp.OQA_ATTRIBUTES, "POLPARTY")
    assert who == ["Republican", "Democrat", "Independent", "Other", "Other", None] and unmapped == {}
    who, unmapped, *_ = groups({"F_PARTY_FINAL": codes}, labels, atp.XL_ATTRIBUTES, "POLPARTY")
    assert who == ["Republican", "Democrat", None, None, None, None] and unmapped == {}


def test_sex_from_f_gender():
    labels = {"F_GENDER": {1.0: "A man", 2.0: "A woman", 3.0: "In some other way", 99.0: "Refused"}}
    who, unmapped, _, used, _ = groups({"F_GENDER": [1, 2, 3, 99, 2]}, labels, atp.OQA_ATTRIBUTES, "SEX")
    assert who == ["Male", "Female", None, None, "Female"] and unmapped == {} and used == {"SEX": "F_GENDER"}
    who, *_ = groups({"F_SEX": [2, 1]}, {"F_SEX": {1.0: "Male", 2.0: "Female"}}, atp.OQA_ATTRIBUTES, "SEX")
    assert who == ["Female", "Male"]
    who, _, _, used, _ = groups({"F_GENDER": [1, 2]}, labels, atp.XL_ATTRIBUTES, "GENDER")
    assert who == ["Male", "Female"] and used == {"GENDER": "F_GENDER"}


# ------------------------------------------------------------------------------------- reporting

def test_unmapped_labels_reported_with_counts():
    labels = {"F_RACECMB": {**RACECMB, 7.0: "Martian"}, "F_HISP": HISP}
    who, unmapped, *_ = groups({"F_RACECMB": [1, 7, 7, 8, 8, 8, NAN], "F_HISP": [2, 2, 1, 2, 2, 2, 2]}, labels,
                               atp.OQA_ATTRIBUTES, "RACE")
    assert who == ["White", None, "Hispanic", None, None, None, None]  # a Hispanic of unmapped race is Hispanic
    assert unmapped == {"RACE": ["(codes without a value label: 8; 3 respondents)", "Martian (2 respondents)"]}
    # a label nobody holds is not reported; the Hispanic column absent is
    _, unmapped, *_ = groups({"F_RACECMB": [1.0]}, labels, atp.OQA_ATTRIBUTES, "RACE")
    assert unmapped == {"RACE": ["(override column F_HISP_RECRUITMENT/F_HISP absent: no 'Hispanic' group)"]}


def test_loader_reports_groups_per_wave(tmp_path):
    """Two waves through ``opinionqa_raw``: W54 with the race + Hispanic columns, an unmapped party label
    and no income variable; W92 with only a combined race-ethnicity variable and F_INC_SDT1."""
    folder = tmp_path / "waves"
    folder.mkdir()
    question = {"SATIS_W": "All in all, are you satisfied or dissatisfied with the way things are going?"}
    answers = {1.0: "Satisfied", 2.0: "Dissatisfied", 99.0: "Refused"}
    w54 = pd.DataFrame({"SATIS_W54": [1.0, 2, 1, 2, 1, 1], "F_RACECMB": [1.0, 1, 4, 4, 5, 2],
                        "F_HISP": [1.0, 2, 1, 2, 2, 1], "F_PARTY_FINAL": [1.0, 2, 5, 5, 4, 3],
                        "WEIGHT_W54": [1.0] * 6})
    pyreadstat.write_sav(w54, str(folder / "ATP W54.sav"), column_labels={"SATIS_W54": question["SATIS_W"]},
                         variable_value_labels={"SATIS_W54": answers, "F_RACECMB": RACECMB, "F_HISP": HISP,
                                                "F_PARTY_FINAL": {1.0: "Republican", 2.0: "Democrat", 3.0: "Independent",
                                                                  4.0: "Something else", 5.0: "No preference"}})
    w92 = pd.DataFrame({"SATIS_W92": [1.0, 2, 1, 2], "F_RACETHNMOD": [1.0, 3, 4, 5], "F_INC_SDT1": [6.0, 6, 2, 9],
                        "WEIGHT_W92": [1.0] * 4})
    pyreadstat.write_sav(w92, str(folder / "ATP W92.sav"), column_labels={"SATIS_W92": question["SATIS_W"]},
                         variable_value_labels={"SATIS_W92": answers, "F_RACETHNMOD": RACETHNMOD, "F_INC_SDT1": INC_SDT1})
    res = get_loader("opinionqa_raw")(folder)
    rep = res.report
    assert rep["unmapped"] == {"W54": {"POLPARTY": ["No preference (2 respondents)"]}}
    assert "INCOME" in rep["missing_attributes"]["W54"] and "INCOME" not in rep["missing_attributes"]["W92"]
    assert rep["surveys"]["W54"]["attribute_notes"] == {}
    assert set(rep["surveys"]["W92"]["attribute_notes"]) == {"RACE"}
    assert "not recoverable" in rep["surveys"]["W92"]["attribute_notes"]["RACE"]
    items = {i["survey"]: i for i in res.items}
    n54, n92 = items["W54"]["n_by_group"], items["W92"]["n_by_group"]
    assert (n54["RACE=White"], n54["RACE=Hispanic"], n54["RACE=Mixed Race"], n54["RACE=Other"], n54["RACE=Black"]) == (2, 1, 1, 1, 1)
    assert n54["POLPARTY=Other"] == 1 and not any(g.startswith("INCOME=") for g in n54)
    assert (n92["RACE=White"], n92["RACE=Hispanic"], n92["RACE=Asian"]) == (1, 1, 1)
    assert "RACE=Mixed Race" not in n92 and "RACE=Other" not in n92
    assert n92["INCOME=$75,000-$100,000"] == 2 and n92["INCOME=$30,000-$50,000"] == 1
