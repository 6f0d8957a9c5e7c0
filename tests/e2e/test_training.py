"""Fine-tuning and training-task evaluation on the embedded default: the tiny model learns, LoRA
merges, a killed training job resumes from its checkpoint, and config changes rerun only what they affect."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from workflow_helpers import SNAKEMAKE, copy_workflow, jobs_in_dry_run, snakemake

pytestmark = pytest.mark.e2e

FULL, LORA, BASE = "alpha-tiny-llama-chat", "alpha-tiny-llama-chat-lora", "tiny-llama-chat"


def _table(demo_run):
    with open(demo_run / "results/train_tasks.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _mean(rows, model, column, tasks):
    values = [float(r[column]) for r in rows if r["model"] == model and r["task"] in tasks and r[column] != ""]
    assert values, (model, column)
    return sum(values) / len(values)


def test_base_model_is_a_tiny_llama_with_single_token_labels(demo_run):
    from transformers import AutoConfig, AutoTokenizer

    folder = demo_run / "results/models/tiny"
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "llama" and config.hidden_size == 128 and config.num_hidden_layers == 2
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for label in [*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "Yes", "No"]:
        assert len(tokenizer(label, add_special_tokens=False)["input_ids"]) == 1, label
        assert len(tokenizer(" " + label, add_special_tokens=False)["input_ids"]) == 1, label
    assert "[INST]" in tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def test_training_loss_decreases(demo_run):
    metrics = json.loads((demo_run / f"results/train/{FULL}/metrics.json").read_text())
    losses = [h["loss"] for h in metrics["loss_history"]]
    assert metrics["global_step"] == metrics["max_steps"] == 200 and metrics["world_size"] == 2
    assert metrics["zero_stage"] == 3 and not metrics["lora"]
    assert len(losses) >= 10
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses
    assert not (demo_run / f"results/train/{FULL}/checkpoints").exists()  # removed after success (ALPHA_KEEP_CHECKPOINTS unset)


def test_fine_tuned_model_beats_its_base_on_the_training_tasks(demo_run):
    rows = _table(demo_run)
    tap = ("TAP-G", "TAP-A", "TAP-R")
    generation = ("TAG", "TC-A", "TC-G", "TC-R", "TS-E", "TS-B")
    assert _mean(rows, FULL, "tap_accuracy", tap) > _mean(rows, BASE, "tap_accuracy", tap) + 0.2
    assert _mean(rows, FULL, "tap_accuracy_ranked", tap) > _mean(rows, BASE, "tap_accuracy_ranked", tap)
    assert _mean(rows, FULL, "perplexity", generation) < 0.01 * _mean(rows, BASE, "perplexity", generation)
    assert _mean(rows, FULL, "bleu", generation) > _mean(rows, BASE, "bleu", generation)
    assert _mean(rows, FULL, "bertscore_f1", generation) > _mean(rows, BASE, "bertscore_f1", generation)
    models = {r["model"] for r in rows}
    assert models == {FULL, LORA, BASE}
    splits = {r["split"] for r in rows}
    assert splits == {"test_unseen_advertiser", "test_after_cutoff"}
    assert all(int(r["n"]) == 20 for r in rows)


def test_lora_adapter_is_merged_in_its_own_job(demo_run):
    from safetensors.torch import load_file

    adapter = demo_run / f"results/train/{LORA}/model"
    assert (adapter / "adapter_config.json").exists() and not (adapter / "model.safetensors").exists()
    merged = load_file(demo_run / f"results/train/{LORA}/merged/model.safetensors")
    base = load_file(demo_run / "results/models/tiny/model.safetensors")
    assert merged.keys() == base.keys()  # a plain Llama again, no LoRA modules
    changed = [k for k in base if not (merged[k] == base[k]).all()]
    assert changed and all(re.search(r"\.(q|k|v|o)_proj\.", k) for k in changed), changed
    metrics = json.loads((demo_run / f"results/train/{LORA}/metrics.json").read_text())
    assert metrics["lora"] and metrics["zero_stage"] == 2
    log = (demo_run / f"results/logs/merge_lora/{LORA}.log").read_text()
    assert "Traceback" not in log


def _resume_workflow(demo_run, dest: Path, names: list[str]) -> Path:
    """A copy of the finished demo run with extra registry entries that train 30 steps on the
    TAP ablation set, checkpointing every 10."""
    workdir = copy_workflow(dest)
    shutil.copytree(demo_run / "results", workdir / "results", symlinks=True)
    shutil.copytree(demo_run / ".snakemake", workdir / ".snakemake", symlinks=True,
                    ignore=shutil.ignore_patterns("locks", "incomplete", "log"))
    recipe = yaml.safe_load((workdir / "config/recipes/tiny/full.yaml").read_text())
    recipe.update(shard_set="ablation-TAP", max_steps=30, save_steps=10, logging_steps=5)
    (workdir / "config/recipes/tiny/resume.yaml").write_text(yaml.safe_dump(recipe))
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    for name in names:
        config["models"][name] = {"from": BASE, "recipe": "config/recipes/tiny/resume.yaml"}
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def _weights(workdir: Path, name: str):
    from safetensors.torch import load_file

    return load_file(workdir / f"results/train/{name}/model/model.safetensors")


def test_killed_training_resumes_from_its_checkpoint(demo_run, tmp_path):
    workdir = _resume_workflow(demo_run, tmp_path / "wf", ["resume-killed", "resume-reference"])
    snakemake(workdir, "results/train/resume-reference/model", timeout=600)

    target = "results/train/resume-killed/model"
    checkpoints = workdir / "results/train/resume-killed/checkpoints"
    env = dict(os.environ, PATH=f"{Path(SNAKEMAKE).parent}:{os.environ['PATH']}")
    run = subprocess.Popen([SNAKEMAKE, target], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None and not (checkpoints / "checkpoint-10/trainer_state.json").exists():
        time.sleep(0.2)
    assert run.poll() is None, run.communicate()[0][-3000:]
    os.killpg(run.pid, signal.SIGTERM)  # Snakemake and the training processes
    output, _ = run.communicate(timeout=120)
    assert run.returncode != 0, output[-3000:]
    assert not (workdir / target).exists()
    assert (checkpoints / "checkpoint-10").is_dir()  # not an output: kept for the rerun

    snakemake(workdir, target, timeout=600)
    log = (workdir / "results/logs/train_model/resume-killed.log").read_text()
    resumed = re.search(r"resuming from \S+checkpoint-(\d+) \(step (\d+) of 30\)", log)
    assert resumed and int(resumed.group(1)) >= 10, log[-3000:]
    killed, reference = _weights(workdir, "resume-killed"), _weights(workdir, "resume-reference")
    assert killed.keys() == reference.keys()
    # Same data order, optimizer and scheduler state: the resumed weights equal an uninterrupted run's
    # (stated tolerance 1e-5; on one machine they are bit-identical)
    worst = max(float((killed[k] - reference[k]).abs().max()) for k in killed)
    assert worst <= 1e-5, worst
    metrics = json.loads((workdir / "results/train/resume-killed/metrics.json").read_text())
    assert metrics["resumed_from_step"] == int(resumed.group(2)) and metrics["global_step"] == 30


def test_eval_setting_reruns_only_the_evaluation(demo_run, tmp_path):
    config = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    config["train_eval"]["max_per_task"] = 10
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    assert jobs_in_dry_run(demo_run, "--configfile", str(changed)) == {"eval_train_tasks", "train_tasks_table"}


def test_train_geometry_change_reruns_training_not_the_data(demo_run, tmp_path):
    config = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    config["train"]["procs_per_node"] = 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    assert jobs_in_dry_run(demo_run, "--configfile", str(changed)) == {
        "train_model", "merge_lora", "eval_train_tasks", "train_tasks_table",
        "score_benchmark", "benchmark_metrics", "table1", "table2", "plot_table1", "ablation_table", "elicitation_table",
    }


def test_registry_recipe_overrides_train_an_ablation_on_its_own_shard_set(demo_run, tmp_path):
    config = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    config["models"]["alpha-tiny-tag"] = {"from": "tiny-llama-chat", "recipe": "config/recipes/tiny/full.yaml",
                                          "recipe_overrides": {"shard_set": "ablation-TAG"}}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    out = snakemake(demo_run, "results/train/alpha-tiny-tag/model", "-n", "-p", "--configfile", str(changed)).stdout
    assert "--set shard_set=ablation-TAG" in out and "--shards results/shards/ablation-TAG" in out
    # with a second ablation fine-tune of the same base, the ablation table gains its row
    out = snakemake(demo_run, "-n", "--quiet", "rules", "--configfile", str(changed)).stdout
    assert re.search(r"^ablation_table\s+1\s*$", out, flags=re.M) and re.search(r"^train_model\s+1\s*$", out, flags=re.M)
