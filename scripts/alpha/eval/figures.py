"""Table 1 as a figure: models x metric columns, a heatmap shaded by rank within each column.

Drawn with the shared settings of ``alpha.core.plotting``, so the same sidecar gives byte-identical PNGs.
Given Table 1's paired differences (``table1_delta.json``), a fine-tune's cell whose paired bootstrap CI of
(fine-tune − base) excludes 0 is framed and its number gets a dagger.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import matplotlib
import numpy as np
from matplotlib.patches import Rectangle

from alpha.core.plotting import RC, new_figure, save_png

LOWER_IS_BETTER = ("GlobalOpinionQA Skew",)
MARK = "\u2020"  # dagger


def marked_cells(sidecar: Mapping[str, Any], delta: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """(row label, column) of the cells whose paired CI of (model − its base) excludes 0."""
    if not delta:
        return set()
    return {(label, column) for label, entry in delta.get("models", {}).items() if label in sidecar["models"]
            for column, cell in entry.get("cells", {}).items() if cell.get("excludes_zero")}


def plot_table(sidecar: Mapping[str, Any], out_png: str | os.PathLike, delta: Mapping[str, Any] | None = None) -> None:
    """A table sidecar (``alpha.eval.tables``) as a heatmap: rows = models, columns = metric columns, cells
    annotated with the table's numbers (x 100) and shaded by rank within their column (darker = better;
    Skew is lower-is-better). Empty cells stay white. With ``delta`` (``tables.delta_table``'s sidecar),
    cells whose paired CI of (fine-tune − base) excludes 0 are framed and marked with a dagger."""
    models = list(sidecar["models"])
    columns = [c for c in sidecar["columns"][1:] if any(c in cells for cells in sidecar["cells"].values())]
    values = np.full((len(models), len(columns)), np.nan)
    for i, label in enumerate(models):
        for j, column in enumerate(columns):
            entry = sidecar["cells"].get(label, {}).get(column)
            if entry and entry["value"] is not None:
                values[i, j] = entry["value"] * sidecar["scale"]
    shade = np.full_like(values, np.nan)
    for j, column in enumerate(columns):
        col = values[:, j]
        ok = ~np.isnan(col)
        if ok.sum() == 0:
            continue
        lo, hi = np.nanmin(col), np.nanmax(col)
        scaled = np.full(len(col), 0.5) if hi == lo else (col - lo) / (hi - lo)
        shade[:, j] = 1.0 - scaled if column in LOWER_IS_BETTER else scaled
    marked = marked_cells(sidecar, delta)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(RC):
        fig = new_figure((max(6.0, 1.1 * len(columns) + 2.5), max(2.0, 0.45 * len(models) + 1.6)))
        ax = fig.subplots()
        ax.imshow(np.ma.masked_invalid(shade), cmap="Greens", vmin=-0.2, vmax=1.2, aspect="auto")
        for i in range(len(models)):
            for j in range(len(columns)):
                text = "" if np.isnan(values[i, j]) else f"{values[i, j]:.2f}"
                if text and (models[i], columns[j]) in marked:
                    ax.text(j, i, text + MARK, ha="center", va="center", fontsize=7, fontweight="bold")
                    ax.add_patch(Rectangle((j - 0.45, i - 0.4), 0.9, 0.8, fill=False, edgecolor="black", linewidth=1.2))
                else:
                    ax.text(j, i, text, ha="center", va="center", fontsize=7)
        ax.set_xticks(np.arange(len(columns)), [c.replace(" ", "\n", 1) for c in columns], fontsize=6)
        ax.set_yticks(np.arange(len(models)), models)
        variants = ", ".join(f"{family}: {variant}" for family, variant in sorted(sidecar["variants"].items()))
        title = f"Zero-shot results (x100; shade = rank within a column)\nmetric variants - {variants}"
        if delta and delta.get("level"):
            title += (f"\n{MARK} framed: the paired {delta['level']:.0%} bootstrap CI of (fine-tune \u2212 its base) "
                      "excludes 0")
        ax.set_title(title, fontsize=8)
        fig.tight_layout()
        save_png(fig, out_png)
