"""Option-order robustness (eval.permutations): orders, relettered prompts, mapping back, and the metrics
on the order-averaged distribution, with hand-computed values."""
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alpha.eval import results, scoring
from alpha.eval.items import ITEMS_SCHEMA, item_json
from alpha.eval.permutations import PermutationError, expand_items, orders_for, permuted_prompt, to_original
from alpha.eval.task_spec import load_task

OPTIONS = ["Very likely", "Somewhat likely", "Not likely", "Refused"]
LABELS = ["A", "B", "C", "D"]
LINE = "{label}. {option}\n"


def prompt(options=OPTIONS, steer=""):
    lines = "".join(LINE.format(label=label, option=o) for label, o in zip(LABELS, options))
    return steer + "Question: Will it rain?\n" + lines + "Answer:"


def test_orders_are_seeded_distinct_and_start_with_the_prepared_order():
    orders = orders_for("q1", 4, 5, seed=7)
    assert orders[0] == (0, 1, 2, 3)
    assert len(orders) == 5 and len(set(orders)) == 5
    assert orders == orders_for("q1", 4, 5, seed=7)
    assert orders != orders_for("q1", 4, 5, seed=8) or orders != orders_for("q2", 4, 5, seed=7)
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)


def test_two_options_have_one_other_order():
    assert orders_for("q", 2, 4, seed=0) == [(0, 1), (1, 0)]
    assert orders_for("q", 3, 1, seed=0) == [(0, 1, 2)]
    with pytest.raises(ValueError):
        orders_for("q", 3, 0, seed=0)


def test_permuted_prompt_reletters_the_last_option_block():
    steer = "Question: Your age?\nA. Very likely\nB. Somewhat likely\nC. Not likely\nD. Refused\nAnswer: B\n\n"
    text = permuted_prompt(prompt(steer=steer), LINE, LABELS, OPTIONS, (2, 0, 3, 1))
    assert text == steer + "Question: Will it rain?\nA. Not likely\nB. Very likely\nC. Refused\nD. Somewhat likely\nAnswer:"
    with pytest.raises(PermutationError, match="option block"):
        permuted_prompt("Question: no options\nAnswer:", LINE, LABELS, OPTIONS, (1, 0, 2, 3))


def test_values_map_back_to_the_original_options():
    # position A showed option 2, B option 0, C option 3, D option 1
    assert to_original([0.7, 0.1, 0.15, 0.05], (2, 0, 3, 1)) == [0.1, 0.05, 0.7, 0.15]


def test_expand_items_needs_an_option_line_and_texts():
    item = {"item_id": "i1", "question_id": "q1", "prompt": prompt(), "labels": LABELS, "options": OPTIONS}
    rows = expand_items([item], 3, 0, LINE)
    assert [r["order"] for r in rows] == [0, 1, 2]
    assert rows[0]["prompt"] == item["prompt"] and rows[0]["permutation"] == [0, 1, 2, 3]
    assert expand_items([item], 1, 0, None)[0]["prompt"] == item["prompt"]
    with pytest.raises(PermutationError, match="option_line"):
        expand_items([item], 2, 0, None)
    with pytest.raises(PermutationError, match="option texts"):
        expand_items([{**item, "options": None}], 2, 0, LINE)


# ---------------------------------------------------------------------------------------------- scoring path

def _option_shown(text: str, label: str) -> str:
    block = text.rsplit("Question: Will it rain?\n", 1)[1]
    return next(line[len(label) + 2:] for line in block.splitlines() if line.startswith(f"{label}. "))


def content_reader(model, tokenizer, items, **kwargs):
    """A model that answers by option text: the letter's probability follows what it shows."""
    by_text = {"Very likely": 0.1, "Somewhat likely": 0.2, "Not likely": 0.6, "Refused": 0.1}
    out = []
    for item in items:
        probs = [by_text[_option_shown(item["prompt"], label)] for label in item["labels"]]
        out.append(scoring.ScoredItem(item["item_id"], 10, list(item["labels"]), [math.log(p) for p in probs], probs))
    return out


def a_biased(model, tokenizer, items, **kwargs):
    """A model that prefers the first letter whatever it shows."""
    probs = [0.7, 0.1, 0.1, 0.1]
    return [scoring.ScoredItem(i["item_id"], 10, list(i["labels"]), [math.log(p) for p in probs], probs) for i in items]


