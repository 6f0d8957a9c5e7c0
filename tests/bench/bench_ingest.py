"""Ingestion throughput and peak memory on synthetic dumps of 50k and 500k ads (`make bench`).

Each size runs in a fresh child process so its peak RSS (ru_maxrss) is its own. Records have the
shape of real US ads: ~45 reported states, 14 age x gender cells, two frames, a snapshot URL with a
token. Prints a Markdown table for the README.

    python tests/bench/bench_ingest.py [--sizes 50000 500000] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATES = [line.split(",")[0] for line in (ROOT / "config/census/census2020_state_population.csv").read_text().splitlines()[1:]]
AGES = ["13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
WORDS = "save big today on new homes boots trucks loans tours classes shoes music farms waves tech jobs near you".split()


def write_dump(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            states = rng.sample(STATES[:51], 45)
            weights = [rng.random() for _ in states]
            total = sum(weights)
            demo = [(a, g, rng.random()) for a in AGES for g in ("male", "female")]
            dtotal = sum(w for *_, w in demo)
            ad_id = str(10**15 + i)
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
            rec = {
                "id": ad_id,
                "page_id": str(10**8 + i % 20000),
                "page_name": f"Page {i % 20000}",
                "bylines": "Someone",
                "ad_creation_time": "2023-03-01",
                "ad_delivery_start_time": "2023-03-02",
                "ad_delivery_stop_time": "2023-04-02",
                "ad_creative_bodies": [body + " https://x.example.com/a", body],
                "currency": "USD",
                "spend": {"lower_bound": "100", "upper_bound": "199"},
                "impressions": {"lower_bound": "10000", "upper_bound": "14999"},
                "estimated_audience_size": {"lower_bound": "100000", "upper_bound": "500000"},
                "demographic_distribution": [
                    {"percentage": f"{w / dtotal:.6g}", "age": a, "gender": g} for a, g, w in demo
                ],
                "delivery_by_region": [
                    {"percentage": f"{w / total:.6g}", "region": s} for s, w in zip(states, weights)
                ],
                "languages": ["en"],
                "publisher_platforms": ["facebook", "instagram"],
                "ad_snapshot_url": f"https://www.facebook.com/ads/archive/render_ad/?id={ad_id}&access_token=BENCH",
            }
            fh.write(json.dumps(rec) + "\n")


CHILD = """
import sys, time, json, resource
from pathlib import Path
sys.path.insert(0, {scripts!r})
from alpha.ads import ingest
from alpha.ads.cleaning import CleaningOptions
spec = ingest.DumpSpec("bench", Path({dump!r}))
t = time.perf_counter()
rep = ingest.ingest_dump(spec, Path({out!r}), Path({quar!r}), CleaningOptions())
t_ingest = time.perf_counter() - t
t = time.perf_counter()
ingest.merge_dumps([(Path({out!r}), Path({quar!r}), rep)], Path({merged!r}), Path({mq!r}), Path({md!r}))
t_merge = time.perf_counter() - t
print(json.dumps(dict(n=rep["in"], kept=rep["parsed_kept"], t_ingest=t_ingest, t_merge=t_merge,
                      rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def bench(n: int, workdir: Path) -> dict:
    dump = workdir / f"bench_{n}.jsonl"
    if not dump.exists():
        write_dump(dump, n)
    code = CHILD.format(
        scripts=str(ROOT / "scripts"), dump=str(dump), out=str(workdir / "a.parquet"), quar=str(workdir / "q.parquet"),
        merged=str(workdir / "m.parquet"), mq=str(workdir / "mq.parquet"), md=str(workdir / "md.parquet"),
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["mb"] = dump.stat().st_size / 1e6
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000])
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print("| ads (JSONL) | dump MB | ingest s | ads/s (1 core) | merge+dedupe s | peak RSS MB |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n in args.sizes:
            r = bench(n, workdir)
            print(f"| {r['n']:,} | {r['mb']:.0f} | {r['t_ingest']:.1f} | {r['n'] / r['t_ingest']:,.0f} "
                  f"| {r['t_merge']:.1f} | {r['rss_mb']:.0f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
