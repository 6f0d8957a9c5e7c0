"""Option-order robustness (``eval.permutations: k``): each item is also scored under k - 1 seeded
permutations of its options, relettered, and the answer distribution is mapped back to the original
options before any metric sees it.

A task opts in by declaring how one option line of its prompt is written (``option_line`` in the task
file, e.g. ``"{label}. {option}\\n"``). The prompt's option block (the item's options, lettered in
order) is found as the *last* occurrence of those lines, since OpinionQA's steering example carries its
own lettered options earlier in the prompt, and replaced by the permuted block: position ``i`` keeps its
letter ``labels[i]`` but shows the option ``order[i]``. The model's probability of letter ``labels[i]`` then
belongs to the original option ``order[i]``: ``original[order[i]] = permuted[i]`` (``to_original``).

Orders are drawn per question (every group, context and country of a question sees the same orders),
from a generator seeded by a stable hash of (seed, question id): no order repeats, and none is the
original order (order 0). With fewer distinct orders than asked (two options allow one other order),
every distinct order is used and the count is recorded.
"""
from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np


class PermutationError(ValueError):
    """An item whose prompt cannot be permuted as its task declares."""


def orders_for(question_id: str, n_options: int, k: int, seed: int) -> list[tuple[int, ...]]:
    """The original order, then up to k - 1 distinct non-identity orders of ``n_options`` options."""
    if k < 1:
        raise ValueError(f"permutations must be >= 1, got {k}")
    identity = tuple(range(n_options))
    wanted = min(k, math.factorial(n_options)) - 1
    if wanted <= 0:
        return [identity]
    digest = hashlib.blake2b(f"{seed}\x1f{question_id}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    if math.factorial(n_options) <= 720:  # small: draw from the list of all other orders, without replacement
        others = [p for p in itertools.permutations(identity) if p != identity]
        picked = rng.choice(len(others), size=wanted, replace=False)
        return [identity, *(others[i] for i in picked)]
    orders, seen = [identity], {identity}
    while len(orders) < wanted + 1:
        order = tuple(int(i) for i in rng.permutation(n_options))
        if order not in seen:
            seen.add(order)
            orders.append(order)
    return orders


def option_block(option_line: str, labels: Sequence[str], options: Sequence[str], order: Sequence[int] | None = None) -> str:
    order = range(len(options)) if order is None else order
    return "".join(option_line.format(label=label, option=options[j]) for label, j in zip(labels, order))


def permuted_prompt(prompt: str, option_line: str, labels: Sequence[str], options: Sequence[str], order: Sequence[int]) -> str:
    """``prompt`` with its (last) option block shown in ``order``, relettered."""
    if len(labels) != len(options):
        raise PermutationError(f"{len(labels)} labels but {len(options)} options: cannot permute")
    original = option_block(option_line, labels, options)
    at = prompt.rfind(original)
    if at < 0:
        raise PermutationError(f"the prompt does not contain its option block written as {option_line!r}")
    return prompt[:at] + option_block(option_line, labels, options, order) + prompt[at + len(original):]


def to_original(values: Sequence[float], order: Sequence[int]) -> list[float]:
    """Per-position values (position i shows option order[i]) in the original option order."""
    out = [math.nan] * len(values)
    for position, option in enumerate(order):
        out[option] = values[position]
    return out


def expand_items(items: Sequence[Mapping[str, Any]], k: int, seed: int, option_line: str | None) -> list[dict]:
    """Each item once per order: ``{item_id, prompt, labels, order, permutation}``; order 0 is the item as
    prepared. ``items`` need ``question_id`` and ``options`` (the option texts) when k > 1."""
    expanded = []
    for item in items:
        base = {"item_id": item["item_id"], "prompt": item["prompt"], "labels": list(item["labels"])}
        n = len(base["labels"])
        orders = [tuple(range(n))]
        if k > 1:
            if not option_line:
                raise PermutationError("eval.permutations > 1 needs the task to declare option_line")
            options = item.get("options")
            if not options:
                raise PermutationError(f"item {item['item_id']!r} has no option texts to permute")
            orders = orders_for(str(item.get("question_id", item["item_id"])), n, k, seed)
        for index, order in enumerate(orders):
            prompt = base["prompt"] if index == 0 else permuted_prompt(base["prompt"], option_line, base["labels"], options, order)
            expanded.append({**base, "prompt": prompt, "order": index, "permutation": list(order)})
    return expanded
