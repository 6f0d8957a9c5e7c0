"""CultureBank grounded evaluation: answer generation, the local judge against a hand-run forward
pass, the OpenAI-compatible endpoint judge against a real local HTTP server, per-subset means."""
from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

torch = pytest.importorskip("torch")

from alpha.core.chat import LLAMA2_TEMPLATE  # noqa: E402
from alpha.demo.tiny_model import train_tokenizer  # noqa: E402
from alpha.eval import grounded  # noqa: E402

CORPUS = ["Response: people tip in Japan.\n\nKnowledge: tipping is not customary. Entailment (Yes/No): Yes No"] * 40


@pytest.fixture(scope="module")
def tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = train_tokenizer(CORPUS, 400)
    tok.chat_template = LLAMA2_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         initializer_range=0.2)
    return LlamaForCausalLM(config).eval(), tok


def test_local_judge_reads_p_yes_from_one_forward_pass(tiny):
    model, tok = tiny
    judge = grounded.LocalJudge(model, tok, template=None, batch_size=2, name="tiny")
    pairs = [("people tip in Japan", "tipping is not customary"), ("no", "tipping is not customary in Japan at all")]
    got = judge.p_yes(pairs)
    for (resp, desc), (p, note) in zip(pairs, got):
        messages = [{"role": "system", "content": grounded.JUDGE_SYSTEM},
                    {"role": "user", "content": grounded.JUDGE_USER.format(resp, desc)}]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids).logits[0, -1].double(), -1)
        yes = tok.get_vocab()["\u0120Yes"]  # after "[/INST]" the answer starts a new word: " Yes"
        assert note is None and p == pytest.approx(float(probs[yes]), rel=1e-5)


def test_answers_are_seeded_per_question_not_per_position(tiny):
    model, tok = tiny
    questions = ["Is tipping customary in Japan?", "How do people greet in France?"]
    both = grounded.answer_questions(model, tok, questions, template=None, max_new_tokens=6, seed=7)
    alone = grounded.answer_questions(model, tok, questions[1:], template=None, max_new_tokens=6, seed=7)
    again = grounded.answer_questions(model, tok, questions, template=None, max_new_tokens=6, seed=7)
    assert both == again and both[1] == alone[0]
    greedy = grounded.answer_questions(model, tok, questions, template=None, max_new_tokens=6, sampling={"do_sample": False})
    assert all(isinstance(a, str) for a in greedy)


class _FakeOpenAI(BaseHTTPRequestHandler):
    requests: list = []
    replies: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        top = type(self).replies[len(type(self).requests) - 1]
        payload = {"choices": [{"logprobs": {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"],
                                                           "top_logprobs": top}]}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_endpoint_judge_speaks_the_openai_chat_completions_protocol(monkeypatch):
    _FakeOpenAI.requests = []
    _FakeOpenAI.replies = [
        [{"token": "Yes", "logprob": math.log(0.8)}, {"token": "No", "logprob": math.log(0.15)}],
        [{"token": "No", "logprob": math.log(0.9)}, {"token": "Yes", "logprob": math.log(0.05)}],
        [{"token": "No", "logprob": math.log(0.99)}],  # "Yes" not among the top: 0, as CultureBank's code
        [{"token": "Maybe", "logprob": math.log(0.7)}, {"token": "yes", "logprob": math.log(0.2)}],  # neither
    ]
    server = HTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("ALPHA_TEST_JUDGE_KEY", "sk-test")
        judge = grounded.EndpointJudge(f"http://127.0.0.1:{server.server_port}/v1", "judge-model",
                                       api_key_env="ALPHA_TEST_JUDGE_KEY", retries=1)
        got = judge.p_yes([("answer one", "knowledge one"), ("a2", "k2"), ("a3", "k3"), ("a4", "k4")])
    finally:
        server.shutdown()
    assert [p for p, _ in got] == pytest.approx([0.8, 0.05, 0.0, 0.0])
    assert [n for _, n in got] == [None, None, None, "judge_no_yes_no"]
    first = _FakeOpenAI.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    body = first["body"]
    assert body["model"] == "judge-model" and body["max_tokens"] == 1 and body["temperature"] == 0
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["seed"] == 1234
    assert body["messages"] == [
        {"role": "system", "content": grounded.JUDGE_SYSTEM},
        {"role": "user", "content": "Response: answer one\n\nKnowledge: knowledge one\n\n"
                                    "Does the given response entail the provided knowledge?\n\nEntailment (Yes/No):"},
    ]
    assert "sk-test" not in judge.name


def test_unreachable_endpoint_fails_after_its_retries():
    judge = grounded.EndpointJudge("http://127.0.0.1:9/v1", "m", api_key_env=None, timeout=2, retries=1)
    with pytest.raises(RuntimeError, match="failed 1 times"):
        judge.p_yes([("a", "k")])


class _ConstantJudge:
    name = "constant"

    def p_yes(self, pairs):
        return [(0.25 if "reddit" in resp else 1.0, None) for resp, _ in pairs]


def test_scores_are_mean_p_yes_per_subset_and_items_are_capped_per_subset():
    items = [{"item_id": f"{s}{k}", "subset": s, "eval_question": "q", "eval_whole_desc": "d"}
             for s in ("reddit", "tiktok") for k in range(3)]
    kept = grounded.test_items(items, max_items=2)
    assert [i["item_id"] for i in kept] == ["reddit0", "reddit1", "tiktok0", "tiktok1"]
    rows, summary = grounded.evaluate(kept, [f"{i['subset']} answer" for i in kept], _ConstantJudge())
    assert summary["by_subset"]["reddit"]["value"] == 0.25 and summary["by_subset"]["tiktok"]["value"] == 1.0
    assert summary["by_subset"]["reddit"]["n_items"] == 2 and len(rows) == 4
