"""Training-task evaluation (paper §4.1): base vs fine-tuned models on the held-out test sets.

Per (split, task), on up to ``max_per_task`` samples chosen by seeded hash:

* TAG, TC-*, TS-*: perplexity of the ground-truth ad (token-weighted over the assistant tokens,
  teacher-forced), and the greedy generation scored against it with BLEU (sacrebleu), ROUGE-L and
  BERTScore (scorer: the packaged all-MiniLM-L6-v2);
* TAP-G / TAP-A / TAP-R: accuracy of the generated answer read back with ``prompts.parse_tap`` (an
  answer off the template is wrong and counted), and for TAP-G / TAP-A also the *ranked* accuracy:
  every class's templated answer scored by log-likelihood, the best one taken. Ranked accuracy
  measures what the model knows even when it does not follow the template (a base model).
"""
from __future__ import annotations

import heapq
import logging
import math
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa

from alpha.core import chat
from alpha.core.io import PARQUET_OPTIONS, iter_parquet_batches
from alpha.tasks import prompts
from alpha.tasks.samples import stable_key
from alpha.train import textgen_metrics

log = logging.getLogger("alpha.train.task_eval")

GENERATION_FAMILIES = ("TAG", "TC", "TS")
RANKED_CLASSES = {"TAP-G": ("male", "female"), "TAP-A": prompts.AGES}

ITEM_SCHEMA = pa.schema([
    ("id", pa.string()), ("split", pa.string()), ("task", pa.string()), ("label", pa.string()),
    ("reference", pa.string()), ("generated", pa.string()), ("nll_sum", pa.float64()), ("n_tokens", pa.int64()),
    ("ranked", pa.string()),
])


def select_samples(test_files: dict[str, str], max_per_task: int, seed: int, batch_rows: int = 8192) -> list[dict]:
    """Up to ``max_per_task`` samples per (split, task): the smallest seeded keys, streamed (memory:
    ``max_per_task`` rows per task). Sorted by (split, task, key) so the choice never depends on file order."""
    heaps: dict[tuple[str, str], list] = {}
    for split, path in sorted(test_files.items()):
        for batch in iter_parquet_batches(path, batch_rows, columns=["id", "task", "label", "messages"]):
            for row in batch.to_pylist():
                heap = heaps.setdefault((split, row["task"]), [])
                item = (-stable_key(seed, row["id"]), row["id"], {**row, "split": split})
                if len(heap) < max_per_task:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
    chosen = []
    for key in sorted(heaps):
        chosen += [row for _, _, row in sorted(heaps[key], key=lambda it: (-it[0], it[1]))]
    return chosen


