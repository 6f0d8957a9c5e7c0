"""Behaviour–opinion correlation (paper §3.2; docs/metrics.md, "Behaviour and opinion correlation"):
behaviour against opinion.

Correlation
    Over the unordered pairs of distinct groups present in both matrices: Pearson r and Spearman rho,
    n pairs, and a percentile bootstrap 95% CI of r (pairs resampled with replacement, seeded).
"""
from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np
import pandas as pd


def pair_table(behaviour: pd.DataFrame, opinion: pd.DataFrame) -> pd.DataFrame:
    """One row per unordered pair of distinct groups with both similarities defined."""
    groups = sorted(set(behaviour.index) & set(opinion.index))
    rows = [{"a": g, "b": h, "behaviour": float(behaviour.loc[g, h]), "opinion": float(opinion.loc[g, h])}
            for g, h in itertools.combinations(groups, 2)]
    table = pd.DataFrame(rows, columns=["a", "b", "behaviour", "opinion"])
    return table.dropna(subset=["behaviour", "opinion"]).reset_index(drop=True)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def correlate(pairs: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Pearson r and Spearman rho across pairs, n, and a percentile bootstrap 95% CI of r."""
    from scipy.stats import spearmanr

    x, y = pairs["behaviour"].to_numpy(np.float64), pairs["opinion"].to_numpy(np.float64)
    n = len(x)
    r = _pearson(x, y)
    rho = float(spearmanr(x, y).statistic) if n >= 3 else float("nan")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot if n >= 3 else 0):
        idx = rng.integers(0, n, n)
        value = _pearson(x[idx], y[idx])
        if not np.isnan(value):
            boots.append(value)
    ci = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))] if boots else [None, None]
    return {"pearson_r": r, "spearman_rho": rho, "n_pairs": n, "ci95": ci, "n_boot": len(boots), "seed": seed}


def summarise(behaviour: Mapping[str, pd.DataFrame], opinion: Mapping[str, pd.DataFrame], n_boot: int, seed: int) -> dict:
    """summary.json: per grouping (regions, age_gender) the correlation across pairs, and the pairs."""
    out = {}
    for kind in ("regions", "age_gender"):
        pairs = pair_table(behaviour[kind], opinion[kind])
        out[kind] = {**correlate(pairs, n_boot=n_boot, seed=seed), "groups": sorted(behaviour[kind].index),
                     "pairs": pairs.to_dict(orient="records")}
    return out
