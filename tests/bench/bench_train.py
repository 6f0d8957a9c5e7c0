"""Training throughput of DeepSpeed ZeRO-2 vs ZeRO-3: the tiny model on 2 CPU ranks (gloo), or with
`--gpu` a ~1.06B Llama (bf16) on every visible GPU, with MFU.

    python tests/bench/bench_train.py [--steps 60 --warmup 10 --repeats 2]
    python tests/bench/bench_train.py --gpu [--peak-tflops 989] [--set per_device_train_batch_size=16]

Each run is the real thing: scripts/launch_node.py (torchrun --standalone) starting scripts/train.py on
every rank, with the same recipe, the same shards (copied to a temp dir first) and ZeRO config as the
only difference, plus ``max_steps=--steps`` and ``save_strategy=no`` (a mid-run checkpoint would land
in the timed window). The torchrun target is this file in ``--worker`` mode, which runs
scripts/train.py's ``main`` unchanged after appending one TrainerCallback to transformers'
``DEFAULT_CALLBACKS``; it records the wall clock at the first ``on_step_begin`` and at every
``on_step_end`` with ``state.num_input_tokens_seen`` (non-padding tokens, gathered over all ranks),
and at exit writes those and the rank's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) to a JSON.

* tokens/s and steps/s: steady state, from the end of step ``--warmup`` to the end of the last step,
  i.e. (tokens seen at the last step - tokens seen at step W) / elapsed, on rank 0. The interval
  includes data loading and every collective, and excludes start-up, the warm-up steps and the final
  save. One run, no differencing of two runs, so no run-to-run noise enters twice.
* start-up s: launcher start (parent's clock before spawning) to rank 0's first ``on_step_begin``:
  interpreter + imports, rendezvous, model load, DeepSpeed engine set-up, first batch.
* train.py tok/s: the figure alpha.train.finetune logs itself, over all of ``trainer.train()``: warm-up steps and the
  DeepSpeed engine set-up (done inside ``train()``) included, so it reads low: a cross-check only.
* peak RSS: per rank, the largest over the repeats (includes the final save; ZeRO-3 gathers weights there).
* Configurations alternate (z2, z3, z2, z3, ...) so slow drift on a shared machine hits both alike;
  best and median over ``--repeats``.
* MFU (`--gpu`): 6 x parameters x tokens/s / (GPUs x peak dense bf16 FLOP/s). Parameters include both
  embedding tables (untied), so the input lookup counts as a matmul (~6% over); attention's L^2 term and padded
  positions are not counted (tokens are non-padding), so MFU understates hardware use on short rows.
  The GPU model uses the tiny tokenizer (3,225 ids) with a 32,000-row vocabulary: rows past the
  tokenizer are never read, which changes nothing in the FLOP count of the output layer.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve()
TRAIN, LAUNCHER = ROOT / "scripts/train.py", ROOT / "scripts/launch_node.py"
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0}  # dense bf16, no sparsity
GPU_MODEL = dict(hidden_size=2048, num_hidden_layers=18, num_attention_heads=16, intermediate_size=5632,
                 vocab_size=32000, max_position_embeddings=2048)  # 1,055,991,808 parameters


def worker(train_argv: list[str]) -> None:
    """One rank, started by torchrun: scripts/train.py's main with a step clock, then the peak RSS."""
    import resource
    import runpy

    import transformers.trainer as hf_trainer
    from transformers import TrainerCallback

    record = {"first_step": None, "steps": []}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            record["first_step"] = record["first_step"] or time.time()

        def on_step_end(self, args, state, control, **kwargs):
            record["steps"].append([time.time(), state.num_input_tokens_seen])

    hf_trainer.DEFAULT_CALLBACKS.append(Clock())
    sys.argv = [str(TRAIN), *train_argv]
    sys.path.insert(0, str(TRAIN.parent))  # what `python scripts/train.py` does; run_path does not
    runpy.run_path(str(TRAIN), run_name="__main__")
    record["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    Path(os.environ["BENCH_CLOCK"].format(rank=os.environ.get("RANK", "0"))).write_text(json.dumps(record))


def run_once(args, base: Path, shards: Path, zero: str, nproc: int, tmp: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"{zero}-", dir=tmp))
    cmd = [sys.executable, str(LAUNCHER), "--standalone", "--nproc-per-node", str(nproc), "--",
           str(HERE), "--worker", "--", "--recipe", str(args.recipe), "--base", str(base), "--shards", str(shards),
           "--output", str(out / "model"), "--checkpoints", str(out / "checkpoints"), "--metrics", str(out / "metrics.json"),
           "--set", f"deepspeed={ROOT / 'config/deepspeed' / (zero + '.json')}", "--set", f"max_steps={args.steps}",
           "--set", "save_strategy='no'", *[a for kv in args.set for a in ("--set", kv)]]
    env = {**os.environ, "BENCH_CLOCK": str(out / "clock-{rank}.json")}
    started = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        lines = (proc.stdout + proc.stderr).splitlines()
        lines = [line for line in lines if line.startswith("[rank0]")] or lines  # the root cause, not torchrun's summary
        sys.exit(f"{zero} run failed (exit {proc.returncode}); last lines:\n" + "\n".join(lines[-30:]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["zero_stage"], metrics["world_size"]) == (int(zero[-1]), nproc), metrics  # the override took
    clocks = [json.loads((out / f"clock-{r}.json").read_text()) for r in range(nproc)]
    steps = clocks[0]["steps"]
    if len(steps) <= args.warmup:
        sys.exit(f"{zero}: only {len(steps)} steps recorded, not more than --warmup {args.warmup}")
    t0, tok0 = steps[args.warmup - 1] if args.warmup else (clocks[0]["first_step"], 0)
    t1, tok1 = steps[-1]
    logged = re.search(r"trained \d+ steps in [\d.]+ s: (\d+) tokens/s", proc.stderr)
    shutil.rmtree(out / "model", ignore_errors=True)  # a GPU run's weights are GBs
    return {"tokens_s": (tok1 - tok0) / (t1 - t0), "steps_s": (len(steps) - args.warmup) / (t1 - t0),
            "startup_s": clocks[0]["first_step"] - started, "logged": float(logged.group(1)) if logged else float("nan"),
            "rss": [c["max_rss_mib"] for c in clocks]}


def build_gpu_model(tiny: Path, out: Path) -> int:
    """A ~1.06B-parameter Llama in bf16 with the tiny tokenizer; returns its parameter count."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = LlamaConfig(**GPU_MODEL, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def peak_tflops(args, name: str) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    return next((v for key, v in PEAK_TFLOPS.items() if key.lower() in name.lower()), None)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        return worker(sys.argv[3:] if sys.argv[2:3] == ["--"] else sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60, help="optimiser steps per run (default 60)")
    ap.add_argument("--warmup", type=int, default=10, help="leading steps left out of the rates (default 10)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per configuration (default 2)")
    ap.add_argument("--nproc", type=int, default=2, help="CPU ranks (default 2; --gpu uses every visible GPU)")
    ap.add_argument("--recipe", type=Path, default=ROOT / "config/recipes/tiny/full.yaml")
    ap.add_argument("--base", type=Path, default=ROOT / "results/models/tiny", help="tiny model (copied first)")
    ap.add_argument("--shards", type=Path, default=ROOT / "results/shards/alpha", help="shard set (copied first)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra recipe override, every run")
    ap.add_argument("--gpu", action="store_true", help="~1.06B Llama in bf16 on the visible GPUs, with MFU")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="peak dense bf16 TFLOP/s per GPU; default by device name: "
                         + ", ".join(f"{k} {v:g}" for k, v in PEAK_TFLOPS.items()))
    args = ap.parse_args()
    if not 0 <= args.warmup < args.steps:
        ap.error("--warmup must be in [0, --steps)")
    for path in (args.base, args.shards):
        if not path.is_dir():
            sys.exit(f"{path} does not exist (build the tiny model and the shard set first, e.g. `make`)")
    device, nproc, params, peak = (f"CPU, {args.nproc} ranks (gloo), {os.environ.get('ALPHA_TORCH_THREADS', '1')} torch thread(s) each",
                                   args.nproc, None, None)
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit(f"bench_train.py --gpu: CUDA is not available (torch {torch.__version__}); "
                     "run it on a GPU machine, or drop --gpu for the CPU benchmark")
        nproc, name = torch.cuda.device_count(), torch.cuda.get_device_name(0)
        peak = peak_tflops(args, name)
        device = f"{nproc} x {name}, bf16, peak {peak or '?'} TFLOP/s each"
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        base, shards = tmp / "base", tmp / "shards"
        shutil.copytree(args.base, base)
        shutil.copytree(args.shards, shards)
        if args.gpu:
            params = build_gpu_model(base, tmp / "gpu-model")
            base = tmp / "gpu-model"
        results: dict[str, list[dict]] = {"zero2": [], "zero3": []}
        for i in range(args.repeats):
            for zero in results:
                r = run_once(args, base, shards, zero, nproc, tmp)
                results[zero].append(r)
                print(f"<!-- {zero} run {i + 1}: {r['tokens_s']:,.0f} tokens/s, start-up {r['startup_s']:.1f} s -->",
                      file=sys.stderr, flush=True)
    print(f"{device}; recipe {args.recipe.name}; {args.steps} steps, rates over steps {args.warmup + 1}-{args.steps}; "
          f"best / median of {args.repeats} runs" + (f"; {params:,} parameters" if params else "") + "\n")
    mfu_head = " MFU best | MFU median |" if args.gpu else ""
    print("| ZeRO | tokens/s best | tokens/s median | steps/s best | steps/s median | start-up s best | "
          f"start-up s median | train.py tok/s (whole run), median | peak RSS MiB per rank |{mfu_head}")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|---:|" if args.gpu else ""))
    for zero, runs in results.items():
        tok, sps, up = ([r[k] for r in runs] for k in ("tokens_s", "steps_s", "startup_s"))
        rss = " / ".join(f"{max(r['rss'][k] for r in runs):,.0f}" for k in range(nproc))
        row = (f"| {zero[-1]} | {max(tok):,.0f} | {statistics.median(tok):,.0f} | {max(sps):.2f} | "
               f"{statistics.median(sps):.2f} | {min(up):.1f} | {statistics.median(up):.1f} | "
               f"{statistics.median(r['logged'] for r in runs):,.0f} | {rss} |")
        if args.gpu:
            mfu = [6 * params * t / (nproc * peak * 1e12) for t in tok] if peak else None
            row += f" {max(mfu):.1%} | {statistics.median(mfu):.1%} |" if mfu else " n/a | n/a |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
