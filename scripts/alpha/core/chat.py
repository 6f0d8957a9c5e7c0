"""Chat templates and the token-level view of a conversation that training and scoring share.

Samples are stored as plain ``messages`` (system / user / assistant); the model's chat template is
applied here, at training and evaluation time. ``encode_conversation`` renders the template one
message at a time and tokenises each piece on its own, so it knows exactly which tokens belong to
assistant turns: the loss is computed on those tokens only.
"""
from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # label of tokens the loss skips (transformers' convention)

# The Llama-2-chat template as published with meta-llama/Llama-2-7b-chat-hf (system merged into the
# first user turn, BOS before every [INST], EOS after every answer).
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

# Llama-3-Instruct's template (for the base Llama-3-8B, whose tokenizer ships none).
LLAMA3_TEMPLATE = (
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# FastChat's "vicuna_v1.1" conversation format (Vicuna v1.5 ships no chat template).
VICUNA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + ' ' }}"
    "{% set loop_messages = messages[1:] %}{% else %}"
    "{{ 'A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user\\'s questions. ' }}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

TEMPLATES = {"llama-2": LLAMA2_TEMPLATE, "llama-3": LLAMA3_TEMPLATE, "vicuna-v1.1": VICUNA_TEMPLATE}


def template_for(name: str | None, tokenizer) -> str:
    """The Jinja chat template: a named one from TEMPLATES, or (None / "tokenizer") the tokenizer's own."""
    if name in (None, "tokenizer"):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"{getattr(tokenizer, 'name_or_path', 'tokenizer')} has no chat template; "
                f"name one in the model registry ({', '.join(TEMPLATES)})"
            )
        return tokenizer.chat_template
    if name not in TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}; known: {', '.join(TEMPLATES)} or 'tokenizer'")
    return TEMPLATES[name]


def render(tokenizer, messages: list[dict], template: str, add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
    )


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX outside assistant turns
    truncated: bool


def _pieces(tokenizer, messages: list[dict], template: str) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, is_assistant_answer) pieces whose concatenation is
    the full rendering. An assistant turn's generation prompt (if the template has one) is not trained."""
    pieces: list[tuple[str, bool]] = []
    done = ""
    for k, message in enumerate(messages, start=1):
        upto = render(tokenizer, messages[:k], template)
        if message["role"] == "assistant":
            prompt = render(tokenizer, messages[: k - 1], template, add_generation_prompt=True)
            if prompt.startswith(done) and upto.startswith(prompt):
                pieces.append((prompt[len(done):], False))
                done = prompt
        if not upto.startswith(done):
            raise ValueError("the chat template does not render conversations prefix by prefix; cannot mask turns")
        pieces.append((upto[len(done):], message["role"] == "assistant"))
        done = upto
    return [(text, trained) for text, trained in pieces if text]


def encode_conversation(tokenizer, messages: list[dict], template: str, max_length: int) -> Encoded:
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in _pieces(tokenizer, messages, template):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE_INDEX] * len(piece)
    truncated = len(ids) > max_length
    return Encoded(ids[:max_length], labels[:max_length], truncated)


def prompt_ids(tokenizer, messages: list[dict], template: str) -> list[int]:
    """Token ids of a conversation up to (not including) its last assistant answer: what a model sees
    before it answers. Tokenised piece by piece exactly as in training."""
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    pieces = _pieces(tokenizer, messages + [{"role": "assistant", "content": "x"}], template)[:-1]
    ids: list[int] = []
    for text, _ in pieces:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids
