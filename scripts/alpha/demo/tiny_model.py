"""The embedded default's base model: a byte-level BPE tokenizer trained on the demo corpus and a tiny
Llama-architecture model with the Llama-2 chat template, saved like any Hugging Face checkpoint.

The option labels every benchmark scores (``A``-``Z``, ``E``/``N``/``C``, ``Yes``/``No``) must be single
tokens, with and without a leading space, so that one next-token distribution scores all options; the
corpus gets option blocks for that and ``check_label_tokens`` asserts it.
"""
from __future__ import annotations

import itertools
import logging
import string
from pathlib import Path
from typing import Iterable, Iterator

from alpha.core.chat import LLAMA2_TEMPLATE
from alpha.core.io import iter_parquet_batches

log = logging.getLogger("alpha.demo.tiny_model")

SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
LABELS = tuple(string.ascii_uppercase) + ("Yes", "No")  # E, N, C are letters already
CHAT_MARKERS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")


def option_blocks(repeats: int = 20) -> Iterator[str]:
    """Texts in which every label occurs often in each form the prompts use: "A", " A", "(A)"."""
    for _ in range(repeats):
        yield "\n".join(f"{label}. option\n({label}) option\nAnswer: {label}" for label in LABELS)
        yield "Answer with Yes or No: Yes No yes no (E) Entail (N) Neutral (C) Contradict " + " ".join(CHAT_MARKERS)


def corpus(sample_files: Iterable[str | Path], extra_texts: Iterable[str] = (), batch_rows: int = 8192) -> Iterator[str]:
    """Every message of the sample files (streamed), then extra texts."""
    for path in sample_files:
        for batch in iter_parquet_batches(path, batch_rows, columns=["messages"]):
            for conversation in batch.column("messages").to_pylist():
                for message in conversation:
                    yield message["content"]
    yield from extra_texts


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(itertools.chain(texts, option_blocks()), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
    tokenizer.chat_template = LLAMA2_TEMPLATE
    tokenizer.padding_side = "left"  # scoring and generation read the last position
    return tokenizer


def check_label_tokens(tokenizer) -> None:
    """Raise unless every option label is one token, bare and after a space."""
    bad = [
        form
        for label in LABELS
        for form in (label, " " + label)
        if len(tokenizer(form, add_special_tokens=False)["input_ids"]) != 1
    ]
    if bad:
        raise ValueError(f"option labels that are not single tokens: {bad!r}")


def build(out_dir: str | Path, texts: Iterable[str], *, vocab_size: int, hidden_size: int, intermediate_size: int,
          num_layers: int, num_heads: int, max_position_embeddings: int, seed: int) -> dict:
    """Train the tokenizer, initialise the model from ``seed``, save both to ``out_dir`` and reload them
    through the Auto classes (what every later rule does). Returns a small report."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(texts, vocab_size)
    check_label_tokens(tokenizer)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)

    reloaded = AutoTokenizer.from_pretrained(out_dir)
    check_label_tokens(reloaded)
    if reloaded.chat_template != LLAMA2_TEMPLATE:
        raise RuntimeError("the saved tokenizer lost its chat template")
    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(out_dir).parameters())
    log.info("tiny model: %d parameters, vocabulary %d", n_params, len(reloaded))
    return {"parameters": n_params, "vocab_size": len(reloaded), "hidden_size": hidden_size, "layers": num_layers}
