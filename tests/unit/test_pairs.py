"""Exact pair mining on hand-made pages where the expected pairs are known."""
import itertools

import numpy as np
import pytest

from alpha.pairs import mining as pairs
from alpha.pairs.mining import PairRule


def unit(angle_deg):
    a = np.deg2rad(angle_deg)
    return [np.cos(a), np.sin(a)]


def brute_force(emb, texts, rule):
    emb = pairs.normalise(emb).astype(np.float64)
    out = set()
    for i, j in itertools.combinations(range(len(emb)), 2):
        cos = float(emb[i] @ emb[j] / (np.linalg.norm(emb[i]) * np.linalg.norm(emb[j])))
        if rule.low < cos < 1.0 - pairs.DUPLICATE_TOLERANCE:
            a, b = (texts[i].split(), texts[j].split()) if rule.unit == "words" else (texts[i], texts[j])
            from rapidfuzz.distance import Levenshtein

            if Levenshtein.distance(a, b) > rule.min_distance:
                out.add((i, j))
    return out


def test_boundaries_exactly_07_and_duplicates_at_1():
    emb = np.array([[1.0, 0.0], [0.7, np.sqrt(1 - 0.49)], [1.0, 0.0], [0.7000001, np.sqrt(1 - 0.7000001**2)], [0.0, 1.0]])
    i, j, cos = pairs.similar_pairs(pairs.normalise(emb), 0.7, 1.0, chunk_rows=2)
    found = set(zip(i.tolist(), j.tolist()))
    assert (0, 1) not in found and (1, 2) not in found  # cosine exactly 0.7: excluded (open interval)
    assert (0, 2) not in found  # identical vectors: cosine 1.0, a duplicate, excluded
    assert {(0, 3), (2, 3)} <= found  # just above 0.7
    assert (0, 4) not in found and {(1, 4), (3, 4)} <= found  # cos 0 out; cos 0.714 in


@pytest.mark.parametrize("chunk_rows", [1, 3, 64, 4096])
def test_no_pair_is_lost_whatever_the_chunk(chunk_rows):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16))
    emb = np.repeat(base, 20, axis=0) + rng.normal(scale=0.5, size=(120, 16))  # dense clusters: many pairs
    i, j, _ = pairs.similar_pairs(pairs.normalise(emb), 0.7, 1.0, chunk_rows=chunk_rows)
    e = pairs.normalise(emb).astype(np.float64)
    sims = e @ e.T
    expected = {(a, b) for a in range(120) for b in range(a + 1, 120) if 0.7 < sims[a, b] < 1 - 1e-6}
    assert set(zip(i.tolist(), j.tolist())) == expected
    assert len(expected) > 900  # dense clusters: hundreds of pairs


def test_edit_distance_exactly_15_is_excluded_16_kept():
    base = " ".join(f"w{k}" for k in range(40))
    words = base.split()
    fifteen = " ".join(words[:25] + [f"x{k}" for k in range(15)])  # 15 substitutions
    sixteen = " ".join(words[:24] + [f"x{k}" for k in range(16)])  # 16 substitutions
    texts = [base, fifteen, sixteen]
    rule = PairRule(min_distance=15, unit="words")
    keep, dist = pairs.edit_distance_filter(texts, np.array([0, 0]), np.array([1, 2]), rule)
    assert dist.tolist() == [15, 16] and keep.tolist() == [False, True]


def test_character_unit():
    texts = ["a" * 20, "a" * 4 + "b" * 16, "a" * 5 + "b" * 15]
    keep, dist = pairs.edit_distance_filter(texts, np.array([0, 0]), np.array([1, 2]), PairRule(unit="chars"))
    assert keep.tolist() == [True, False] and dist.tolist() == [16, 15]


def test_word_unit_counts_words_not_characters():
    texts = ["the quick brown fox", "the quick brown wolf"]
    _, dist = pairs.edit_distance_filter(texts, np.array([0]), np.array([1]), PairRule(min_distance=0))
    assert dist.tolist() == [1]


def test_mine_page_matches_brute_force():
    rng = np.random.default_rng(3)
    vocab = [f"v{k}" for k in range(60)]
    texts = [" ".join(rng.choice(vocab, size=rng.integers(5, 40))) for _ in range(80)]
    emb = np.repeat(rng.normal(size=(4, 8)), 20, axis=0) + rng.normal(scale=0.6, size=(80, 8))
    for rule in (PairRule(), PairRule(unit="chars", min_distance=40), PairRule(low=0.5, min_distance=3)):
        got = pairs.mine_page(texts, emb, rule, chunk_rows=7)
        assert set(zip(got.i.tolist(), got.j.tolist())) == brute_force(emb, texts, rule)
        assert (np.diff(got.i) >= 0).all()


def test_rule_validation():
    with pytest.raises(ValueError):
        PairRule(unit="tokens")
    with pytest.raises(ValueError):
        PairRule(low=0.9, high=0.8)


def test_page_slices_and_sharding():
    ids = ["a", "a", "b", "c", "c", "c"]
    assert [(p, (s.start, s.stop)) for p, s in pairs.page_slices(ids)] == [("a", (0, 2)), ("b", (2, 3)), ("c", (3, 6))]
    shard = pairs.shard_of_pages(ids, 2)
    assert shard == {"c": 0, "a": 1, "b": 1}
    assert pairs.shard_of_pages(ids, 2) == shard  # deterministic
