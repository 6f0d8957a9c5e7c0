"""CultureBank grounded evaluation (Shi et al. 2024): the model answers each test item's
``eval_question`` in free text, a judge says whether that answer entails the item's cultural
knowledge (``eval_whole_desc``); the score is the judge's mean P("Yes").

As CultureBank's released code (``evaluation/grounded_eval.py``, ``knowledge_entailment.py``):

* the answer prompt is ``ANSWER_TEMPLATE`` as one user turn in the model's chat template, sampled
  with temperature 0.7, top-k 10, top-p 0.95, up to 512 new tokens (``SAMPLING``); here every item is
  generated alone with its own seed (``seed`` + CRC-32 of the question), so an answer depends neither on
  batching nor on which other items are evaluated;
* the judge sees ``JUDGE_SYSTEM`` and ``JUDGE_USER`` (response, knowledge) and its first token is read:
  P("Yes") = exp(log-probability of the token "Yes"); an endpoint reports the top 5 log-probabilities,
  and when neither "Yes" nor "No" is among them the score is 0 (their default), counted as
  ``judge_no_yes_no``.

The judge is pluggable: ``LocalJudge`` (any local causal LM, e.g. a registry model; P(Yes) read from
its full next-token distribution in one forward pass) or ``EndpointJudge`` (an OpenAI-compatible
``/chat/completions`` endpoint, e.g. a vLLM server on the cluster or the OpenAI API, with
``logprobs`` / ``top_logprobs``; the key comes from an environment variable, never from config).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from typing import Any, Mapping, Sequence

log = logging.getLogger("alpha.eval.grounded")

ANSWER_TEMPLATE = (
    "You are a helpful AI assistant trained to help users on their personal issues. Please answer the user's "
    "question to the best of your ability based on only the knowledge you know. Do NOT make up any unfounded "
    "statements or claims.\n\nUser's question: {}\n\nYour Answer:"
)
JUDGE_SYSTEM = (
    "You are an AI assistant trained to classify whether a given response from a language agent entails a "
    "specific cultural knowledge.\n\nParticularly, given a piece of cultural knowledge and a response from an "
    "agent, output \"Yes\" if the response entails the cultural knowledge and \"No\" otherwise.\n\nYour output "
    "should be Yes/No only. Even if you are uncertain, you must pick either \"Yes\" or \"No\" without using any "
    "other words."
)
JUDGE_USER = "Response: {}\n\nKnowledge: {}\n\nDoes the given response entail the provided knowledge?\n\nEntailment (Yes/No):"
SAMPLING = {"do_sample": True, "temperature": 0.7, "top_k": 10, "top_p": 0.95}
TOP_LOGPROBS = 5


def answer_questions(model, tokenizer, questions: Sequence[str], *, template: str | None, max_new_tokens: int,
                     sampling: Mapping[str, Any] | None = None, seed: int = 1234, log_every: int = 20) -> list[str]:
    """Each question's answer, generated alone (seed + CRC-32 of the question), without special tokens."""
    import zlib

    import torch

    from alpha.eval.scoring import chat_prompt

    sampling = dict(SAMPLING if sampling is None else sampling)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = []
    start = time.perf_counter()
    for k, question in enumerate(questions):
        text = chat_prompt(tokenizer, ANSWER_TEMPLATE.format(question), template)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        torch.manual_seed(seed + zlib.crc32(question.encode("utf-8")))
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, **sampling)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
        if log_every and ((k + 1) % log_every == 0 or k + 1 == len(questions)):
            log.info("answered %d/%d questions (%.1f/s)", k + 1, len(questions), (k + 1) / (time.perf_counter() - start))
    return answers


class LocalJudge:
    """A local causal LM as the judge: P("Yes") from its next-token distribution after the judge prompt."""

    def __init__(self, model, tokenizer, template: str | None = None, batch_size: int = 8, name: str = "local judge"):
        self.model, self.tokenizer, self.template, self.batch_size = model, tokenizer, template, batch_size
        self.name = name  # as configured (a registry name): never an absolute path in an output

    def p_yes(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, str | None]]:
        from alpha.eval.scoring import score_items

        items = [{"item_id": str(k), "prompt": JUDGE_USER.format(resp, desc), "labels": ["Yes", "No"]}
                 for k, (resp, desc) in enumerate(pairs)]
        scored = score_items(self.model, self.tokenizer, items, batch_size=self.batch_size, chat=True,
                             template=self.template, system=JUDGE_SYSTEM)
        return [(math.exp(s.logprobs[0]), None) for s in scored]


