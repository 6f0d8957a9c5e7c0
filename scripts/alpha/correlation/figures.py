"""Behaviour vs opinion similarity (paper §3.2) as figures: the two similarity matrices side by side, and
the scatter of every group pair with its correlation.

Drawn with the shared settings of ``alpha.core.plotting``, so the same inputs give byte-identical PNGs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import matplotlib
import numpy as np

from alpha.core.plotting import COLORS, RC, new_figure, save_png


def plot_similarity_heatmaps(behaviour, opinion, title: str, out_png: str | os.PathLike) -> None:
    """Side-by-side heatmaps of the behavioural and the opinion similarity matrices (same group order)."""
    groups = list(behaviour.index)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(RC):
        fig = new_figure((11.0, 5.0))
        axes = fig.subplots(1, 2)
        for ax, matrix, name in ((axes[0], behaviour, "behaviour (Spearman of per-capita ranks over ads)"),
                                 (axes[1], opinion.reindex(index=groups, columns=groups), "opinion (1 - normalised W1)")):
            values = matrix.to_numpy(dtype=float)
            image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis")
            ax.set_xticks(np.arange(len(groups)), groups, rotation=60, ha="right")
            ax.set_yticks(np.arange(len(groups)), groups)
            for i in range(len(groups)):
                for j in range(len(groups)):
                    if not np.isnan(values[i, j]):
                        ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6, color="white")
            ax.set_title(name)
            fig.colorbar(image, ax=ax, fraction=0.046)
        fig.suptitle(title)
        fig.tight_layout()
        save_png(fig, out_png)


def plot_correlation_scatter(summary: Mapping[str, Any], out_png: str | os.PathLike) -> None:
    """Behavioural vs opinion similarity of every group pair, with the least-squares line, r and its CI."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(RC):
        fig = new_figure((11.0, 4.8))
        for ax, kind, label in zip(fig.subplots(1, 2), ("regions", "age_gender"), ("census regions", "age x gender groups")):
            entry = summary[kind]
            x = np.array([p["behaviour"] for p in entry["pairs"]], dtype=float)
            y = np.array([p["opinion"] for p in entry["pairs"]], dtype=float)
            ax.scatter(x, y, s=18, color=COLORS["state"])
            if len(x) >= 2 and np.std(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                xs = np.linspace(x.min(), x.max(), 20)
                ax.plot(xs, slope * xs + intercept, color="0.3", lw=1)
            r, ci = entry["pearson_r"], entry["ci95"]
            r_text = "n/a" if r is None or (isinstance(r, float) and np.isnan(r)) else f"{r:.2f}"
            ci_text = "" if ci[0] is None else f", 95% CI [{ci[0]:.2f}, {ci[1]:.2f}]"
            ax.set_title(f"{label}: r = {r_text}{ci_text}, n = {entry['n_pairs']} pairs")
            ax.set_xlabel("behavioural similarity")
            ax.set_ylabel("opinion similarity")
        fig.tight_layout()
        save_png(fig, out_png)
