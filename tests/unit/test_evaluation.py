"""alpha.eval (task_spec, items, prepare, results, tables): task specs, prepared items, the metric frame, tables.

Scores are written by hand (log-probabilities chosen so the renormalised probabilities are round
numbers), and every expected value is computed by hand in the comments."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alpha.core import io
from alpha.eval import items as prepared_items
from alpha.eval import prepare, tables, task_spec
from alpha.eval import results as metric_results
from alpha.eval.loaders.atp import TABLE2_WINDOW
from alpha.eval.scoring import ScoredItem, write_results
from alpha.workflow import registry

# ------------------------------------------------------------------------------------------- task specs


def test_every_task_spec_loads_and_names_registered_metrics():
    names = task_spec.task_names()
    six = ("opinionqa", "opinionqa_xl", "globalopinionqa", "culturebank", "culturenli", "gss")
    assert set(six) | {"opinionqa_raw"} == set(names)
    for name in names:
        assert registry.check_benchmark(name, task_spec.load_task(name), "reference") == [], name
    # the six benchmarks fill exactly Table 1's twelve columns (and Table 2's one), each once
    columns = [c for name in six for c in task_spec.load_task(name).table_columns]
    assert sorted(columns) == sorted([*tables.TABLE1_COLUMNS, tables.TABLE2_VALUE])
    # OpinionQA from raw ATP waves is the alternative source of the same two columns
    assert task_spec.load_task("opinionqa_raw").table_columns == task_spec.load_task("opinionqa").table_columns


def test_compat_variant_exists_where_the_spec_defines_one_and_is_refused_elsewhere():
    assert registry.check_benchmark("goqa", task_spec.load_task("globalopinionqa"), "compat") == []
    assert registry.check_benchmark("oqa", task_spec.load_task("opinionqa"), "compat") == []
    problems = registry.check_benchmark("gss", task_spec.load_task("gss"), "compat")
    assert len(problems) == 1 and "temporal_steerability" in problems[0] and "GSS Steerability" in problems[0]
    assert "not one of" in registry.check_benchmark("x", task_spec.load_task("gss"), "textbook")[0]


def test_malformed_task_specs_fail_with_the_file_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loader: culturenli\nmetrics:\n  - {column: X, metrc: culturenli_macro_f1}\n")
    with pytest.raises(task_spec.TaskSpecError, match=r"bad\.yaml: metrics\[0\] needs column and metric"):
        task_spec.load_task("bad", bad)
    bad.write_text("loader: culturenli\nprompt: x\nmetrics: [{column: X, metric: m}]\n")
    with pytest.raises(task_spec.TaskSpecError, match=r"unknown keys \['prompt'\]"):
        task_spec.load_task("bad", bad)
    with pytest.raises(task_spec.TaskSpecError, match="known tasks: .*culturenli"):
        task_spec.load_task("no_such_task")
    task = task_spec.TaskSpec(name="t", loader="nope", metrics=(task_spec.MetricSpec("X", "no_metric"),))
    problems = registry.check_benchmark("t", task, "reference")
    assert any("unknown benchmark loader 'nope'" in p for p in problems)
    assert any("unknown metric 'no_metric'" in p for p in problems)


def test_table2_window_is_the_atp_loaders():
    assert TABLE2_WINDOW == ("2023-03-01", "2023-08-31")
    assert prepare.in_table2_window("2023-03-01", "2023-08-31")
    assert prepare.in_table2_window("2023-05-01", "2023-05-07")
    assert not prepare.in_table2_window("2023-02-21", "2023-03-05")  # straddles March
    assert not prepare.in_table2_window("2023-08-30", "2023-09-02")
    assert not prepare.in_table2_window(None, None)


# ------------------------------------------------------------------------------------------- prepare

NLI_HEADER = "premise\thypothesis\tus_ratings\tin_ratings\n"


def write_nli(path: Path, rows: list[tuple[str, str, list, list]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NLI_HEADER + "".join(f"{p}\t{h}\t{us!r}\t{in_!r}\n" for p, h, us, in_ in rows), encoding="utf-8")
    return path


NLI_ROWS = [
    ("P1", "H1", ["E", "E", "N"], ["N", "N", "E"]),  # US gold E, IN gold N
    ("P2", "H2", ["C", "C", "E"], ["E", "E", "C"]),  # US gold C, IN gold E
]


def prepare_nli(tmp_path: Path) -> Path:
    data = write_nli(tmp_path / "culturenli/data.tsv", NLI_ROWS + [("P3", "H3", "broken", ["E"])])
    out = tmp_path / "prep"
    report = prepare.prepare(task_spec.load_task("culturenli"), data, None, None, out / "items.parquet", out / "q.jsonl",
                        out / "report.json", benchmark="culturenli")
    assert report["items"] == 4 and report["questions"] == 4  # 2 pairs x 2 cultures; the bad row quarantined
    assert sum(report["quarantined"].values()) == 1
    assert len((out / "q.jsonl").read_text().splitlines()) == 1
    return out / "items.parquet"


def test_prepare_round_trips_items_with_nan(tmp_path):
    items = prepared_items.read_items(prepare_nli(tmp_path))
    assert [i["culture"] for i in items] == ["US", "US", "IN", "IN"]
    assert items[0]["labels"] == ["E", "N", "C"]
    text = prepared_items.item_json({"item_id": "x", "p": [float("nan"), np.float64(0.5)], "a": np.array([1, 2])})
    back = json.loads(text)
    assert math.isnan(back["p"][0]) and back["p"][1] == 0.5 and back["a"] == [1, 2]


def test_prepare_with_no_items_names_the_path(tmp_path):
    data = write_nli(tmp_path / "empty/data.tsv", [])
    with pytest.raises(ValueError, match=r"found no items in .*empty/data\.tsv"):
        prepare.prepare(task_spec.load_task("culturenli"), data, None, None, tmp_path / "i.parquet", tmp_path / "q.jsonl",
                   tmp_path / "r.json")


def test_loader_options_are_checked_and_variants_passed_only_where_prompts_differ(tmp_path):
    with pytest.raises(TypeError, match="takes no option"):
        prepare.loader_options(task_spec.load_task("culturenli"), {"waves": [1]}, None)
    assert prepare.loader_options(task_spec.load_task("opinionqa"), None, "compat")["variants"] == ["compat"]
    assert "variants" not in prepare.loader_options(task_spec.load_task("gss"), None, "reference")
    with pytest.raises(ValueError, match="per metric variant"):
        prepare.loader_options(task_spec.load_task("opinionqa"), None, None)
    dates = tmp_path / "dates.json"
    dates.write_text('{"126": {"start": "2023-05-01", "end": "2023-05-07"}}')
    options = prepare.loader_options(task_spec.load_task("opinionqa_xl"), {"field_dates": str(dates)}, "reference")
    assert options["field_dates"] == {"126": {"start": "2023-05-01", "end": "2023-05-07"}}


# ------------------------------------------------------------------------------------------- metrics

def write_scores(path: Path, probs_by_id: dict[str, list[float]], labels: list[str]) -> Path:
    scored = [
        ScoredItem(item_id, 10, labels, None if p is None else [math.log(x) for x in p],
                   None if p is None else list(p))
        for item_id, p in probs_by_id.items()
    ]
    write_results(path, scored)
    return path


def test_culturenli_end_to_end_matches_the_hand_computed_f1(tmp_path):
    items_path = prepare_nli(tmp_path)
    ids = [i["item_id"] for i in prepared_items.read_items(items_path)]
    # P(E) over E/N/C: US P1 0.9 (gold E), US P2 0.2 (gold C); IN P1 0.65 (gold N), IN P2 0.5 (gold E)
    probs = {ids[0]: [0.9, 0.05, 0.05], ids[1]: [0.2, 0.4, 0.4], ids[2]: [0.65, 0.3, 0.05], ids[3]: [0.5, 0.25, 0.25]}
    scores = write_scores(tmp_path / "scores.parquet", probs, ["E", "N", "C"])
    result = metric_results.evaluate(task_spec.load_task("culturenli"), "reference", items_path, scores, "culturenli", "m")
    us, in_ = result["metrics"]
    # US: t = 0.6 predicts [E, rest] = gold -> macro-F1 1.0
    assert us["column"] == "CultureNLI US" and us["value"] == pytest.approx(1.0) and us["details"]["best_threshold"] == 0.6
    # IN: t = 0.6 predicts [E, rest] vs gold [rest, E] -> F1 0 for both classes; t >= 0.7 predicts
    # [rest, rest] -> F1(rest) = 2*1/(2*1+0+1) = 2/3, F1(E) = 0 -> macro 1/3 (first maximum: 0.7)
    assert in_["value"] == pytest.approx(1 / 3) and in_["details"]["best_threshold"] == 0.7
    assert result["items"] == 4 and result["variant"] == "reference"


def test_metric_frame_renormalises_over_the_labels_the_metric_uses():
    task = task_spec.TaskSpec(name="t", loader="opinionqa", model_labels="ordinal_labels", columns={"question_id": "question"},
                       label_columns={"B": "p_b"}, metrics=(task_spec.MetricSpec("X", "representativeness"),))
    items = [{"item_id": "q1", "question_id": "Q1", "labels": ["A", "B", "C"], "ordinal_labels": ["A", "B"]},
             {"item_id": "q2", "question_id": "Q2", "labels": ["A", "B", "C"], "ordinal_labels": ["A", "B"]}]
    scores = pd.DataFrame({"item_id": ["q2", "q1"], "options": [["A", "B", "C"]] * 2,
                           "logprobs": [None, [math.log(0.2), math.log(0.3), math.log(0.5)]]})
    frame = metric_results.metric_frame(task, items, scores)
    # q1: the refusal option C (0.5) is dropped, A/B renormalised: 0.2/0.5, 0.3/0.5
    assert frame.loc[0, "model_probs"] == pytest.approx([0.4, 0.6]) and frame.loc[0, "p_b"] == pytest.approx(0.6)
    assert frame.loc[0, "question"] == "Q1"  # the metric keys questions by their id
    # q2 was skipped by the scorer (prompt too long): NaN, which the metrics exclude and count
    assert all(math.isnan(x) for x in frame.loc[1, "model_probs"])
    with pytest.raises(ValueError, match="no scores"):
        metric_results.metric_frame(task, items + [{"item_id": "q3", "labels": ["A"]}], scores)
    bad = scores.assign(options=[["A", "B", "C"], ["B", "A", "C"]])
    with pytest.raises(ValueError, match="differ"):
        metric_results.metric_frame(task, items, bad)


def test_representativeness_through_the_frame_matches_hand_computation():
    task = task_spec.load_task("gss")
    items = [
        # ordinals 1,2,3; human [0.5, 0.5, 0]; model [0, 0.5, 0.5] -> CDF gaps 0.5, 0.5 -> W1 = 1.0, /2 = 0.5
        {"item_id": "a", "question_id": "A", "context": "default", "labels": ["A", "B", "C"],
         "ordinal_labels": ["A", "B", "C"], "ordinals": [1.0, 2.0, 3.0], "human_probs": [0.5, 0.5, 0.0]},
        # equal ordinals: excluded and counted
        {"item_id": "b", "question_id": "B", "context": "default", "labels": ["A", "B"], "ordinal_labels": ["A", "B"],
         "ordinals": [1.0, 1.0], "human_probs": [0.5, 0.5]},
    ]
    scores = pd.DataFrame({"item_id": ["a", "b"], "options": [["A", "B", "C"], ["A", "B"]],
                           "logprobs": [[-50.0, math.log(0.5), math.log(0.5)], [math.log(0.5)] * 2]})
    frame = metric_results.metric_frame(task, items, scores)
    from alpha.eval.metrics import get_metric

    result = get_metric("representativeness")(metric_results.select(frame, {"context": "default"}))
    assert result.value == pytest.approx(0.5, abs=1e-9) and result.excluded == {"equal_ordinals": 1}


def test_select_takes_values_and_lists_and_names_unknown_columns():
    frame = pd.DataFrame({"context": ["default", "qa", "bio"], "x": [1, 2, 3]})
    assert metric_results.select(frame, {"context": "default"})["x"].tolist() == [1]
    assert metric_results.select(frame, {"context": ["qa", "bio"]})["x"].tolist() == [2, 3]
    with pytest.raises(ValueError, match="no column 'subset'"):
        metric_results.select(frame, {"subset": "reddit"})


def test_finite_makes_strict_json():
    assert io.finite({"a": float("nan"), "b": [1.0, float("inf")], 3: np.float64(2.0)}) == {"a": None, "b": [1.0, None], "3": 2.0}


# ------------------------------------------------------------------------------------------- tables

def result(model, benchmark, cells, variant="reference", family="ordinal_wd"):
    return {"model": model, "benchmark": benchmark, "metrics": [
        {"column": c, "name": "m", "family": family, "variant": variant, "value": v, "n_items": 3, "excluded": {},
         "where": {}} for c, v in cells.items()]}


def test_table1_has_the_papers_columns_scaled_and_empty_for_missing_benchmarks(tmp_path):
    models = [("base", "Base"), ("ft", "FT")]
    results = [
        result("base", "gss", {"GSS Representativeness": 0.854649, "GSS Steerability": 0.74225}),
        result("ft", "gss", {"GSS Representativeness": 0.8794, "GSS Steerability": None}),
        result("base", "goqa", {"GlobalOpinionQA Avg Sim": 0.836, "GlobalOpinionQA Skew": 0.022}, "compat", "globalopinionqa"),
    ]
    rows, sidecar = tables.table1(models, results)
    tables.write_table(rows, sidecar, tmp_path / "t.csv", tmp_path / "t.json")
    with open(tmp_path / "t.csv", newline="") as fh:
        read = list(csv.reader(fh))
    assert read[0] == ["Model", "OpinionQA-XL Representativeness", "OpinionQA-XL Steerability",
                       "OpinionQA Representativeness", "OpinionQA Steerability", "GlobalOpinionQA Avg Sim",
                       "GlobalOpinionQA Skew", "CultureBank Reddit", "CultureBank TikTok", "CultureNLI US",
                       "CultureNLI IN", "GSS Representativeness", "GSS Steerability"]
    base, ft = dict(zip(read[0], read[1])), dict(zip(read[0], read[2]))
    assert base["Model"] == "Base" and base["GSS Representativeness"] == "85.46" and base["GSS Steerability"] == "74.22"
    assert base["GlobalOpinionQA Avg Sim"] == "83.60" and base["GlobalOpinionQA Skew"] == "2.20"
    assert base["OpinionQA Representativeness"] == ""  # not configured
    assert ft["GSS Steerability"] == "" and ft["GlobalOpinionQA Avg Sim"] == ""
    side = json.loads((tmp_path / "t.json").read_text())
    assert side["variants"] == {"ordinal_wd": "reference", "globalopinionqa": "compat"}
    assert side["cells"]["Base"]["GSS Representativeness"]["benchmark"] == "gss"


def test_tables_refuse_mixed_variants_unknown_models_and_doubled_columns():
    models = [("a", "A"), ("b", "B")]
    mixed = [result("a", "gss", {"GSS Representativeness": 0.5}),
             result("b", "gss", {"GSS Representativeness": 0.5}, variant="compat")]
    with pytest.raises(ValueError, match="must not mix metric variants"):
        tables.table1(models, mixed)
    with pytest.raises(ValueError, match="not in the registry"):
        tables.table1(models, [result("zz", "gss", {"GSS Representativeness": 0.5})])
    with pytest.raises(ValueError, match="comes from two benchmarks"):
        tables.table1(models, [result("a", "gss", {"GSS Representativeness": 0.5}),
                               result("a", "gss2", {"GSS Representativeness": 0.6})])


def test_table2_rows_carry_the_knowledge_cutoff():
    rows, sidecar = tables.table2([("a", "A"), ("b", "B")], [result("a", "oqa_xl", {"Opinion Alignment": 0.82974})],
                                  {"a": "Sept, 2022", "b": None})
    assert rows == [{"Model": "A", "Knowledge Cut-off": "Sept, 2022", "Opinion Alignment": "82.97"},
                    {"Model": "B", "Knowledge Cut-off": "", "Opinion Alignment": ""}]
    assert sidecar["columns"] == ["Model", "Knowledge Cut-off", "Opinion Alignment"]


def test_table_figure_is_drawn_and_deterministic(tmp_path):
    from alpha.eval.figures import plot_table

    models = [("a", "A"), ("b", "B")]
    _, sidecar = tables.table1(models, [result("a", "gss", {"GSS Representativeness": 0.5}),
                                        result("b", "gss", {"GSS Representativeness": 0.7})])
    plot_table(sidecar, tmp_path / "one.png")
    plot_table(sidecar, tmp_path / "two.png")
    assert (tmp_path / "one.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()


def test_renamed_fields_replace_same_named_ones_and_an_empty_selection_leaves_an_empty_cell(tmp_path):
    items = [{"item_id": "q1", "question_id": "Q1", "question": "the text", "context": "default", "table2": False,
              "labels": ["A", "B"], "ordinal_labels": ["A", "B"], "ordinals": [1.0, 2.0], "human_probs": [0.5, 0.5]}]
    task = task_spec.load_task("opinionqa_xl")
    scores = pd.DataFrame({"item_id": ["q1"], "options": [["A", "B"]], "logprobs": [[math.log(0.5)] * 2]})
    frame = metric_results.metric_frame(task, items, scores)
    assert frame.loc[0, "question"] == "Q1"  # the id, whatever the item's key order
    import pyarrow as pa

    write_results(tmp_path / "items.parquet", pa.Table.from_pydict({"item_id": ["q1"], "question_id": ["Q1"], "prompt": ["p"],
                                            "labels": [["A", "B"]], "item": [prepared_items.item_json(items[0])]},
                                           schema=prepared_items.ITEMS_SCHEMA))
    write_scores(tmp_path / "scores.parquet", {"q1": [0.5, 0.5]}, ["A", "B"])
    result = metric_results.evaluate(task, "reference", tmp_path / "items.parquet", tmp_path / "scores.parquet", "xl", "m")
    by_column = {m["column"]: m for m in result["metrics"]}
    assert by_column["OpinionQA-XL Representativeness"]["value"] == pytest.approx(1.0)  # identical distributions
    # no wave in the Table 2 window: the cell is empty, not a failed job
    assert by_column["Opinion Alignment"]["value"] is None and by_column["Opinion Alignment"]["n_items"] == 0
    assert by_column["Opinion Alignment"]["family"] == "ordinal_wd"
