"""Option scoring: the next-token log-probabilities of each item's option labels, one forward pass per prompt.

Every benchmark item is a fully formatted prompt (ending e.g. in ``"Answer:"`` or ``"my answer would be ("``)
and its option labels (``["A", "B", "C", "D"]``, ``["E", "N", "C"]``, ``["Yes", "No"]``). The model reads
the prompt once; the distribution over the whole vocabulary at the answer position (the position after the
last prompt token) gives every option's log-probability, and the probabilities renormalised over the
options are the model's answer distribution (never one forward pass per option). This is the
one-token case of lm-evaluation-harness' loglikelihood requests taken all the way: no pass per option.

Engine (``score_items``):

* prompts are optionally wrapped in the model's chat template as one user turn plus the generation prompt
  (``chat=True``; off by default: each benchmark spec decides), then tokenised without truncation; a prompt
  longer than the model's context raises ``PromptTooLongError`` (or, with ``on_too_long="skip"``, is
  recorded with null scores and counted in the log);
* prompts are sorted by token length, longest first (less padding; an out-of-memory shows in the first
  batch), cut into batches of at most ``batch_size`` rows and, optionally, ``max_tokens_per_batch`` padded
  tokens, and left-padded with an attention mask. Llama-type models in transformers 5 do *not* derive
  position ids from the mask (they default to ``arange``), so they are passed explicitly
  (``cumsum(mask) - 1``): a left-padded row then sees exactly the positions it would see alone;
* only the last position's logits are computed (``logits_to_keep=1`` where the model's forward takes it),
  log-softmax runs in float32 over the full vocabulary whatever the model's dtype (bf16 on CUDA is fine);
* results come back in input order.

Label tokens (``LabelResolver``): a label such as ``A`` can be emitted as the bare token ``"A"`` or as the
word-initial token, which is ``"ĠA"`` in byte-level BPE vocabularies (GPT-2, Llama-3, the tiny model) and
``"▁A"`` in SentencePiece ones (Llama-2, Mistral). Both forms are looked up in the vocabulary (a single
token each, never a multi-token encoding). Which one is read is ``label_form``:

``"auto"`` (default)  decided per prompt from the text the model actually reads (after chat wrapping):
                       the **bare** form if it ends in whitespace or an opening bracket / quote
                       (``( [ { < " '`` and typographic quotes), where the label is written flush
                       against what precedes it; otherwise the **space** form, since the label starts a
                       new word (``"Answer:"`` -> ``" A"``, ``"[/INST]"`` -> ``" A"``).
``"bare"`` / ``"space"``  that form for every prompt.
``"both"``            a named variant: logsumexp of the two forms' log-probabilities (either that exists).

A label whose required form is not a single vocabulary token raises ``LabelTokenError`` naming the label
and the token strings tried (``"both"`` raises only when neither form exists).

Results (``results_table`` / ``write_results``): columns ``item_id, n_prompt_tokens, options (list<string>),
logprobs (list<double>, full-vocabulary), probs (list<double>, renormalised over the options), order,
permutation`` (one row per item and option order, values in the original option order), written as
Parquet with fixed options (zstd, no statistics, fixed row-group size) and atomically, so a rerun on the
same machine is byte-identical.
"""
from __future__ import annotations

import inspect
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa

from alpha.core import io
from alpha.eval.task_spec import TaskSpec

log = logging.getLogger("alpha.eval.scoring")

LABEL_FORMS = ("auto", "bare", "space", "both")
ON_TOO_LONG = ("raise", "skip")
BYTE_LEVEL_SPACE = "\u0120"  # "Ġ": the byte-level BPE picture of a leading space
SENTENCEPIECE_SPACE = "\u2581"  # "▁": SentencePiece's word-boundary marker
# the answer is written flush against these (no leading space): "(A)", "[A]", "\"A", "Answer:\nA"
FLUSH_ENDINGS = ("(", "[", "{", "<", '"', "'", "\u201c", "\u2018")

RESULT_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("n_prompt_tokens", pa.int64()),
        ("options", pa.list_(pa.string())),
        ("logprobs", pa.list_(pa.float64())),  # full-vocabulary log-probability of each option's label token(s)
        ("probs", pa.list_(pa.float64())),  # renormalised over the options; sums to 1
        ("order", pa.int32()),  # 0: the options as prepared; 1..k-1: eval.permutations' other orders
        ("permutation", pa.list_(pa.int32())),  # position i showed option permutation[i]
    ]
)
ROW_GROUP_ROWS = 65_536  # fixed so the bytes never depend on how results were batched