class Scorer:
    """A causal LM with its chat template: teacher-forced NLL, greedy generation, answer likelihoods."""

    def __init__(self, model_dir: str, chat_template: str | None, batch_size: int, device: str | None = None):
        import torch

        from alpha.eval.scoring import load_model

        self.torch = torch
        self.model, self.tokenizer = load_model(model_dir, device)
        self.device = next(self.model.parameters()).device
        self.template = chat.template_for(chat_template, self.tokenizer)
        self.batch_size = batch_size

    def _batches(self, n: int, lengths: Sequence[int]) -> Iterable[list[int]]:
        order = sorted(range(n), key=lambda i: -lengths[i])  # similar lengths together: less padding
        for start in range(0, n, self.batch_size):
            yield order[start:start + self.batch_size]

    def sequence_nll(self, sequences: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, int]]:
        """(sum of NLL over labelled tokens, their count) per (input_ids, labels); right-padded batches."""
        torch = self.torch
        out: list[tuple[float, int]] = [(0.0, 0)] * len(sequences)
        pad = self.tokenizer.pad_token_id
        for idx in self._batches(len(sequences), [len(s[0]) for s in sequences]):
            width = max(len(sequences[i][0]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            labels = torch.full((len(idx), width), chat.IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                n = len(sequences[i][0])
                ids[row, :n] = torch.tensor(sequences[i][0])
                labels[row, :n] = torch.tensor(sequences[i][1])
                mask[row, :n] = 1
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
            targets = labels[:, 1:].to(self.device)
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1),
                ignore_index=chat.IGNORE_INDEX, reduction="none",
            ).view(targets.shape)
            counted = targets != chat.IGNORE_INDEX
            for row, i in enumerate(idx):
                out[i] = (float(nll[row][counted[row]].sum()), int(counted[row].sum()))
        return out

    def generate(self, prompts_ids: Sequence[list[int]], max_new_tokens: int) -> list[str]:
        """Greedy continuations of each prompt (left-padded batches), decoded without special tokens."""
        torch = self.torch
        out = [""] * len(prompts_ids)
        pad = self.tokenizer.pad_token_id
        for idx in self._batches(len(prompts_ids), [len(p) for p in prompts_ids]):
            width = max(len(prompts_ids[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                n = len(prompts_ids[i])
                ids[row, width - n:] = torch.tensor(prompts_ids[i])
                mask[row, width - n:] = 1
            with torch.no_grad():
                generated = self.model.generate(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device), do_sample=False,
                    max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id,
                )
            for row, i in enumerate(idx):
                out[i] = self.tokenizer.decode(generated[row, width:], skip_special_tokens=True).strip()
        return out


def _ranked_answers(scorer: Scorer, samples: list[dict]) -> dict[str, str]:
    """sample id -> the class whose templated answer the model finds most likely (TAP-G / TAP-A)."""
    sequences, keys = [], []
    for s in samples:
        for label in RANKED_CLASSES[s["task"]]:
            answer = prompts.TAP_ANSWERS[s["task"]].format(prompts.tap_answer(s["task"], label))
            messages = s["messages"][:-1] + [{"role": "assistant", "content": answer}]
            enc = chat.encode_conversation(scorer.tokenizer, messages, scorer.template, 10**9)
            sequences.append((enc.input_ids, enc.labels))
            keys.append((s["id"], label))
    best: dict[str, tuple[float, str]] = {}
    for (sample_id, label), (nll, _) in zip(keys, scorer.sequence_nll(sequences)):
        if sample_id not in best or -nll > best[sample_id][0]:  # ties: the first class listed
            best[sample_id] = (-nll, label)
    return {k: v[1] for k, v in best.items()}


def evaluate(scorer: Scorer, samples: list[dict], max_new_tokens: int) -> tuple[list[dict], pa.Table]:
    """Metric rows per (split, task) and the per-item table."""
    tok, template = scorer.tokenizer, scorer.template
    encoded = [chat.encode_conversation(tok, s["messages"], template, 10**9) for s in samples]
    nlls = scorer.sequence_nll([(e.input_ids, e.labels) for e in encoded])
    log.info("teacher-forced NLL of %d samples done", len(samples))
    generated = scorer.generate([chat.prompt_ids(tok, s["messages"], template) for s in samples], max_new_tokens)
    log.info("generation for %d samples done", len(samples))
    ranked = _ranked_answers(scorer, [s for s in samples if s["task"] in RANKED_CLASSES])

    items = [
        {"id": s["id"], "split": s["split"], "task": s["task"], "label": s["label"],
         "reference": s["messages"][-1]["content"], "generated": g, "nll_sum": nll, "n_tokens": n,
         "ranked": ranked.get(s["id"])}
        for s, g, (nll, n) in zip(samples, generated, nlls)
    ]
    rows = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        groups.setdefault((item["split"], item["task"]), []).append(item)
    for (split, task), group in sorted(groups.items()):
        row = {"split": split, "task": task, "n": len(group)}
        if task.split("-")[0] in GENERATION_FAMILIES:
            hyps, refs = [g["generated"] for g in group], [g["reference"] for g in group]
            row["perplexity"] = textgen_metrics.corpus_perplexity((g["nll_sum"], g["n_tokens"]) for g in group)
            row["bleu"] = textgen_metrics.bleu(hyps, refs)
            row["rouge_l"] = textgen_metrics.rouge_l(hyps, refs)
            row["bertscore_f1"] = textgen_metrics.bertscore(hyps, refs)["F1"]
        elif task.startswith("TAP"):
            acc = textgen_metrics.tap_accuracy(task, [g["generated"] for g in group], [g["label"] for g in group])
            row["tap_accuracy"] = acc.accuracy
            row["tap_unparsed"] = acc.n_unparsed
            if task in RANKED_CLASSES:
                row["tap_accuracy_ranked"] = sum(g["ranked"] == g["label"] for g in group) / len(group)
                row["tap_majority_baseline"] = max(
                    sum(g["label"] == c for g in group) for c in RANKED_CLASSES[task]) / len(group)
        rows.append(row)
    return rows, pa.Table.from_pylist(items, schema=ITEM_SCHEMA)


def write_items(table: pa.Table, path: str | Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path, **PARQUET_OPTIONS)


def signatures() -> dict:
    return {"bleu": textgen_metrics.bleu_signature(), "bertscore": textgen_metrics.bertscore_signature()}


def finite(value):
    return value if isinstance(value, (int, str)) or value is None or math.isfinite(value) else None
