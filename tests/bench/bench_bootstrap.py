"""Time the bootstrap of every Table 1 cell (``alpha.eval.bootstrap``) for 13 models on synthetic metric frames
of paper size, on one core. Per cell: rows, units, the per-row preparation (WD / similarity / prediction per
row, the metric module's own functions) and the B replicates, per model; then the total for 13 models x 12
cells and the peak RSS. Target: minutes.

    python tests/bench/bench_bootstrap.py [--models 13] [--n 1000] [--scale 1.0]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from alpha.eval import bootstrap  # noqa: E402

GROUPS, CONTEXTS = 22, ("qa", "bio", "portray")


def _dirichlet(rng: np.random.Generator, n_rows: int, n_options: int) -> list[np.ndarray]:
    return list(rng.dirichlet(np.ones(n_options), size=n_rows))


def ordinal(rng, n_questions: int, groups: int = 0, years: int = 0, skipped: float = 0.01) -> pd.DataFrame:
    """Representativeness (groups = years = 0), steerability (groups x 3 contexts) or GSS temporal (years)."""
    q = np.arange(n_questions)
    n_options = 3 + q % 4
    if groups:
        keys = pd.MultiIndex.from_product([q, [f"g{g:02d}" for g in range(groups)], CONTEXTS],
                                          names=["q", "group", "context"]).to_frame(index=False)
    elif years:
        keys = pd.MultiIndex.from_product([q, 1972 + 2 * np.arange(years)], names=["q", "year"]).to_frame(index=False)
    else:
        keys = pd.DataFrame({"q": q})
    k = n_options[keys["q"].to_numpy()]
    model = [rng.dirichlet(np.ones(n)) for n in k]
    for i in np.flatnonzero(rng.random(len(keys)) < skipped):
        model[i] = np.full(k[i], np.nan)  # prompts skipped as too long
    frame = keys.assign(question=[f"Q{v:05d}" for v in keys.pop("q")], model_probs=model,
                        human_probs=[rng.dirichlet(np.ones(n)) for n in k],
                        ordinals=[np.arange(1.0, n + 1) if j % 50 else np.ones(n) for j, n in zip(keys.index, k)])
    if groups:
        frame["overall_probs"] = frame["human_probs"]
    return frame


def goqa(rng, n_questions: int, countries: int) -> pd.DataFrame:
    rows = []
    for q in range(n_questions):
        n = 2 + q % 4
        chosen = rng.choice(countries, size=countries - q % 5, replace=False)  # most questions: most countries
        rows += [(f"goqa:{q}", f"C{c:02d}", n) for c in sorted(chosen)]
    frame = pd.DataFrame(rows, columns=["question", "country", "n"])
    return frame.assign(model_probs=[rng.dirichlet(np.ones(n)) for n in frame["n"]],
                        human_probs=[rng.dirichlet(np.ones(n)) for n in frame.pop("n")])


def culturebank(rng, n_items: int, subset: str) -> pd.DataFrame:
    p_yes = rng.random(n_items)
    return pd.DataFrame({"item_id": [f"culturebank:{subset}:{i}" for i in range(n_items)], "p_yes": p_yes, "p_no": 1 - p_yes,
                         "agreement": rng.random(n_items)})


def culturenli(rng, n_pairs: int) -> pd.DataFrame:
    labels = np.array(["E", "N", "C"])
    return pd.DataFrame({"premise": [f"P{i // 3}" for i in range(n_pairs)], "hypothesis": [f"H{i}" for i in range(n_pairs)],
                         "ratings": [list(labels[rng.integers(0, 3, size=5)]) for _ in range(n_pairs)],
                         "p_entail": rng.random(n_pairs)})


def other_model(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Another model's scores on the same items (not timed)."""
    if "model_probs" in frame:
        return frame.assign(model_probs=[p if np.isnan(p).any() else rng.dirichlet(np.ones(len(p))) for p in frame["model_probs"]])
    if "p_yes" in frame:
        p_yes = rng.random(len(frame))
        return frame.assign(p_yes=p_yes, p_no=1 - p_yes)
    return frame.assign(p_entail=rng.random(len(frame)))


