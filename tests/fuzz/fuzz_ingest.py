"""Fuzz the ingestion at scale (`make fuzz`): the generator of tests/unit/test_fuzz_ingest.py, driven by a
seeded random.Random instead of hypothesis, one corpus per seed (one dump of each layout: JSON Lines
current and legacy, API page, single-object JSON, CSV with side tables, wide CSV, up to --per-file
records each), until --records records have been written. Every corpus is ingested as the workflow
does (JSON Lines both ways) and merged, and every invariant of tests/fuzz/invariants.py is checked.

Prints the records tried, the time taken and the findings; a corpus with a finding is kept under
--out with its findings, and is reproduced by ``--seed <seed> --corpora 1 --per-file <n>``. Exits 1
when anything was found.

    python tests/fuzz/fuzz_ingest.py [--records 100000] [--per-file 80] [--seed 0] [--out DIR]
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

from fuzz.ad_records import RandomSource, gen_corpus  # noqa: E402
from fuzz.invariants import check_corpus  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="stop once this many records were written")
    parser.add_argument("--corpora", type=int, default=None, help="or stop after this many corpora (seeds)")
    parser.add_argument("--per-file", type=int, default=80, help="records per dump file, at most")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "alpha-fuzz-findings")
    args = parser.parse_args()

    started = time.perf_counter()
    totals: Counter = Counter()
    kinds: Counter = Counter()
    failing: list[int] = []
    seed = args.seed
    next_report = args.records // 10
    while (args.corpora is None and totals["records"] < args.records) or (args.corpora is not None and seed - args.seed < args.corpora):
        corpus = gen_corpus(RandomSource(seed), args.per_file)
        with tempfile.TemporaryDirectory(prefix="alpha-fuzz-") as folder:
            findings, stats = check_corpus(corpus, Path(folder))
            if findings:
                keep = args.out / f"seed-{seed}"
                shutil.rmtree(keep, ignore_errors=True)
                shutil.copytree(Path(folder) / "inputs", keep / "inputs")
                (keep / "findings.txt").write_text("\n\n".join(map(str, findings)) + "\n", encoding="utf-8")
        totals.update(stats)
        totals["corpora"] += 1
        if findings:
            failing.append(seed)
            kinds.update(f.kind for f in findings)
            first = findings[0]
            print(f"seed {seed}: {len(findings)} finding(s), first {str(first)[:600]}", flush=True)
        if totals["records"] >= next_report:
            rate = totals["records"] / (time.perf_counter() - started)
            print(f"  {totals['records']:,} records written, {totals['read']:,} read ({rate:,.0f} records/s)", flush=True)
            next_report += max(args.records // 10, 1)
        seed += 1
    took = time.perf_counter() - started

    print(f"\nfuzzed ingestion: {totals['records']:,} records written in {totals['corpora']:,} corpora "
          f"({totals['files']:,} dump files, seeds {args.seed}..{seed - 1}, up to {args.per_file} records per file)")
    print(f"  read {totals['read']:,} records: kept {totals['kept']:,}, quarantined {totals['quarantined']:,}, "
          f"duplicates {totals['duplicates']:,}; {totals['file_errors']:,} files refused as a whole (IngestError)")
    print(f"  {took:.0f} s on {platform.machine()} ({_cores()} cores), Python {platform.python_version()}")
    if failing:
        print(f"  FINDINGS: {dict(kinds)} in seeds {failing[:20]}; corpora and findings kept under {args.out}")
        print(f"  reproduce one: python tests/fuzz/fuzz_ingest.py --seed {failing[0]} --corpora 1 --per-file {args.per_file}")
        return 1
    print("  findings: none (no crash, accounting holds, every quarantined row has a known reason, "
          "no access_token value under results/, both JSON Lines paths agree, well-formed records kept)")
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
