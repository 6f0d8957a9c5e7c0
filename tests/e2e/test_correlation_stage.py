"""Behaviour-opinion correlation (paper 3.2) on the embedded default, whose survey waves follow the
ads' planted audiences: the pipeline must recover a clearly positive r, and lose it when the group
labels are shuffled."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from alpha.core import groups
from alpha.correlation import summary
from workflow_helpers import jobs_in_dry_run

pytestmark = pytest.mark.e2e


def _matrices(demo_run, kind):
    read = lambda name: pd.read_csv(demo_run / f"results/correlation/{name}_{kind}.csv", index_col=0)  # noqa: E731
    return read("behaviour"), read("opinion")


def test_planted_relationship_is_recovered_with_a_confidence_interval(demo_run):
    summary = json.loads((demo_run / "results/correlation/summary.json").read_text())
    assert summary["regions"]["n_pairs"] == 6 and summary["age_gender"]["n_pairs"] == 28
    for kind in ("regions", "age_gender"):
        entry = summary[kind]
        assert entry["pearson_r"] > 0.5, (kind, entry["pearson_r"])  # clearly positive
        assert entry["ci95"][0] > 0 and entry["ci95"][0] <= entry["pearson_r"] <= entry["ci95"][1], entry["ci95"]
    assert summary["age_gender"]["groups"] == sorted(f"{s} {a}" for s in ("Female", "Male") for a in groups.PEW_AGES)
    for name in ("similarity_regions.png", "similarity_age_gender.png", "scatter.png"):
        assert (demo_run / "results/figures/correlation" / name).read_bytes()[:4] == b"\x89PNG"


def test_shuffled_group_labels_lose_the_relationship(demo_run):
    rng = np.random.default_rng(7)
    behaviour, opinion = _matrices(demo_run, "age_gender")
    real = summary.correlate(summary.pair_table(behaviour, opinion), n_boot=0)["pearson_r"]
    groups = list(opinion.index)
    shuffled = []
    for _ in range(200):
        perm = dict(zip(groups, rng.permutation(groups)))
        shuffled.append(summary.correlate(summary.pair_table(behaviour, opinion.rename(index=perm, columns=perm)), n_boot=0)["pearson_r"])
    assert abs(float(np.mean(shuffled))) < 0.15, np.mean(shuffled)  # collapses toward 0
    assert real > np.percentile(shuffled, 95)  # and the real labels beat 95% of the shuffles


def test_similarity_matrices_are_symmetric_and_cover_the_groups(demo_run):
    states = pd.read_csv(demo_run / "results/correlation/behaviour_states.csv", index_col=0)
    assert len(states) >= 45 and np.allclose(states.to_numpy(), states.to_numpy().T, equal_nan=True)
    assert np.allclose(np.diag(states.to_numpy()), 1.0)
    behaviour, opinion = _matrices(demo_run, "regions")
    assert list(behaviour.index) == list(opinion.index) == ["Midwest", "Northeast", "South", "West"]
    questions = json.loads((demo_run / "results/correlation/opinion_questions.json").read_text())
    assert questions["waves"] == ["ATP W123.sav", "ATP W126.sav", "ATP W132.sav"]
    behind = [n for g, row in questions["regions"].items() for h, n in row.items() if g != h]
    assert len(behind) == 12 and min(behind) > 10  # questions behind each pair of regions


def test_correlation_settings_rerun_only_the_analysis(demo_run, tmp_path):
    config = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    config["correlation"]["n_boot"] = 500
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    assert jobs_in_dry_run(demo_run, "--configfile", str(changed)) == {"correlation_summary"}
    config["correlation"]["age_map"] = {**groups.AGE_MAP, "25-34": "18-29"}
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    assert jobs_in_dry_run(demo_run, "--configfile", str(changed)) == {"behaviour_similarity", "correlation_summary"}
