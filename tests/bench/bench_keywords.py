"""KeyBERT keyword throughput (docs/s) of alpha.tasks.keywords.extract_keywords, by batch size, with and
without the word-embedding cache, on synthetic ad-like texts; peak RSS at the end.

    python tests/bench/bench_keywords.py [--n 5000 --batch-docs 500 2000 5000 --threads 2]

Document embeddings are computed once up front (the workflow reads them from embed_ads), so the
timings cover vocabulary, word embeddings and KeyBERT's scoring only. Each run starts with a cold
cache; the "warm" row reruns with the cache the cached run filled (scoring cost alone).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from alpha.pairs import embeddings  # noqa: E402
from alpha.tasks import keywords


def ad_words(model, n_words: int, rng) -> list[str]:
    """Whole English words from the model's own WordPiece vocabulary, shuffled (Zipf rank order)."""
    vocab = [w for w in model.tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) >= 3]
    vocab.sort()
    return list(rng.permutation(vocab)[:n_words])


def synthetic_ads(model, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ad_words(model, 12_000, rng)
    glue = "the and for your our with on in to of now today free new".split()
    ranks = np.minimum(rng.zipf(1.15, size=n * 80), len(words)) - 1
    texts, pos = [], 0
    for _ in range(n):
        size = int(rng.integers(8, 60))
        picked = [words[r] if rng.random() > 0.3 else glue[r % len(glue)] for r in ranks[pos:pos + size]]
        pos += size
        texts.append(" ".join(picked).capitalize() + ".")
    return texts


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--batch-docs", type=int, nargs="+", default=[500, 2000, 5000])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    kw = keywords.keybert()
    texts = synthetic_ads(kw.model.embedding_model, args.n)
    doc_emb = embeddings.encode(kw.model.embedding_model, texts)
    keywords.extract_keywords(kw, texts[:50], doc_emb[:50])  # warm-up
    print(f"{args.n} synthetic ads, {len(keywords.vocabulary(texts))} distinct candidate words, torch threads {args.threads}; "
          f"RSS before runs {peak_rss_mb():,.0f} MB\n")
    print("| batch_docs | word cache | docs/s | words embedded | cache hits |")
    print("|---:|---|---:|---:|---:|")
    reference = None
    for batch_docs in args.batch_docs:
        cached = keywords.WordCache(kw.model.embed, keywords.DEFAULT_CACHE_WORDS)
        # Last, the filled cache again: every word a hit, as most are once a large input has warmed it up.
        runs = [(f"{keywords.DEFAULT_CACHE_WORDS:,} words", cached), ("off", keywords.WordCache(kw.model.embed, 0)),
                ("warm (all cached)", cached)]
        for label, cache in runs:
            embedded, hits = cache.embedded, cache.hits
            t = time.perf_counter()
            found = keywords.keywords_batched(kw, texts, doc_emb, 5, batch_docs, cache)
            rate = args.n / (time.perf_counter() - t)
            reference = reference or found
            same = "" if found == reference else " (differs!)"
            print(f"| {batch_docs} | {label} | {rate:,.0f}{same} | {cache.embedded - embedded:,} | {cache.hits - hits:,} |")
            sys.stdout.flush()
    print(f"\npeak RSS: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
