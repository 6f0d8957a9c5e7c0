"""Option-order permutations and the three elicitation modes on the session's demo run (permutations: 2;
GlobalOpinionQA also in the sampled and verbalised modes)."""
from __future__ import annotations

import csv
import json
import re
from collections import Counter

import pyarrow.parquet as pq
import pytest
import yaml

from alpha.eval.elicitation import parse_percentages, sampled_distribution, settings
from alpha.eval.task_spec import load_task
from workflow_helpers import snakemake

pytestmark = pytest.mark.e2e


def _config(demo_run):
    return yaml.safe_load((demo_run / "config/config.yaml").read_text())


def test_option_blocks_are_scored_in_two_orders_and_yes_no_tasks_in_one(demo_run):
    config = _config(demo_run)
    assert config["eval"]["permutations"] == 2
    for model in config["models"]:
        scores = pq.read_table(demo_run / f"results/eval/{model}/opinionqa.parquet").to_pandas()
        per_item = scores.groupby("item_id")["order"].apply(sorted)
        assert (per_item.map(tuple) == (0, 1)).all()
        shown = scores[scores["order"] == 1]["permutation"].map(tuple)
        assert all(p != tuple(range(len(p))) for p in shown)  # the second order is never the prepared one
        assert set(pq.read_table(demo_run / f"results/eval/{model}/culturebank.parquet").column("order").to_pylist()) == {0}
        result = json.loads((demo_run / f"results/eval/{model}/opinionqa.json").read_text())
        assert result["option_orders"] == 2
        for metric in result["metrics"]:
            orders = metric["orders"]
            assert len(orders["per_order"]) == 2
            a, b = orders["per_order"]
            assert orders["order_sensitivity"] == pytest.approx(abs(a - b))


def test_elicitation_table_has_three_modes_and_true_invalid_counts(demo_run):
    config = _config(demo_run)
    with open(demo_run / "results/elicitation.csv", newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    for column in ("GlobalOpinionQA Avg Sim", "GlobalOpinionQA Skew"):
        assert [h for h in header if h.startswith(column + " [")] == [f"{column} [{m}]" for m in ("logprob", "sampled", "verbalised")]
    sidecar = json.loads((demo_run / "results/elicitation.json").read_text())
    assert sidecar["modes"] == {"globalopinionqa": "logprob", "globalopinionqa_sampled": "sampled",
                                "globalopinionqa_verbalised": "verbalised"}
    labels = {name: entry.get("label", name) for name, entry in config["models"].items()}
    task = load_task("globalopinionqa")
    for model, label in labels.items():
        verbalised = pq.read_table(demo_run / f"results/eval/{model}/globalopinionqa_verbalised.parquet").to_pylist()
        spec = settings(task.elicitation, "verbalised")
        reasons = Counter(parse_percentages(r["answers"][0], r["options"], spec["sum_tolerance"])[1] for r in verbalised)
        reasons.pop(None, None)
        counts = sidecar["elicitation"][label]["globalopinionqa_verbalised"]
        assert counts["invalid"] == dict(reasons) and counts["items"] == len(verbalised)
        sampled = pq.read_table(demo_run / f"results/eval/{model}/globalopinionqa_sampled.parquet").to_pylist()
        parsed = sum(sampled_distribution(r["answers"], r["options"])[1] for r in sampled)
        counts = sidecar["elicitation"][label]["globalopinionqa_sampled"]
        assert counts["parsed_answers"] == parsed and counts["answers"] == 10 * len(sampled)
        assert sidecar["elicitation"][label]["globalopinionqa"] == {"mode": "logprob"}


def test_permutations_change_rescores_only_the_option_block_tasks(demo_run, tmp_path):
    config = _config(demo_run)
    config["eval"]["permutations"] = 3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    out = snakemake(demo_run, "-n", "--quiet", "rules", "--configfile", str(changed)).stdout
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", out, flags=re.M)}
    permutable = [name for name, entry in config["benchmarks"].items()
                  if entry.get("mode", "logprob") == "logprob" and load_task(entry.get("task", name)).option_line]
    assert sorted(permutable) == ["globalopinionqa", "gss", "opinionqa", "opinionqa_xl"]
    assert counts["score_benchmark"] == len(config["models"]) * len(permutable)  # not culturebank, culturenli, other modes
    assert set(counts) - {"total", "all"} == {"score_benchmark", "benchmark_metrics", "table1", "table2", "plot_table1",
                                       "ablation_table", "elicitation_table"}, counts
