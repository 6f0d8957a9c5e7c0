"""Chat templates and assistant-only label masks (alpha.core.chat) on a tiny byte-level BPE tokenizer:
hand-written expected renderings of the Llama-2-chat, Llama-3-Instruct and Vicuna v1.1 formats, exact
token/label sequences, prompt ids, template lookup errors and the prefix-consistency check."""
import copy
import types

import pytest

from alpha.core import chat
from alpha.core.chat import IGNORE_INDEX
from alpha.demo.tiny_model import train_tokenizer

CORPUS = [
    "Be brief. What is the capital of France? Paris is the capital of France.",
    "Who wrote the play Hamlet? William Shakespeare wrote it. And Macbeth? Also Shakespeare.",
    "A chat between a curious user and an artificial intelligence assistant.",
] * 4

SINGLE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris"},
]
MULTI = [
    {"role": "user", "content": "Who wrote Hamlet?"},
    {"role": "assistant", "content": "William Shakespeare"},
    {"role": "user", "content": "And Macbeth?"},
    {"role": "assistant", "content": "Also Shakespeare"},
]
VICUNA_DEFAULT_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions."
)

# The documented formats, written out by hand (BOS "<s>" and EOS "</s>" are the tiny tokenizer's).
EXPECTED = {
    ("llama-2", "single"): "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is the capital of France? [/INST] Paris </s>",
    ("llama-2", "multi"):
        "<s>[INST] Who wrote Hamlet? [/INST] William Shakespeare </s><s>[INST] And Macbeth? [/INST] Also Shakespeare </s>",
    ("llama-3", "single"): (
        "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nParis<|eot_id|>"
    ),
    ("llama-3", "multi"): (
        "<s><|start_header_id|>user<|end_header_id|>\n\nWho wrote Hamlet?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nWilliam Shakespeare<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnd Macbeth?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nAlso Shakespeare<|eot_id|>"
    ),
    ("vicuna-v1.1", "single"): "<s>Be brief. USER: What is the capital of France? ASSISTANT: Paris</s>",
    ("vicuna-v1.1", "multi"): (
        f"<s>{VICUNA_DEFAULT_SYSTEM} USER: Who wrote Hamlet? ASSISTANT: William Shakespeare</s>"
        "USER: And Macbeth? ASSISTANT: Also Shakespeare</s>"
    ),
}

