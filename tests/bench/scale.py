"""`make scale`: the data path at growing sizes, on the embedded generator, with every rule measured.

For each size N (ads; pages = N / --ads-per-page), a temporary copy of the workflow runs demo inputs ->
ads -> census -> embeddings -> pairs -> tasks -> the `alpha` shard set and the test sets, and the
table reports, per rule, wall time, CPU time and peak RSS (from the rules' `benchmark:` files, summed
over a rule's jobs; RSS is the largest job's), the count that drives the rule, and the growth
exponent between consecutive sizes (log-log slope of time against that count; RSS as a ratio).

    python tests/bench/scale.py [--sizes 3000 30000 150000] [--ads-per-page 20] [--keep DIR]

Targets (issue "paper-scale rehearsal"): time slope <= 1.1 against the driving count; peak RSS flat
within 1.5x between the two largest sizes; `snakemake -n` on the paper shape under 20 s (bench_dag.py).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import copy_workflow, snakemake  # noqa: E402

TARGETS = ("results/shards/alpha", "results/tasks/test/report.json", "results/ads/census_report.json")
# the count each rule's work should grow with (pairs: within-page candidates grow with the sum of squared page sizes)
DRIVER = {
    "demo_inputs": "ads", "demo_external": "external", "ingest_dump": "ads", "merge_ads": "ads",
    "normalise_census": "ads", "distinct_bodies": "ads", "embed_ads": "distinct_bodies", "gather_embeddings": "ads",
    "extract_keywords": "distinct_bodies", "gather_keywords": "ads", "split_ads": "ads",
    "ad_tasks": "ads", "mine_pairs": "candidate_pairs", "pair_tasks": "mined_pairs",
    "test_sets": "samples", "make_shards": "shard_rows",
}
ORDER = list(DRIVER)


def rule_costs(results: Path) -> dict[str, dict]:
    """Per rule: jobs, summed wall and CPU seconds, largest peak RSS (MB), from results/benchmarks."""
    costs: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
    bench = results / "benchmarks"
    for tsv in sorted(bench.rglob("*.tsv")):
        rule = tsv.relative_to(bench).parts[0].removesuffix(".tsv")
        with open(tsv, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                c = costs[rule]
                c["jobs"] += 1
                c["s"] += float(row["s"])
                c["cpu_s"] += float(row["cpu_time"]) if row["cpu_time"] not in ("", "-", "NA") else math.nan
                rss = row["max_rss"]
                c["max_rss_mb"] = max(c["max_rss_mb"], float(rss) if rss not in ("", "-", "NA") else 0.0)
    return dict(costs)


def data_counts(results: Path) -> dict[str, int]:
    """The counts that drive the rules: ads, pages, the largest page, distinct bodies, within-page
    candidate pairs, mined pairs, samples (all tasks and splits), rows of the alpha shard set."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ads = pq.read_table(results / "ads/ads.parquet", columns=["page_id", "body"])
    sizes = pc.value_counts(ads.column("page_id")).field("counts").to_numpy()
    samples = [pq.ParquetFile(p).metadata.num_rows for p in sorted((results / "tasks/samples").rglob("*.parquet"))]
    manifest = json.loads((results / "shards/alpha/manifest.json").read_text())
    return {
        "ads": ads.num_rows,
        "pages": len(sizes),
        "largest_page": int(sizes.max()),
        "distinct_bodies": len(pc.unique(ads.column("body"))),
        "candidate_pairs": int((sizes * (sizes - 1) // 2).sum()),
        "mined_pairs": sum(pq.ParquetFile(p).metadata.num_rows for p in (results / "pairs/shards").glob("*.parquet")),
        "samples": sum(samples),
        "shard_rows": int(manifest["total_rows"]),
        "external": 0,
    }


def run_size(n_ads: int, ads_per_page: int, root: Path) -> dict:
    workdir = copy_workflow(root / f"n{n_ads}")
    n_external = max(200, n_ads // 15)
    override = workdir / "config/scale.yaml"
    # the demo's small blocks exist to show the split on 2,855 ads; at scale, the schema's defaults
    override.write_text(json.dumps({"demo": {"n_ads": n_ads, "n_pages": max(1, n_ads // ads_per_page),
                                             "n_external": n_external},
                                    "pairs": {"embed_block_rows": 4096}, "tasks": {"keywords": {"block_docs": 20000}}}))
    started = time.perf_counter()
    snakemake(workdir, *TARGETS, "--configfile", str(override.relative_to(workdir)),
              timeout=6 * 3600)
    wall = time.perf_counter() - started
    results = workdir / "results"
    counts = data_counts(results)
    counts["external"] = n_external
    return {"n_ads": n_ads, "wall_s": wall, "counts": counts, "rules": rule_costs(results)}


def slope(a: float, b: float, x1: float, x2: float) -> float:
    if min(a, b, x1, x2) <= 0 or x1 == x2:
        return math.nan
    return math.log(b / a) / math.log(x2 / x1)


def table(runs: list[dict]) -> str:
    sizes = [r["n_ads"] for r in runs]
    lines = ["| rule | driven by | " + " | ".join(f"{n:,} ads: s / CPU s / peak MB" for n in sizes)
             + " | " + " | ".join(f"time slope {a:,}→{b:,}" for a, b in zip(sizes, sizes[1:]))
             + " | peak RSS ×, last step |",
             "|---|---|" + "---:|" * (len(sizes) + len(sizes) - 1 + 1)]
    rules = [r for r in ORDER if any(r in run["rules"] for run in runs)]
    rules += sorted({r for run in runs for r in run["rules"]} - set(rules))
    for rule in rules:
        driver = DRIVER.get(rule, "ads")
        cells, times, drivers, rss = [], [], [], []
        for run in runs:
            c = run["rules"].get(rule)
            if c is None:
                cells.append("–")
                times.append(math.nan), drivers.append(math.nan), rss.append(math.nan)
                continue
            cells.append(f"{c['s']:.1f} / {c['cpu_s']:.1f} / {c['max_rss_mb']:,.0f}" + (f" ({c['jobs']} jobs)" if c["jobs"] > 1 else ""))
            times.append(c["s"]), drivers.append(run["counts"][driver]), rss.append(c["max_rss_mb"])
        slopes = [slope(times[i], times[i + 1], drivers[i], drivers[i + 1]) for i in range(len(runs) - 1)]
        ratio = rss[-1] / rss[-2] if len(rss) > 1 and rss[-2] else math.nan
        lines.append(f"| {rule} | {driver} | " + " | ".join(cells) + " | "
                     + " | ".join("–" if math.isnan(s) else f"{s:.2f}" for s in slopes)
                     + f" | {'–' if math.isnan(ratio) else f'{ratio:.2f}×'} |")
    lines.append("| **whole data path** (wall) | | " + " | ".join(f"{r['wall_s']:.0f} s" for r in runs) + " |"
                 + " |" * (len(runs)))
    keys = ["ads", "pages", "largest_page", "distinct_bodies", "candidate_pairs", "mined_pairs", "samples", "shard_rows"]
    counts = ["", "| count | " + " | ".join(f"{n:,} ads" for n in sizes) + " |", "|---|" + "---:|" * len(sizes)]
    counts += [f"| {k} | " + " | ".join(f"{r['counts'][k]:,}" for r in runs) + " |" for k in keys]
    return "\n".join(lines + counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[3000, 30000, 150000])
    ap.add_argument("--ads-per-page", type=int, default=20)
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs here (default: a temporary folder, removed)")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw measurements here")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="alpha-scale-"))
    runs = []
    try:
        for n in args.sizes:
            print(f"scale: {n:,} ads ...", file=sys.stderr, flush=True)
            runs.append(run_size(n, args.ads_per_page, root))
            print(f"scale: {n:,} ads done in {runs[-1]['wall_s']:.0f} s", file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps(runs, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(table(runs))


if __name__ == "__main__":
    main()