__all__ = [
    "LABEL_FORMS",
    "RESULT_SCHEMA",
    "LabelTokenError",
    "PromptTooLongError",
    "LabelTokens",
    "LabelResolver",
    "answer_form",
    "chat_prompt",
    "load_model",
    "plan_batches",
    "ScoredItem",
    "score_items",
    "results_table",
    "write_results",
]


class LabelTokenError(ValueError):
    """An option label that is not a single token in the form the answer position needs."""


class PromptTooLongError(ValueError):
    """A prompt longer than the model's context (scoring never truncates)."""


# ---------------------------------------------------------------------------------------------------------
# label tokens


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, by which byte-level BPE vocabularies spell their tokens."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_ENCODER = _bytes_to_unicode()


def _byte_level(text: str) -> str:
    return "".join(_BYTE_ENCODER[b] for b in text.encode("utf-8"))


@dataclass(frozen=True)
class LabelTokens:
    """The single-token ids of one label: bare (``"A"``) and word-initial (``"ĠA"`` / ``"▁A"``); None if absent."""

    label: str
    bare: int | None
    space: int | None
    bare_token: str
    space_token: str

    def ids(self, form: str) -> list[int]:
        """Token ids read for ``form`` ("bare", "space" or "both"); raises LabelTokenError if missing."""
        if form == "both":
            ids = [i for i in (self.bare, self.space) if i is not None]
            if not ids:
                raise LabelTokenError(
                    f"option label {self.label!r} is not a single token in any form "
                    f"(tried {self.bare_token!r}, {self.space_token!r})"
                )
            return sorted(set(ids))
        if form not in ("bare", "space"):
            raise ValueError(f"unknown label form {form!r}; known: bare, space, both")
        token_id = self.bare if form == "bare" else self.space
        if token_id is None:
            tried = self.bare_token if form == "bare" else self.space_token
            other = "space" if form == "bare" else "bare"
            hint = (
                f"; its {other} form is one token: choose label_form={other!r} or 'both' if that is right here"
                if (self.space if form == "bare" else self.bare) is not None
                else f" in any form (also tried {self.space_token if form == 'bare' else self.bare_token!r})"
            )
            raise LabelTokenError(f"option label {self.label!r} is not a single token {tried!r} ({form} form){hint}")
        return [token_id]


class LabelResolver:
    """Look up label tokens in a tokenizer's vocabulary (anything with ``get_vocab() -> {token: id}``).

    The vocabulary style decides the spelling: byte-level BPE (more tokens start with "Ġ" than "▁") spells
    ``"A"`` / ``"ĠA"`` through the byte map; SentencePiece spells ``"A"`` / ``"▁A"``. Encoding the label
    instead would be wrong for SentencePiece, which prefixes a space to every encoded text.
    """

    def __init__(self, tokenizer):
        self.vocab: Mapping[str, int] = tokenizer.get_vocab()
        n_byte_level = sum(1 for token in self.vocab if token.startswith(BYTE_LEVEL_SPACE))
        n_sentencepiece = sum(1 for token in self.vocab if token.startswith(SENTENCEPIECE_SPACE))
        self.style = "sentencepiece" if n_sentencepiece > n_byte_level else "byte_level"
        self._cache: dict[str, LabelTokens] = {}

    def __call__(self, label: str) -> LabelTokens:
        if label not in self._cache:
            if not label or label != label.strip():
                raise LabelTokenError(f"option label {label!r} must be non-empty without surrounding whitespace")
            if self.style == "byte_level":
                bare, space = _byte_level(label), BYTE_LEVEL_SPACE + _byte_level(label)
            else:
                bare, space = label, SENTENCEPIECE_SPACE + label
            self._cache[label] = LabelTokens(label, self.vocab.get(bare), self.vocab.get(space), bare, space)
        return self._cache[label]

    def ids(self, labels: Sequence[str], form: str) -> list[list[int]]:
        """Per label, the token ids to read (one, or two for "both")."""
        return [self(label).ids(form) for label in labels]


def answer_form(text: str, label_form: str = "auto") -> str:
    """The label form read after ``text``: "bare", "space" or "both" (see the module docstring)."""
    if label_form not in LABEL_FORMS:
        raise ValueError(f"unknown label_form {label_form!r}; known: {', '.join(LABEL_FORMS)}")
    if label_form != "auto":
        return label_form
    if not text or text[-1].isspace() or text.endswith(FLUSH_ENDINGS):
        return "bare"
    return "space"


