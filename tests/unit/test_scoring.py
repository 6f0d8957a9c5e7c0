"""Option scoring: one forward pass per prompt, left-padded batches equal to prompts run alone, label-token
resolution, renormalisation, input order and deterministic Parquet output."""
from __future__ import annotations

import logging
import math
import random

import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from alpha.core.chat import LLAMA2_TEMPLATE, render  # noqa: E402
from alpha.demo.tiny_model import train_tokenizer  # noqa: E402
from alpha.eval import scoring  # noqa: E402

CORPUS = [
    "Question: How much do you trust the federal government to do what is right?",
    "How would someone from Brazil answer the following question: is the economy doing well?",
    "Premise: The man is cooking dinner. Hypothesis: Someone is making food.",
    "Here are the options: a great deal, a fair amount, not too much, not at all.",
    "Do most people in this cultural group agree with the described behaviour? Answer with Yes or No.",
] * 20

LETTERS = list("ABCDE")


def make_items(n: int = 17, seed: int = 0) -> list[dict]:
    """Prompts of very different lengths and with every answer-position ending the benchmarks use."""
    rng = random.Random(seed)
    words = "how much do you trust the federal government economy weather family people culture".split()
    items = []
    for k in range(n):
        question = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
        kind = k % 4
        if kind == 0:
            labels = LETTERS[: rng.randint(2, 5)]
            prompt = f"Question: {question}?\n" + "".join(f"{x}. option {x}\n" for x in labels) + "Answer:"
        elif kind == 1:
            labels = LETTERS[:4]
            prompt = f"Human: {question}?\n" + "".join(f"({x}) opt\n" for x in labels)
            prompt += "Assistant: If I had to select one of the options, my answer would be ("
        elif kind == 2:
            labels = ["E", "N", "C"]
            prompt = (f"Premise: {question}.\n  Hypothesis: people.\n  (E) Entail \n  (N) Neutral\n  (C) Contradict\n\n"
                      "  Your Answer (E/N/C): (")
        else:
            labels = ["Yes", "No"]
            prompt = f"Do most people agree that {question}? Answer with Yes or No:"
        items.append({"item_id": f"q{k:03d}", "prompt": prompt, "labels": labels})
    return items


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, 500)