@pytest.fixture
def prepared(tmp_path):
    item = {"item_id": "q1:default", "question_id": "q1", "prompt": prompt(), "labels": LABELS, "options": OPTIONS,
            "ordinal_labels": ["A", "B", "C"], "ordinals": [1.0, 2.0, 3.0], "human_probs": [0.5, 0.3, 0.2],
            "context": "default", "group": "Overall"}
    path = tmp_path / "items.parquet"
    pq.write_table(pa.Table.from_pydict({
        "item_id": [item["item_id"]], "question_id": [item["question_id"]], "prompt": [item["prompt"]],
        "labels": [item["labels"]], "item": [item_json(item)]}, schema=ITEMS_SCHEMA), path)
    return path


def _score(prepared, tmp_path, monkeypatch, fake, k):
    monkeypatch.setattr(scoring, "load_model", lambda model_dir: (None, None))
    monkeypatch.setattr(scoring, "score_items", fake)
    out = tmp_path / f"scores-{fake.__name__}-{k}.parquet"
    summary = scoring.score_prepared("unused", prepared, out, task=load_task("opinionqa"), permutations=k, seed=3)
    return pq.read_table(out), summary


def test_a_content_reading_model_is_order_invariant_after_mapping_back(prepared, tmp_path, monkeypatch):
    table, summary = _score(prepared, tmp_path, monkeypatch, content_reader, 3)
    assert summary["prompts"] == 3 and table.column("order").to_pylist() == [0, 1, 2]
    for probs in table.column("probs").to_pylist():
        assert probs == pytest.approx([0.1, 0.2, 0.6, 0.1])
    assert len({tuple(p) for p in table.column("permutation").to_pylist()}) == 3
    result = results.evaluate(load_task("opinionqa"), "reference", prepared, tmp_path / "scores-content_reader-3.parquet",
                              benchmark="opinionqa", model="m")
    rep = next(m for m in result["metrics"] if m["column"] == "OpinionQA Representativeness")
    # ordinal A-C renormalised: [1/9, 2/9, 6/9] vs human [0.5, 0.3, 0.2], ordinals 1..3:
    # W1 = |1/9 - 0.5| + |3/9 - 0.8| = 0.855556, / span 2 = 0.427778 -> 1 - 0.427778
    assert rep["value"] == pytest.approx(1 - (abs(1 / 9 - 0.5) + abs(3 / 9 - 0.8)) / 2)
    assert rep["orders"]["orders"] == 3 and rep["orders"]["order_sensitivity"] == pytest.approx(0.0, abs=1e-12)
    assert result["option_orders"] == 3


def test_an_a_biased_model_is_order_sensitive_and_metrics_use_the_order_average(prepared, tmp_path, monkeypatch):
    table, _ = _score(prepared, tmp_path, monkeypatch, a_biased, 2)
    order = table.column("permutation").to_pylist()[1]
    second = [0.1] * 4
    second[order[0]] = 0.7  # the option shown at A got 0.7
    assert table.column("probs").to_pylist()[1] == pytest.approx(second)
    result = results.evaluate(load_task("opinionqa"), "reference", prepared, tmp_path / "scores-a_biased-2.parquet",
                              benchmark="opinionqa", model="m")
    rep = next(m for m in result["metrics"] if m["column"] == "OpinionQA Representativeness")

    def sim(probs):  # the reference metric on the ordinal options, original ordinals
        p = np.asarray(probs[:3]) / sum(probs[:3])
        cdf_m, cdf_h = np.cumsum(p), np.cumsum([0.5, 0.3, 0.2])
        return 1 - float(np.abs(cdf_m - cdf_h)[:2].sum()) / 2

    first = [0.7, 0.1, 0.1, 0.1]
    averaged = ((np.asarray(first[:3]) / sum(first[:3]) + np.asarray(second[:3]) / sum(second[:3])) / 2).tolist()
    assert rep["value"] == pytest.approx(sim(averaged + [0.0]))
    assert rep["orders"]["per_order"] == pytest.approx([sim(first), sim(second)])
    assert rep["orders"]["order_sensitivity"] == pytest.approx(abs(sim(first) - sim(second)))
    assert rep["orders"]["order_sensitivity"] > 0


def test_tasks_without_an_option_block_are_scored_once(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "load_model", lambda model_dir: (None, None))
    monkeypatch.setattr(scoring, "score_items", a_biased)
    summary = scoring.score_prepared("unused", prepared, tmp_path / "s.parquet", task=load_task("culturebank"), permutations=3)
    assert summary["prompts"] == 1 and summary["orders"] == 1
    meta = pq.read_schema(tmp_path / "s.parquet").metadata
    assert meta[b"permutations"] == b"1"
    assert json.loads(json.dumps(summary))["items"] == 1