# The same renderings cut by hand into (text, trained) pieces: only the answers (with their end
# marker) are trained; system/user turns and the Llama-3 / Vicuna assistant headers are not.
PIECES = {
    ("llama-2", "single"): [
        ("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is the capital of France? [/INST]", False),
        (" Paris </s>", True),
    ],
    ("llama-2", "multi"): [
        ("<s>[INST] Who wrote Hamlet? [/INST]", False),
        (" William Shakespeare </s>", True),
        ("<s>[INST] And Macbeth? [/INST]", False),
        (" Also Shakespeare </s>", True),
    ],
    ("llama-3", "single"): [
        ("<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>", False),
        ("<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>", False),
        ("<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        ("Paris<|eot_id|>", True),
    ],
    ("llama-3", "multi"): [
        ("<s><|start_header_id|>user<|end_header_id|>\n\nWho wrote Hamlet?<|eot_id|>", False),
        ("<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        ("William Shakespeare<|eot_id|>", True),
        ("<|start_header_id|>user<|end_header_id|>\n\nAnd Macbeth?<|eot_id|>", False),
        ("<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        ("Also Shakespeare<|eot_id|>", True),
    ],
    ("vicuna-v1.1", "single"): [
        ("<s>Be brief. ", False),
        ("USER: What is the capital of France? ", False),
        ("ASSISTANT:", False),
        (" Paris</s>", True),
    ],
    ("vicuna-v1.1", "multi"): [
        (f"<s>{VICUNA_DEFAULT_SYSTEM} USER: Who wrote Hamlet? ", False),
        ("ASSISTANT:", False),
        (" William Shakespeare</s>", True),
        ("USER: And Macbeth? ", False),
        ("ASSISTANT:", False),
        (" Also Shakespeare</s>", True),
    ],
}
CONVERSATIONS = {"single": SINGLE, "multi": MULTI}
CASES = sorted(EXPECTED)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, 400)


def ids_of(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def decode(tok, ids):
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def labelled_runs(labels):
    """Maximal runs of trained labels, as lists of ids."""
    runs, current = [], []
    for lab in labels:
        if lab == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(lab)
    if current:
        runs.append(current)
    return runs


def test_llama2_single_turn_is_the_documented_format(tok):
    system, user, answer = "Be brief.", "What is the capital of France?", "Paris"
    documented = f"<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>"
    assert chat.render(tok, SINGLE, chat.LLAMA2_TEMPLATE) == documented


@pytest.mark.parametrize("name,conv", CASES)
def test_templates_render_their_documented_formats(tok, name, conv):
    assert chat.render(tok, CONVERSATIONS[conv], chat.TEMPLATES[name]) == EXPECTED[name, conv]


def test_llama2_rejects_non_alternating_roles(tok):
    with pytest.raises(Exception, match="alternate"):
        chat.render(tok, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], chat.LLAMA2_TEMPLATE)


@pytest.mark.parametrize("name,conv", CASES)
def test_encode_labels_exactly_the_assistant_answers(tok, name, conv):
    messages, template = CONVERSATIONS[conv], chat.TEMPLATES[name]
    enc = chat.encode_conversation(tok, messages, template, max_length=10_000)

    want_ids, want_labels = [], []
    for text, trained in PIECES[name, conv]:
        piece = ids_of(tok, text)
        want_ids += piece
        want_labels += piece if trained else [IGNORE_INDEX] * len(piece)
    assert enc.input_ids == want_ids
    assert enc.labels == want_labels
    assert enc.truncated is False
    # the whole rendering, nothing more or less
    assert decode(tok, enc.input_ids) == chat.render(tok, messages, template) == EXPECTED[name, conv]
    # every trained token is its own input id; each trained run is one answer with its end marker
    assert all(lab in (IGNORE_INDEX, i) for lab, i in zip(enc.labels, enc.input_ids))
    runs = [decode(tok, run) for run in labelled_runs(enc.labels)]
    assert runs == [text for text, trained in PIECES[name, conv] if trained]


@pytest.mark.parametrize("conv", ["single", "multi"])
def test_llama2_labels_decode_to_space_answer_space_eos(tok, conv):
    messages = CONVERSATIONS[conv]
    enc = chat.encode_conversation(tok, messages, chat.LLAMA2_TEMPLATE, max_length=10_000)
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert [decode(tok, run) for run in labelled_runs(enc.labels)] == [f" {a} </s>" for a in answers]
    assert enc.labels[0] == IGNORE_INDEX and enc.labels[-1] == tok.eos_token_id


def test_llama3_assistant_header_is_not_trained(tok):
    enc = chat.encode_conversation(tok, MULTI, chat.LLAMA3_TEMPLATE, max_length=10_000)
    trained_text = "".join(decode(tok, run) for run in labelled_runs(enc.labels))
    assert "assistant" not in trained_text and "<|start_header_id|>" not in trained_text
    assert trained_text == "William Shakespeare<|eot_id|>Also Shakespeare<|eot_id|>"


def test_encode_truncates_to_max_length(tok):
    full = chat.encode_conversation(tok, MULTI, chat.LLAMA2_TEMPLATE, max_length=10_000)
    n = len(full.input_ids)
    cut = chat.encode_conversation(tok, MULTI, chat.LLAMA2_TEMPLATE, max_length=n - 3)
    assert cut.truncated is True
    assert cut.input_ids == full.input_ids[: n - 3] and cut.labels == full.labels[: n - 3]
    exact = chat.encode_conversation(tok, MULTI, chat.LLAMA2_TEMPLATE, max_length=n)
    assert exact.truncated is False and exact.input_ids == full.input_ids


@pytest.mark.parametrize("name,conv", CASES)
def test_prompt_ids_are_everything_before_the_last_answer(tok, name, conv):
    messages, template = CONVERSATIONS[conv], chat.TEMPLATES[name]
    enc = chat.encode_conversation(tok, messages, template, max_length=10_000)
    last_answer = len(ids_of(tok, PIECES[name, conv][-1][0]))
    want = enc.input_ids[:-last_answer]
    # with or without the answer in the messages
    assert chat.prompt_ids(tok, messages, template) == want
    assert chat.prompt_ids(tok, messages[:-1], template) == want
    assert enc.labels[len(want) - 1] == IGNORE_INDEX and enc.labels[len(want)] != IGNORE_INDEX
    # what the model sees: the rendering with the generation prompt (the Llama-3 / Vicuna header)
    assert decode(tok, want) == chat.render(tok, messages[:-1], template, add_generation_prompt=True)
    assert decode(tok, want) == "".join(text for text, _ in PIECES[name, conv][:-1])


def test_template_for_named_and_tokenizer_templates(tok):
    assert chat.template_for("llama-2", tok) == chat.LLAMA2_TEMPLATE
    assert chat.template_for("llama-3", tok) == chat.LLAMA3_TEMPLATE
    assert chat.template_for("vicuna-v1.1", tok) == chat.VICUNA_TEMPLATE
    assert chat.template_for(None, tok) == tok.chat_template == chat.LLAMA2_TEMPLATE
    assert chat.template_for("tokenizer", tok) == tok.chat_template


def test_template_for_tokenizer_without_template_errors_clearly(tok):
    bare = copy.deepcopy(tok)
    bare.chat_template = None
    with pytest.raises(ValueError, match="has no chat template") as err:
        chat.template_for(None, bare)
    assert "llama-2, llama-3, vicuna-v1.1" in str(err.value)
    stub = types.SimpleNamespace(name_or_path="org/base-model", chat_template="")
    with pytest.raises(ValueError, match=r"^org/base-model has no chat template; name one in the model registry"):
        chat.template_for("tokenizer", stub)


def test_template_for_unknown_name_lists_the_known_ones(tok):
    with pytest.raises(ValueError) as err:
        chat.template_for("mistral", tok)
    assert str(err.value) == "unknown chat template 'mistral'; known: llama-2, llama-3, vicuna-v1.1 or 'tokenizer'"


def test_template_that_is_not_prefix_consistent_is_rejected(tok):
    # appends the number of messages: rendering two messages does not extend rendering one
    counting = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{{ messages | length }}"
    with pytest.raises(ValueError, match="prefix by prefix"):
        chat.encode_conversation(tok, MULTI, counting, max_length=10_000)
    with pytest.raises(ValueError, match="prefix by prefix"):
        chat.prompt_ids(tok, MULTI, counting)
    # newest message first
    reversed_order = "{% for m in messages | reverse %}{{ m['content'] }}|{% endfor %}"
    with pytest.raises(ValueError, match="prefix by prefix"):
        chat.encode_conversation(tok, SINGLE, reversed_order, max_length=10_000)
