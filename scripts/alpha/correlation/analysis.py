"""Behaviour–opinion correlation (paper §3.2): do groups that behave alike on ads answer surveys alike?

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

Opinion similarity
    For each question asked of both groups: 1 − W1(D_g, D_h) / (max ordinal − min ordinal) on the
    ordinal support (``alpha.eval.metrics.normalised_wd``, the OpinionQA distance), averaged over questions.

Correlation
    Over the unordered pairs of distinct groups present in both matrices: Pearson r and Spearman rho,
    n pairs, and a percentile bootstrap 95% CI of r (pairs resampled with replacement, seeded).
"""
from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from alpha.core.groups import AGE_MAP, CENSUS_REGIONS, PEW_AGES, STATE_REGION
from alpha.eval.distributions import normalised_wd

# ----------------------------------------------------------------------------------------- behaviour

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


# ----------------------------------------------------------------------------------------- opinion

def opinion_similarity(questions: Iterable[tuple[Sequence[float], Mapping[str, Sequence[float]]]],
                       groups: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(similarity, question counts) between groups: per question ``(ordinals, {group: distribution})``,
    1 − normalised W1 for each pair of groups that both answered it (undefined questions, e.g. equal
    ordinals or an empty distribution, are skipped), averaged over questions."""
    total: dict[tuple[str, str], float] = {}
    count: dict[tuple[str, str], int] = {}
    seen: set[str] = set()
    for ordinals, dists in questions:
        names = sorted(g for g in dists if groups is None or g in groups)
        seen.update(names)
        for g, h in itertools.combinations(names, 2):
            wd, reason = normalised_wd(dists[g], dists[h], ordinals)
            if reason is None:
                total[(g, h)] = total.get((g, h), 0.0) + 1.0 - wd
                count[(g, h)] = count.get((g, h), 0) + 1
    names = sorted(groups if groups is not None else seen)
    sim = pd.DataFrame(np.nan, index=names, columns=names)
    n = pd.DataFrame(0, index=names, columns=names)
    for (g, h), value in total.items():
        sim.loc[g, h] = sim.loc[h, g] = value / count[(g, h)]
        n.loc[g, h] = n.loc[h, g] = count[(g, h)]
    for g in names:
        sim.loc[g, g] = 1.0
    return sim, n


# ----------------------------------------------------------------------------------------- correlation

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


# ----------------------------------------------------------------------------------------- surveys

def _short_group(key: str) -> str:
    """"CREGION=Northeast" -> "Northeast"; "AGE=18-29&GENDER=Female" -> "Female 18-29"."""
    parts = dict(part.split("=", 1) for part in key.split("&"))
    if set(parts) == {"AGE", "GENDER"}:
        return f"{parts['GENDER']} {parts['AGE']}"
    return "&".join(parts.values())


def survey_questions(sav_files: Iterable[str], kind: str, encoding: str | None = None) -> list[tuple[list[float], dict]]:
    """Per survey question of raw Pew ATP waves, ``(ordinals, {group: weighted distribution})`` for the
    four census regions (``kind="region"``) or the eight age x gender groups (``kind="age_gender"``);
    groups nobody in the wave answered are left out of that question."""
    from alpha.eval.loaders import atp

    if kind == "region":
        rules, cross, prefix = {"CREGION": atp.XL_ATTRIBUTES["CREGION"]}, (), "CREGION="
    elif kind == "age_gender":
        rules, cross, prefix = {"AGE": atp.XL_ATTRIBUTES["AGE"], "GENDER": atp.XL_ATTRIBUTES["GENDER"]}, (("AGE", "GENDER"),), "AGE="
    else:
        raise ValueError(f"kind must be 'region' or 'age_gender', not {kind!r}")
    out = []
    for path in sav_files:
        df, meta = atp.read_wave(path, encoding=encoding)
        build = atp.build_wave(df, meta, f"W{atp.wave_of(path, df.columns)}", atp.wave_of(path, df.columns),
                               attributes=rules, cross=cross)
        for q in build.questions:
            dists = {_short_group(k): d.probs.tolist() for k, d in q["human"].items()
                     if k.startswith(prefix) and (kind == "region" or "&" in k) and not np.isnan(d.probs).any()}
            out.append((list(q["ordinals"]), dists))
    return out


# ----------------------------------------------------------------------------------------- workflow steps

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


def summarise(behaviour: Mapping[str, pd.DataFrame], opinion: Mapping[str, pd.DataFrame], n_boot: int, seed: int) -> dict:
    """summary.json: per grouping (regions, age_gender) the correlation across pairs, and the pairs."""
    out = {}
    for kind in ("regions", "age_gender"):
        pairs = pair_table(behaviour[kind], opinion[kind])
        out[kind] = {**correlate(pairs, n_boot=n_boot, seed=seed), "groups": sorted(behaviour[kind].index),
                     "pairs": pairs.to_dict(orient="records")}
    return out


def opinion_matrices(sav_files: Sequence[str], encoding: str | None = None) -> dict[str, pd.DataFrame]:
    """Opinion similarity between census regions and between age x gender groups from raw ATP waves,
    and the number of questions behind each pair."""
    regions, n_regions = opinion_similarity(survey_questions(sav_files, "region", encoding), sorted(CENSUS_REGIONS))
    groups = [f"{s} {a}" for s in ("Female", "Male") for a in PEW_AGES]
    age_gender, n_age_gender = opinion_similarity(survey_questions(sav_files, "age_gender", encoding), groups)
    return {"regions": regions, "age_gender": age_gender, "questions_regions": n_regions,
            "questions_age_gender": n_age_gender}
