"""Distributions over answer options shared by the benchmark loaders, the metrics and the correlation
analysis: the (weighted) human answer distribution and the ordinal Wasserstein distance
(docs/metrics.md, "Ordinal distance").

Kept apart from the metric registry so that a change to a metric reruns only the metric rules, not
the loaders that build the human distributions (and, through them, every model's scores)."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd


def as_vector(x) -> np.ndarray:
    """A probability / ordinal vector from a sequence or a Python list literal (never eval)."""
    if isinstance(x, str):
        x = ast.literal_eval(x)
    return np.asarray(x, dtype=np.float64)


def normalise(p: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """p / sum(p), or (None, reason) for a row that has no distribution."""
    if np.isnan(p).any():
        return None, "nan"
    if (p < 0).any():
        return None, "negative"
    total = p.sum()
    if total <= 0:
        return None, "zero_mass"
    return p / total, None


def ordinal_w1(p: Sequence[float], q: Sequence[float], ordinals: Sequence[float]) -> float:
    """W1(p, q) on the 1-D support ``ordinals`` = ∫ |F_p(x) − F_q(x)| dx.

    The support is sorted first (OpinionQA ordinals can be e.g. [1.0, 2.0, 1.5]); p and q must be
    normalised. Equals ``scipy.stats.wasserstein_distance(ordinals, ordinals, p, q)``."""
    x, p, q = as_vector(ordinals), as_vector(p), as_vector(q)
    order = np.argsort(x, kind="stable")
    x, p, q = x[order], p[order], q[order]
    cdf_gap = np.abs(np.cumsum(p - q))[:-1]
    return float(np.sum(cdf_gap * np.diff(x)))


def normalised_wd(model, human, ordinals) -> tuple[float, str | None]:
    """(WD, None) with WD = W1(D_M, D_H) / (max ordinal − min ordinal), both renormalised to sum 1;
    (nan, reason) for an excluded item: "equal_ordinals", "nan", "negative" or "zero_mass"."""
    x, p, q = as_vector(ordinals), as_vector(model), as_vector(human)
    if not len(x) == len(p) == len(q):
        raise ValueError(f"lengths differ: {len(x)} ordinals, {len(p)} model, {len(q)} human probabilities")
    span = x.max() - x.min()
    if span == 0:
        return float("nan"), "equal_ordinals"
    (p, p_bad), (q, q_bad) = normalise(p), normalise(q)
    if p_bad or q_bad:
        return float("nan"), p_bad or q_bad
    return ordinal_w1(p, q, x) / span, None


@dataclass(frozen=True)
class HumanDistribution:
    probs: np.ndarray  # over the ordinal options, sums to 1; all NaN when nobody chose one
    refusal_share: float  # share of refusal-type answers among answers in ``options``
    n_respondents: int  # respondents whose answer is one of ``options``
    n_unmatched: int  # asked, but the answer is not among ``options`` (ignored)


def human_distribution(answers: Sequence, options: Sequence, n_ordinal: int, weights: Sequence[float] | None) -> HumanDistribution:
    """D_H: (weighted) counts of the first ``n_ordinal`` options among respondents who were asked
    (answer not NaN), normalised over those options only; the rest of ``options`` are refusal-type.
    ``weights=None`` gives unweighted counts (the ALPHA code's compat convention)."""
    ans = pd.Series(list(answers), dtype=object)
    w = pd.Series(1.0 if weights is None else np.asarray(weights, dtype=np.float64), index=ans.index)
    asked = ans.notna()
    known = asked & ans.isin(list(options))
    if w[known].isna().any() or (w[known] < 0).any():
        raise ValueError("answered respondents need a non-negative, non-missing survey weight")
    mass = w[known].groupby(ans[known]).sum().reindex(list(options), fill_value=0.0).to_numpy(dtype=np.float64)
    ordinal, total = mass[:n_ordinal], mass.sum()
    probs = ordinal / ordinal.sum() if ordinal.sum() > 0 else np.full(n_ordinal, np.nan)
    refusal = float(mass[n_ordinal:].sum() / total) if total > 0 else float("nan")
    return HumanDistribution(probs, refusal, int(known.sum()), int((asked & ~known).sum()))
