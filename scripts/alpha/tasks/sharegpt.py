"""External instruction sets in ShareGPT format, streamed as records of ``samples.SAMPLE_SCHEMA``.

The paper mixes general instruction data (ShareGPT, CBC) into training. A file is either a JSON list
of conversations or JSON Lines (suffix ``.jsonl``), one conversation per line::

    {"id": "abc", "conversations": [{"from": "system" | "human" | "user" | "gpt" | "assistant", "value": "..."}]}

Both forms stream: JSON Lines line by line, the JSON list element by element (``json.raw_decode`` over
a growing text buffer, so memory is one chunk plus the largest conversation, not the file).

A valid conversation is an optional leading system turn, then strictly alternating user/assistant
turns, starting with user and ending with assistant. Anything else is skipped and counted under a
reason in ``ShareGPTSet.rejected`` (see ``REASONS``); a file that is not a JSON list at all raises.
Duplicate conversation ids keep the first occurrence (the set of ids seen is held in memory).

Accepted files: docs/inputs.md, "External instruction sets"; rejections: docs/quarantine.md.
"""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from alpha.core.io import write_json
from alpha.tasks.samples import EXTERNAL_FAMILY, TRAIN

ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}

REASONS = (
    "invalid_json",  # a JSON Lines line that does not parse
    "not_an_object",
    "bad_id",  # id present but neither a non-empty string nor an integer
    "no_turns",  # "conversations" missing, not a list, or empty
    "bad_turn",  # a turn that is not an object with string "from" and "value"
    "unknown_role",
    "empty_value",
    "misplaced_system",  # a system turn anywhere but first
    "first_not_user",  # the first non-system turn is the assistant's
    "consecutive_roles",
    "no_assistant",
    "ends_with_user",
    "duplicate_id",
)

_CHUNK_CHARS = 1 << 20


