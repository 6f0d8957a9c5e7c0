"""The zero-shot evaluation stage on the embedded default: tables, per-item outputs, rerun scope, report."""
from __future__ import annotations

import csv
import json
import shutil

import pyarrow.parquet as pq
import pytest
import yaml

from alpha.eval import items as prepared_items
from alpha.eval.tables import TABLE1_COLUMNS
from alpha.eval.task_spec import load_task
from workflow_helpers import jobs_in_dry_run, snakemake

pytestmark = pytest.mark.e2e

BENCHMARKS = ("opinionqa_xl", "opinionqa", "globalopinionqa", "culturebank", "culturenli", "gss")


def _config(demo_run):
    return yaml.safe_load((demo_run / "config/config.yaml").read_text())


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_table1_has_every_registry_model_and_every_paper_column(demo_run):
    config = _config(demo_run)
    with open(demo_run / "results/table1.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["Model", *TABLE1_COLUMNS]
    rows = _csv(demo_run / "results/table1.csv")
    assert [r["Model"] for r in rows] == [e.get("label", n) for n, e in config["models"].items()]
    for row in rows:
        for column in TABLE1_COLUMNS:
            value = float(row[column])  # every benchmark is configured: no empty cell
            assert 0.0 <= value <= 100.0, (row["Model"], column, value)
            assert row[column] == f"{value:.2f}"
    sidecar = json.loads((demo_run / "results/table1.json").read_text())
    assert sidecar["variants"] == {"ordinal_wd": "reference", "globalopinionqa": "compat",
                                   "culturebank": "reference", "culturenli": "reference"}
    cell = sidecar["cells"][rows[0]["Model"]]["OpinionQA Representativeness"]
    assert cell["benchmark"] == "opinionqa" and cell["name"] == "representativeness" and cell["n_items"] > 0
    assert cell["excluded"] == {"equal_ordinals": 3}  # the demo's nominal questions, excluded and counted


def test_per_item_probabilities_sit_next_to_each_metric_file(demo_run):
    config = _config(demo_run)
    for benchmark in BENCHMARKS:
        n_items = pq.read_metadata(demo_run / f"results/eval_items/{benchmark}.parquet").num_rows
        for model in config["models"]:
            scores = pq.read_table(demo_run / f"results/eval/{model}/{benchmark}.parquet").to_pylist()
            result = json.loads((demo_run / f"results/eval/{model}/{benchmark}.json").read_text())
            orders = config["eval"]["permutations"] if load_task(benchmark).option_line else 1  # 2 on the demo
            assert result["option_orders"] == orders, (model, benchmark)
            assert len(scores) == orders * n_items and n_items == result["items"], (model, benchmark)
            assert sorted(s["order"] for s in scores) == sorted(list(range(orders)) * n_items)
            assert all(abs(sum(s["probs"]) - 1.0) < 1e-9 and len(s["probs"]) == len(s["options"]) for s in scores)
            assert result["scoring"]["model"] == model and result["variant"] == config["benchmarks"][benchmark].get("variant", "reference")


def test_culturebank_cells_match_an_independent_count_from_the_per_item_files(demo_run):
    items = {i["item_id"]: i for i in prepared_items.read_items(demo_run / "results/eval_items/culturebank.parquet")}
    rows = {r["Model"]: r for r in _csv(demo_run / "results/table1.csv")}
    for model, entry in _config(demo_run)["models"].items():
        scores = pq.read_table(demo_run / f"results/eval/{model}/culturebank.parquet").to_pylist()
        for subset, column in (("reddit", "CultureBank Reddit"), ("tiktok", "CultureBank TikTok")):
            hits = [(s["probs"][0] > s["probs"][1]) == (items[s["item_id"]]["agreement"] > 0.5)
                    for s in scores if items[s["item_id"]]["subset"] == subset]
            assert hits and rows[entry.get("label", model)][column] == f"{100 * sum(hits) / len(hits):.2f}"


def test_table2_uses_only_the_waves_fielded_march_to_august_2023(demo_run):
    report = json.loads((demo_run / "results/eval_items/opinionqa_xl.report.json").read_text())
    items = prepared_items.read_items(demo_run / "results/eval_items/opinionqa_xl.parquet")
    in_window = {i["survey"] for i in items if i["table2"]}
    assert in_window == {"W126"} and {i["survey"] for i in items} == {"W123", "W126", "W132"}
    assert report["loader_report"]["surveys"]["W126"]["field_dates"] == ["2023-05-01", "2023-05-07"]
    sidecar = json.loads((demo_run / "results/table2.json").read_text())
    n_default = len({i["question_id"] for i in items if i["table2"] and i["context"] == "default"})
    for cells in sidecar["cells"].values():
        alignment = cells["Opinion Alignment"]
        assert alignment["n_items"] + sum(alignment["excluded"].values()) == n_default
    rows = _csv(demo_run / "results/table2.csv")
    assert list(rows[0]) == ["Model", "Knowledge Cut-off", "Opinion Alignment"] and all(r["Opinion Alignment"] for r in rows)


def test_metric_variant_change_reruns_metrics_not_scoring(demo_run, tmp_path):
    config = _config(demo_run)
    for entry in config["benchmarks"].values():  # the logprob entry and its sampled / verbalised twins
        if entry.get("task", "globalopinionqa") == "globalopinionqa" and "globalopinionqa" in entry["path"]:
            entry["variant"] = "reference"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))  # row order = registry order
    assert jobs_in_dry_run(demo_run, "--configfile", str(changed)) == {
        "benchmark_metrics", "table1", "plot_table1", "ablation_table", "elicitation_table"}


