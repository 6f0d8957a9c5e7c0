"""Zero-shot benchmark evaluation: the declarative task specs (docs/benchmarks.md, "Task files").

A benchmark is data (``alpha/eval/tasks/<task>.yaml``), as in lm-evaluation-harness::

    loader: culturenli             # a registered loader (alpha.eval.loaders)
    options: {}                    # loader keyword defaults; config benchmarks.<name>.options override
    prompt_variants: false         # true: the loader takes ``variants`` and items carry ``variant``
    model_labels: null             # item field listing the labels the metric uses (default: all labels)
    columns: {}                    # item field -> metric column (e.g. question_id: question)
    label_columns: {E: p_entail}   # label -> column holding its probability (renormalised over model_labels)
    score: {chat: false, label_form: auto}
    option_line: null              # how one option line is written ("{label}. {option}\n"): the
                                   # prompt's option block can then be shown in other orders (eval.permutations)
    elicitation:                   # the sampled / verbalised modes' prompts and settings (alpha.eval.elicitation)
      verbalised: {strip_suffix: "Answer:", instruction: "..."}
    metrics:                       # one table cell each
      - {column: CultureNLI US, metric: culturenli_macro_f1, where: {culture: US}}

The workflow runs three steps per benchmark, so that a new metric never needs a GPU again:

1. ``prepare``  (``alpha.eval.prepare``, once per benchmark): loader -> ``items.parquet`` (item_id, question_id, prompt, labels and
   the whole item as JSON), quarantine and a report with the counts;
2. ``score``    (per model x benchmark, the GPU step): ``alpha.eval.scoring.score_items``, one forward pass per
   prompt -> per-item option log-probabilities and probabilities (Parquet);
3. ``evaluate`` (``alpha.eval.results``, CPU): items + scores -> the metric frame -> every registered metric of the task, in the
   configured variant -> one JSON per model x benchmark.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TASKS_DIR = Path(__file__).parent / "tasks"
VARIANTS = ("reference", "compat")
TASK_KEYS = {"loader", "description", "options", "prompt_variants", "model_labels", "columns", "label_columns",
             "score", "option_line", "elicitation", "metrics"}
METRIC_KEYS = {"column", "metric", "where", "params"}
SCORE_KEYS = {"chat", "label_form", "system"}


class TaskSpecError(ValueError):
    """A task YAML that does not follow the format in the module docstring."""


@dataclass(frozen=True)
class MetricSpec:
    column: str
    metric: str
    where: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    loader: str
    description: str = ""
    options: dict = field(default_factory=dict)
    prompt_variants: bool = False
    model_labels: str | None = None
    columns: dict = field(default_factory=dict)
    label_columns: dict = field(default_factory=dict)
    score: dict = field(default_factory=dict)
    option_line: str | None = None
    elicitation: dict = field(default_factory=dict)  # sampled / verbalised prompts and settings (alpha.eval.elicitation)
    metrics: tuple[MetricSpec, ...] = ()

    @property
    def table_columns(self) -> list[str]:
        return [m.column for m in self.metrics]


def task_names() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def task_file(name: str) -> Path:
    return TASKS_DIR / f"{name}.yaml"


def load_task(name: str, path: str | os.PathLike | None = None) -> TaskSpec:
    """The task spec ``name`` (from ``TASKS_DIR``, or ``path``); a malformed spec raises ``TaskSpecError``."""
    path = Path(path) if path else task_file(name)
    if not path.is_file():
        raise TaskSpecError(f"unknown benchmark task {name!r}: no {path}; known tasks: {', '.join(task_names())}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    where = f"{path}"
    unknown = set(raw) - TASK_KEYS
    if unknown:
        raise TaskSpecError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(TASK_KEYS)}")
    if "loader" not in raw or not raw.get("metrics"):
        raise TaskSpecError(f"{where}: a task names its loader and at least one metric")
    bad_score = set(raw.get("score") or {}) - SCORE_KEYS
    if bad_score:
        raise TaskSpecError(f"{where}: unknown score keys {sorted(bad_score)}; known: {sorted(SCORE_KEYS)}")
    metrics = []
    for k, entry in enumerate(raw["metrics"]):
        extra = set(entry) - METRIC_KEYS
        if extra or "column" not in entry or "metric" not in entry:
            raise TaskSpecError(f"{where}: metrics[{k}] needs column and metric (and optionally where, params); got {sorted(entry)}")
        metrics.append(MetricSpec(entry["column"], entry["metric"], dict(entry.get("where") or {}), dict(entry.get("params") or {})))
    bad_modes = set(raw.get("elicitation") or {}) - {"sampled", "verbalised"}
    if bad_modes:
        raise TaskSpecError(f"{where}: elicitation declares unknown modes {sorted(bad_modes)}; known: sampled, verbalised")
    option_line = raw.get("option_line")
    if option_line is not None and (not isinstance(option_line, str) or "{label}" not in option_line
                                    or "{option}" not in option_line):
        raise TaskSpecError(f"{where}: option_line must be a string with {{label}} and {{option}}, got {option_line!r}")
    columns = [m.column for m in metrics]
    if len(set(columns)) != len(columns):
        raise TaskSpecError(f"{where}: table columns repeat: {columns}")
    return TaskSpec(
        name=name, loader=raw["loader"], description=raw.get("description", ""), options=dict(raw.get("options") or {}),
        prompt_variants=bool(raw.get("prompt_variants", False)), model_labels=raw.get("model_labels"),
        columns=dict(raw.get("columns") or {}), label_columns=dict(raw.get("label_columns") or {}),
        score=dict(raw.get("score") or {}), option_line=option_line,
        elicitation=dict(raw.get("elicitation") or {}), metrics=tuple(metrics),
    )

