"""alpha.correlation (behaviour, opinion, summary; paper §3.2): rank matrices, Spearman similarity, aggregation to census regions
and Pew age x gender groups, opinion similarity, correlation with a bootstrap CI. Hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alpha.core import groups
from alpha.correlation import behaviour, opinion, summary


def test_rank_matrix_ranks_within_each_ad_and_leaves_unreported_segments_empty():
    ranks = behaviour.rank_matrix([["A", "B", "C"], ["B", "A"], None, []])
    assert list(ranks.columns) == ["A", "B", "C"] and len(ranks) == 2
    assert ranks["A"].tolist() == [1.0, 2.0] and ranks["B"].tolist() == [2.0, 1.0]
    assert ranks["C"].iloc[0] == 3.0 and math.isnan(ranks["C"].iloc[1])


def test_behavioural_similarity_is_spearman_over_ads_reporting_both():
    ranks = pd.DataFrame({"A": [1, 2, 3, 4, 5, 1.0], "B": [1, 2, 3, 4, 5, np.nan], "C": [5, 4, 3, 2, 1, 2.0]})
    sim = behaviour.behavioural_similarity(ranks, min_ads=5)
    assert sim.loc["A", "B"] == pytest.approx(1.0)  # the sixth ad does not report B: left out
    # A vs C over all six ads: ranks of A [1.5,3,4,5,6,1.5] vs C [6,5,4,2.5,1,2.5]
    a, c = np.array([1.5, 3, 4, 5, 6, 1.5]), np.array([6, 5, 4, 2.5, 1, 2.5])
    assert sim.loc["A", "C"] == pytest.approx(np.corrcoef(a, c)[0, 1])
    assert math.isnan(behaviour.behavioural_similarity(ranks, min_ads=6).loc["A", "B"])


def test_states_aggregate_to_census_regions_by_the_mean_over_member_pairs():
    states = ["s1", "s2", "t1"]
    sim = pd.DataFrame([[1.0, 0.9, 0.2], [0.9, 1.0, 0.4], [0.2, 0.4, 1.0]], index=states, columns=states)
    out = behaviour.aggregate_pairs(sim, {"s1": "R", "s2": "R", "t1": "S", "x": "T"})
    assert out.loc["R", "S"] == pytest.approx(0.3) and out.loc["S", "R"] == pytest.approx(0.3)
    assert out.loc["R", "R"] == pytest.approx(0.9)  # its one distinct pair, never a state with itself
    assert math.isnan(out.loc["S", "S"])  # one state: no within-region pair
    assert len(groups.STATE_REGION) == 51 and set(groups.STATE_REGION.values()) == set(groups.CENSUS_REGIONS)


def test_meta_cells_combine_into_pew_groups_by_population_weighted_index():
    pop = {"female 18-24": 0.1, "female 25-34": 0.1, "female 35-44": 0.1, "male 65+": 0.2}
    ranks = behaviour.pew_age_gender_ranks(
        [(["female 18-24", "female 25-34", "female 35-44", "male 65+"], [2.0, 1.0, 0.5, 0.8]),
         (["male 65+", "female 25-34"], [3.0, 0.1]), (None, None)], pop)
    # ad 1: Female 18-29 = 2.0; Female 30-49 = (1.0*0.1 + 0.5*0.1)/0.2 = 0.75; Male 65+ = 0.8
    assert ranks.iloc[0].to_dict() == {"Female 18-29": 1.0, "Female 30-49": 3.0, "Male 65+": 2.0}
    assert ranks.iloc[1]["Male 65+"] == 1.0 and ranks.iloc[1]["Female 30-49"] == 2.0
    assert math.isnan(ranks.iloc[1]["Female 18-29"]) and len(ranks) == 2
    assert set(groups.AGE_MAP.values()) == set(groups.PEW_AGES)


def test_opinion_similarity_is_one_minus_normalised_w1_averaged_over_shared_questions():
    questions = [
        ([1.0, 2.0, 3.0], {"g": [1, 0, 0], "h": [0, 0, 1], "k": [0, 1, 0]}),  # g-h: W1 2/2 -> 0; g-k: 1/2 -> 0.5
        ([1.0, 2.0, 3.0], {"g": [1, 0, 0], "h": [1, 0, 0]}),  # g-h identical -> 1
        ([1.0, 1.0], {"g": [1, 0], "h": [0, 1]}),  # equal ordinals: undefined, skipped
    ]
    sim, n = opinion.opinion_similarity(questions)
    assert sim.loc["g", "h"] == pytest.approx(0.5) and n.loc["g", "h"] == 2
    assert sim.loc["g", "k"] == pytest.approx(0.5) and sim.loc["h", "k"] == pytest.approx(0.5)
    assert n.loc["g", "k"] == 1 and sim.loc["g", "g"] == 1.0


def test_correlation_with_bootstrap_ci_and_a_collapse_when_labels_are_shuffled():
    rng = np.random.default_rng(0)
    groups = [f"g{i}" for i in range(12)]
    position = rng.normal(size=len(groups))
    distance = np.abs(position[:, None] - position[None, :])
    behaviour = pd.DataFrame(1 - distance / distance.max(), index=groups, columns=groups)
    opinion = pd.DataFrame(1 - 0.5 * distance / distance.max() + rng.normal(0, 0.01, distance.shape),
                           index=groups, columns=groups)
    pairs = summary.pair_table(behaviour, opinion)
    assert len(pairs) == 66  # 12 choose 2
    result = summary.correlate(pairs, n_boot=500, seed=1)
    assert result["pearson_r"] > 0.95 and result["spearman_rho"] > 0.9 and result["n_pairs"] == 66
    assert result["ci95"][0] <= result["pearson_r"] <= result["ci95"][1] and result["ci95"][0] > 0.9
    assert summary.correlate(pairs, n_boot=500, seed=1) == result  # seeded
    shuffled = [summary.correlate(summary.pair_table(behaviour, opinion.rename(
        index=dict(zip(groups, p)), columns=dict(zip(groups, p)))), n_boot=0)["pearson_r"]
        for p in (rng.permutation(groups) for _ in range(30))]
    assert abs(float(np.mean(shuffled))) < 0.2  # labels shuffled: the relationship is gone on average
    tiny = summary.correlate(pairs.head(2), n_boot=10)
    assert math.isnan(tiny["pearson_r"]) and tiny["ci95"] == [None, None]


def test_survey_questions_give_weighted_distributions_per_region_and_age_gender_group(tmp_path):
    from alpha.demo.surveys import write_demo_atp
    from alpha.eval.loaders.atp import XL_ATTRIBUTES, assign_groups, build_wave, read_wave

    write_demo_atp(tmp_path, seed=3)
    files = sorted(str(p) for p in tmp_path.glob("*.sav"))
    regions = opinion.survey_questions(files, "region")
    cross = opinion.survey_questions(files, "age_gender")
    assert len(regions) == len(cross) > 10
    assert {g for _, d in regions for g in d} == {"Northeast", "Midwest", "South", "West"}
    assert {g for _, d in cross for g in d} == {f"{s} {a}" for s in ("Male", "Female") for a in groups.PEW_AGES}
    # a crossed group's distribution is the one of the respondents in both groups, weighted
    df, meta = read_wave(files[0])
    build = build_wave(df, meta, "W", None, attributes={k: XL_ATTRIBUTES[k] for k in ("AGE", "GENDER")},
                       cross=(("AGE", "GENDER"),))
    q = build.questions[0]
    masks, *_ = assign_groups(df, meta, {k: XL_ATTRIBUTES[k] for k in ("AGE", "GENDER")})
    both = masks["AGE=30-49"] & masks["GENDER=Female"]
    assert build.groups["AGE=30-49&GENDER=Female"] == int(both.sum()) > 0
    from alpha.eval.distributions import human_distribution

    answers = df[q["key"]].to_numpy(dtype=float)
    weights = df[[c for c in df.columns if c.startswith("WEIGHT_W")][0]].to_numpy(dtype=float)
    expected = human_distribution(answers[both], q["codes"], q["n_ordinal"], weights[both]).probs
    assert q["human"]["AGE=30-49&GENDER=Female"].probs == pytest.approx(expected)
    with pytest.raises(ValueError, match="kind"):
        opinion.survey_questions(files, "state")
