"""Behaviour–opinion correlation (paper §3.2; docs/metrics.md, "Behaviour and opinion correlation"):
the opinion side, from raw Pew ATP waves.

Opinion similarity
    For each question asked of both groups: 1 − W1(D_g, D_h) / (max ordinal − min ordinal) on the
    ordinal support (``alpha.eval.metrics.normalised_wd``, the OpinionQA distance), averaged over questions.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from alpha.core.groups import CENSUS_REGIONS, PEW_AGES
from alpha.eval.distributions import normalised_wd


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


def opinion_matrices(sav_files: Sequence[str], encoding: str | None = None) -> dict[str, pd.DataFrame]:
    """Opinion similarity between census regions and between age x gender groups from raw ATP waves,
    and the number of questions behind each pair."""
    regions, n_regions = opinion_similarity(survey_questions(sav_files, "region", encoding), sorted(CENSUS_REGIONS))
    groups = [f"{s} {a}" for s in ("Female", "Male") for a in PEW_AGES]
    age_gender, n_age_gender = opinion_similarity(survey_questions(sav_files, "age_gender", encoding), groups)
    return {"regions": regions, "age_gender": age_gender, "questions_regions": n_regions,
            "questions_age_gender": n_age_gender}
