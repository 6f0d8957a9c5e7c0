"""The sampled and verbalised elicitation modes: parsing real models' answers (malformed ones included),
the counts of invalid outputs, and batched generation equal to prompts run alone."""
from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alpha.eval import elicitation, results
from alpha.eval.elicitation import parse_choice, parse_percentages, sampled_distribution, verbalised_prompt
from alpha.eval.items import ITEMS_SCHEMA, item_json
from alpha.eval.task_spec import load_task

ABCDE = ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize("text, label", [
    (" B", "B"), ("B", "B"), ("(B) Somewhat good", "B"), ("B) Somewhat", "B"), (" B.", "B"), ("\n\"C\"", "C"),
    ("[D]", "D"), ("E: refused", "E"), (" A\nB", "A"), ("*A*", "A"),
    ("I think B", None), ("", None), (" Z", None), ("Bx", None), ("AB", None), ("  ", None), ("42", None),
])
def test_parse_choice(text, label):
    assert parse_choice(text, ABCDE) == label


def test_parse_choice_multi_letter_labels():
    assert parse_choice(" Yes, most would", ["Yes", "No"]) == "Yes"
    assert parse_choice("No.", ["Yes", "No"]) == "No"
    assert parse_choice("Nope", ["Yes", "No"]) is None


def test_sampled_distribution_counts_only_parsed_answers():
    probs, n = sampled_distribution([" A", "(B) x", "hmm", " A", ""], ["A", "B", "C"])
    assert n == 3 and probs == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert sampled_distribution(["no idea", ""], ["A", "B"]) == (None, 0)


@pytest.mark.parametrize("text, expected", [
    ("A: 40%\nB: 35%\nC: 25%", [0.40, 0.35, 0.25]),
    ("Sure! Here you go:\n(A) 50 %\n(B) 30 %\n(C) 20 %\nHope this helps.", [0.5, 0.3, 0.2]),
    ("A - 45\nB - 45\nC - 5", [45 / 95, 45 / 95, 5 / 95]),             # sum 95: within 10 points, renormalised
    ("A. Very good: 10%\nB. Somewhat good: 60%\nC. Bad: 30%", [0.1, 0.6, 0.3]),  # option text between label and number
    ("A: 33.3%\nB: 33,3%\nC: 33.4%", [0.333, 0.333, 0.334]),
    ("A: 40%\nB: 35%\nC: 25%\nA: 40%", [0.40, 0.35, 0.25]),              # a repeated line that agrees
    ("A: 40%\nB: 35%\nC: 25%\nZ: 80%", [0.40, 0.35, 0.25]),              # an unknown label is ignored
])
def test_parse_percentages_valid(text, expected):
    probs, reason = parse_percentages(text, ["A", "B", "C"])
    assert reason is None and probs == pytest.approx(expected)
    assert math.fsum(probs) == pytest.approx(1.0)


@pytest.mark.parametrize("text, reason", [
    ("I cannot answer that.", "no_percentages"),
    ("", "no_percentages"),
    ("A: 60%\nB: 40%", "missing_options"),
    ("A: 40%\nB: 35%\nC: 25%\nA: 10%", "conflicting_values"),
    ("A: 80%\nB: 70%\nC: 50%", "sum_off"),
    ("A: 0%\nB: 0%\nC: 0%", "sum_off"),
    ("A: 30%\nB: 30%\nC: 20%", "sum_off"),  # 80: more than 10 points from 100
])
def test_parse_percentages_invalid(text, reason):
    assert parse_percentages(text, ["A", "B", "C"]) == (None, reason)


def test_sum_tolerance_is_a_setting():
    assert parse_percentages("A: 30%\nB: 30%\nC: 20%", ["A", "B", "C"], sum_tolerance=25)[1] is None


def test_verbalised_prompt_replaces_the_answer_cue():
    spec = elicitation.settings(load_task("opinionqa").elicitation, "verbalised")
    text = verbalised_prompt("Question: Q?\nA. Yes\nB. No\nAnswer:", spec)
    assert text.startswith("Question: Q?\nA. Yes\nB. No\nFor each option") and text.endswith("Percentages:\n")
    with pytest.raises(ValueError, match="unknown elicitation mode"):
        elicitation.settings({}, "guess")


# ------------------------------------------------------------------ generation with a tiny real model

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    from alpha.demo.tiny_model import train_tokenizer

    tok = train_tokenizer(["Question: how much do you trust the government? A. a lot B. some C. none Answer: A"] * 30, 300)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, initializer_range=0.2)
    return LlamaForCausalLM(config).eval(), tok