class Rejected(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ShareGPTSet:
    """One external set. Iterating (or ``records()``) streams valid records; afterwards ``rejected``
    counts the skipped conversations by reason and ``accepted`` the records yielded. Each iteration
    recounts from zero, so a set can be streamed more than once."""

    def __init__(self, path: str | os.PathLike, name: str):
        if not isinstance(name, str) or not name:
            raise ValueError(f"external set name must be a non-empty string, not {name!r}")
        self.path = Path(path)
        self.name = name
        if not self.path.is_file():
            raise FileNotFoundError(f"external set {name!r}: {self.path} does not exist")
        self.rejected: Counter[str] = Counter()
        self.accepted = 0

    def records(self) -> Iterator[dict]:
        self.rejected = Counter()
        self.accepted = 0
        seen: set[str] = set()
        for index, entry in enumerate(self._entries()):
            try:
                if isinstance(entry, _Invalid):
                    raise Rejected("invalid_json")
                record = to_record(entry, index, self.name)
                if record["id"] in seen:
                    raise Rejected("duplicate_id")
            except Rejected as why:
                self.rejected[why.reason] += 1
                continue
            seen.add(record["id"])
            self.accepted += 1
            yield record

    __iter__ = records

    def _entries(self) -> Iterator[Any]:
        with open(self.path, encoding="utf-8-sig") as fh:
            if self.path.suffix == ".jsonl":
                yield from _json_lines(fh)
            else:
                yield from _json_array(fh, self.path)


def load_sharegpt(path: str | os.PathLike, name: str) -> ShareGPTSet:
    """The external set at ``path`` under ``name``: iterate it for records, then read ``.rejected``."""
    return ShareGPTSet(path, name)


def to_record(conversation: Any, index: int, name: str) -> dict:
    """One ShareGPT conversation as a sample record; raises ``Rejected`` with the reason."""
    if not isinstance(conversation, dict):
        raise Rejected("not_an_object")
    conv_id = _conversation_id(conversation.get("id"), index)
    turns = conversation.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise Rejected("no_turns")
    return {
        "id": f"{name}:{conv_id}",
        "task": name,
        "family": EXTERNAL_FAMILY,
        "split": TRAIN,
        "page_id": None,
        "ad_ids": [],
        "label": None,
        "source": name,
        "messages": _messages(turns),
    }


def _conversation_id(value: Any, index: int) -> str:
    if value is None:
        return str(index)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise Rejected("bad_id")
    return str(value)


def _messages(turns: list) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for turn in turns:
        if not isinstance(turn, dict) or not isinstance(turn.get("from"), str) or not isinstance(turn.get("value"), str):
            raise Rejected("bad_turn")
        role = ROLES.get(turn["from"])
        if role is None:
            raise Rejected("unknown_role")
        if not turn["value"].strip():
            raise Rejected("empty_value")
        previous = out[-1]["role"] if out else None
        if role == "system" and previous is not None:
            raise Rejected("misplaced_system")
        if role == "assistant" and previous in (None, "system"):
            raise Rejected("first_not_user")
        if role == previous:
            raise Rejected("consecutive_roles")
        out.append({"role": role, "content": turn["value"]})
    if not any(m["role"] == "assistant" for m in out):
        raise Rejected("no_assistant")
    if out[-1]["role"] == "user":
        raise Rejected("ends_with_user")
    return out


class _Invalid:
    """Stands in for a JSON Lines line that does not parse, so it is counted, not raised."""


def _json_lines(fh) -> Iterator[Any]:
    for line in fh:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            yield _Invalid()


def _json_array(fh, path: Path, chunk_chars: int = _CHUNK_CHARS) -> Iterator[Any]:
    """The elements of a top-level JSON list, one at a time."""
    reader = _TextBuffer(fh, chunk_chars)
    if reader.peek() != "[":
        raise ValueError(f"{path}: expected a JSON list of conversations (or use the .jsonl suffix for JSON Lines)")
    reader.pos += 1
    if reader.peek() == "]":
        reader.pos += 1
    else:
        while True:
            yield reader.decode(path)
            sep = reader.peek()
            reader.pos += 1
            if sep == "]":
                break
            if sep != ",":
                raise ValueError(f"{path}: expected ',' or ']' at character {reader.offset - 1}")
    if reader.peek() != "":
        raise ValueError(f"{path}: unexpected data after the JSON list at character {reader.offset}")


class _TextBuffer:
    def __init__(self, fh, chunk_chars: int):
        self.fh = fh
        self.chunk = chunk_chars
        self.buf = ""
        self.pos = 0
        self.consumed = 0
        self.eof = False
        self.decoder = json.JSONDecoder()

    @property
    def offset(self) -> int:
        return self.consumed + self.pos

    def _more(self, at_least: int) -> bool:
        data = self.fh.read(max(self.chunk, at_least))
        if not data:
            self.eof = True
            return False
        self.consumed += self.pos
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), without consuming it."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more(0):
                return ""

    def decode(self, path: Path) -> Any:
        """One JSON value at the current position, reading more until it is complete. A value that
        ends exactly at the end of the buffer could be truncated (a number), so it is retried."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return value
            except json.JSONDecodeError as err:
                if self.eof:
                    raise ValueError(f"{path}: invalid JSON at character {self.consumed + err.pos}: {err.msg}") from None
            self._more(len(self.buf) - self.pos)  # each retry at least doubles the text of the value


_TOPICS = [
    ("How do I keep basil alive on a windowsill?",
     "Give it at least six hours of direct light, water when the top centimetre of soil is dry, "
     "and pinch off flower buds so the plant keeps producing leaves.",
     "Should I use tap water?", "Tap water is fine; let it stand overnight if yours is heavily chlorinated."),
    ("What is the difference between a list and a tuple in Python?",
     "A list is mutable: you can append, remove or change items. "
     "A tuple is immutable, which makes it hashable and usable as a dictionary key.",
     "Which one is faster?",
     "Tuples are slightly faster to create and iterate, but the difference rarely matters; choose by whether the data should change."),
    ("Can you suggest a quick vegetarian dinner?",
     "Try a chickpea and spinach curry: fry onion, garlic and ginger, add curry paste, a tin of chickpeas, "
     "a tin of tomatoes and a handful of spinach, and simmer for fifteen minutes.",
     "What can I serve it with?", "Rice, naan or flatbread all work; a spoon of yoghurt on top balances the heat."),
    ("Explain compound interest simply.",
     "Compound interest means you earn interest on your interest: each period the interest is added to the balance, "
     "so the next period's interest is computed on a larger amount.",
     "How often is it compounded?",
     "That depends on the account: yearly, monthly or daily. More frequent compounding gives a slightly higher return."),
    ("How do I write a polite follow-up email after an interview?",
     "Thank the interviewer within a day, mention one specific thing you discussed, "
     "restate your interest in the role and keep it to a few sentences.",
     "Is it okay to ask about the timeline?", "Yes, briefly: one sentence asking when they expect to make a decision is perfectly polite."),
    ("Why is the sky blue?",
     "Sunlight is scattered by air molecules, and shorter blue wavelengths scatter much more than red ones, "
     "so blue light reaches your eyes from every direction of the sky.",
     "Then why are sunsets red?",
     "At sunset light crosses much more atmosphere, so most blue is scattered away before it reaches you "
     "and the remaining light is red and orange."),
    ("What are good habits for better sleep?",
     "Keep a regular schedule, keep the bedroom dark and cool, avoid caffeine after midday and put screens away an hour before bed.",
     "Does exercise help?", "Regular exercise helps most people fall asleep faster, as long as it is not intense right before bedtime."),
    ("How do I convert Celsius to Fahrenheit?",
     "Multiply the Celsius temperature by 9/5 and add 32. For example, 20 degrees Celsius is 68 degrees Fahrenheit.",
     "And the other way round?", "Subtract 32 and multiply by 5/9: 212 degrees Fahrenheit is 100 degrees Celsius."),
]

_SYSTEMS = [
    "You are a helpful assistant.",
    "You are a friendly assistant. Answer concisely.",
    "You are a knowledgeable assistant who explains things clearly.",
]


def demo_conversations(n: int, seed: int) -> list[dict]:
    """``n`` valid multi-turn conversations (some with a system turn) plus two malformed ones."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        question, answer, follow_up, reply = _TOPICS[rng.randrange(len(_TOPICS))]
        turns = []
        if rng.random() < 0.4:
            turns.append({"from": "system", "value": _SYSTEMS[rng.randrange(len(_SYSTEMS))]})
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
        if rng.random() < 0.6:
            turns += [{"from": "human", "value": follow_up}, {"from": "gpt", "value": reply}]
        out.append({"id": f"demo-{k:05d}", "conversations": turns})
    out.insert(min(1, len(out)), {"id": "demo-malformed-no-assistant", "conversations": [{"from": "human", "value": "Hello?"}]})
    out.append({"id": "demo-malformed-repeated-role", "conversations": [
        {"from": "human", "value": "Hi."}, {"from": "human", "value": "Are you there?"}, {"from": "gpt", "value": "Yes."}]})
    return out


def write_demo_sharegpt(path: str | os.PathLike, n: int, seed: int) -> None:
    """A small deterministic ShareGPT JSON file for the embedded demo: ``n`` valid conversations and
    two malformed entries (no assistant turn; two user turns in a row) that the loader must reject."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    write_json(path, demo_conversations(n, seed))
