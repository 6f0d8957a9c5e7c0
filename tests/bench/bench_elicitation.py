"""Cost of option-order permutations and of the three elicitation modes on a finished demo run's models.

    python tests/bench/bench_elicitation.py --run <a finished demo run> [--models tiny-llama-chat ...] [--k 1 2 3]

For each model: OpinionQA logprob scoring with k = 1, 2, 3 option orders (prompts, prompt tokens, seconds,
order sensitivity of representativeness), and GlobalOpinionQA in the logprob, sampled (10 answers per prompt)
and verbalised modes (seconds, valid items, invalid outputs by reason). One CPU thread, batch size 16.
Prints a Markdown table (README, "Option order and elicitation modes").
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from alpha.eval import elicitation, results, scoring  # noqa: E402
from alpha.eval.task_spec import load_task  # noqa: E402


def model_dirs(run: Path, names: list[str]) -> dict[str, Path]:
    found = {}
    for name in names:
        for candidate in (run / "results" / "train" / name / "model", run / "results" / "train" / name / "merged",
                          run / "results" / "models" / name):
            if (candidate / "config.json").exists():
                found[name] = candidate
                break
        else:
            raise SystemExit(f"no model folder for {name} under {run}/results")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished demo run (results/ with models and eval_items)")
    ap.add_argument("--models", nargs="+", default=["tiny", "alpha-tiny-llama-chat"])
    ap.add_argument("--k", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    items = args.run / "results" / "eval_items"
    oqa, goqa = load_task("opinionqa"), load_task("globalopinionqa")
    print("| model | benchmark | mode | orders | prompts | prompt tokens | seconds | valid items | invalid / note |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in model_dirs(args.run, args.models).items():
            for k in args.k:
                out = Path(tmp) / f"{name}-oqa-{k}.parquet"
                started = time.perf_counter()
                summary = scoring.score_prepared(str(folder), items / "opinionqa.parquet", out, task=oqa, batch_size=16,
                                                 permutations=k, seed=args.seed)
                seconds = time.perf_counter() - started
                result = results.evaluate(oqa, "reference", items / "opinionqa.parquet", out, benchmark="opinionqa", model=name)
                rep = next(m for m in result["metrics"] if m["column"] == "OpinionQA Representativeness")
                note = f"order sensitivity {rep['orders']['order_sensitivity']:.4f}" if rep.get("orders") else ""
                print(f"| {name} | opinionqa | logprob | {k} | {summary['prompts']} | {summary['prompt_tokens']} | {seconds:.1f} | "
                      f"{summary['items']} | {note} |")
            out = Path(tmp) / f"{name}-goqa.parquet"
            started = time.perf_counter()
            summary = scoring.score_prepared(str(folder), items / "globalopinionqa.parquet", out, task=goqa, batch_size=16)
            print(f"| {name} | globalopinionqa | logprob | 1 | {summary['prompts']} | {summary['prompt_tokens']} | "
                  f"{time.perf_counter() - started:.1f} | {summary['items']} | |")
            for mode in ("sampled", "verbalised"):
                out = Path(tmp) / f"{name}-goqa-{mode}.parquet"
                counts = elicitation.elicit_prepared(str(folder), items / "globalopinionqa.parquet", out, task=goqa, mode=mode,
                                                     batch_size=16, seed=args.seed)
                spec = elicitation.settings(goqa.elicitation, mode)
                note = ", ".join(f"{k} {v}" for k, v in counts["invalid"].items()) or "none"
                if mode == "sampled":
                    note += f"; {counts['unparsed_answers']}/{counts['answers']} answers unparsed"
                print(f"| {name} | globalopinionqa | {mode} | 1 | {counts['items']} x {spec.get('n', 1)} | "
                      f"(+{spec['max_new_tokens']} new) | {counts['seconds']:.1f} | {counts['valid']} | {note} |")


if __name__ == "__main__":
    main()
