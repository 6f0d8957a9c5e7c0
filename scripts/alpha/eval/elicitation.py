"""Three ways of reading a model's opinion (the registry's ``mode`` per benchmark), after Meister et al. (2024):

``logprob``     (default; ``alpha.eval.scoring``) the next-token probabilities of the option letters, one
                forward pass per prompt.
``sampled``     ``n`` answers generated at ``temperature`` from the same prompt, each parsed to an option
                letter (``parse_choice``); the distribution is the share of parsed answers per option.
                Unparseable answers are counted; an item with none parsed is excluded ("no_parsed_answer").
``verbalised``  the model is asked for a percentage per option (the task's ``elicitation.verbalised``
                prompt) and its answer is parsed (``parse_percentages``), checked and renormalised to sum 1.
                An invalid answer is excluded with its reason (``VERBALISED_REASONS``).

Prompts and settings of the new modes are declared in the task files (``elicitation:``), as the logprob
prompts are. Generation is batched: prompts sorted by length, left-padded, ``num_return_sequences = n``
per prompt, so the sampled mode costs one ``generate`` call per batch, never one per sample.

Results use the scoring schema (``alpha.eval.scoring.RESULT_SCHEMA``): ``probs`` is the elicited
distribution over the options and ``logprobs`` its natural log (-inf for 0), so every metric reads them
as it reads logprob results; the added columns ``mode``, ``answers`` (the generated texts), ``n_parsed``
and ``invalid_reason`` keep the evidence. Invalid items have null probabilities.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections import Counter
from typing import Any, Mapping, Sequence

import pyarrow as pa

from alpha.core import io

log = logging.getLogger("alpha.eval.elicitation")

MODES = ("logprob", "sampled", "verbalised")
VERBALISED_REASONS = ("no_percentages", "missing_options", "conflicting_values", "sum_off")
DEFAULTS = {
    "sampled": {"n": 10, "temperature": 1.0, "max_new_tokens": 4},
    "verbalised": {"max_new_tokens": 96, "sum_tolerance": 10.0, "strip_suffix": "",
                   "instruction": "\nFor each option, write the percentage of people who would choose it, one line per "
                                  "option as \"A: 40%\". The percentages sum to 100.\n"},
}
ROW_GROUP_ROWS = 65_536

ELICITED_SCHEMA = pa.schema([
    ("item_id", pa.string()),
    ("n_prompt_tokens", pa.int64()),
    ("options", pa.list_(pa.string())),
    ("logprobs", pa.list_(pa.float64())),
    ("probs", pa.list_(pa.float64())),
    ("order", pa.int32()),
    ("permutation", pa.list_(pa.int32())),
    ("mode", pa.string()),
    ("answers", pa.list_(pa.string())),
    ("n_parsed", pa.int64()),
    ("invalid_reason", pa.string()),
])

_CHOICE = re.compile(r"\A[\s\"'*(\[]*(?P<label>[^\s\"'*()\[\].:,;!?-]+)(?=[\s\"'*)\].:,;!?-]|\Z)")


def settings(task_elicitation: Mapping[str, Any] | None, mode: str) -> dict:
    """The mode's settings: the module defaults under the task file's ``elicitation.<mode>``."""
    if mode not in MODES:
        raise ValueError(f"unknown elicitation mode {mode!r}; known: {', '.join(MODES)}")
    return {**DEFAULTS.get(mode, {}), **dict((task_elicitation or {}).get(mode) or {})}


def parse_choice(text: str, labels: Sequence[str]) -> str | None:
    """The option label a generated answer starts with (after spaces, quotes, ``(`` or ``[``): ``" B"``,
    ``"(B) Somewhat"``, ``"B."`` -> B; None when it starts with anything else ("I think", "" or "Z")."""
    match = _CHOICE.match(text)
    if not match:
        return None
    label = match.group("label")
    return label if label in labels else None


_PERCENT_LINE = re.compile(
    r"(?:^|\n)[ \t*\"'(\[]*(?P<label>[A-Za-z0-9]+)[ \t*\"')\]]*(?:[:.=)\-]|[ \t])[ \t]*[^\n\d]{0,40}?(?P<value>\d+(?:[.,]\d+)?)[ \t]*%?"
)


def parse_percentages(text: str, labels: Sequence[str], sum_tolerance: float = 10.0) -> tuple[list[float] | None, str | None]:
    """(distribution, None) from lines such as ``"A: 40%"``, ``"(B) 25 %"``, ``"C - 35"``; extra text is
    ignored. Invalid (None, reason): no option line found ("no_percentages"), an option without a
    value ("missing_options"), one option given two different values ("conflicting_values"), or a
    sum further than ``sum_tolerance`` points from 100 ("sum_off"). Valid values are renormalised."""
    found: dict[str, float] = {}
    conflict = False
    for match in _PERCENT_LINE.finditer(text):
        label = match.group("label")
        if label not in labels:
            continue
        value = float(match.group("value").replace(",", "."))
        if label in found and found[label] != value:
            conflict = True
        found.setdefault(label, value)
    if not found:
        return None, "no_percentages"
    if conflict:
        return None, "conflicting_values"
    if any(label not in found for label in labels):
        return None, "missing_options"
    total = sum(found[label] for label in labels)
    if abs(total - 100.0) > sum_tolerance or total <= 0:
        return None, "sum_off"
    return [found[label] / total for label in labels], None


def sampled_distribution(answers: Sequence[str], labels: Sequence[str]) -> tuple[list[float] | None, int]:
    """(share of parsed answers per option, number parsed); (None, 0) when nothing parsed."""
    parsed = [parse_choice(a, labels) for a in answers]
    counts = Counter(p for p in parsed if p is not None)
    n = sum(counts.values())
    return ([counts[label] / n for label in labels] if n else None), n


def verbalised_prompt(prompt: str, spec: Mapping[str, Any]) -> str:
    """The item's prompt without its answer cue (``strip_suffix``), then the task's instruction."""
    suffix = spec.get("strip_suffix") or ""
    if suffix and prompt.endswith(suffix):
        prompt = prompt[: -len(suffix)]
    return prompt + spec["instruction"]


def generate(model, tokenizer, prompts: Sequence[str], *, n: int, temperature: float, max_new_tokens: int,
             batch_size: int = 8, seed: int = 0, add_special_tokens: bool = True) -> tuple[list[list[str]], list[int]]:
    """``n`` continuations per prompt (greedy when ``temperature`` is 0), batched: prompts sorted by
    length, left-padded, ``num_return_sequences=n``; (texts per prompt in input order, prompt lengths)."""
    import torch

    from alpha.eval.scoring import _pad_id, left_padded, plan_batches

    encoded = tokenizer(list(prompts), add_special_tokens=add_special_tokens)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    pad_id = _pad_id(tokenizer)
    device = next(model.parameters()).device
    out: list[list[str]] = [[] for _ in prompts]
    sample = temperature > 0
    torch.manual_seed(seed)
    started, done = time.perf_counter(), 0
    batches = plan_batches(lengths, max(1, batch_size // max(1, n)) if sample else batch_size)
    with torch.inference_mode():
        for b, batch in enumerate(batches, start=1):
            input_ids, mask = left_padded([encoded[k] for k in batch], pad_id)
            width = input_ids.shape[1]
            kwargs = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if sample else {"do_sample": False}
            generated = model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                num_return_sequences=n if sample else 1, pad_token_id=pad_id, **kwargs,
            )
            texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            per_prompt = n if sample else 1
            for row, k in enumerate(batch):
                out[k] = texts[row * per_prompt:(row + 1) * per_prompt]
            done += len(batch)
            if b % 20 == 0 or b == len(batches):
                rate = done / max(time.perf_counter() - started, 1e-9)
                log.info("generation batch %d/%d: %d/%d prompts, %.1f prompts/s", b, len(batches), done, len(prompts), rate)
    return out, lengths


def _row(item: Mapping[str, Any], n_tokens: int, mode: str, answers: list[str], probs: list[float] | None,
         n_parsed: int, reason: str | None) -> dict:
    return {
        "item_id": item["item_id"], "n_prompt_tokens": n_tokens, "options": list(item["labels"]),
        "logprobs": None if probs is None else [math.log(p) if p > 0 else -math.inf for p in probs],
        "probs": probs, "order": 0, "permutation": list(range(len(item["labels"]))), "mode": mode,
        "answers": answers, "n_parsed": n_parsed, "invalid_reason": reason,
    }


def elicit_items(model, tokenizer, items: Sequence[Mapping[str, Any]], mode: str, spec: Mapping[str, Any], *,
                 batch_size: int = 8, seed: int = 0, chat: bool = False, template: str | None = None,
                 system: str | None = None) -> list[dict]:
    """One result row per item (``ELICITED_SCHEMA``) in ``mode`` ("sampled" or "verbalised")."""
    from alpha.eval.scoring import chat_prompt

    if mode == "sampled":
        texts = [item["prompt"] for item in items]
        n, temperature = int(spec["n"]), float(spec["temperature"])
    elif mode == "verbalised":
        texts = [verbalised_prompt(item["prompt"], spec) for item in items]
        n, temperature = 1, 0.0
    else:
        raise ValueError(f"elicit_items runs the sampled and verbalised modes, not {mode!r}")
    if chat:
        texts = [chat_prompt(tokenizer, text, template, system) for text in texts]
    answers, lengths = generate(model, tokenizer, texts, n=n, temperature=temperature, max_new_tokens=int(spec["max_new_tokens"]),
                                batch_size=batch_size, seed=seed, add_special_tokens=not chat)
    rows = []
    for item, generated, n_tokens in zip(items, answers, lengths):
        labels = list(item["labels"])
        if mode == "sampled":
            probs, n_parsed = sampled_distribution(generated, labels)
            reason = None if probs is not None else "no_parsed_answer"
        else:
            probs, reason = parse_percentages(generated[0], labels, float(spec["sum_tolerance"]))
            n_parsed = int(probs is not None)
        rows.append(_row(item, n_tokens, mode, generated, probs, n_parsed, reason))
    return rows


def summary(rows: Sequence[Mapping[str, Any]]) -> dict:
    """Counts for the log and the metric JSON: items, valid, invalid by reason, answers and parsed answers."""
    reasons = Counter(r["invalid_reason"] for r in rows if r["invalid_reason"])
    answers = sum(len(r["answers"]) for r in rows)
    parsed = sum(r["n_parsed"] for r in rows)
    return {"items": len(rows), "valid": len(rows) - sum(reasons.values()), "invalid": dict(sorted(reasons.items())),
            "answers": answers, "parsed_answers": parsed, "unparsed_answers": answers - parsed}


def elicit_prepared(model_dir: str, items_path: str | os.PathLike, out: str | os.PathLike, *, task, mode: str,
                    chat_template: str | None = None, batch_size: int = 16, seed: int = 0,
                    metadata: Mapping[str, str] | None = None) -> dict:
    """Rule score_benchmark for a registry benchmark in the sampled or verbalised mode."""
    import pyarrow.parquet as pq

    from alpha.eval.scoring import load_model

    spec = settings(task.elicitation, mode)
    items = pq.read_table(items_path, columns=["item_id", "prompt", "labels"]).to_pylist()
    model, tokenizer = load_model(model_dir)
    started = time.perf_counter()
    rows = elicit_items(model, tokenizer, items, mode, spec, batch_size=batch_size, seed=seed,
                        chat=bool(task.score.get("chat", False)), template=chat_template, system=task.score.get("system"))
    counts = summary(rows)
    counts["seconds"] = round(time.perf_counter() - started, 3)
    meta = {**(metadata or {}), "mode": mode, "elicitation": json.dumps(spec, sort_keys=True), "chat_template": str(chat_template),
            "seed": str(seed)}
    table = pa.Table.from_pylist(rows, schema=ELICITED_SCHEMA).replace_schema_metadata({k: str(v) for k, v in sorted(meta.items())})
    io.write_parquet(out, table, ROW_GROUP_ROWS)
    log.info("%s: %s", mode, counts)
    return counts
