"""Embedding throughput (sentences/s) of the packaged all-MiniLM-L6-v2, float32 vs bf16 (`make bench`).

    python tests/bench/bench_embed.py [--n 4000 --batch-sizes 64 256]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from alpha.pairs import embeddings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    words = "save big today on new homes boots trucks loans tours classes shoes music farms waves tech jobs near you".split()
    texts = [" ".join(rng.choice(words, size=rng.integers(10, 80))) for _ in range(args.n)]
    model = embeddings.load_model()
    embeddings.encode(model, texts[:64])  # warm-up
    bf16_options = [False, True] if embeddings.bf16_supported() else [False]
    print("| precision | batch size | sentences/s |")
    print("|---|---:|---:|")
    for bf16 in bf16_options:
        for bs in args.batch_sizes:
            t = time.perf_counter()
            embeddings.encode(model, texts, batch_size=bs, bf16=bf16)
            print(f"| {'bf16' if bf16 else 'float32'} | {bs} | {args.n / (time.perf_counter() - t):,.0f} |")
            sys.stdout.flush()
    if len(bf16_options) > 1:
        print(f"\nmin cosine bf16 vs float32 over {args.n} texts: {embeddings.bf16_agreement(model, texts):.5f}")


if __name__ == "__main__":
    main()