def test_scoring_setting_reruns_scoring_not_training(demo_run, tmp_path):
    config = _config(demo_run)
    config["eval"]["batch_size"] = 8
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))  # row order = registry order
    assert jobs_in_dry_run(demo_run, "--configfile", str(changed)) == {
        "score_benchmark", "benchmark_metrics", "table1", "table2", "plot_table1", "ablation_table", "elicitation_table"}


def test_html_report_holds_the_tables_and_figures(demo_run, tmp_path):
    report = tmp_path / "report.html"
    snakemake(demo_run, "--report", str(report), timeout=600)
    html = report.read_text(encoding="utf-8", errors="replace")
    for name in ("table1.csv", "table2.csv", "table1.png", "train_tasks.csv", "summary.json", "scatter.png"):
        assert name in html, name
    delivery = json.loads((demo_run / "results/figures/delivery/index.json").read_text())
    assert delivery["figures"] and all(e["file"] in html for e in delivery["figures"]), "Figure 2 (delivery) missing from the report"
    # the table caption is rendered from the config: the variants in use are stated in the report
    assert "globalopinionqa - compat" in html and "gss - reference" in html


def test_nan_free_results(demo_run):
    for path in (demo_run / "results/eval").rglob("*.json"):
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text, path
        json.loads(text)


def test_ablation_table_lists_each_base_and_what_its_fine_tunes_saw(demo_run):
    config = _config(demo_run)
    rows = _csv(demo_run / "results/ablation.csv")
    # the LoRA fine-tune trains on ablation-TAP (one task family): an ablation of its base
    assert [(r["Model"], r["Tasks"], r["Shard set"]) for r in rows] == [
        ("tiny-llama-chat", "none (base model)", ""),
        ("alpha-tiny-llama-chat", "TAG + TAP + TC + TS", "alpha"),
        ("alpha-tiny-llama-chat-lora", "TAP", "ablation-TAP"),
    ]
    table1 = {r["Model"]: r for r in _csv(demo_run / "results/table1.csv")}
    for row in rows:  # the same cells as Table 1
        assert all(row[c] == table1[row["Model"]][c] for c in TABLE1_COLUMNS)
    assert list(config["models"]) == [r["Model"] for r in rows]


def test_grounded_evaluation_with_a_local_judge(demo_run, tmp_path):
    config = _config(demo_run)
    config["eval"]["grounded"] = {"enabled": True, "judge_model": "tiny-llama-chat", "max_items": 3, "max_new_tokens": 12}
    changed = tmp_path / "grounded.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    # only the grounded jobs run: nothing upstream is touched by enabling it
    assert jobs_in_dry_run(demo_run, "--configfile", str(changed)) == {"culturebank_grounded", "grounded_table"}
    try:
        snakemake(demo_run, "results/culturebank_grounded.csv", "--cores", "2", "--configfile", str(changed), timeout=900)
        _check_grounded_outputs(demo_run, config)
    finally:  # the shared demo run must keep exactly the default target's outputs (the Slurm run is compared with it)
        for path in [*demo_run.glob("results/eval/*/culturebank_grounded.*"), *demo_run.glob("results/culturebank_grounded.*"),
                     *demo_run.glob("results/logs/*grounded*"), *demo_run.glob("results/benchmarks/culturebank_grounded")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _check_grounded_outputs(demo_run, config):
    rows = _csv(demo_run / "results/culturebank_grounded.csv")
    assert len(rows) == len(config["models"])
    for row in rows:
        for column in ("CultureBank Reddit (grounded)", "CultureBank TikTok (grounded)"):
            assert 0.0 <= float(row[column]) <= 100.0
    items = pq.read_table(demo_run / "results/eval/tiny-llama-chat/culturebank_grounded.parquet").to_pylist()
    assert len(items) == 6 and {i["subset"] for i in items} == {"reddit", "tiktok"}
    assert all(0.0 <= i["p_yes"] <= 1.0 for i in items)
    result = json.loads((demo_run / "results/eval/tiny-llama-chat/culturebank_grounded.json").read_text())
    assert result["judge"] == "tiny-llama-chat"
