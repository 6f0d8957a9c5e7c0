"""Benchmark loaders: each turns a benchmark's released file(s) into evaluation items.

A loader is a function ``load(path, **options) -> LoadResult`` registered by name::

    @register_loader("culturenli")
    def load_culturenli(path, cultures=("US", "IN")) -> LoadResult: ...

    get_loader("culturenli")(path)          # an unknown name fails, listing the known ones

An item is a flat dict (one row of ``LoadResult.frame()``) with at least

``item_id``    stable across runs on the same released file
``benchmark``  the registered name
``prompt``     the exact text scored; the answer is read at the next token
``labels``     the option labels whose next-token probabilities the metric uses, in option order

plus the human / gold side the benchmark's metric needs (documented in each module). A row that
cannot be parsed goes to ``LoadResult.quarantine`` as ``{"row", "reason", "detail"}`` and is counted
in ``report["quarantined"]``: one bad row never stops a load, and no row disappears silently.

Released formats and prompts: each loader's module docstring and docs/benchmarks.md; quarantine reasons: docs/quarantine.md.
"""
from __future__ import annotations

import difflib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["LoadResult", "UnknownLoaderError", "register_loader", "get_loader", "loader_names", "released_file"]

LOADERS: dict[str, Callable[..., "LoadResult"]] = {}


class UnknownLoaderError(LookupError):
    """Raised by ``get_loader`` for a name no loader registered."""


@dataclass
class LoadResult:
    items: list[dict[str, Any]]
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def frame(self):
        """The items as a DataFrame, one row per item, columns in item-dict order."""
        import pandas as pd

        return pd.DataFrame(self.items)


def register_loader(name: str):
    """Decorator: register ``fn`` under ``name`` (names are unique; a second registration fails)."""

    def wrap(fn: Callable[..., LoadResult]) -> Callable[..., LoadResult]:
        if name in LOADERS and LOADERS[name] is not fn:
            raise ValueError(f"benchmark loader {name!r} is already registered (by {LOADERS[name].__module__})")
        LOADERS[name] = fn
        fn.benchmark_name = name
        return fn

    return wrap


def loader_names() -> list[str]:
    return sorted(LOADERS)


def get_loader(name: str) -> Callable[..., LoadResult]:
    try:
        return LOADERS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), LOADERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownLoaderError(
            f"unknown benchmark loader {name!r}{hint}; known loaders: {', '.join(loader_names())}"
        ) from None


def released_file(path: str | os.PathLike, name: str) -> Path:
    """``path`` itself when it is a file, else ``path/name`` (a folder holding the released layout)."""
    path = Path(path)
    target = path / name if path.is_dir() else path
    if not target.is_file():
        raise FileNotFoundError(f"benchmark file not found: {target} (expected the released {name})")
    return target


def quarantine_counts(quarantine: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(q["reason"] for q in quarantine).items()))


# the loaders register themselves on import (they import register_loader from this, already defined);
# atp, gss and opinionqa are the surveys (OpinionQA, OpinionQA-XL, GSS)
from alpha.eval.loaders import atp, culturebank, culturenli, globalopinionqa, gss, opinionqa  # noqa: E402,F401