# ---------------------------------------------------------------------------------------------------------
# prompts and batches


def chat_prompt(tokenizer, prompt: str, template: str | None = None, system: str | None = None) -> str:
    """``prompt`` as one user turn (after an optional system message) in the chat template named by
    ``template`` (``alpha.core.chat.template_for``: None = the tokenizer's own), ending in the generation prompt."""
    from alpha.core.chat import render, template_for

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return render(tokenizer, messages, template_for(template, tokenizer), add_generation_prompt=True)


def load_model(model_dir: str, device: str | None = None):
    """(model, tokenizer) for scoring: bf16 on a bf16-capable GPU, float32 on CPU; pad = eos if unset."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device == "cuda" and torch.cuda.device_count() > 1:  # a model too large for one GPU: layers spread out
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map="auto")
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    log.info("loaded %s (%s, %s)", model_dir, dtype, getattr(model, "hf_device_map", device))
    return model.eval(), tokenizer


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens_per_batch: int | None = None) -> list[list[int]]:
    """Indices into ``lengths`` grouped into batches, longest prompts first (stable among equal lengths).

    A batch holds at most ``batch_size`` rows and, with a cap, at most ``max_tokens_per_batch`` padded tokens
    (rows × its longest prompt); a prompt longer than the cap on its own gets a batch of one.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_tokens_per_batch is not None and max_tokens_per_batch < 1:
        raise ValueError(f"max_tokens_per_batch must be >= 1, got {max_tokens_per_batch}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]  # longest first: the first row sets the width
        if current and (
            len(current) >= batch_size
            or (max_tokens_per_batch is not None and (len(current) + 1) * width > max_tokens_per_batch)
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _model_max_length(model, tokenizer) -> int | None:
    limits = [getattr(getattr(model, "config", None), "max_position_embeddings", None)]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < 10**7:  # HF's "no limit" sentinel is ~1e30
        limits.append(tokenizer_limit)
    limits = [n for n in limits if isinstance(n, int) and n > 0]
    return min(limits) if limits else None


def _keep_kwarg(model) -> str | None:
    """The forward argument that restricts logits to the last positions, if the model's class has one."""
    try:
        parameters = inspect.signature(type(model).forward).parameters
    except (TypeError, ValueError):
        return None
    for name in ("logits_to_keep", "num_logits_to_keep"):  # transformers >= 4.50 / 4.45-4.49
        if name in parameters:
            return name
    return None


def _pad_id(tokenizer) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0


def left_padded(sequences: Sequence[Sequence[int]], pad_id: int):
    """(input_ids, attention_mask) as long tensors, left-padded: every sequence ends at the last column."""
    import torch

    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids):] = 1
    return input_ids, attention_mask


# ---------------------------------------------------------------------------------------------------------
# the engine


@dataclass
class ScoredItem:
    item_id: str
    n_prompt_tokens: int
    options: list[str]
    logprobs: list[float] | None  # None: skipped (too long)
    probs: list[float] | None
    label_form: str = ""  # the form read: bare, space or both
    token_ids: list[list[int]] = field(default_factory=list)
    order: int = 0
    permutation: list[int] | None = None  # None: the options as prepared


def _item_fields(item: Any, index: int) -> tuple[str, str, list[str]]:
    if isinstance(item, Mapping):
        item_id, prompt, labels = item.get("item_id", str(index)), item["prompt"], item.get("labels", item.get("options"))
    else:
        item_id, prompt, labels = getattr(item, "item_id", str(index)), item.prompt, getattr(item, "labels", None)
    if not labels:
        raise ValueError(f"item {item_id!r} has no option labels")
    return str(item_id), prompt, list(labels)


def _renormalise(logprobs: list[float]) -> list[float]:
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = math.fsum(weights)
    return [w / total for w in weights]