class EndpointJudge:
    """An OpenAI-compatible chat-completions endpoint as the judge (first token's top log-probabilities)."""

    def __init__(self, url: str, model_name: str, api_key_env: str | None = "OPENAI_API_KEY", timeout: float = 60.0,
                 retries: int = 10, seed: int = 1234):
        self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/chat/completions") else "/chat/completions")
        self.model_name, self.timeout, self.retries, self.seed = model_name, timeout, retries, seed
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.name = f"{model_name} @ {url}"

    def request(self, response: str, knowledge: str) -> dict:
        return {
            "model": self.model_name,
            "messages": [{"role": "system", "content": JUDGE_SYSTEM},
                         {"role": "user", "content": JUDGE_USER.format(response, knowledge)}],
            "seed": self.seed, "temperature": 0, "max_tokens": 1, "top_p": 0.01,
            "logprobs": True, "top_logprobs": TOP_LOGPROBS,
        }

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def p_yes(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, str | None]]:
        out = []
        for k, (resp, desc) in enumerate(pairs):
            for attempt in range(1, self.retries + 1):
                try:
                    out.append(parse_top_logprobs(self._post(self.request(resp, desc))))
                    break
                except (urllib.error.URLError, TimeoutError, KeyError, IndexError, ValueError) as exc:
                    # the key is never logged: only the URL and the error
                    log.warning("judge request %d failed (attempt %d/%d): %s", k, attempt, self.retries, exc)
                    if attempt == self.retries:
                        raise RuntimeError(f"judge endpoint {self.url} failed {self.retries} times: {exc}") from exc
                    time.sleep(min(30.0, 0.5 * 2 ** attempt))
        return out


def parse_top_logprobs(body: Mapping[str, Any]) -> tuple[float, str | None]:
    """(P("Yes"), None) from a chat-completions response's first-token top log-probabilities, or
    (0.0, "judge_no_yes_no") when neither "Yes" nor "No" is among them (CultureBank's default)."""
    top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    yes = next((math.exp(t["logprob"]) for t in top if t["token"] == "Yes"), 0.0)
    no = next((math.exp(t["logprob"]) for t in top if t["token"] == "No"), 0.0)
    return (yes, None) if (yes > 0 or no > 0) else (0.0, "judge_no_yes_no")


def evaluate(items: Sequence[Mapping[str, Any]], answers: Sequence[str], judge) -> tuple[list[dict], dict]:
    """Per-item rows (item id, subset, question, answer, P(Yes)) and the mean P(Yes) per subset."""
    judged = judge.p_yes([(a, item["eval_whole_desc"]) for item, a in zip(items, answers)])
    rows = [{"item_id": item["item_id"], "subset": item["subset"], "question": item["eval_question"], "answer": answer,
             "p_yes": p, "note": note or ""} for item, answer, (p, note) in zip(items, answers, judged)]
    summary: dict[str, Any] = {"judge": judge.name, "items": len(rows), "by_subset": {}}
    for subset in sorted({r["subset"] for r in rows}):
        values = [r["p_yes"] for r in rows if r["subset"] == subset]
        summary["by_subset"][subset] = {"value": sum(values) / len(values), "n_items": len(values),
                                        "judge_no_yes_no": sum(1 for r in rows if r["subset"] == subset and r["note"])}
    return rows, summary


SUBSET_COLUMNS = {"reddit": "CultureBank Reddit (grounded)", "tiktok": "CultureBank TikTok (grounded)"}


def test_items(items: Sequence[Mapping[str, Any]], max_items: int | None = None) -> list[Mapping[str, Any]]:
    """The prepared CultureBank items (already the test split), at most ``max_items`` per subset."""
    kept, seen = [], {}
    for item in items:
        seen[item["subset"]] = seen.get(item["subset"], 0) + 1
        if max_items is None or seen[item["subset"]] <= max_items:
            kept.append(item)
    return kept


def write(rows: list[dict], summary: dict, model: str, per_item_path, result_path) -> None:
    """Per-item answers and judge scores (Parquet) and a result JSON in ``alpha.eval.results``' table schema."""
    import pyarrow as pa

    from alpha.core import io
    from alpha.eval.scoring import write_results

    write_results(per_item_path, pa.Table.from_pylist(rows, schema=pa.schema([
        ("item_id", pa.string()), ("subset", pa.string()), ("question", pa.string()), ("answer", pa.string()),
        ("p_yes", pa.float64()), ("note", pa.string())])))
    metrics = [
        {"column": SUBSET_COLUMNS[subset], "where": {"subset": subset}, "name": "culturebank_grounded",
         "family": "culturebank_grounded", "variant": "reference", "value": entry["value"], "n_items": entry["n_items"],
         "n_excluded": 0, "excluded": {}, "per_group": {}, "details": {"judge_no_yes_no": entry["judge_no_yes_no"]}}
        for subset, entry in summary["by_subset"].items() if subset in SUBSET_COLUMNS
    ]
    io.write_json(result_path, {"model": model, "benchmark": "culturebank_grounded", "judge": summary["judge"],
                                "items": summary["items"], "metrics": metrics})
