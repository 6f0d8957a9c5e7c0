"""Rule pair_tasks (``build_pair_tasks``): pairs/s and the log-log time slope against the number of mined pairs.

Synthetic shard, built here with numpy (no workflow run): ads on pages of Zipf-like sizes (blocks of 40 pages
of --largest / k ads, k = 1..40, repeated, so pairs grow linearly with ads: about 50 pairs an ad), a seeded
~45% of each page's within-page pairs kept as "mined" pairs, written page by page in (ad_id_1, ad_id_2)
order as mine_pairs writes them, with distances 5..16 (16 = over the cut-off, as mining
reports). Segments are random but shaped like the census output: 2 genders, 6 ages, 12 age x gender cells
(with some ties for the top), 5-40 of 51 states, spend midpoints with nulls, mostly USD, and bodies of
10-80 words. Splits: a page held out whole 1 time in 5, else ads after the cut-off 1 in 6 (so some pairs
straddle two splits). The ad count per size is chosen so pairs grow about 5x between the two sizes.

The table: per size the pairs, samples, wall seconds and pairs/s of the current implementation, and the slope
of log(time) against log(pairs) between the sizes. ``--reference`` also times the per-pair implementation
kept in tests/unit/test_pair_tasks_speed.py (what the rule ran before it was vectorised) and checks that
both write the same bytes.

    python tests/bench/bench_pair_tasks.py [--pairs 300000 1500000] [--batch-rows 20000] [--reference]
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from alpha.tasks import builders  # noqa: E402

STATES = [f"State{k:02d}" for k in range(51)]
GENDERS = ["female", "male"]
AGES = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
CELLS = [f"{g} {a}" for g in GENDERS for a in AGES]
WORDS = np.array([f"w{k}" for k in range(3000)])
KEEP_PAIR = 0.45
PAGES_PER_BLOCK = 40


def _page_sizes(n_ads: int, largest: int) -> list[int]:
    """Blocks of PAGES_PER_BLOCK pages of largest / k ads (k = 1, 2, ...), repeated: pairs grow linearly with ads."""
    sizes, total, k = [], 0, 0
    while total < n_ads:
        sizes.append(max(2, min(n_ads - total, largest // (1 + k % PAGES_PER_BLOCK))))
        total += sizes[-1]
        k += 1
    return sizes


def expected_pairs(n_ads: int, largest: int) -> float:
    return KEEP_PAIR * sum(s * (s - 1) / 2 for s in _page_sizes(n_ads, largest))


def ads_for_pairs(n_pairs: int, largest: int) -> int:
    lo, hi = 10, 2_000_000
    while lo < hi:
        mid = (lo + hi) // 2
        if expected_pairs(mid, largest) < n_pairs:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _ranked(rng, names: list[str], n: int, tie_rate: float):
    """Per ad a random ranking of ``names`` with descending indexes, the top tied with the second at ``tie_rate``."""
    order = np.argsort(rng.random((n, len(names))), axis=1)
    values = -np.sort(-rng.gamma(2.0, 0.5, (n, len(names))), axis=1).round(2)
    tied = rng.random(n) < tie_rate
    values[tied, 0] = values[tied, 1]
    ranked = [[names[k] for k in row] for row in order.tolist()]
    return ranked, values.tolist()


def synthetic(folder: Path, n_ads: int, largest: int = 600, seed: int = 0) -> tuple[Path, Path, Path, Path]:
    rng = np.random.default_rng(seed)
    sizes = _page_sizes(n_ads, largest)
    page_of = np.repeat(np.arange(len(sizes)), sizes)
    ad_ids = [f"{10**14 + 7919 * k}" for k in range(n_ads)]
    page_ids = [f"{10**9 + 31 * p}" for p in page_of.tolist()]
    lengths = rng.integers(10, 80, n_ads)
    bodies = [" ".join(rng.choice(WORDS, n)) for n in lengths.tolist()]
    currency = rng.choice(["USD"] * 8 + ["EUR", None], n_ads).tolist()
    ads = pa.table({
        "ad_id": ad_ids, "page_id": page_ids, "page_name": [f"Page {p}" for p in page_of.tolist()], "body": bodies,
        "delivery_start": pa.array([None] * n_ads, pa.date32()), "delivery_stop": pa.array([None] * n_ads, pa.date32()),
        "created": pa.array([None] * n_ads, pa.date32()), "currency": pa.array(currency, pa.string()),
        "spend_lower": pa.array([100] * n_ads, pa.int64()), "spend_upper": pa.array([199] * n_ads, pa.int64()),
    })
    genders, gender_idx = _ranked(rng, GENDERS, n_ads, 0.05)
    ages, age_idx = _ranked(rng, AGES, n_ads, 0.05)
    cells, cell_idx = _ranked(rng, CELLS, n_ads, 0.05)
    n_states = rng.integers(5, 41, n_ads)
    state_order = np.argsort(rng.random((n_ads, len(STATES))), axis=1)
    states = [[STATES[k] for k in row[:m]] for row, m in zip(state_order.tolist(), n_states.tolist())]
    spend = rng.choice([50.0, 150.0, 550.0, 2500.0, np.nan], n_ads)
    seg_type = pa.list_(pa.string())
    val_type = pa.list_(pa.float64())
    segments = pa.table({
        "ad_id": ad_ids, "page_id": page_ids, "state_ranked": pa.array(states, seg_type),
        "gender_ranked": pa.array(genders, seg_type), "gender_index_ranked": pa.array(gender_idx, val_type),
        "age_ranked": pa.array(ages, seg_type), "age_index_ranked": pa.array(age_idx, val_type),
        "age_gender_ranked": pa.array(cells, seg_type), "age_gender_index_ranked": pa.array(cell_idx, val_type),
        "spend_mid": pa.array(spend, pa.float64(), from_pandas=True),
    })
    held = rng.random(len(sizes)) < 0.2
    split = np.where(held[page_of], "test_unseen_advertiser", np.where(rng.random(n_ads) < 1 / 6, "test_after_cutoff", "train"))
    splits = pa.table({"ad_id": ad_ids, "page_id": page_ids, "split": split.tolist()})
    # the ads in scattered order, as merge_ads leaves them relative to pages
    order = rng.permutation(n_ads)
    paths = [folder / name for name in ("pairs.parquet", "ads.parquet", "segments.parquet", "splits.parquet")]
    for table, path in zip((ads, segments, splits), paths[1:]):
        pq.write_table(table.take(order), path, row_group_size=65_536)
    ids = np.array(ad_ids, dtype=object)
    with pq.ParquetWriter(paths[0], pairs_schema()) as writer:
        start = 0
        for p, size in enumerate(sizes):
            i, j = np.triu_indices(size, 1)
            keep = rng.random(len(i)) < KEEP_PAIR
            i, j = i[keep] + start, j[keep] + start
            start += size
            if not len(i):
                continue
            writer.write_table(pa.table({
                "page_id": pa.array([page_ids[i[0]]] * len(i), pa.string()), "ad_id_1": pa.array(ids[i], pa.string()),
                "ad_id_2": pa.array(ids[j], pa.string()), "cosine": np.full(len(i), 0.8),
                "distance": pa.array(np.minimum(rng.integers(5, 30, len(i)), 16), pa.int32()),
            }, schema=pairs_schema()))
    return tuple(paths)


def pairs_schema() -> pa.Schema:
    return pa.schema([("page_id", pa.string()), ("ad_id_1", pa.string()), ("ad_id_2", pa.string()), ("cosine", pa.float64()),
                      ("distance", pa.int32())])


def timed(fn, inputs, out: Path, batch_rows: int) -> tuple[float, dict]:
    rules = builders.PairTaskRules(region_min_rank_diff=3, min_distance=15)
    t0 = time.perf_counter()
    report = fn(*inputs, out, rules, batch_rows=batch_rows)
    return time.perf_counter() - t0, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[300_000, 1_500_000])
    parser.add_argument("--largest", type=int, default=600, help="ads on the largest page")
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--reference", action="store_true", help="also time the old per-pair implementation")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    impls = {"vectorised": builders.build_pair_tasks}
    if args.reference:
        from test_pair_tasks_speed import reference_build_pair_tasks

        impls["per-pair (old)"] = reference_build_pair_tasks
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pair_tasks-") as tmp:
        for n_pairs in args.pairs:
            folder = Path(tmp) / str(n_pairs)
            folder.mkdir()
            n_ads = ads_for_pairs(n_pairs, args.largest)
            t0 = time.perf_counter()
            inputs = synthetic(folder, n_ads, args.largest)
            made = time.perf_counter() - t0
            pairs = pq.ParquetFile(inputs[0]).metadata.num_rows
            print(f"# {pairs:,} pairs from {n_ads:,} ads: inputs built in {made:.1f} s", flush=True)
            outputs = {}
            for name, fn in impls.items():
                out = folder / f"{name.split()[0]}.parquet"
                seconds, report = timed(fn, inputs, out, args.batch_rows)
                samples = sum(n for by_split in report["samples"].values() for n in by_split.values())
                rows.append((name, pairs, n_ads, samples, seconds))
                outputs[name] = (out.read_bytes(), report)
                print(f"#   {name}: {seconds:.1f} s", flush=True)
            if len(outputs) > 1:
                first, *rest = outputs.values()
                assert all(o == first for o in rest), "the implementations wrote different bytes or reports"
                print("#   same bytes and report", flush=True)
    print()
    print(f"{'implementation':<16} {'pairs':>11} {'ads':>8} {'samples':>11} {'seconds':>8} {'pairs/s':>10} {'us/pair':>8} {'slope':>6}")
    last: dict[str, tuple[int, float]] = {}
    for name, pairs, n_ads, samples, seconds in rows:
        slope = ""
        if name in last:
            p0, s0 = last[name]
            slope = f"{math.log(seconds / s0) / math.log(pairs / p0):.2f}"
        last[name] = (pairs, seconds)
        print(f"{name:<16} {pairs:>11,} {n_ads:>8,} {samples:>11,} {seconds:>8.2f} {pairs / seconds:>10,.0f} "
              f"{1e6 * seconds / pairs:>8.2f} {slope:>6}")


if __name__ == "__main__":
    main()
