"""Bootstrap confidence intervals for every registered metric, and paired differences between two models.

Each metric resamples the unit it averages over (docs/metrics.md, "Confidence intervals"):

| metric (both variants where it has two)      | unit resampled                                             |
|---|---|
| representativeness                            | question                                                   |
| steerability                                  | question, within each (group, context) stratum, independently |
| temporal_steerability                         | question (all its years move together)                     |
| goqa_avg_sim, goqa_skew                       | question (all its countries move together)                 |
| culturebank_accuracy, culturebank_macro_f1    | item (row; keyed by ``item_id`` where the frame has it)    |
| culturenli_macro_f1                           | (premise, hypothesis) pair, after the metric's own dedupe  |

The per-row quantity (WD, similarity, prediction/target) is computed once, with the metric module's own
per-row functions, and summed per unit. Replicate b is then a function of the resample counts c_b (how
often each unit was drawn): all B replicates come from matrix products of the B x U count matrix with the
per-unit sums and counts (ratios of weighted sums for means; best context per group for steerability;
per-country means then their sample std for Skew; TP/FP/FN per class for macro-F1). Excluded rows stay
excluded; a replicate with no usable unit is NaN and left out of the percentiles (``n_valid``).

Pairing: units are ordered by their key (sorted), never by row order, and the draws are seeded by a
stable hash of (seed, benchmark, table column), so every model evaluated on the same benchmark cell gets
the very same resampled units, and a difference of two models' replicates is a paired bootstrap. The
digest of the sorted unit keys is recorded; ``paired_delta`` refuses two cells whose unit sets differ.
Replicates are drawn in fixed blocks of ``DRAW_BLOCK`` (each from its own generator), which bounds memory
to ``DRAW_BLOCK`` x U counts whatever B is, and makes the first B replicates the same for any larger B.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from alpha.eval import metrics as M

DEFAULTS = {"n": 1000, "seed": 0, "level": 0.95}
DRAW_BLOCK = 100  # replicates per generator (and per block of work): memory is DRAW_BLOCK x units
DECIMALS = 12  # replicate values are stored rounded to this many decimals
METHOD = "percentile"
_SEP = "\x1f"  # joins key columns; sorts below every printable character, so sorting keeps tuple order


# --------------------------------------------------------------------------- units and their statistic

@dataclass(frozen=True)
class Prepared:
    """A metric reduced to its units: sorted unit keys, the strata they are resampled within (contiguous
    runs of ``sizes`` units from ``starts``; one stratum when unstratified) and the statistic of a count
    matrix: ``statistic(C)`` with C (b x U, float) = how often each unit is in each of b resamples."""

    unit: str
    keys: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    statistic: Callable[[np.ndarray], np.ndarray]

    @property
    def n_units(self) -> int:
        return len(self.keys)

    @property
    def digest(self) -> str:
        """sha256 of the unit kind and the sorted unit keys (first 16 hex digits)."""
        h = hashlib.sha256(self.unit.encode())
        for key in self.keys:
            h.update(b"\n" + str(key).encode())
        return h.hexdigest()[:16]

    def point(self) -> float:
        """The statistic with every unit drawn once: the metric's own value."""
        return float(self.statistic(np.ones((1, self.n_units)))[0])