@pytest.fixture(scope="module")
def llama(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        initializer_range=0.1,  # a less flat next-token distribution than the default 0.02
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def gpt2(tok):
    """Absolute position embeddings: left padding is wrong here unless position ids follow the mask
    (RoPE models are shift-invariant, so Llama alone cannot catch missing position ids)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4, n_positions=512,
                        pad_token_id=tok.pad_token_id, initializer_range=0.1)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def items():
    return make_items()


def naive_logprobs(model, tok, text: str, labels: list[str], form: str, add_special_tokens: bool = True) -> list[float]:
    """The reference: the prompt alone (no padding, no mask), logits[-1], label ids from encoding the label."""
    ids = tok(text, add_special_tokens=add_special_tokens)["input_ids"]
    with torch.no_grad():
        last = model(torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)
    out = []
    for label in labels:
        variants = {"bare": [label], "space": [" " + label], "both": [label, " " + label]}[form]
        label_ids = []
        for variant in variants:
            enc = tok(variant, add_special_tokens=False)["input_ids"]
            assert len(enc) == 1, (variant, enc)
            label_ids.append(enc[0])
        out.append(float(torch.logsumexp(last[label_ids], dim=0)))
    return out


def expected_form(prompt: str) -> str:
    return "bare" if prompt.endswith("(") else "space"


def max_diff(a: list[scoring.ScoredItem], b: list[scoring.ScoredItem]) -> float:
    return max(abs(x - y) for s, t in zip(a, b) for x, y in zip(s.logprobs + s.probs, t.logprobs + t.probs))


class ForwardSpy:
    """Wraps an instance's forward: counts calls, rows and the logits' sequence length."""

    def __init__(self, model, monkeypatch, drop: tuple[str, ...] = ()):
        self.calls, self.rows, self.logit_lengths = 0, 0, []
        original = model.forward

        def forward(*args, **kwargs):
            for name in drop:
                kwargs.pop(name, None)
            self.calls += 1
            self.rows += kwargs["input_ids"].shape[0]
            out = original(*args, **kwargs)
            self.logit_lengths.append(out.logits.shape[1])
            return out

        monkeypatch.setattr(model, "forward", forward)


# --- the engine against references --------------------------------------------------------------------


@pytest.fixture(scope="module")
def unbatched(llama, tok, items):
    return scoring.score_items(llama, tok, items, batch_size=1)


def test_prompts_have_mixed_lengths(unbatched):
    lengths = sorted(s.n_prompt_tokens for s in unbatched)
    assert lengths[-1] - lengths[0] > 20  # so left padding really happens in a batch


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_equals_unbatched(llama, tok, items, unbatched, batch_size):
    batched = scoring.score_items(llama, tok, items, batch_size=batch_size)
    assert [s.item_id for s in batched] == [s.item_id for s in unbatched]
    assert max_diff(batched, unbatched) < 1e-5


def test_token_cap_equals_unbatched(llama, tok, items, unbatched, monkeypatch):
    spy = ForwardSpy(llama, monkeypatch)
    capped = scoring.score_items(llama, tok, items, batch_size=8, max_tokens_per_batch=120)
    assert max_diff(capped, unbatched) < 1e-5
    assert spy.rows == len(items) and spy.calls > math.ceil(len(items) / 8)  # the cap split batches


def test_matches_naive_reference(llama, tok, items):
    scored = scoring.score_items(llama, tok, items, batch_size=8)
    for item, s in zip(items, scored):
        form = expected_form(item["prompt"])
        assert s.label_form == form
        ref = naive_logprobs(llama, tok, item["prompt"], item["labels"], form)
        assert s.options == item["labels"]
        assert max(abs(x - y) for x, y in zip(s.logprobs, ref)) < 1e-5, item["item_id"]
        ref_probs = torch.tensor(ref, dtype=torch.float64).softmax(0).tolist()
        assert max(abs(x - y) for x, y in zip(s.probs, ref_probs)) < 1e-5


def test_both_forms_variant_is_logsumexp(llama, tok, items):
    scored = scoring.score_items(llama, tok, items, batch_size=4, label_form="both")
    for item, s in zip(items, scored):
        assert s.label_form == "both" and all(len(ids) == 2 for ids in s.token_ids)
        ref = naive_logprobs(llama, tok, item["prompt"], item["labels"], "both")
        assert max(abs(x - y) for x, y in zip(s.logprobs, ref)) < 1e-5


def test_forced_forms_differ(llama, tok, items):
    bare = scoring.score_items(llama, tok, items[:4], label_form="bare")
    space = scoring.score_items(llama, tok, items[:4], label_form="space")
    assert all(s.label_form == "bare" for s in bare) and all(s.label_form == "space" for s in space)
    assert max_diff(bare, space) > 1e-3  # the form matters, so the auto rule is really tested


def test_gpt2_absolute_positions_batched_equals_unbatched(gpt2, tok, items):
    alone = scoring.score_items(gpt2, tok, items, batch_size=1)
    batched = scoring.score_items(gpt2, tok, items, batch_size=8)
    assert max_diff(batched, alone) < 1e-5
    for item, s in zip(items, alone):
        ref = naive_logprobs(gpt2, tok, item["prompt"], item["labels"], expected_form(item["prompt"]))
        assert max(abs(x - y) for x, y in zip(s.logprobs, ref)) < 1e-5


@pytest.mark.parametrize(
    "model_name, dropped", [("gpt2", ("position_ids",)), ("llama", ("attention_mask", "position_ids"))]
)
def test_padding_mistakes_are_caught(request, tok, items, monkeypatch, model_name, dropped):
    """Sanity of the tolerance: without position ids (absolute positions) or without the mask, the
    batched scores move far beyond 1e-5, so the equality tests above can fail. (Llama is dropped both:
    transformers 5 reads position ids that restart at 0 as packed sequences and masks the pads anyway.)"""
    model = request.getfixturevalue(model_name)
    alone = scoring.score_items(model, tok, items, batch_size=1)
    ForwardSpy(model, monkeypatch, drop=dropped)
    broken = scoring.score_items(model, tok, items, batch_size=8)
    assert max_diff(broken, alone) > 1e-3


def test_one_forward_row_per_prompt(llama, tok, items, monkeypatch):
    spy = ForwardSpy(llama, monkeypatch)
    scoring.score_items(llama, tok, items, batch_size=3)
    assert spy.rows == len(items)
    assert spy.calls == math.ceil(len(items) / 3)
    assert set(spy.logit_lengths) == {1}  # logits_to_keep=1: no vocab x sequence logits


def test_probs_renormalised(llama, tok, items):
    for s in scoring.score_items(llama, tok, items, batch_size=8):
        assert math.isclose(sum(s.probs), 1.0, abs_tol=1e-12)
        assert all(lp < 0 for lp in s.logprobs)
        assert sum(math.exp(lp) for lp in s.logprobs) < 1.0  # full-vocabulary log-probs, not renormalised
        assert [p > q for p, q in zip(s.probs, s.probs[1:])] == [a > b for a, b in zip(s.logprobs, s.logprobs[1:])]


def test_input_order_preserved(llama, tok, items, unbatched):
    by_id = {s.item_id: s for s in unbatched}
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    scored = scoring.score_items(llama, tok, shuffled, batch_size=3)
    assert [s.item_id for s in scored] == [it["item_id"] for it in shuffled]
    for s in scored:
        assert max_diff([s], [by_id[s.item_id]]) < 1e-5


def test_bf16_model_scores_in_float32(llama, tok, items):
    import copy

    half = copy.deepcopy(llama).to(torch.bfloat16)
    ref = scoring.score_items(llama, tok, items[:6])
    low = scoring.score_items(half, tok, items[:6])
    assert all(math.isclose(sum(s.probs), 1.0, abs_tol=1e-12) for s in low)
    assert max_diff(low, ref) < 0.1


def test_progress_is_logged(llama, tok, items, caplog):
    with caplog.at_level(logging.INFO, logger="alpha.eval.scoring"):
        scoring.score_items(llama, tok, items, batch_size=4, log_every=2)
    batches = [r.getMessage() for r in caplog.records if r.name == "alpha.eval.scoring" and r.getMessage().startswith("batch")]
    assert batches[0].startswith("batch 2/5") and batches[-1].startswith("batch 5/5")
    assert len(batches) == 3


# --- chat wrapping and limits -------------------------------------------------------------------------


def test_chat_prompt_uses_the_template(tok):
    text = scoring.chat_prompt(tok, "Question: trust?\nAnswer:")
    assert text == render(tok, [{"role": "user", "content": "Question: trust?\nAnswer:"}], LLAMA2_TEMPLATE, add_generation_prompt=True)
    assert text == "<s>[INST] Question: trust?\nAnswer: [/INST]"
    with_system = scoring.chat_prompt(tok, "Q?", template="llama-2", system="Be brief.")
    assert with_system.startswith("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nQ?")


def test_chat_scoring_matches_naive(llama, tok, items):
    scored = scoring.score_items(llama, tok, items[:6], chat=True, batch_size=4)
    for item, s in zip(items, scored):
        text = scoring.chat_prompt(tok, item["prompt"])
        assert s.label_form == "space"  # the answer follows "[/INST]"
        assert s.n_prompt_tokens == len(tok(text, add_special_tokens=False)["input_ids"])
        ref = naive_logprobs(llama, tok, text, item["labels"], "space", add_special_tokens=False)
        assert max(abs(x - y) for x, y in zip(s.logprobs, ref)) < 1e-5


def test_too_long_prompt_raises_or_is_recorded(llama, tok, items, monkeypatch):
    longest = max(items, key=lambda it: len(it["prompt"]))
    n = len(tok(longest["prompt"])["input_ids"])
    spy = ForwardSpy(llama, monkeypatch)
    with pytest.raises(scoring.PromptTooLongError, match=longest["item_id"]):
        scoring.score_items(llama, tok, items, max_length=n - 1)
    assert spy.calls == 0
    scored = scoring.score_items(llama, tok, items, max_length=n - 1, on_too_long="skip")
    skipped = [s for s in scored if s.logprobs is None]
    assert [s.item_id for s in skipped] == [longest["item_id"]] and skipped[0].n_prompt_tokens == n
    table = scoring.results_table(scored)
    assert table.column("probs").null_count == 1
    assert spy.rows == len(items) - 1


def test_default_limit_is_the_models_context(llama, tok):
    prompt = "economy " * 600 + "Answer:"
    with pytest.raises(scoring.PromptTooLongError, match="512"):
        scoring.score_items(llama, tok, [{"item_id": "long", "prompt": prompt, "labels": ["A", "B"]}])


# --- label tokens ---------------------------------------------------------------------------------------


class StubTokenizer:
    def __init__(self, vocab: dict[str, int]):
        self.vocab = vocab

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)


def test_byte_level_resolution(tok):
    resolver = scoring.LabelResolver(tok)
    assert resolver.style == "byte_level"
    for label in ["A", "E", "Z", "Yes", "No"]:
        tokens = resolver(label)
        assert tokens.bare == tok.convert_tokens_to_ids(label) == tok(label, add_special_tokens=False)["input_ids"][0]
        assert tokens.space == tok.convert_tokens_to_ids("\u0120" + label) == tok(" " + label, add_special_tokens=False)["input_ids"][0]
        assert tokens.bare != tokens.space
    assert resolver.ids(["A", "B"], "space") == [[resolver("A").space], [resolver("B").space]]
    assert resolver.ids(["A"], "both") == [sorted([resolver("A").bare, resolver("A").space])]


def test_byte_level_non_ascii_label():
    vocab = {"\u0120the": 0, "\u0120and": 1, "Ã©": 2, "\u0120Ã©": 3}  # "é" is bytes C3 A9 -> "Ã©"
    tokens = scoring.LabelResolver(StubTokenizer(vocab))("é")
    assert (tokens.bare, tokens.space) == (2, 3)


def test_sentencepiece_resolution():
    vocab = {"<unk>": 0, "\u2581the": 1, "\u2581and": 2, "A": 3, "\u2581A": 4, "B": 5, "\u2581B": 6, "\u2581Yes": 7,
             "\u0120A": 8}  # a stray byte-level token must not win over the SentencePiece style
    resolver = scoring.LabelResolver(StubTokenizer(vocab))
    assert resolver.style == "sentencepiece"
    assert resolver.ids(["A", "B"], "space") == [[4], [6]]
    assert resolver.ids(["A", "B"], "bare") == [[3], [5]]
    assert resolver.ids(["Yes"], "both") == [[7]]
    assert resolver.ids(["Yes"], "space") == [[7]]
    with pytest.raises(scoring.LabelTokenError, match="'Yes'.*space form is one token"):
        resolver.ids(["Yes"], "bare")
    with pytest.raises(scoring.LabelTokenError, match="'No'"):
        resolver.ids(["No"], "both")


@pytest.mark.parametrize(
    "ending, form",
    [("Answer:", "space"), ("my answer would be (", "bare"), ("Your Answer (E/N/C): (", "bare"), ("[/INST]", "space"),
     ("Answer: ", "bare"), ("Answer:\n", "bare"), ("choose [", "bare"), ("Yes or No?", "space"), ("\u201c", "bare")],
)
def test_auto_rule(ending, form):
    assert scoring.answer_form("Question: x\n" + ending) == form
    assert scoring.answer_form(ending, "both") == "both"


def test_multi_token_label_fails_before_any_forward(llama, tok, items, monkeypatch):
    assert len(tok(" Maybe", add_special_tokens=False)["input_ids"]) > 1
    spy = ForwardSpy(llama, monkeypatch)
    bad = items[:3] + [{"item_id": "bad", "prompt": "Answer:", "labels": ["Yes", "Maybe"]}]
    for form in ("auto", "both"):
        with pytest.raises(scoring.LabelTokenError, match="'Maybe'"):
            scoring.score_items(llama, tok, bad, label_form=form)
    assert spy.calls == 0


def test_unknown_options_fail(llama, tok, items):
    with pytest.raises(ValueError, match="label_form"):
        scoring.score_items(llama, tok, items, label_form="spaced")
    with pytest.raises(ValueError, match="on_too_long"):
        scoring.score_items(llama, tok, items, on_too_long="truncate")


# --- batches and results --------------------------------------------------------------------------------


def test_plan_batches():
    lengths = [5, 50, 7, 50, 30, 1, 12]
    batches = scoring.plan_batches(lengths, batch_size=3)
    assert batches == [[1, 3, 4], [6, 2, 0], [5]]
    capped = scoring.plan_batches(lengths, batch_size=8, max_tokens_per_batch=100)
    assert sorted(i for b in capped for i in b) == list(range(len(lengths)))
    assert all(len(b) * lengths[b[0]] <= 100 for b in capped)
    assert scoring.plan_batches([200, 3], batch_size=8, max_tokens_per_batch=100) == [[0], [1]]
    with pytest.raises(ValueError):
        scoring.plan_batches(lengths, batch_size=0)


def test_parquet_is_deterministic(llama, tok, items, tmp_path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    scoring.write_results(first, scoring.score_items(llama, tok, items, batch_size=8), metadata={"label_form": "auto"})
    scoring.write_results(second, scoring.score_items(llama, tok, items, batch_size=8), metadata={"label_form": "auto"})
    assert first.read_bytes() == second.read_bytes()
    table = pq.read_table(first)
    assert table.schema.remove_metadata() == scoring.RESULT_SCHEMA
    assert table.schema.metadata == {b"label_form": b"auto"}
    assert table.column("item_id").to_pylist() == [it["item_id"] for it in items]
    assert table.column("options").to_pylist() == [it["labels"] for it in items]
    meta = pq.ParquetFile(first).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert not meta.row_group(0).column(0).is_stats_set
