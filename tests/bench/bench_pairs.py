"""Pair mining: our blocked exact miner vs the naive baseline, on the same synthetic pages (`make bench`).

Synthetic: N ads on Zipf-sized pages (largest page set by --largest), 384-d embeddings made of
paraphrase clusters (so a realistic share of pairs pass cosine 0.7), texts that are word-level
rewrites of their cluster's message. The naive baseline is what the authors' pipeline does per page:
sentence-transformers' `paraphrase_mining_embeddings` with top_k / max_pairs raised until nothing is
truncated, then a Python loop of `Levenshtein.distance` over the candidates. Both must return the
same pair set (asserted). The naive side runs on the pages up to --naive-ads ads (it is quadratic
in memory and slow), and the speed-up is measured on exactly those pages.

    python tests/bench/bench_pairs.py [--ads 100000 --largest 10000 --naive-ads 20000]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from alpha.pairs import mining as pairs  # noqa: E402
from alpha.pairs.mining import PairRule  # noqa: E402


def synthetic(n_ads: int, largest: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = [largest]
    k = 2
    while sum(sizes) < n_ads:
        sizes.append(max(2, min(n_ads - sum(sizes), int(largest / k**0.9))))
        k += 1
    vocab = np.array([f"w{v}" for v in range(5000)])
    page_texts, page_embs = [], []
    for size in sizes:
        n_clusters = max(1, size // 8)
        centres = rng.normal(size=(n_clusters, 384)).astype(np.float32)
        messages = [rng.choice(vocab, size=40) for _ in range(n_clusters)]
        cluster = rng.integers(0, n_clusters, size)
        emb = centres[cluster] + rng.normal(scale=0.55, size=(size, 384)).astype(np.float32)
        texts = []
        for c in cluster:
            words = messages[c].copy()
            flips = rng.random(len(words)) < rng.uniform(0.1, 0.6)
            words[flips] = rng.choice(vocab, size=int(flips.sum()))
            texts.append(" ".join(words))
        page_texts.append(texts)
        page_embs.append(emb)
    return page_texts, page_embs


def ours(page_texts, page_embs, rule):
    return [pairs.mine_page(t, e, rule, chunk_rows=1024) for t, e in zip(page_texts, page_embs)]


def naive(page_texts, page_embs, rule):
    import Levenshtein
    import torch
    from sentence_transformers.util import paraphrase_mining_embeddings

    out = []
    for texts, emb in zip(page_texts, page_embs):
        n = len(texts)
        if n < 2:
            out.append(set())
            continue
        found = paraphrase_mining_embeddings(torch.from_numpy(pairs.normalise(emb)), top_k=n, max_pairs=n * n, query_chunk_size=5000,
                                             corpus_chunk_size=100000)
        keep = set()
        for score, i, j in found:
            i, j = min(i, j), max(i, j)
            if rule.low < score < 1.0 - pairs.DUPLICATE_TOLERANCE:
                a, b = (texts[i].split(), texts[j].split()) if rule.unit == "words" else (texts[i], texts[j])
                if Levenshtein.distance(a, b) > rule.min_distance:
                    keep.add((i, j))
        out.append(keep)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ads", type=int, default=100_000)
    ap.add_argument("--largest", type=int, default=10_000)
    ap.add_argument("--naive-ads", type=int, default=20_000)
    args = ap.parse_args()
    rule = PairRule()
    page_texts, page_embs = synthetic(args.ads, args.largest)
    n_pages = len(page_texts)

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    result = ours(page_texts, page_embs, rule)
    t_ours = time.perf_counter() - t
    n_pairs = sum(len(r.i) for r in result)
    rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # the naive side on as many of the largest pages as fit in --naive-ads ads
    order = sorted(range(n_pages), key=lambda p: -len(page_texts[p]))
    subset, total = [], 0
    for p in order:
        if total + len(page_texts[p]) <= args.naive_ads:
            subset.append(p)
            total += len(page_texts[p])
    sub_t, sub_e = [page_texts[p] for p in subset], [page_embs[p] for p in subset]
    t = time.perf_counter()
    ours_sub = ours(sub_t, sub_e, rule)
    t_ours_sub = time.perf_counter() - t
    t = time.perf_counter()
    naive_sub = naive(sub_t, sub_e, rule)
    t_naive_sub = time.perf_counter() - t
    for r, expected in zip(ours_sub, naive_sub):
        assert set(zip(r.i.tolist(), r.j.tolist())) == expected, "pair sets differ"
    largest_naive = max(len(t) for t in sub_t)

    print("| run | ads | pages (largest) | pairs kept | our miner s | naive s | speed-up | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| all pages | {sum(map(len, page_texts)):,} | {n_pages:,} ({max(map(len, page_texts)):,}) | {n_pairs:,} "
          f"| {t_ours:.1f} | – | – | {rss_ours:.0f} (from {base_rss:.0f}) |")
    print(f"| naive subset (identical pair sets) | {total:,} | {len(subset):,} ({largest_naive:,}) | {sum(len(r.i) for r in ours_sub):,} "
          f"| {t_ours_sub:.2f} | {t_naive_sub:.1f} | {t_naive_sub / t_ours_sub:.0f}x | – |")


if __name__ == "__main__":
    main()