def score_items(
    model,
    tokenizer,
    items: Iterable[Mapping[str, Any]],
    *,
    batch_size: int = 8,
    max_tokens_per_batch: int | None = None,
    label_form: str = "auto",
    chat: bool = False,
    template: str | None = None,
    system: str | None = None,
    add_special_tokens: bool | None = None,
    max_length: int | None = None,
    on_too_long: str = "raise",
    log_every: int = 50,
) -> list[ScoredItem]:
    """Score every item (``{"item_id", "prompt", "labels"}``, the benchmark loaders' item dicts) with one
    forward pass per prompt; returns one ``ScoredItem`` per item, in input order.

    ``chat``: wrap each prompt with ``chat_prompt`` (``template`` / ``system`` as there); the benchmark spec
    decides, default off. ``add_special_tokens``: passed to the tokenizer; default True for raw prompts (the
    tokenizer's own BOS convention) and False for chat-wrapped ones (the template writes BOS itself).
    ``max_length``: the context limit (default: the model's ``max_position_embeddings`` and the tokenizer's
    ``model_max_length``, whichever is smaller). ``log_every``: progress line every so many batches.
    """
    import torch

    if label_form not in LABEL_FORMS:
        raise ValueError(f"unknown label_form {label_form!r}; known: {', '.join(LABEL_FORMS)}")
    if on_too_long not in ON_TOO_LONG:
        raise ValueError(f"unknown on_too_long {on_too_long!r}; known: {', '.join(ON_TOO_LONG)}")
    fields = [_item_fields(item, k) for k, item in enumerate(items)]
    if not fields:
        return []
    texts = [chat_prompt(tokenizer, prompt, template, system) if chat else prompt for _, prompt, _ in fields]
    if add_special_tokens is None:
        add_special_tokens = not chat

    # label tokens first: a bad label fails before any model time is spent
    resolver = LabelResolver(tokenizer)
    forms = [answer_form(text, label_form) for text in texts]
    token_ids = [resolver.ids(labels, form) for (_, _, labels), form in zip(fields, forms)]

    encoded = tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    if min(lengths) == 0:
        raise ValueError(f"item {fields[lengths.index(0)][0]!r} has an empty prompt (no tokens)")
    limit = max_length if max_length is not None else _model_max_length(model, tokenizer)
    too_long = [k for k, n in enumerate(lengths) if limit is not None and n > limit]
    if too_long:
        sample = ", ".join(f"{fields[k][0]} ({lengths[k]} tokens)" for k in too_long[:5])
        if on_too_long == "raise":
            raise PromptTooLongError(f"{len(too_long)} prompt(s) exceed the model's {limit} tokens: {sample}")
        log.warning("skipping %d prompt(s) longer than %d tokens: %s", len(too_long), limit, sample)
    skipped = set(too_long)
    todo = [k for k in range(len(fields)) if k not in skipped]
    batches = [[todo[j] for j in batch] for batch in plan_batches([lengths[k] for k in todo], batch_size, max_tokens_per_batch)]

    device = next(model.parameters()).device
    keep = _keep_kwarg(model)
    pad_id = _pad_id(tokenizer)
    logprobs: list[list[float] | None] = [None] * len(fields)
    log.info(
        "scoring %d prompts in %d batches (batch size %d, token cap %s, label form %s, chat %s) on %s",
        len(todo), len(batches), batch_size, max_tokens_per_batch, label_form, chat, device,
    )
    start = time.perf_counter()
    done = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for b, batch in enumerate(batches, start=1):
                input_ids, attention_mask = left_padded([encoded[k] for k in batch], pad_id)
                position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
                kwargs = {keep: 1} if keep else {}
                out = model(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask.to(device),
                    position_ids=position_ids.to(device),
                    use_cache=False,
                    **kwargs,
                )
                last = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # float32, full vocabulary
                # one gather for the whole batch, then per item (labels differ between items)
                flat = sorted({i for k in batch for ids in token_ids[k] for i in ids})
                where = {i: j for j, i in enumerate(flat)}
                picked = last[:, torch.tensor(flat, device=last.device)].double().cpu()
                for row, k in enumerate(batch):
                    logprobs[k] = [
                        float(torch.logsumexp(picked[row, [where[i] for i in ids]], dim=0)) for ids in token_ids[k]
                    ]
                done += len(batch)
                if log_every and (b % log_every == 0 or b == len(batches)):
                    elapsed = time.perf_counter() - start
                    log.info("batch %d/%d: %d/%d prompts, %.1f prompts/s", b, len(batches), done, len(todo), done / max(elapsed, 1e-9))
    finally:
        model.train(was_training)

    return [
        ScoredItem(
            item_id=item_id,
            n_prompt_tokens=lengths[k],
            options=labels,
            logprobs=logprobs[k],
            probs=_renormalise(logprobs[k]) if logprobs[k] is not None else None,
            label_form=forms[k],
            token_ids=token_ids[k],
        )
        for k, (item_id, _, labels) in enumerate(fields)
    ]


