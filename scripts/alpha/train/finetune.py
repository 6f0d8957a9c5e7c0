"""Supervised fine-tuning on a shard set with the HF Trainer and DeepSpeed ZeRO (2 or 3), optionally LoRA.

* A recipe (``config/recipes/*.yaml``) is one flat YAML: keys of ``Recipe`` below plus any
  ``transformers.TrainingArguments`` field; an unknown key stops the run naming it.
* Shards are streamed (``ShardStream``): each rank reads the Parquet files row group by row group and
  keeps every ``world_size``-th sample, so nothing is ever loaded whole. The number of optimiser
  steps comes from the shard set's manifest.
* Loss on assistant tokens only (``alpha.core.chat.encode_conversation``).
* Checkpoints every ``save_steps`` into the checkpoint folder; a rerun resumes from the latest one.
  The data stream is deterministic, so on resume it seeks straight to the first unseen sample
  (whole files and row groups are skipped unread) instead of replaying batches.
* The final weights (gathered under ZeRO-3) and tokenizer go to ``output``; ``metrics`` gets the
  loss curve and counts, nothing that depends on the clock (timings go to the log).

CPU-only workarounds (gloo, the accelerate state, DeepSpeed's torch Adam) apply only when CUDA is
not available, so the GPU path is the stock one.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
import yaml

from alpha.core import chat
from alpha.core.io import write_json

log = logging.getLogger("alpha.train.finetune")


@dataclass
class Recipe:
    """Recipe keys that are not TrainingArguments."""

    shard_set: str = "alpha"
    max_length: int = 512
    deepspeed: str | None = None  # a config/deepspeed/*.json; None trains without DeepSpeed
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


# TrainingArguments that run() sets itself (paths, resume, streaming, logging)
WORKFLOW_SET = frozenset({
    "output_dir", "resume_from_checkpoint", "ignore_data_skip", "report_to", "disable_tqdm",
    "include_num_input_tokens_seen", "save_only_model", "accelerator_config",
})


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Recipe, dict[str, Any]]:
    """(Recipe, TrainingArguments keyword arguments) from a recipe file plus ``--key=value`` overrides."""
    from transformers import TrainingArguments

    values = yaml.safe_load(Path(path).read_text()) or {}
    values.update(overrides or {})
    own = {f.name for f in dataclasses.fields(Recipe)}
    targs = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    unknown = sorted(set(values) - own - targs)
    if unknown:
        raise ValueError(f"{path}: unknown recipe keys {unknown} (neither alpha.train.finetune.Recipe nor TrainingArguments fields)")
    reserved = sorted(WORKFLOW_SET & (set(values) - own))
    if reserved:
        raise ValueError(f"{path}: {reserved} are set by the workflow, not by recipes")
    return Recipe(**{k: v for k, v in values.items() if k in own}), {k: v for k, v in values.items() if k not in own}


def deepspeed_config(path: str | Path, cuda: bool) -> dict:
    config = json.loads(Path(path).read_text())
    if not cuda and "optimizer" in config:
        # DeepSpeed's fused Adam needs a CUDA op build; torch's AdamW is exact and starts at once.
        config["optimizer"].setdefault("params", {})["torch_adam"] = True
    return config


# ---------------------------------------------------------------- data


def shard_files(shard_dir: str | Path) -> tuple[list[Path], int]:
    """The shard set's Parquet files in manifest order and its total rows (checked against the files)."""
    shard_dir = Path(shard_dir)
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    files = [shard_dir / s["file"] for s in manifest["shards"]]
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    if rows != sum(s["rows"] for s in manifest["shards"]):
        raise ValueError(f"{shard_dir}: the shard files do not match manifest.json (rerun make_shards)")
    if rows == 0:
        raise ValueError(f"{shard_dir}: the shard set is empty")
    return files, rows


