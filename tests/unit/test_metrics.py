"""Benchmark metrics against numbers worked out by hand (in the comments), one edge case per test."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from alpha.eval import distributions, metrics

NAN = float("nan")


# --------------------------------------------------------------------------- registry

def test_unknown_metric_name_suggests_and_lists_known():
    with pytest.raises(KeyError) as err:
        metrics.get_metric("representativenes")
    msg = str(err.value)
    assert "Did you mean 'representativeness'?" in msg
    for name in ("steerability", "goqa_avg_sim", "culturenli_macro_f1", "temporal_steerability"):
        assert name in msg


def test_unknown_variant_lists_variants_and_is_also_a_value_error():
    with pytest.raises(ValueError) as err:
        metrics.get_metric("goqa_skew", "compatt")
    msg = str(err.value)
    assert "Did you mean 'compat'?" in msg and "Known: compat, reference" in msg


def test_registered_functions_stamp_name_family_and_variant():
    df = pd.DataFrame({"question": ["q"], "country": ["X"], "model_probs": [[1, 0]], "human_probs": [[0, 1]]})
    ref = metrics.get_metric("goqa_avg_sim")(df)
    cb = metrics.get_metric("goqa_avg_sim", "compat")(df)
    assert (ref.name, ref.family, ref.variant) == ("goqa_avg_sim", "globalopinionqa", "reference")
    assert cb.variant == "compat" and cb is not ref
    assert metrics.known_metrics()["representativeness"] == ["compat", "reference"]


def test_registering_a_variant_twice_fails():
    with pytest.raises(ValueError, match="registered twice"):
        metrics.register_metric("representativeness", variant="reference")(lambda df: {})


def test_one_table_cannot_mix_variants_of_a_family():
    df = pd.DataFrame({"question": ["q1", "q2"], "country": ["X", "Y"],
                       "model_probs": [[1, 0], [0.5, 0.5]], "human_probs": [[0, 1], [1, 0]]})
    avg_cb = metrics.get_metric("goqa_avg_sim", "compat")(df)
    skew_ref = metrics.get_metric("goqa_skew", "reference")(df)
    skew_cb = metrics.get_metric("goqa_skew", "compat")(df)
    with pytest.raises(ValueError, match="globalopinionqa"):
        metrics.check_variants([avg_cb, skew_ref])
    assert metrics.check_variants([avg_cb, skew_cb]) == {"globalopinionqa": "compat"}


# --------------------------------------------------------------------------- ordinal W1

def test_w1_sorts_ordinals_that_are_not_1_to_n():
    # support [1.0, 2.0, 1.5]: p puts all mass on 1.5, q on 2.0 -> W1 = 0.5 (span 1 -> WD 0.5).
    # Integrating in list order would give |0-0|*1 + |0-1|*(-0.5) = -0.5.
    assert distributions.ordinal_w1([0, 0, 1], [0, 1, 0], [1.0, 2.0, 1.5]) == pytest.approx(0.5)
    # p = 0.5 at 1.0 + 0.5 at 2.0, q = 1 at 1.5: |F gap| 0.5 on [1, 1.5] and 0.5 on [1.5, 2] -> 0.5
    assert distributions.ordinal_w1([0.5, 0.5, 0], [0, 0, 1], [1.0, 2.0, 1.5]) == pytest.approx(0.5)
    assert distributions.normalised_wd([0.5, 0.5, 0], [0, 0, 1], "[1.0, 2.0, 1.5]") == (pytest.approx(0.5), None)


def test_w1_agrees_with_scipy_weighted_form():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.permutation([1.0, 2.0, 1.5, 4.0, 3.0])
        p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
        assert distributions.ordinal_w1(p, q, x) == pytest.approx(wasserstein_distance(x, x, p, q))


def test_wd_divides_by_ordinal_span_and_renormalises_rows():
    # p = [2, 0, 2] -> [0.5, 0, 0.5]; q all at 2; CDF gaps 0.5 and 0.5 on unit steps -> W1 1, span 2 -> 0.5
    assert distributions.normalised_wd([2, 0, 2], [0, 3, 0], [1, 2, 3]) == (pytest.approx(0.5), None)


@pytest.mark.parametrize("model, human, ordinals, reason", [
    ([0.5, 0.5], [1, 0], [2.0, 2.0], "equal_ordinals"),
    ([NAN, 0.5], [1, 0], [1, 2], "nan"),
    ([0.5, 0.5], [0, 0], [1, 2], "zero_mass"),
    ([1.5, -0.5], [1, 0], [1, 2], "negative"),
])
def test_wd_undefined_rows_are_flagged(model, human, ordinals, reason):
    value, why = distributions.normalised_wd(model, human, ordinals)
    assert math.isnan(value) and why == reason


def test_wd_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="lengths differ"):
        distributions.normalised_wd([0.5, 0.5], [1, 0, 0], [1, 2, 3])


def test_representativeness_excludes_and_counts():
    df = pd.DataFrame({
        "question": ["q1", "q2", "q3", "q4", "q5"],
        "model_probs": [[2, 0, 2], [0.5, 0.5], [NAN, 1], [0.3, 0.7], [0.2, 0.8]],
        "human_probs": [[0, 1, 0], [1, 0], [1, 0], [0, 0], [0.2, 0.8]],
        "ordinals": [[1, 2, 3], [3, 3], [1, 2], [1, 2], [1, 2]],
    })
    r = metrics.representativeness(df)
    # q1 WD 0.5 (see above), q5 WD 0; q2 equal ordinals, q3 NaN, q4 zero mass -> 1 - 0.25
    assert r.value == pytest.approx(0.75)
    assert r.n_items == 2 and r.excluded == {"equal_ordinals": 1, "nan": 1, "zero_mass": 1}
    assert r.as_row()["n_excluded"] == 3 and r.as_row()["excluded_nan"] == 1


def test_representativeness_rejects_duplicate_questions():
    df = pd.DataFrame({"question": ["q", "q"], "model_probs": [[1, 0]] * 2, "human_probs": [[1, 0]] * 2, "ordinals": [[1, 2]] * 2})
    with pytest.raises(ValueError, match="duplicate"):
        metrics.representativeness(df)


def _steer_frame():
    # Two options, ordinals [1, 2]: WD = |p_0 - h_0|.
    human = {("A", "q1"): [1, 0], ("A", "q2"): [0.5, 0.5], ("B", "q1"): [0, 1], ("B", "q2"): [0.2, 0.8]}
    model = {
        ("A", "qa"): ([0.8, 0.2], [0.5, 0.5]),      # WD 0.2, 0.0 -> 0.9
        ("A", "bio"): ([0.6, 0.4], [0.25, 0.75]),   # WD 0.4, 0.25 -> 0.675
        ("A", "portray"): ([1, 0], [0.9, 0.1]),     # WD 0.0, 0.4 -> 0.8
        ("B", "qa"): ([0.5, 0.5], [0.2, 0.8]),      # WD 0.5, 0.0 -> 0.75
        ("B", "bio"): ([0.1, 0.9], [0.4, 0.6]),     # WD 0.1, 0.2 -> 0.85
        ("B", "portray"): ([NAN, NAN], [0.4, 0.6]),  # excluded, WD 0.2 -> 0.8
    }
    rows = []
    for (group, context), (m1, m2) in model.items():
        for q, m in (("q1", m1), ("q2", m2)):
            rows.append({"question": q, "group": group, "context": context, "model_probs": m,
                         "human_probs": human[(group, q)], "overall_probs": [0.5, 0.5], "ordinals": [1, 2]})
    return pd.DataFrame(rows)


def test_steerability_best_context_per_group_then_mean():
    r = metrics.steerability(_steer_frame())
    # best: A qa 0.9, B bio 0.85 -> 0.875
    assert r.value == pytest.approx(0.875)
    assert r.per_group == pytest.approx({"A": 0.9, "B": 0.85})
    assert r.details["best_context"] == {"A": "qa", "B": "bio"}
    assert r.details["by_context"]["B"]["portray"] == pytest.approx(0.8)
    assert r.n_items == 11 and r.excluded == {"nan": 1}


# --------------------------------------------------------------------------- OpinionQA compat

def test_compat_is_order_blind_where_reference_is_not():
    model, human = [0.2, 0.3, 0.5], [0.5, 0.3, 0.2]
    # compat: the multisets {0.2, 0.3, 0.5} are equal -> w = 0 -> similarity 1
    assert metrics.compat_similarity(model, human) == (pytest.approx(1.0), None)
    # reference: F_M = .2 .5 1, F_H = .5 .8 1 -> W1 = 0.3 + 0.3 = 0.6, span 2 -> WD 0.3 -> 0.7
    assert 1 - distributions.normalised_wd(model, human, [1, 2, 3])[0] == pytest.approx(0.7)
    # all mass on opposite extremes: reference similarity 0, compat 1
    assert distributions.normalised_wd([1, 0, 0], [0, 0, 1], [1, 2, 3])[0] == pytest.approx(1.0)
    assert metrics.compat_similarity([1, 0, 0], [0, 0, 1])[0] == pytest.approx(1.0)


def test_compat_representativeness_uses_fixed_denominator():
    df = pd.DataFrame({"question": ["q1", "q2", "q3"],
                       "model_probs": [[0.2, 0.3, 0.5], [1, 0], [1]],
                       "human_probs": [[0.5, 0.3, 0.2], [0.5, 0.5], [1]]})
    # q1: 1; q2: W1({1, 0}, {.5, .5}) = 0.5, n - 1 = 1 -> 0.5; q3: one option, excluded
    fixed = metrics.get_metric("representativeness", "compat")(df, n_questions=4)
    assert fixed.value == pytest.approx(1.5 / 4) and fixed.excluded == {"single_option": 1}
    default = metrics.representativeness_compat(df)
    assert default.value == pytest.approx(1.5 / 3) and default.details["denominator"] == 3


def test_compat_steerability_compares_with_the_whole_population():
    df = _steer_frame()
    r = metrics.steerability_compat(df)
    # vs overall [.5, .5]: w = |sorted(p) - [.5, .5]| mean; n - 1 = 1.
    # A qa: [.8,.2] -> 0.3, [.5,.5] -> 0  -> (0.7 + 1) / 2 = 0.85
    # A bio: [.6,.4] -> .1, [.25,.75] -> .25 -> (0.9 + 0.75) / 2 = 0.825
    # A portray: [1,0] -> .5, [.9,.1] -> .4 -> (0.5 + 0.6) / 2 = 0.55
    # B qa: 0 and .3 -> 0.85; B bio: .4, .1 -> 0.75; B portray: NaN skipped, .1 -> 0.9 / 2 = 0.45
    assert r.per_group == pytest.approx({"A": 0.85, "B": 0.85})
    assert r.value == pytest.approx(0.85) and r.details["best_context"] == {"A": "qa", "B": "qa"}
    assert r.excluded == {"nan": 1}


# --------------------------------------------------------------------------- human distribution

def test_human_distribution_weighted_and_unweighted():
    answers = ["Yes", "No", "Refused", NAN, "Yes", "Maybe?"]
    options, weights = ["Yes", "No", "Refused"], [2, 1, 1, 5, 1, 3]
    h = distributions.human_distribution(answers, options, 2, weights)
    # weighted Yes 3, No 1, Refused 1; NaN = not asked; "Maybe?" unmatched
    np.testing.assert_allclose(h.probs, [0.75, 0.25])
    assert h.refusal_share == pytest.approx(0.2) and (h.n_respondents, h.n_unmatched) == (4, 1)
    u = distributions.human_distribution(answers, options, 2, None)  # Yes 2, No 1, Refused 1
    np.testing.assert_allclose(u.probs, [2 / 3, 1 / 3])
    assert u.refusal_share == pytest.approx(0.25)


def test_human_distribution_only_refusals_is_nan_and_then_excluded():
    h = distributions.human_distribution(["Refused", "Refused"], ["Yes", "No", "Refused"], 2, [1, 1])
    assert np.isnan(h.probs).all() and h.refusal_share == 1.0
    assert distributions.normalised_wd([0.5, 0.5], h.probs, [1, 2])[1] == "nan"


def test_human_distribution_rejects_missing_weight_of_an_answer():
    with pytest.raises(ValueError, match="weight"):
        distributions.human_distribution(["Yes", "No"], ["Yes", "No"], 2, [1.0, NAN])


# --------------------------------------------------------------------------- GlobalOpinionQA

def test_culturebank_js_distance_by_hand():
    # disjoint: KL(p||m) = KL(q||m) = -ln(0.5 + 1e-12) ~ ln 2; sqrt(ln 2 / 2) = 0.588705
    assert metrics.culturebank_js_distance([1, 0], [0, 1]) == pytest.approx(0.588705011, abs=1e-9)
    # p = [.5, .5], q = [1, 0], m = [.75, .25]: KL(p||m) = 0.143841, KL(q||m) = 0.287682
    # sqrt(0.5 * 0.431523 / 2) = 0.328452
    assert metrics.culturebank_js_distance([0.5, 0.5], [1, 0]) == pytest.approx(1 - 0.671547907, abs=1e-9)
    # textbook base 2: disjoint -> 1; second pair -> sqrt(0.311278) = 0.557923
    assert metrics.textbook_js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert metrics.textbook_js_distance([0.5, 0.5], [1, 0]) == pytest.approx(1 - 0.442076955, abs=1e-9)


def test_culturebank_identical_distributions_give_nan_from_the_epsilon():
    # p == q: each term p * (ln p - ln(p + 1e-12)) < 0 -> negative radicand -> NaN
    assert math.isnan(metrics.culturebank_js_distance([0.5, 0.5], [0.5, 0.5]))
    assert metrics.textbook_js_distance([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)


def _goqa_frame():
    return pd.DataFrame({
        "question": ["q1", "q2", "q2", "q3"],
        "country": ["X", "X", "Y", "Y"],
        "model_probs": [[1, 0], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],
        "human_probs": [[0, 1], [1, 0], [1, 0], [0.5, 0.5]],
    })


def test_goqa_culturebank_avg_sim_and_sample_std_skew():
    df = _goqa_frame()
    avg = metrics.get_metric("goqa_avg_sim", "compat")(df)
    skew = metrics.get_metric("goqa_skew", "compat")(df)
    # sims: X: a = 0.411295, b = 0.671548; Y: b, NaN (skipped, counted)
    assert avg.value == pytest.approx(0.584796934, abs=1e-9)  # (a + 2b) / 3
    assert avg.excluded == {"nan_distance": 1} and avg.n_items == 3
    assert avg.per_group == pytest.approx({"X": 0.541421448, "Y": 0.671547907})
    # ddof=1 over two countries: |0.541421 - 0.671548| / sqrt(2) = 0.092013 (ddof=0: 0.065063)
    assert skew.value == pytest.approx(0.092013302, abs=1e-9)


def test_goqa_textbook_variant_differs():
    df = _goqa_frame()
    avg = metrics.get_metric("goqa_avg_sim")(df)
    skew = metrics.get_metric("goqa_skew")(df)
    # sims 0, 0.442077, 0.442077, 1 -> mean 0.471038; countries 0.221038, 0.721038 -> std 0.5 / sqrt 2
    assert avg.value == pytest.approx(0.471038477, abs=1e-9) and avg.excluded == {}
    assert skew.value == pytest.approx(0.5 / math.sqrt(2))


# --------------------------------------------------------------------------- CultureBank direct

def test_culturebank_direct_accuracy_and_macro_f1():
    df = pd.DataFrame({
        "p_yes":     [0.7, 0.4, 0.2, 0.5, 0.9, 0.6],
        "p_no":      [0.3, 0.6, 0.8, 0.5, 0.1, 0.4],
        "agreement": [0.8, 0.9, 0.5, 0.2, 0.3, NAN],
    })
    # pred 1 0 0 0 1 (0.5 vs 0.5 is not Yes); target 1 1 0 0 0 (0.5 is not > 0.5); last row excluded
    acc = metrics.culturebank_accuracy(df)
    assert acc.value == pytest.approx(0.6) and acc.n_items == 5 and acc.excluded == {"nan_agreement": 1}
    # F1(yes) = 2/(2+1+1) = 0.5, F1(no) = 4/(4+1+1) = 2/3 -> 0.583333
    assert metrics.culturebank_macro_f1(df).value == pytest.approx(7 / 12)


def test_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    for _ in range(10):
        y, p = rng.integers(0, 2, 30), rng.integers(0, 2, 30)
        assert metrics.macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro"))


# --------------------------------------------------------------------------- CultureNLI

@pytest.mark.parametrize("ratings, gold", [
    (["N", "E", "E", "N"], "N"),  # tie: first seen wins
    (["C", "E", "E"], "E"),
    ("['E', 'N', 'C']", "E"),  # three-way tie, Python literal as in data.tsv
    (["C", "N", "N", "C", "C"], "C"),
])
def test_majority_label_ties_first_seen(ratings, gold):
    assert metrics.majority_label(ratings) == gold


def test_culturenli_dedupes_later_wins_and_picks_threshold():
    df = pd.DataFrame({
        "premise":    ["p1", "p2", "p3", "p1", "p4", "p5"],
        "hypothesis": ["h1", "h2", "h3", "h1", "h4", "h5"],
        "ratings": [["E", "E", "N"], ["N", "N"], ["E", "C", "C", "E"], ["N", "N", "E"], ["C"], ["E"]],
        "p_entail": [0.95, 0.65, 0.75, 0.95, 0.1, 0.85],
    })
    r = metrics.get_metric("culturenli_macro_f1")(df)
    # items p1 (later row: N), p2 N, p3 E (tie, E first), p4 C, p5 E -> gold 0 0 1 0 1; P .95 .65 .75 .1 .85
    # t=.6: pred 1 1 1 0 1 -> F1 pos 4/6, neg 2/4 -> 0.583333
    # t=.7: pred 1 0 1 0 1 -> 4/5, 4/5 -> 0.8
    # t=.8: pred 1 0 0 0 1 -> 2/4, 4/6 -> 0.583333
    # t=.9: pred 1 0 0 0 0 -> 0, 4/7 -> 0.285714
    # t=1.0: never entail -> 0, 6/8 -> 0.375
    expected = {0.6: 7 / 12, 0.7: 0.8, 0.8: 7 / 12, 0.9: 2 / 7, 1.0: 0.375}
    assert r.details["f1_by_threshold"] == pytest.approx(expected)
    assert r.value == pytest.approx(0.8) and r.details["best_threshold"] == 0.7
    assert r.details["n_duplicates_replaced"] == 1 and r.n_items == 5
    assert (r.details["n_entail"], r.details["n_rest"]) == (2, 3)  # keeping the first p1 row would give 3 / 2


def test_never_entail_macro_f1_is_negative_f1_over_two():
    # 3 entail, 5 rest; P(E) <= 0.6 everywhere (0.6 itself is not > 0.6) -> never predicts entail.
    # F1(rest) = 2*5 / (2*5 + 3) = 10/13, F1(entail) = 0 -> macro = 5/13 = n_rest / (2 n_rest + n_entail)
    df = pd.DataFrame({"premise": list("abcdefgh"), "hypothesis": list("abcdefgh"),
                       "ratings": [["E"]] * 3 + [["N"]] * 4 + [["C"]],
                       "p_entail": [0.6, 0.5, 0.1, 0.6, 0.3, 0.2, 0.0, 0.6]})
    r = metrics.culturenli_macro_f1(df)
    assert r.value == pytest.approx(5 / 13)
    assert r.details["best_threshold"] == 0.6  # all thresholds tie: the first is reported


def test_threshold_one_never_predicts_entail_even_at_p_one():
    df = pd.DataFrame({"premise": ["a", "b"], "hypothesis": ["a", "b"], "ratings": [["E"], ["N"]], "p_entail": [1.0, 0.0]})
    r = metrics.culturenli_macro_f1(df, thresholds=(1.0,))
    # P(E) = 1.0 is not > 1.0 -> all "rest": F1(rest) = 2/(2+1) = 2/3, F1(entail) 0 -> 1/3
    assert r.value == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- GSS

def test_gss_temporal_steerability_and_nominal_exclusion():
    df = pd.DataFrame({
        "question": ["q1", "q1", "q2", "q2"],
        "year": [2000, 2010, 2000, 2010],
        "model_probs": [[0, 1, 0], [0.5, 0.5, 0], [0.5, 0.5], [1, 0]],
        "human_probs": [[0, 0, 1], [0, 1, 0], [1, 0], [1, 0]],
        "ordinals": [[1, 2, 5], [1, 2, 5], [3, 3], [3, 3]],
    })
    r = metrics.get_metric("temporal_steerability")(df)
    # 2000: mass at 2 vs 5 -> W1 3 / span 4 = 0.75; 2010: gap 0.5 on [1, 2] -> 0.5 / 4 = 0.125
    # q2 nominal (equal codes): excluded twice. value = 1 - (0.75 + 0.125) / 2 = 0.5625
    assert r.value == pytest.approx(0.5625)
    assert r.per_group == pytest.approx({2000: 0.25, 2010: 0.875})
    assert r.excluded == {"equal_ordinals": 2} and r.n_items == 2