def _joined(df: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    key = df[columns[0]].astype(str)
    for column in columns[1:]:
        key = key + _SEP + df[column].astype(str)
    return key.reset_index(drop=True)


def _units(df: pd.DataFrame, unit: str, columns: Sequence[str], strata: Sequence[str] = (),
           statistic_of: Callable[[np.ndarray, int, np.ndarray], Callable] | None = None) -> tuple[np.ndarray, dict]:
    """Row -> unit codes (units sorted by key) and the strata layout; ``strata`` must lead ``columns``."""
    if list(columns[:len(strata)]) != list(strata):
        raise ValueError(f"strata {list(strata)} must be the leading unit key columns {list(columns)}")
    codes, keys = pd.factorize(_joined(df, columns), sort=True)
    keys = np.asarray(keys, dtype=object)
    if strata:
        row_stratum, stratum_keys = pd.factorize(_joined(df, strata), sort=True)
        unit_stratum = np.empty(len(keys), dtype=np.int64)
        unit_stratum[codes] = row_stratum
        if np.any(np.diff(unit_stratum) < 0):
            raise ValueError(f"stratum keys {list(strata)} do not sort contiguously (a key holds a control character?)")
        sizes = np.bincount(unit_stratum, minlength=len(stratum_keys))
    else:
        stratum_keys, sizes = np.array([""], dtype=object), np.array([len(keys)])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return codes, {"unit": unit, "keys": keys, "starts": starts, "sizes": sizes.astype(np.int64),
                   "stratum_keys": np.asarray(stratum_keys, dtype=object)}


def _per_unit(codes: np.ndarray, n_units: int, *columns: np.ndarray) -> np.ndarray:
    """U x k matrix of per-unit sums of the row-level ``columns`` (booleans count 1)."""
    return np.stack([np.bincount(codes, weights=np.asarray(c, dtype=np.float64), minlength=n_units) for c in columns], axis=1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _by_stratum(C: np.ndarray, sums: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """b x S x k: per stratum, C restricted to its units times their per-unit sums (U x k)."""
    return np.stack([C[:, a:a + n] @ sums[a:a + n] for a, n in zip(starts, sizes)], axis=1)


def _best_context_mean(scores: np.ndarray, group_of_stratum: np.ndarray) -> np.ndarray:
    """b x S scores (NaN = stratum without a usable row) -> mean over groups of the max over contexts;
    a group with no defined context drops out, no group at all is NaN (``metrics._best_context``)."""
    filled = np.where(np.isnan(scores), -np.inf, scores)
    groups = np.unique(group_of_stratum)
    best = np.stack([filled[:, group_of_stratum == g].max(axis=1) for g in groups], axis=1)
    defined = np.isfinite(best)
    return _ratio(np.where(defined, best, 0.0).sum(axis=1), defined.sum(axis=1).astype(np.float64))


def _binary_macro_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    """``metrics.macro_f1`` over the classes True/False from their counts: a class enters when it is in
    the targets or the predictions; NaN when neither class is (no usable unit)."""
    pos, neg = tp + fp + fn > 0, tn + fn + fp > 0
    f1_pos = _ratio(2 * tp, 2 * tp + fp + fn)
    f1_neg = _ratio(2 * tn, 2 * tn + fn + fp)
    total = np.where(pos, f1_pos, 0.0) + np.where(neg, f1_neg, 0.0)
    return _ratio(total, pos.astype(np.float64) + neg)


_PREPARERS: dict[tuple[str, str], Callable[..., Prepared]] = {}


def _preparer(name: str, *variants: str):
    def decorate(fn):
        for variant in variants:
            _PREPARERS[(name, variant)] = fn
        return fn

    return decorate


def prepare(df: pd.DataFrame, name: str, variant: str = "reference", **params) -> Prepared:
    """The metric ``name``/``variant`` (with its ``params``) on ``df`` reduced to units and a statistic."""
    M.get_metric(name, variant)  # the registry's error for an unknown name or variant
    if (name, variant) not in _PREPARERS:
        raise NotImplementedError(f"no bootstrap for metric {name!r} variant {variant!r}: add one to alpha.eval.bootstrap")
    return _PREPARERS[(name, variant)](df, variant, **params)


def known_bootstraps() -> set[tuple[str, str]]:
    return set(_PREPARERS)


@_preparer("representativeness", "reference", "compat")
def _representativeness(df: pd.DataFrame, variant: str, n_questions: int | None = None) -> Prepared:
    if variant == "reference":
        M._require(df, ["question", "model_probs", "human_probs", "ordinals"], ["question"])
        wd, _ = M._wd_rows(df)
        ok = ~np.isnan(wd)
        codes, layout = _units(df, "question", ["question"])
        sums = _per_unit(codes, len(layout["keys"]), np.where(ok, wd, 0.0), ok)
        return Prepared(**_layout(layout), statistic=lambda C: 1.0 - _ratio(C @ sums[:, 0], C @ sums[:, 1]))
    M._require(df, ["question", "model_probs", "human_probs"], ["question"])
    sims, _ = M._compat_sum(df, "human_probs")
    denominator = M.representativeness_compat_denominator(df, n_questions)  # fixed: a resample has as many rows
    codes, layout = _units(df, "question", ["question"])
    sums = _per_unit(codes, len(layout["keys"]), np.nan_to_num(sims, nan=0.0))
    return Prepared(**_layout(layout), statistic=lambda C: (C @ sums[:, 0]) / denominator)


@_preparer("steerability", "reference", "compat")
def _steerability(df: pd.DataFrame, variant: str, n_questions: int | None = None) -> Prepared:
    key = ["question", "group", "context"]
    if variant == "reference":
        M._require(df, ["question", "group", "context", "model_probs", "human_probs", "ordinals"], key)
        wd, _ = M._wd_rows(df)
        value, denominator = wd, None
    else:
        M._require(df, ["question", "group", "context", "model_probs", "overall_probs"], key)
        value, _ = M._compat_sum(df, "overall_probs")
        # fixed N of the original frame: each stratum keeps its size, so a resample has the same questions per stratum
        denominator = M.steerability_compat_denominator(df, n_questions)
    ok = ~np.isnan(value)
    codes, layout = _units(df, "question within (group, context)", ["group", "context", "question"], strata=["group", "context"])
    sums = _per_unit(codes, len(layout["keys"]), np.where(ok, value, 0.0), ok)
    group_of_stratum = pd.factorize(pd.Series([k.split(_SEP)[0] for k in layout["stratum_keys"]]), sort=True)[0]
    starts, sizes = layout["starts"], layout["sizes"]

    def statistic(C: np.ndarray) -> np.ndarray:
        by = _by_stratum(C, sums, starts, sizes)  # b x S x (sum, count)
        if denominator is None:
            scores = 1.0 - _ratio(by[..., 0], by[..., 1])
        else:  # the metric scores a stratum only when it has a usable row
            scores = np.where(by[..., 1] > 0, by[..., 0] / denominator, np.nan)
        return _best_context_mean(scores, group_of_stratum)

    return Prepared(**_layout(layout), statistic=statistic)


@_preparer("temporal_steerability", "reference")
def _temporal_steerability(df: pd.DataFrame, variant: str) -> Prepared:
    M._require(df, ["question", "year", "model_probs", "human_probs", "ordinals"], ["question", "year"])
    wd, _ = M._wd_rows(df)
    ok = ~np.isnan(wd)
    codes, layout = _units(df, "question (all its years)", ["question"])
    sums = _per_unit(codes, len(layout["keys"]), np.where(ok, 1.0 - wd, 0.0), ok)
    return Prepared(**_layout(layout), statistic=lambda C: _ratio(C @ sums[:, 0], C @ sums[:, 1]))


_GOQA_DISTANCE = {"compat": M.culturebank_js_distance, "reference": M.textbook_js_distance}


@_preparer("goqa_avg_sim", "reference", "compat")
def _goqa_avg_sim(df: pd.DataFrame, variant: str) -> Prepared:
    M._require(df, ["question", "country", "model_probs", "human_probs"], ["question", "country"])
    sims = M.goqa_similarities(df, _GOQA_DISTANCE[variant])
    ok = ~np.isnan(sims)
    codes, layout = _units(df, "question (all its countries)", ["question"])
    sums = _per_unit(codes, len(layout["keys"]), np.where(ok, sims, 0.0), ok)
    return Prepared(**_layout(layout), statistic=lambda C: _ratio(C @ sums[:, 0], C @ sums[:, 1]))


@_preparer("goqa_skew", "reference", "compat")
def _goqa_skew(df: pd.DataFrame, variant: str) -> Prepared:
    M._require(df, ["question", "country", "model_probs", "human_probs"], ["question", "country"])
    sims = M.goqa_similarities(df, _GOQA_DISTANCE[variant])
    ok = ~np.isnan(sims)
    codes, layout = _units(df, "question (all its countries)", ["question"])
    n_units = len(layout["keys"])
    country, countries = pd.factorize(df["country"].astype(str).reset_index(drop=True), sort=True)
    k = len(countries)
    cell = codes * k + country  # (unit, country) -> per-unit x per-country sums, U x K
    num = np.bincount(cell, weights=np.where(ok, sims, 0.0), minlength=n_units * k).reshape(n_units, k)
    den = np.bincount(cell, weights=ok.astype(np.float64), minlength=n_units * k).reshape(n_units, k)

    def statistic(C: np.ndarray) -> np.ndarray:
        means = _ratio(C @ num, C @ den)  # b x K per-country means; NaN = country without a usable pair
        defined = ~np.isnan(means)
        n = defined.sum(axis=1)
        centre = _ratio(np.where(defined, means, 0.0).sum(axis=1), n.astype(np.float64))
        squares = np.where(defined, (means - centre[:, None]) ** 2, 0.0).sum(axis=1)
        return np.sqrt(_ratio(squares, np.where(n > 1, n - 1, 0).astype(np.float64)))  # ddof = 1; NaN under 2

    return Prepared(**_layout(layout), statistic=statistic)


def _culturebank(df: pd.DataFrame) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray, np.ndarray]:
    ok, pred, target, _ = M.culturebank_rows(df)
    if "item_id" in df.columns:
        codes, layout = _units(df, "item", ["item_id"])
    else:  # a bare frame (tests): the row position is the item's key
        codes, layout = _units(pd.DataFrame({"row": np.arange(len(df))}), "item (row)", ["row"])
    return codes, layout, ok, pred, target


@_preparer("culturebank_accuracy", "reference")
def _culturebank_accuracy(df: pd.DataFrame, variant: str) -> Prepared:
    codes, layout, ok, pred, target = _culturebank(df)
    sums = _per_unit(codes, len(layout["keys"]), ok & (pred == target), ok)
    return Prepared(**_layout(layout), statistic=lambda C: _ratio(C @ sums[:, 0], C @ sums[:, 1]))


@_preparer("culturebank_macro_f1", "reference")
def _culturebank_macro_f1(df: pd.DataFrame, variant: str) -> Prepared:
    codes, layout, ok, pred, target = _culturebank(df)
    sums = _per_unit(codes, len(layout["keys"]), ok & pred & target, ok & pred & ~target, ok & ~pred & target,
                     ok & ~pred & ~target)

    def statistic(C: np.ndarray) -> np.ndarray:
        tp, fp, fn, tn = (C @ sums).T
        return _binary_macro_f1(tp, fp, fn, tn)

    return Prepared(**_layout(layout), statistic=statistic)


@_preparer("culturenli_macro_f1", "reference")
def _culturenli_macro_f1(df: pd.DataFrame, variant: str, thresholds: Sequence[float] = M.NLI_THRESHOLDS) -> Prepared:
    items, _, missing, gold, p = M.culturenli_rows(df)
    ok = ~missing
    codes, layout = _units(items, "(premise, hypothesis) pair", ["premise", "hypothesis"])
    columns = []
    for t in thresholds:
        pred = ok & (p > t)
        columns += [pred & gold, pred & ~gold, ok & ~pred & gold, ok & ~pred & ~gold]
    sums = _per_unit(codes, len(layout["keys"]), *columns)  # U x 4T: TP, FP, FN, TN per threshold
    n_t = len(thresholds)

    def statistic(C: np.ndarray) -> np.ndarray:
        counts = (C @ sums).reshape(len(C), n_t, 4)
        f1 = _binary_macro_f1(counts[..., 0], counts[..., 1], counts[..., 2], counts[..., 3])  # b x T
        return f1.max(axis=1)  # NaN only without a usable pair, then at every threshold

    return Prepared(**_layout(layout), statistic=statistic)


def _layout(layout: dict) -> dict:
    return {k: layout[k] for k in ("unit", "keys", "starts", "sizes")}


# --------------------------------------------------------------------------- draws and replicates

def stream_entropy(seed: int, benchmark: str, column: str) -> int:
    """The generators' entropy: sha256 of (seed, benchmark, column), stable across runs and machines."""
    text = json.dumps([int(seed), str(benchmark), str(column)], ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "little")


def draw_block(prepared: Prepared, entropy: int, block: int, size: int) -> np.ndarray:
    """Replicates [block * DRAW_BLOCK, + size): size x U unit indices, each position drawn with
    replacement from its own stratum (the whole unit set when unstratified)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(block,))))
    if len(prepared.sizes) == 1:
        return rng.integers(0, prepared.n_units, size=(size, prepared.n_units))
    out = np.empty((size, prepared.n_units), dtype=np.int64)
    for start, n in zip(prepared.starts, prepared.sizes):  # stratum by stratum, in key order (a scalar bound is fast)
        segment = out[:, start:start + n]
        segment[...] = rng.integers(0, n, size=(size, n))
        segment += start
    return out


def draws(prepared: Prepared, n: int, seed: int, benchmark: str, column: str) -> np.ndarray:
    """All n x U draws at once (tests and inspection; ``replicates`` works block by block)."""
    entropy = stream_entropy(seed, benchmark, column)
    return np.concatenate([draw_block(prepared, entropy, k, min(DRAW_BLOCK, n - k * DRAW_BLOCK))
                           for k in range(math.ceil(n / DRAW_BLOCK))] or [np.zeros((0, prepared.n_units), np.int64)])


def _check_draws(prepared: Prepared, explicit: np.ndarray) -> np.ndarray:
    explicit = np.asarray(explicit)
    if explicit.ndim != 2 or explicit.shape[1] != prepared.n_units or not np.issubdtype(explicit.dtype, np.integer):
        raise ValueError(f"draws must be an integer B x {prepared.n_units} array of unit indices; got {explicit.shape}")
    low = np.repeat(prepared.starts, prepared.sizes)
    high = low + np.repeat(prepared.sizes, prepared.sizes)
    if np.any(explicit < low) or np.any(explicit >= high):
        raise ValueError("a draw falls outside its position's stratum (or outside the units)")
    return explicit


def counts(block: np.ndarray, n_units: int) -> np.ndarray:
    """b x U float matrix: how often each unit is drawn in each row of ``block`` (b x U unit indices)."""
    b = len(block)
    flat = (block + (np.arange(b, dtype=np.int64) * n_units)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_units).reshape(b, n_units).astype(np.float64)


def replicates(prepared: Prepared, n: int = DEFAULTS["n"], seed: int = DEFAULTS["seed"], benchmark: str = "",
               column: str = "", explicit_draws: np.ndarray | None = None) -> np.ndarray:
    """The B replicate values (NaN where undefined): B = n, or the rows of ``explicit_draws`` (B x U unit
    indices into the sorted units, e.g. for tests), in blocks of ``DRAW_BLOCK`` replicates."""
    if explicit_draws is not None:
        explicit = _check_draws(prepared, explicit_draws)
        blocks: Iterator[np.ndarray] = (explicit[i:i + DRAW_BLOCK] for i in range(0, len(explicit), DRAW_BLOCK))
    else:
        entropy = stream_entropy(seed, benchmark, column)
        blocks = (draw_block(prepared, entropy, k, min(DRAW_BLOCK, n - k * DRAW_BLOCK)) for k in range(math.ceil(n / DRAW_BLOCK)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = [np.asarray(prepared.statistic(counts(block, prepared.n_units)), dtype=np.float64) for block in blocks]
    return np.concatenate(out) if out else np.zeros(0)


# --------------------------------------------------------------------------- intervals

def percentile_ci(values: Sequence[float], level: float) -> tuple[float | None, float | None, int]:
    """(low, high, n_valid): the (1 − level)/2 and (1 + level)/2 quantiles of the defined values."""
    values = np.asarray(values, dtype=np.float64)
    valid = values[~np.isnan(values)]
    if not len(valid):
        return None, None, 0
    low, high = np.quantile(valid, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high), int(len(valid))


@dataclass(frozen=True)
class Bootstrap:
    replicates: np.ndarray
    unit: str
    units: int
    units_digest: str
    level: float
    seed: int

    def ci(self) -> dict:
        low, high, n_valid = percentile_ci(self.replicates, self.level)
        return {"low": low, "high": high, "level": self.level, "n": int(len(self.replicates)), "n_valid": n_valid,
                "method": METHOD, "unit": self.unit, "units": self.units, "units_digest": self.units_digest, "seed": self.seed}

    def fields(self) -> dict:
        """What ``results.evaluate`` adds to a metric entry: ``ci`` and the replicates (``bootstrap``)."""
        return {"ci": self.ci(), "bootstrap": [None if math.isnan(x) else round(float(x), DECIMALS) for x in self.replicates]}


def bootstrap_metric(df: pd.DataFrame, name: str, variant: str = "reference", *, benchmark: str, column: str,
                     n: int = DEFAULTS["n"], seed: int = DEFAULTS["seed"], level: float = DEFAULTS["level"],
                     params: Mapping[str, Any] | None = None, explicit_draws: np.ndarray | None = None) -> Bootstrap:
    """The bootstrap of one table cell: metric ``name``/``variant`` (``params`` as the metric's) on ``df``."""
    prepared = prepare(df, name, variant, **dict(params or {}))
    values = replicates(prepared, n, seed, benchmark, column, explicit_draws)
    return Bootstrap(values, prepared.unit, prepared.n_units, prepared.digest, float(level), int(seed))


def settings(config: Mapping[str, Any] | None) -> dict | None:
    """``eval.bootstrap`` with defaults filled in; None when absent or n is 0 (no intervals)."""
    if not config:
        return None
    merged = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    if int(merged["n"]) <= 0:
        return None
    if not 0.0 < float(merged["level"]) < 1.0:
        raise ValueError(f"eval.bootstrap.level must lie in (0, 1), got {merged['level']}")
    return {"n": int(merged["n"]), "seed": int(merged["seed"]), "level": float(merged["level"])}


def metric_fields(rows: pd.DataFrame, name: str, variant: str, params: Mapping[str, Any], benchmark: str, column: str,
                  config: Mapping[str, Any] | None) -> dict:
    """``{"ci": ..., "bootstrap": [...]}`` for one metric entry of ``results.evaluate``; {} when switched off."""
    s = settings(config)
    if s is None:
        return {}
    return bootstrap_metric(rows, name, variant, benchmark=benchmark, column=column, params=params, **s).fields()


# --------------------------------------------------------------------------- paired differences

class UnpairedError(ValueError):
    """Two cells whose bootstraps did not resample the same units with the same draws."""


def paired_delta(cell: Mapping[str, Any], base: Mapping[str, Any], *, benchmark: str = "", column: str = "",
                 names: tuple[str, str] = ("model", "base")) -> dict:
    """cell − base for one table cell (metric entries of ``results.evaluate``): the difference of the values
    and, when both carry replicates, its paired percentile CI from the replicate differences.

    Returns {"delta", "low", "high", "level", "n_valid", "excludes_zero"} (None where undefined)."""
    where = f"{benchmark} / {column}"
    delta = None if cell.get("value") is None or base.get("value") is None else float(cell["value"]) - float(base["value"])
    out = {"delta": delta, "low": None, "high": None, "level": None, "n_valid": 0, "excludes_zero": None}
    ci_a, ci_b = cell.get("ci"), base.get("ci")
    if not ci_a or not ci_b or cell.get("bootstrap") is None or base.get("bootstrap") is None:
        return out
    for key in ("unit", "units", "units_digest", "n", "seed"):
        if ci_a.get(key) != ci_b.get(key):
            raise UnpairedError(f"{where}: cannot pair {names[0]} with {names[1]}: their bootstraps differ in {key} "
                                f"({ci_a.get(key)!r} vs {ci_b.get(key)!r}); both must resample the same units with the "
                                "same eval.bootstrap settings (rerun benchmark_metrics for both)")
    a = np.array([np.nan if x is None else x for x in cell["bootstrap"]], dtype=np.float64)
    b = np.array([np.nan if x is None else x for x in base["bootstrap"]], dtype=np.float64)
    if len(a) != len(b):
        raise UnpairedError(f"{where}: {names[0]} has {len(a)} replicates, {names[1]} {len(b)}")
    level = float(ci_a["level"])
    low, high, n_valid = percentile_ci(a - b, level)
    out.update(low=low, high=high, level=level, n_valid=n_valid,
               excludes_zero=None if low is None else bool(low > 0.0 or high < 0.0))
    return out