class ShardStream:
    """Tokenised training samples of one rank, epoch after epoch, from sample ``start`` of this rank.

    Rank ``r`` of ``world`` owns global samples ``r, r + world, r + 2 world, ...`` (global order =
    files in manifest order, rows in file order, epochs one after the other).
    """

    def __init__(self, files, rows_per_epoch, tokenizer, template, max_length, rank=0, world=1, start=0):
        self.files, self.rows_per_epoch = list(files), rows_per_epoch
        self.tokenizer, self.template, self.max_length = tokenizer, template, max_length
        self.rank, self.world, self.start = rank, world, start
        self.stats = {"samples": 0, "truncated": 0, "left_truncated": 0}

    def _global_rows(self, skip: int) -> Iterator[tuple[int, list[dict]]]:
        """(global index, messages) from global index ``skip`` on, forever."""
        epoch, skip_in_epoch = divmod(skip, self.rows_per_epoch)
        while True:
            base = epoch * self.rows_per_epoch
            for path in self.files:
                parquet = pq.ParquetFile(path, pre_buffer=False)
                n = parquet.metadata.num_rows
                if skip_in_epoch >= n:
                    skip_in_epoch -= n
                    base += n
                    continue
                for g in range(parquet.metadata.num_row_groups):
                    group_rows = parquet.metadata.row_group(g).num_rows
                    if skip_in_epoch >= group_rows:
                        skip_in_epoch -= group_rows
                        base += group_rows
                        continue
                    table = parquet.read_row_group(g, columns=["messages"])  # one row group in memory
                    first = skip_in_epoch + (self.rank - (base + skip_in_epoch)) % self.world
                    for i in range(first, group_rows, self.world):
                        yield base + i, table.column("messages")[i].as_py()
                    skip_in_epoch = 0
                    base += group_rows
            epoch += 1

    def encode(self, messages: list[dict]) -> dict:
        enc = chat.encode_conversation(self.tokenizer, messages, self.template, 10**9)
        ids, labels = enc.input_ids, enc.labels
        if len(ids) > self.max_length:
            self.stats["truncated"] += 1
            first_label = next((i for i, lab in enumerate(labels) if lab != chat.IGNORE_INDEX), 0)
            if first_label >= self.max_length:  # the answer would be cut off entirely: keep the end instead
                self.stats["left_truncated"] += 1
                ids, labels = ids[-self.max_length:], labels[-self.max_length:]
            else:
                ids, labels = ids[: self.max_length], labels[: self.max_length]
        self.stats["samples"] += 1
        return {"input_ids": ids, "labels": labels}

    def __iter__(self) -> Iterator[dict]:
        for _, messages in self._global_rows(self.start * self.world + self.rank):
            yield self.encode(messages)


def collate(pad_id: int):
    import torch

    def pad(batch: list[dict]) -> dict:
        width = max(len(b["input_ids"]) for b in batch)
        out = {"input_ids": [], "labels": [], "attention_mask": []}
        for b in batch:
            n = len(b["input_ids"])
            out["input_ids"].append(b["input_ids"] + [pad_id] * (width - n))
            out["labels"].append(b["labels"] + [chat.IGNORE_INDEX] * (width - n))
            out["attention_mask"].append([1] * n + [0] * (width - n))
        return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}

    return pad


# ---------------------------------------------------------------- run


def _distributed_setup(cuda: bool) -> None:
    if not cuda:
        os.environ.setdefault("ACCELERATE_USE_DEEPSPEED", "true")
        from accelerate import PartialState

        PartialState(backend="gloo")


