"""Rendering settings every figure shares, so that the same numbers always give byte-identical PNGs.

Figures are drawn on a bare Agg canvas (no pyplot, no global backend switch) at a fixed dpi, inside the
fixed rc context ``RC``, and saved without the "Software" PNG tag (``save_png``).
"""
from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
COLORS = {"female": "#c44e52", "male": "#4c72b0", "state": "#55a868"}
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "text.usetex": False,
    "svg.hashsalt": "alpha",
}


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure of ``figsize`` inches at ``DPI`` on its own Agg canvas; create it inside ``rc_context(RC)``."""
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, out_png: str | os.PathLike) -> None:
    """Save ``fig`` as a PNG at ``DPI`` with no "Software" tag, so reruns give the same bytes."""
    fig.savefig(out_png, format="png", dpi=DPI, metadata={"Software": None})
