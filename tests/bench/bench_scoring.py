"""Option scoring throughput (questions/s): ``alpha.eval.scoring`` (one forward pass per prompt, last-position logits
only) vs lm-evaluation-harness-style scoring (one forward pass per option: prompt + label through the model,
full logits, log-softmax, the label's log-prob), on the same small Llama and the same prompts.

    python tests/bench/bench_scoring.py [--n 200 --batch-sizes 8 32 --hidden 256 --layers 4 --vocab 8000 --repeats 2]

Asserts both give the same option probabilities (within 1e-4) and rankings, then prints a Markdown table.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from alpha.demo.tiny_model import train_tokenizer  # noqa: E402
from alpha.eval import scoring  # noqa: E402


def make_words(rng: random.Random, n: int) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["the", "and", "ing", "tion", "er"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def make_items(n: int, seed: int = 0) -> tuple[list[dict], list[str]]:
    """OpinionQA / GlobalOpinionQA-shaped prompts with 4 or 5 options; also a corpus for the tokenizer."""
    rng = random.Random(seed)
    words = make_words(rng, 3000)
    items = []
    for k in range(n):
        labels = list("ABCDE"[: rng.choice([4, 5])])
        question = " ".join(rng.choice(words) for _ in range(rng.randint(15, 90)))
        options = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in labels]
        if k % 2 == 0:
            prompt = f"Question: {question}?\n" + "".join(f"{x}. {o}\n" for x, o in zip(labels, options)) + "Answer:"
        else:
            prompt = (f"Human: How would someone from {rng.choice(words).title()} answer the following question:\n{question}?\n"
                      "Here are the options:\n" + "".join(f"({x}) {o}\n" for x, o in zip(labels, options))
                      + "Assistant: If I had to select one of the options, my answer would be (")
        items.append({"item_id": f"q{k:04d}", "prompt": prompt, "labels": labels})
    corpus = [" ".join(rng.choice(words) for _ in range(50)) for _ in range(2000)] + [it["prompt"] for it in items]
    return items, corpus


def per_option_scores(model, tok, items: list[dict], batch_size: int) -> tuple[list[list[float]], int]:
    """The harness way: one row per (prompt, option) = prompt tokens + the label token, right-padded,
    full logits over every position, log-softmax, read the label's log-prob where it is predicted."""
    resolver = scoring.LabelResolver(tok)
    rows = []  # (item index, option index, prompt ids, label id)
    encoded = tok([it["prompt"] for it in items])["input_ids"]
    for k, (item, ids) in enumerate(zip(items, encoded)):
        form = scoring.answer_form(item["prompt"])
        for j, label_ids in enumerate(resolver.ids(item["labels"], form)):
            rows.append((k, j, ids, label_ids[0]))
    rows.sort(key=lambda r: -len(r[2]))
    out = [[math.nan] * len(it["labels"]) for it in items]
    pad = tok.pad_token_id
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            width = max(len(r[2]) + 1 for r in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (_, _, ids, label) in enumerate(batch):
                input_ids[i, : len(ids) + 1] = torch.tensor(ids + [label])
                mask[i, : len(ids) + 1] = 1
            logprobs = torch.log_softmax(model(input_ids=input_ids, attention_mask=mask).logits.float(), dim=-1)
            for i, (k, j, ids, label) in enumerate(batch):
                out[k][j] = float(logprobs[i, len(ids) - 1, label])
    return out, len(rows)


def renormalise(logprobs: list[float]) -> list[float]:
    return torch.tensor(logprobs, dtype=torch.float64).softmax(0).tolist()


def check_agreement(engine: list[scoring.ScoredItem], reference: list[list[float]]) -> tuple[float, int]:
    """Max |Δprob|; asserts it is < 1e-4 and that every option pair the engine separates by more than
    1e-5 in log-prob is ordered the same way by the reference (ties that close are not rankings)."""
    worst, pairs = 0.0, 0
    for s, ref in zip(engine, reference):
        worst = max(worst, max(abs(p - q) for p, q in zip(s.probs, renormalise(ref))))
        for a in range(len(ref)):
            for b in range(a + 1, len(ref)):
                if abs(s.logprobs[a] - s.logprobs[b]) > 1e-5:
                    pairs += 1
                    assert (s.logprobs[a] > s.logprobs[b]) == (ref[a] > ref[b]), (s.item_id, s.logprobs, ref)
    assert worst < 1e-4, worst
    return worst, pairs


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="questions")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8000, help="tokenizer vocabulary to train (upper bound)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="run the model in bfloat16 (log-softmax stays float32)")
    ap.add_argument("--repeats", type=int, default=2, help="timings per method and batch size; the fastest counts")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import LlamaConfig, LlamaForCausalLM

    items, corpus = make_items(args.n)
    tok = train_tokenizer(corpus, args.vocab)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=args.hidden, intermediate_size=4 * args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 64), num_key_value_heads=max(1, args.hidden // 64),
        max_position_embeddings=1024, pad_token_id=tok.pad_token_id, initializer_range=0.1,
    )
    model = LlamaForCausalLM(config).eval().to(args.device)
    if args.bf16:
        model = model.to(torch.bfloat16)
    n_options = sum(len(it["labels"]) for it in items) / len(items)
    n_tokens = [len(ids) for ids in tok([it["prompt"] for it in items])["input_ids"]]
    params = sum(p.numel() for p in model.parameters())
    print(f"model: Llama, hidden {args.hidden}, {args.layers} layers, vocabulary {len(tok)}, {params / 1e6:.1f}M parameters, "
          f"{args.device}{' bf16' if args.bf16 else ' float32'}, {torch.get_num_threads()} threads; {len(items)} questions, "
          f"{n_options:.2f} options each, prompts {min(n_tokens)}-{max(n_tokens)} tokens (mean {sum(n_tokens) / len(n_tokens):.0f})\n")

    scoring.score_items(model, tok, items[:8], batch_size=8)  # warm-up
    per_option_scores(model, tok, items[:4], batch_size=8)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print("| method | batch size | forward rows | seconds | questions/s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    notes = []
    for bs in args.batch_sizes:
        t_engine = t_ref = math.inf
        for _ in range(args.repeats):  # interleaved, best of: the CPU may be shared
            engine, t = timed(lambda: (scoring.score_items(model, tok, items, batch_size=bs), sync())[0])
            t_engine = min(t_engine, t)
            (reference, rows), t = timed(lambda: (per_option_scores(model, tok, items, bs), sync())[0])
            t_ref = min(t_ref, t)
        worst, pairs = check_agreement(engine, reference)
        notes.append(f"batch {bs}: max |Δprob| {worst:.1e}, {pairs} option pairs ranked identically")
        print(f"| per option (harness) | {bs} | {rows} | {t_ref:.2f} | {len(items) / t_ref:,.1f} | 1.0× |")
        print(f"| alpha.eval.scoring | {bs} | {len(items)} | {t_engine:.2f} | {len(items) / t_engine:,.1f} | {t_ref / t_engine:.1f}× |")
        sys.stdout.flush()
    print(f"\nbest of {args.repeats} interleaved runs; " + "; ".join(notes)
          + f" (target speed-up ≥ {n_options:.1f}×, the options per question)")


if __name__ == "__main__":
    main()
