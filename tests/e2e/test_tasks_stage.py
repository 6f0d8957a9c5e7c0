"""The tasks stage on the embedded default: every task present, no leakage into training, manifests true."""
from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
import yaml

from alpha.tasks.prompts import parse_tap
from alpha.tasks.samples import SAMPLE_SCHEMA, TASKS, TEST_SPLITS, TRAIN
from alpha.tasks.shards import verify_manifest
from workflow_helpers import snakemake


@pytest.fixture(scope="module")
def results(demo_run):
    return demo_run / "results"


@pytest.fixture(scope="module")
def config(demo_run):
    return yaml.safe_load((demo_run / "config/config.yaml").read_text())


def _samples(results):
    files = [results / "tasks/samples/ads.parquet", *sorted((results / "tasks/samples/pairs").glob("*.parquet"))]
    return [pq.read_table(f) for f in files]


def test_every_task_has_training_and_test_samples(results):
    tables = _samples(results)
    assert all(t.schema.equals(SAMPLE_SCHEMA) for t in tables)
    counts = {}
    for t in tables:
        for task, split in zip(t.column("task").to_pylist(), t.column("split").to_pylist()):
            counts[(task, split)] = counts.get((task, split), 0) + 1
    for task in TASKS:
        assert counts.get((task, TRAIN), 0) > 0, task
        assert sum(counts.get((task, s), 0) for s in TEST_SPLITS) > 0, task
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    assert len(ids) == len(set(ids))


def test_messages_are_chat_turns_without_a_baked_template(results):
    for t in _samples(results):
        for msgs in t.column("messages").to_pylist()[:500]:
            assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
            assert all(m["content"].strip() for m in msgs)
            assert not any(tag in m["content"] for m in msgs for tag in ("[INST]", "<<SYS>>", "<|im_start|>"))


def test_tap_answers_follow_the_templates(results):
    table = pq.read_table(results / "tasks/samples/ads.parquet")
    for task, label, msgs in zip(*(table.column(c).to_pylist() for c in ("task", "label", "messages"))):
        if task.startswith("TAP"):
            parsed = parse_tap(task, msgs[2]["content"])
            assert parsed is not None
            assert (parsed[0] if task == "TAP-R" else parsed) == label


def test_no_test_ad_reaches_a_training_sample_or_shard(results):
    splits = pq.read_table(results / "tasks/splits.parquet").to_pylist()
    test_ads = {r["ad_id"] for r in splits if r["split"] != TRAIN}
    test_pages = {r["page_id"] for r in splits if r["split"] == "test_unseen_advertiser"}
    assert test_ads and test_pages
    for t in _samples(results):
        for split, ad_ids in zip(t.column("split").to_pylist(), t.column("ad_ids").to_pylist()):
            if split == TRAIN:
                assert not test_ads.intersection(ad_ids)
            else:
                assert set(ad_ids) <= test_ads
    for shard in sorted((results / "shards").glob("*/shard-*.parquet")):
        table = pq.read_table(shard, columns=["split", "ad_ids", "page_id"])
        assert set(table.column("split").to_pylist()) == {TRAIN}
        assert not test_ads.intersection(a for ids in table.column("ad_ids").to_pylist() for a in ids)
        assert not test_pages.intersection(table.column("page_id").to_pylist())


def test_test_sets_hold_every_test_sample_and_balanced_tap(results):
    report = json.loads((results / "tasks/test/report.json").read_text())
    for split in TEST_SPLITS:
        table = pq.read_table(results / f"tasks/test/{split}.parquet")
        assert set(table.column("split").to_pylist()) <= {split}
        for task in ("TAP-G", "TAP-A", "TAP-R"):
            labels = [lab for tk, lab in zip(table.column("task").to_pylist(), table.column("label").to_pylist()) if tk == task]
            balance = report["tap_balance"][split][task]
            if balance["per_class"]:
                assert {labels.count(c) for c in set(labels)} == {balance["per_class"]}


def test_shard_sets_match_config_and_their_manifests(results, config):
    for name, spec in config["shards"]["sets"].items():
        out = results / "shards" / name
        manifest = json.loads((out / "manifest.json").read_text())
        assert verify_manifest(out) == []
        assert len(manifest["shards"]) == spec["n_shards"]
        tasks = set()
        for shard in sorted(out.glob("shard-*.parquet")):
            tasks |= set(pq.read_table(shard, columns=["family"]).column("family").to_pylist())
        expected = {k.split("-")[0] for k in spec["caps"]} | ({"external"} if spec.get("external") else set())
        assert tasks == expected, name
        for task, by_split in manifest["counts"].items():
            key = task if task in spec["caps"] else task.split("-")[0]
            available, taken = by_split.get(TRAIN, 0), manifest["included"].get(task, 0)
            if key not in spec["caps"]:
                assert taken == 0, (name, task)
            else:  # a family's cap applies to each of its tasks (the paper's ablations: 50K per task)
                cap = spec["caps"][key]
                assert taken == (available if cap is None else min(cap, available)), (name, task)


# the three registry models are evaluated on the test sets; new samples also rebuild the tiny model
# (its tokenizer is trained on them) and retrain both fine-tunes
EVAL = {"eval_train_tasks": 3, "train_tasks_table": 1}
# every registry model is scored on the eight registry benchmarks (the six, and GlobalOpinionQA in the
# sampled and verbalised modes): retrained weights rescore and rebuild the tables
BENCHMARK_EVAL = {"score_benchmark": 24, "benchmark_metrics": 24, "table1": 1, "table2": 1, "plot_table1": 1,
                  "ablation_table": 1, "elicitation_table": 1}
EXPORTS = {"export_dataset": 5}  # every shard set's dataset export carries the test sets of its tasks
MODELS = {"build_tiny_model": 1, "train_model": 2, "merge_lora": 1, **EVAL, **BENCHMARK_EVAL}


def _dry_run_counts(workdir, config, tmp_path):
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    out = snakemake(workdir, "-n", "--quiet", "rules", "--configfile", str(changed))
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", out.stdout, flags=re.M)}


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda c: c["tasks"].update(tap_min_class_size=7), {"test_sets": 1, **EVAL, **EXPORTS}),
        (lambda c: c["shards"]["sets"]["ablation-TAG"]["caps"].update(TAG=400),  # no model trains on it
         {"make_shards": 1, "export_dataset": 1}),
        (lambda c: c["tasks"].update(region_min_rank_diff=4),
         {"pair_tasks": 2, "test_sets": 1, "make_shards": 5, **MODELS, **EXPORTS}),
        (lambda c: c["tasks"]["keywords"].update(top_n=4),
         {"extract_keywords": 2, "gather_keywords": 1, "ad_tasks": 1, "test_sets": 1, "make_shards": 5, **MODELS, **EXPORTS}),
    ],
    ids=["tap-balance", "one-ablation-cap", "tc-region-rule", "keywords"],
)
def test_task_config_changes_rerun_only_what_depends_on_them(demo_run, config, tmp_path, edit, expected):
    import copy

    changed = copy.deepcopy(config)
    edit(changed)
    counts = _dry_run_counts(demo_run, changed, tmp_path)
    counts.pop("total", None), counts.pop("all", None)
    assert counts == expected