def last_checkpoint(checkpoints: str | Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    checkpoints = Path(checkpoints)
    found = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    return Path(found) if found else None


def run(*, recipe_path: str, base_model: str, chat_template: str | None, shards: str, output: str, checkpoints: str,
        metrics: str, overrides: dict[str, Any] | None = None) -> dict:
    import torch
    from torch.utils.data import DataLoader, IterableDataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    recipe, targs = load_recipe(recipe_path, overrides)
    cuda = torch.cuda.is_available()
    if recipe.deepspeed:
        _distributed_setup(cuda)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if not cuda:
        torch.set_num_threads(max(1, int(os.environ.get("ALPHA_TORCH_THREADS", "1"))))
    bf16 = targs.pop("bf16", "auto")
    bf16 = cuda and torch.cuda.is_bf16_supported() if bf16 == "auto" else bool(bf16)

    files, rows = shard_files(shards)
    epochs = targs.pop("num_train_epochs", 1)
    per_step = world * targs.get("per_device_train_batch_size", 8) * targs.get("gradient_accumulation_steps", 1)
    max_steps = targs.pop("max_steps", -1)
    if max_steps is None or max_steps <= 0:
        max_steps = max(1, math.floor(rows * epochs / per_step))

    args = TrainingArguments(
        output_dir=checkpoints,
        max_steps=max_steps,
        bf16=bf16,
        deepspeed=deepspeed_config(recipe.deepspeed, cuda) if recipe.deepspeed else None,
        accelerator_config={"use_configured_state": True} if recipe.deepspeed and not cuda else None,
        ignore_data_skip=True,  # ShardStream seeks to the resume point itself
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        save_only_model=False,
        **targs,
    )
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    template = chat.template_for(chat_template, tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.bfloat16 if bf16 else torch.float32)
    if recipe.lora:
        from peft import LoraConfig, get_peft_model
        from transformers import set_seed

        set_seed(args.seed)  # LoRA's A matrices are drawn here, before the Trainer seeds anything

        model = get_peft_model(model, LoraConfig(
            r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
            target_modules=list(recipe.lora_target_modules), task_type="CAUSAL_LM",
        ))

    resume = last_checkpoint(checkpoints)
    done_steps = json.loads((resume / "trainer_state.json").read_text())["global_step"] if resume else 0
    per_rank_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
    stream = ShardStream(files, rows, tokenizer, template, recipe.max_length, rank=rank, world=world,
                         start=done_steps * per_rank_batch)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(stream)

    class StreamingTrainer(Trainer):
        # Each rank already reads only its own samples: no accelerate sharding or dispatching on top.
        def get_train_dataloader(self):
            return DataLoader(Stream(), batch_size=args.per_device_train_batch_size, collate_fn=collate(tokenizer.pad_token_id))

    trainer = StreamingTrainer(model=model, args=args, processing_class=tokenizer)
    if resume:
        log.info("resuming from %s (step %d of %d)", resume, done_steps, max_steps)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started

    out = Path(output)
    trainer.save_model(str(out))
    summary = {}
    if trainer.is_world_process_zero():
        (out / "training_args.bin").unlink(missing_ok=True)  # pickled args: paths and versions, not weights
        if recipe.lora:  # PEFT keeps target_modules as a set: its saved order follows the hash seed
            adapter_config = out / "adapter_config.json"
            config = json.loads(adapter_config.read_text())
            if isinstance(config.get("target_modules"), list):
                config["target_modules"] = sorted(config["target_modules"])
            adapter_config.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_tokenizer(tokenizer, out)
        history = [
            {k: e[k] for k in ("step", "loss", "grad_norm", "learning_rate") if k in e}
            for e in trainer.state.log_history
            if "loss" in e
        ]
        tokens = trainer.state.num_input_tokens_seen
        summary = {
            "base_model": Path(base_model).name if Path(base_model).exists() else base_model,
            "shard_set": recipe.shard_set,
            "rows_per_epoch": rows,
            "epochs": epochs,
            "max_steps": max_steps,
            "global_step": trainer.state.global_step,
            "resumed_from_step": done_steps,
            "world_size": world,
            "zero_stage": (deepspeed_config(recipe.deepspeed, cuda).get("zero_optimization", {}).get("stage")
                           if recipe.deepspeed else None),
            "lora": recipe.lora,
            "bf16": bf16,
            "loss_history": history,
            "first_loss": history[0]["loss"] if history else None,
            "final_loss": history[-1]["loss"] if history else None,
            "input_tokens_seen": tokens,
        }
        write_json(metrics, summary)
        log.info("trained %d steps in %.1f s: %.0f tokens/s (all ranks, this run)", trainer.state.global_step - done_steps,
                 seconds, (tokens * (trainer.state.global_step - done_steps) / max(1, trainer.state.global_step)) / seconds)
    log.info("rank %d stream: %s", rank, stream.stats)
    return summary


# Written by transformers from how the tokenizer was loaded (HF_HUB_OFFLINE set or not in the job's
# environment), not a property of the tokenizer: left in, the same run gives different bytes.
LOAD_TIME_TOKENIZER_KEYS = ("local_files_only",)


def save_tokenizer(tokenizer, folder: str | os.PathLike) -> None:
    """``save_pretrained``, then the load-time keys dropped from tokenizer_config.json (same layout)."""
    tokenizer.save_pretrained(folder)
    path = Path(folder) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if any(key in config for key in LOAD_TIME_TOKENIZER_KEYS):
        for key in LOAD_TIME_TOKENIZER_KEYS:
            config.pop(key, None)
        path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def shutdown() -> None:
    """Leave together, then exit without running C++ destructors.

    A rank that exits while another still writes the weights tears gloo down under it, so every rank
    waits at a barrier first. Even after that, destroying the gloo process group (or letting the
    interpreter's exit destroy it) can abort a finished rank with "terminate called without an active
    exception" (SIGABRT: a joinable gloo thread destroyed), and torchrun then fails a run whose outputs
    are complete; seen under load in CI. So, once every rank is past the barrier and has flushed its
    logs, the process ends with os._exit(0): the outputs are closed files by then.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def merge_lora(base_model: str, adapter: str, output: str) -> dict:
    """Fold a LoRA adapter into its base weights (run in its own process, after training)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model), adapter)
    merged = model.merge_and_unload()
    merged.save_pretrained(output)
    save_tokenizer(AutoTokenizer.from_pretrained(adapter), output)
    return {"parameters": sum(p.numel() for p in merged.parameters())}