# ---------------------------------------------------------------------------------------------------------
# results


def results_table(scored: Sequence[ScoredItem], metadata: Mapping[str, str] | None = None) -> pa.Table:
    """The scores as a table with ``RESULT_SCHEMA`` (skipped items have null logprobs / probs); ``metadata``
    (e.g. label form, chat on/off) goes into the schema's key-value metadata."""
    table = pa.Table.from_pydict(
        {
            "item_id": [s.item_id for s in scored],
            "n_prompt_tokens": [s.n_prompt_tokens for s in scored],
            "options": [list(s.options) for s in scored],
            "logprobs": [s.logprobs for s in scored],
            "probs": [s.probs for s in scored],
            "order": [s.order for s in scored],
            "permutation": [s.permutation if s.permutation is not None else list(range(len(s.options))) for s in scored],
        },
        schema=RESULT_SCHEMA,
    )
    if metadata:
        table = table.replace_schema_metadata({str(k): str(v) for k, v in sorted(metadata.items())})
    return table


def write_results(path: str | os.PathLike, results: pa.Table | Sequence[ScoredItem], metadata: Mapping[str, str] | None = None) -> None:
    """Write results as Parquet, atomically, with options fixed so reruns are byte-identical."""
    table = results if isinstance(results, pa.Table) else results_table(results)
    if metadata:
        table = table.replace_schema_metadata({str(k): str(v) for k, v in sorted(metadata.items())})
    io.write_parquet(path, table, ROW_GROUP_ROWS)


def score_prepared(model_dir: str, items_path: str | os.PathLike, out: str | os.PathLike, *, task: TaskSpec,
                   chat_template: str | None = None, batch_size: int = 16, max_tokens_per_batch: int | None = None,
                   on_too_long: str = "raise", metadata: Mapping[str, str] | None = None,
                   permutations: int = 1, seed: int = 0) -> dict:
    """Score every prepared item of one benchmark with one model; per-item results as Parquet.

    ``permutations`` > 1: every item is also scored in k - 1 other option orders (``alpha.eval.permutations``),
    all prompts in the same batches (the cost grows with k and nothing else); each row's log-probabilities
    and probabilities are mapped back to the original options, and ``order`` / ``permutation`` say which
    order was shown. A task without ``option_line`` (Yes/No, E/N/C) is scored in its one order."""
    import json

    import pyarrow.parquet as pq

    from alpha.eval.permutations import expand_items, to_original

    if permutations > 1 and not task.option_line:
        log.info("task %s declares no option_line (no lettered option block): scored in its one order", task.name)
        permutations = 1
    option_line = task.option_line if permutations > 1 else None
    columns = ["item_id", "question_id", "prompt", "labels"] + (["item"] if permutations > 1 else [])
    items = pq.read_table(items_path, columns=columns).to_pylist()
    if permutations > 1:
        items = [{**row, "options": json.loads(row.pop("item")).get("options")} for row in items]
    prompts = expand_items(items, permutations, seed, option_line)
    model, tokenizer = load_model(model_dir)
    settings = {"chat": bool(task.score.get("chat", False)), "label_form": task.score.get("label_form", "auto"),
                "system": task.score.get("system")}
    scored = score_items(model, tokenizer, prompts, batch_size=batch_size, max_tokens_per_batch=max_tokens_per_batch,
                         template=chat_template, on_too_long=on_too_long, **settings)
    for s, prompt in zip(scored, prompts):
        s.order, s.permutation = prompt["order"], prompt["permutation"]
        if s.logprobs is not None:
            s.logprobs, s.probs = to_original(s.logprobs, s.permutation), to_original(s.probs, s.permutation)
    forms = sorted({s.label_form for s in scored})
    meta = {**(metadata or {}), "chat": str(settings["chat"]).lower(), "label_form": settings["label_form"],
            "label_forms_read": ",".join(forms), "chat_template": str(chat_template), "permutations": str(permutations),
            "permutation_seed": str(seed)}
    write_results(out, scored, metadata=meta)
    skipped = sum(s.logprobs is None for s in scored)
    tokens = sum(s.n_prompt_tokens for s in scored)
    return {"items": len(items), "prompts": len(scored), "prompt_tokens": tokens, "skipped_too_long": skipped,
            "label_forms_read": forms, "orders": permutations}
