"""Behaviour–opinion correlation (paper §3.2; docs/metrics.md, "Behaviour and opinion correlation"):
the behavioural side.

Behavioural similarity
    Per ad, each state's **per-capita rank** (1 = the highest census-normalised index, from the
    segments table's ``state_ranked``). Two states' similarity is the Spearman correlation of their
    ranks over the ads that report both (pairwise complete; fewer than ``min_ads`` common ads: NaN).
    States are aggregated to the four census regions, the only region variable of Pew ATP, by
    ``aggregate_pairs``: the similarity of regions R and S is the mean of the state-pair similarities
    over states s in R, t in S, s != t (within a region: over its distinct state pairs), NaN pairs skipped.
    Age × gender: Meta's adult cells (female/male × 18-24 ... 65+) are mapped to Pew's 18-29 / 30-49 /
    50-64 / 65+ by ``AGE_MAP`` (configurable; 13-17 excluded); per ad a Pew group's index is the
    population-weighted mean of its cells' indices (= the group's delivery share over its population
    share), groups are ranked per ad, and two groups' similarity is again the Spearman correlation of
    their ranks over ads.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from alpha.core.groups import AGE_MAP, STATE_REGION


def rank_matrix(ranked_lists: Iterable[Sequence[str] | None]) -> pd.DataFrame:
    """Rows = ads, columns = segment names, values = 1-based rank within the ad (NaN: not ranked)."""
    rows = [{name: float(k) for k, name in enumerate(ranked, start=1)} for ranked in ranked_lists if ranked]
    return pd.DataFrame(rows).sort_index(axis=1)


def behavioural_similarity(ranks: pd.DataFrame, min_ads: int = 5) -> pd.DataFrame:
    """Spearman correlation of two segments' ranks over the ads ranking both (NaN below ``min_ads``)."""
    return ranks.corr(method="spearman", min_periods=min_ads)


def aggregate_pairs(similarity: pd.DataFrame, membership: Mapping[str, str]) -> pd.DataFrame:
    """Group-level similarity: the mean over member pairs (s in G, t in H, s != t) of the member-level
    similarity, NaN pairs skipped; members without a group are ignored."""
    groups = sorted({membership[m] for m in similarity.index if m in membership})
    members = {g: [m for m in similarity.index if membership.get(m) == g] for g in groups}
    out = pd.DataFrame(np.nan, index=groups, columns=groups)
    values = similarity.to_numpy(dtype=np.float64)
    position = {m: i for i, m in enumerate(similarity.index)}
    for g, h in itertools.combinations_with_replacement(groups, 2):
        pairs = [(position[s], position[t]) for s in members[g] for t in members[h] if s != t]
        vals = np.array([values[i, j] for i, j in pairs], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        if len(vals):
            out.loc[g, h] = out.loc[h, g] = float(vals.mean())
    return out


def pew_age_gender_ranks(cells: Iterable[tuple[Sequence[str] | None, Sequence[float] | None]],
                         cell_population: Mapping[str, float], age_map: Mapping[str, str] = AGE_MAP) -> pd.DataFrame:
    """Per ad, the Pew age × gender groups ("Female 18-29" ...) ranked by their per-capita index.

    ``cells``: per ad (``age_gender_ranked``, ``age_gender_index_ranked``) from the segments table
    (names like "female 25-34"); ``cell_population``: each adult cell's population share. A group's
    index is sum(index_c * pop_c) / sum(pop_c) over its *reported* cells (a group with none is not
    ranked); ties are ranked by group name, as the segments table ranks cells."""
    rows = []
    for names, indices in cells:
        if not names:
            continue
        num: dict[str, float] = {}
        den: dict[str, float] = {}
        for name, index in zip(names, indices):
            gender, _, age = name.partition(" ")
            if age not in age_map:
                continue
            group = f"{gender.capitalize()} {age_map[age]}"
            num[group] = num.get(group, 0.0) + float(index) * cell_population[name]
            den[group] = den.get(group, 0.0) + cell_population[name]
        order = sorted(num, key=lambda g: (-num[g] / den[g], g))
        rows.append({g: float(k) for k, g in enumerate(order, start=1)})
    return pd.DataFrame(rows).sort_index(axis=1)


def behaviour_matrices(segments_path: str, cell_names: Sequence[str], cell_population: Sequence[float],
                       age_map: Mapping[str, str] = AGE_MAP, min_ads: int = 5, batch_rows: int = 50_000
                       ) -> dict[str, pd.DataFrame]:
    """Behavioural similarity from the segments table (ads with census_status "ok"): between states,
    census regions and Pew age x gender groups. Memory: one rank per ad and segment (float32)."""
    from alpha.core.io import iter_parquet_batches

    total = float(sum(cell_population))
    pop = {name: float(p) / total for name, p in zip(cell_names, cell_population)}
    state_lists, cells = [], []
    columns = ["census_status", "state_ranked", "age_gender_ranked", "age_gender_index_ranked"]
    for batch in iter_parquet_batches(segments_path, batch_rows, columns=columns):
        for row in batch.to_pylist():
            if row["census_status"] != "ok":
                continue
            state_lists.append(row["state_ranked"])
            cells.append((row["age_gender_ranked"], row["age_gender_index_ranked"]))
    states = behavioural_similarity(rank_matrix(state_lists).astype(np.float32), min_ads)
    groups = behavioural_similarity(pew_age_gender_ranks(cells, pop, age_map).astype(np.float32), min_ads)
    return {"states": states, "regions": aggregate_pairs(states, STATE_REGION), "age_gender": groups,
            "n_ads": pd.DataFrame({"ads": [len(state_lists)]})}