PROMPTS = ["Question: trust?\nA. a lot\nB. some\nAnswer:",
           "Question: how much do you trust the government to do what is right most of the time?\nA. a lot\nB. some\nC. none\nAnswer:",
           "Question: how much?\nA. a lot\nB. none\nAnswer:"]


def test_batched_greedy_generation_equals_prompts_alone(tiny):
    model, tok = tiny
    batched, lengths = elicitation.generate(model, tok, PROMPTS, n=1, temperature=0.0, max_new_tokens=6, batch_size=8)
    alone = [elicitation.generate(model, tok, [p], n=1, temperature=0.0, max_new_tokens=6)[0][0] for p in PROMPTS]
    assert batched == alone and len(lengths) == 3


def test_sampling_is_seeded_batched_and_returns_n_answers(tiny, monkeypatch):
    model, tok = tiny
    calls = []
    original = type(model).generate

    def spy(self, *args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "generate", spy)
    first, _ = elicitation.generate(model, tok, PROMPTS, n=5, temperature=1.0, max_new_tokens=3, batch_size=15, seed=1)
    again, _ = elicitation.generate(model, tok, PROMPTS, n=5, temperature=1.0, max_new_tokens=3, batch_size=15, seed=1)
    assert [len(a) for a in first] == [5, 5, 5] and first == again
    assert calls == [3, 3]  # one generate call for all 3 prompts x 5 samples, per run: not one per sample


def _items_file(tmp_path, labels=("A", "B", "C")):
    items = [{"item_id": f"q{k}:Brazil", "question_id": f"q{k}", "country": "Brazil", "labels": list(labels),
              "human": [0.5, 0.3, 0.2], "prompt": PROMPTS[k]} for k in range(3)]
    path = tmp_path / "items.parquet"
    pq.write_table(pa.Table.from_pydict({
        "item_id": [i["item_id"] for i in items], "question_id": [i["question_id"] for i in items],
        "prompt": [i["prompt"] for i in items], "labels": [i["labels"] for i in items],
        "item": [item_json(i) for i in items]}, schema=ITEMS_SCHEMA), path)
    return path


def test_verbalised_invalid_outputs_are_counted_and_excluded(tmp_path, monkeypatch):
    """Hand-written model outputs: one valid, one missing an option, one with no numbers."""
    answers = iter(["A: 50%\nB: 30%\nC: 20%", "A: 70%\nB: 30%", "I am a language model."])
    monkeypatch.setattr(elicitation, "generate", lambda model, tok, texts, **kw: ([[next(answers)] for _ in texts], [7] * len(texts)))
    monkeypatch.setattr("alpha.eval.scoring.load_model", lambda model_dir: (None, None))
    task = load_task("globalopinionqa")
    items = _items_file(tmp_path)
    out = tmp_path / "scores.parquet"
    counts = elicitation.elicit_prepared("unused", items, out, task=task, mode="verbalised")
    assert counts["valid"] == 1 and counts["invalid"] == {"missing_options": 1, "no_percentages": 1}
    table = pq.read_table(out)
    assert table.column("invalid_reason").to_pylist() == [None, "missing_options", "no_percentages"]
    assert table.column("probs").to_pylist()[0] == pytest.approx([0.5, 0.3, 0.2])
    result = results.evaluate(task, "reference", items, out, benchmark="goqa_verbalised", model="m")
    assert result["elicitation"]["invalid"] == {"missing_options": 1, "no_percentages": 1}
    assert result["elicitation"]["mode"] == "verbalised"
    avg = next(m for m in result["metrics"] if m["column"] == "GlobalOpinionQA Avg Sim")
    assert avg["n_items"] == 1 and avg["value"] == pytest.approx(1.0, abs=1e-5)  # the valid answer equals the humans'


def test_sampled_mode_counts_unparsed_answers(tmp_path, monkeypatch):
    answers = [[" A", " A", "(B)", "??"], ["no", "", "", "x"], [" C", " C", " C", " C"]]
    monkeypatch.setattr(elicitation, "generate", lambda model, tok, texts, **kw: (answers, [7] * len(texts)))
    monkeypatch.setattr("alpha.eval.scoring.load_model", lambda model_dir: (None, None))
    out = tmp_path / "scores.parquet"
    counts = elicitation.elicit_prepared("unused", _items_file(tmp_path), out, task=load_task("globalopinionqa"), mode="sampled")
    assert counts == {**counts, "items": 3, "valid": 2, "invalid": {"no_parsed_answer": 1}, "answers": 12, "parsed_answers": 7,
                      "unparsed_answers": 5}
    probs = pq.read_table(out).column("probs").to_pylist()
    assert probs[0] == pytest.approx([2 / 3, 1 / 3, 0.0]) and probs[1] is None and probs[2] == [0.0, 0.0, 1.0]
