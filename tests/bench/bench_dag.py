"""How long `snakemake -n` takes to build the DAG on config/paper.yaml with stand-in inputs of
paper shape (`make bench`). Target: under 20 s.

    python tests/bench/bench_dag.py [--dumps 200 1000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import ROOT, paper_standin_workflow, profile_without_conda, snakemake  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dumps", type=int, nargs="+", default=[200, 1000])
    args = ap.parse_args()
    print("| dump files | jobs | Slurm submissions (grouped) | `snakemake -n` s |")
    print("|---:|---:|---:|---:|")
    for n in args.dumps:
        with tempfile.TemporaryDirectory() as tmp:
            workdir, configfile = paper_standin_workflow(Path(tmp) / "wf", n_dumps=n)
            profile = profile_without_conda(ROOT / "profiles/slurm", Path(tmp) / "profile")
            started = time.perf_counter()
            out = snakemake(workdir, "all", "-n", "--profile", str(profile), "--configfile", str(configfile)).stdout
            seconds = time.perf_counter() - started
            counts = {parts[0]: int(parts[1]) for parts in (line.split() for line in out.splitlines())
                      if len(parts) == 2 and parts[1].isdigit()}
            total = counts["total"]
            grouped = counts.get("ingest_dump", 0) + counts.get("mine_pairs", 0)
            groups = out.count("Group job ")
            submissions = total - 1 - grouped + groups  # minus the local `all`; a job group is one submission
            print(f"| {n:,} | {total:,} | {submissions:,} | {seconds:.1f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