def cells(scale: float) -> list[tuple[str, str, str, str, callable]]:
    """(column, benchmark, metric, variant, frame builder) for the twelve Table 1 cells."""
    s = lambda n: max(10, int(n * scale))  # noqa: E731
    return [
        ("OpinionQA-XL Representativeness", "opinionqa_xl", "representativeness", "reference", lambda r: ordinal(r, s(1500))),
        ("OpinionQA-XL Steerability", "opinionqa_xl", "steerability", "reference", lambda r: ordinal(r, s(1500), groups=GROUPS)),
        ("OpinionQA Representativeness", "opinionqa", "representativeness", "reference", lambda r: ordinal(r, s(1500))),
        ("OpinionQA Steerability", "opinionqa", "steerability", "reference", lambda r: ordinal(r, s(1500), groups=GROUPS)),
        ("GlobalOpinionQA Avg Sim", "globalopinionqa", "goqa_avg_sim", "compat", lambda r: goqa(r, s(2500), 40)),
        ("GlobalOpinionQA Skew", "globalopinionqa", "goqa_skew", "compat", lambda r: goqa(r, s(2500), 40)),
        ("CultureBank Reddit", "culturebank", "culturebank_accuracy", "reference", lambda r: culturebank(r, s(11000), "reddit")),
        ("CultureBank TikTok", "culturebank", "culturebank_accuracy", "reference", lambda r: culturebank(r, s(11000), "tiktok")),
        ("CultureNLI US", "culturenli", "culturenli_macro_f1", "reference", lambda r: culturenli(r, s(2700))),
        ("CultureNLI IN", "culturenli", "culturenli_macro_f1", "reference", lambda r: culturenli(r, s(2700))),
        ("GSS Representativeness", "gss", "representativeness", "reference", lambda r: ordinal(r, s(600))),
        ("GSS Steerability", "gss", "temporal_steerability", "reference", lambda r: ordinal(r, s(600), years=6)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=13)
    ap.add_argument("--n", type=int, default=1000, help="replicates per cell (eval.bootstrap.n)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every frame's size")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    print(f"{args.models} models x 12 cells, B = {args.n}, one core, DRAW_BLOCK = {bootstrap.DRAW_BLOCK}\n")
    print("| cell | rows | units | strata | prepare s/model | replicates s/model | cell s (all models) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total_prep = total_reps = 0.0
    for column, benchmark, metric, variant, build in cells(args.scale):
        prep_s = reps_s = 0.0
        digests = set()
        base = build(np.random.default_rng(0))
        for m in range(args.models):
            frame = base if m == 0 else other_model(base, np.random.default_rng(100 + m))
            t0 = time.perf_counter()
            prepared = bootstrap.prepare(frame, metric, variant)
            t1 = time.perf_counter()
            values = bootstrap.replicates(prepared, args.n, 0, benchmark, column)
            t2 = time.perf_counter()
            prep_s, reps_s = prep_s + t1 - t0, reps_s + t2 - t1
            digests.add(prepared.digest)
            assert len(values) == args.n
        assert len(digests) == 1, column  # every model resamples the same units
        total_prep, total_reps = total_prep + prep_s, total_reps + reps_s
        print(f"| {column} | {len(frame):,} | {prepared.n_units:,} | {len(prepared.sizes)} | {prep_s / args.models:.2f} "
              f"| {reps_s / args.models:.2f} | {prep_s + reps_s:.1f} |")
        sys.stdout.flush()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntotal: {total_prep + total_reps:.1f} s ({total_prep:.1f} s preparing rows, {total_reps:.1f} s replicates) "
          f"for {args.models} x 12 cells; peak RSS {rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
