"""The embedded default's planted survey lean: the demo surveys' group opinions follow the demo ads'
planted audiences (paper §3.2's relationship), so that groups that behave alike on the ads answer alike."""
from __future__ import annotations

import numpy as np

from alpha.core.groups import AGE_MAP, CENSUS_REGIONS, PEW_AGES
from alpha.demo.ads import AGES, TOPICS


def planted_lean() -> dict[str, float]:
    """The embedded default's survey lean per group (alpha.demo.surveys.LEAN_GROUPS), derived
    from the demo ads' planted audiences, so that groups that behave alike on the ads answer alike.

    Each group's profile is its mean log interest multiplier per ad topic (alpha.demo.ads.TOPICS: a region
    averages its states' multipliers, 0.3 for a topic's "anti" states; an age x gender group averages
    its Meta brackets' age multipliers times the topic's male multiplier for men); the lean is the
    first principal component of the profiles within each family (regions, age x gender), scaled so
    the largest magnitude is 0.8."""

    def pc1(profiles: dict[str, np.ndarray]) -> dict[str, float]:
        names = sorted(profiles)
        x = np.array([profiles[n] for n in names])
        x = x - x.mean(axis=0)
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        score = u[:, 0] * s[0]
        score = score * (0.8 / np.abs(score).max()) * (1 if score[0] >= 0 else -1)  # sign fixed: deterministic
        return {n: round(float(v), 3) for n, v in zip(names, score)}

    def state_multiplier(topic, state):
        listed = dict(topic.states)
        return listed.get(state, 0.3 if state in topic.anti else 1.0)

    regions = {r: np.array([np.mean([np.log(state_multiplier(t, s)) for s in states]) for t in TOPICS])
               for r, states in CENSUS_REGIONS.items()}
    groups = {}
    for sex in ("Male", "Female"):
        for pew in PEW_AGES:
            brackets = [a for a in AGES if AGE_MAP.get(a) == pew]
            groups[f"{sex} {pew}"] = np.array([
                np.mean([np.log(t.ages.get(a, 1.0) * (t.male if sex == "Male" else 1.0)) for a in brackets])
                for t in TOPICS])
    return {**pc1(regions), **pc1(groups)}
