"""The paper's Figure 2 for chosen ads: raw delivery (top row) vs census-normalised per-capita index (bottom).

Figures are drawn at a fixed size with the shared settings of ``alpha.core.plotting`` (bare Agg canvas,
fixed dpi and rc context, no "Software" PNG tag), so the same ad and census give byte-identical PNGs.
The numbers come from ``alpha.ads.census.delivery_views`` (the code that writes the
segments table). Titles carry the ad id, page name and a shortened body, never the snapshot URL.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import matplotlib
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpha.ads.census import ADULT_AGES, GENDERS, INPUT_COLUMNS, Census, delivery_views, segment_row
from alpha.core import io
from alpha.core.io import iter_parquet_batches
from alpha.core.plotting import COLORS, RC, new_figure, save_png

log = logging.getLogger("alpha.ads.figures")

FIGSIZE = (13.0, 8.5)  # inches
TOP_STATES = 15
BODY_CHARS = 110
# Columns the figure needs from the cleaned ads table (never snapshot_url).
FIGURE_COLUMNS = (*INPUT_COLUMNS, "page_name", "body")  # what normalisation reads, plus the title


def _plain(text: Any) -> str:
    """Single-line text that matplotlib shows literally ("$" would otherwise start mathtext)."""
    text = re.sub(r"\s+", " ", str(text or "")).strip()
    return text.replace("\\", "\\\\").replace("$", r"\$")


def shorten(text: Any, limit: int = BODY_CHARS) -> str:
    text = re.sub(r"\s+", " ", str(text or "")).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _state_bars(ax, series, color: str, ylabel: str, title: str, empty: str, parity: bool = False) -> None:
    if series.empty:
        _empty(ax, empty)
    else:
        x = np.arange(len(series))
        ax.bar(x, series.to_numpy(dtype=float), color=color)
        ax.set_xticks(x, [_plain(s) for s in series.index], rotation=60, ha="right")
        if parity:
            ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
        ax.set_xlim(-0.6, max(len(series), TOP_STATES) - 0.4)  # same bar width for every ad
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def plot_delivery(ad_row: Mapping[str, Any], census: Census, out_png: str | os.PathLike) -> dict[str, Any]:
    """Draw the Figure-2 view of one ad (a row of the cleaned ads table, as a dict) into ``out_png``."""
    state_raw, state_index, ag_raw, ag_index = delivery_views(ad_row, census)
    segments = segment_row(ad_row, census)
    status = segments["census_status"]
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(RC):
        fig = new_figure(FIGSIZE)
        axes = fig.subplots(2, 2)
        no_index = f"no per-capita index ({status})"

        _state_bars(
            axes[0, 0], state_raw.head(TOP_STATES) * 100, COLORS["state"], "% of impressions",
            f"Delivery by state (top {TOP_STATES}, raw)", "no state delivery reported",
        )
        _state_bars(
            axes[1, 0], state_index.head(TOP_STATES), COLORS["state"], "per-capita index (1 = parity)",
            f"Census-normalised, ranked (top {TOP_STATES})", no_index, parity=True,
        )

        ax = axes[0, 1]
        if ag_raw.empty:
            _empty(ax, "no adult male/female delivery reported")
        else:
            x = np.arange(len(ADULT_AGES))
            width = 0.4
            for i, gender in enumerate(GENDERS):
                values = [float(ag_raw.get(f"{gender} {age}", 0.0)) * 100 for age in ADULT_AGES]
                ax.bar(x + (i - 0.5) * width, values, width, label=gender, color=COLORS[gender])
            ax.set_xticks(x, list(ADULT_AGES))
            ax.legend(loc="upper left")
        excluded = [
            f"{label}: {segments[key] * 100:.1f}%"
            for label, key in (("13-17", "share_13_17"), ("unknown gender", "share_gender_unknown"))
            if segments[key]
        ]
        ax.set_ylabel("% of impressions")
        ax.set_title("Delivery by age × gender (raw)" + ("\nexcluded (no census row): " + ", ".join(excluded) if excluded else ""))

        ax = axes[1, 1]
        if ag_index.empty:
            _empty(ax, no_index)
        else:
            x = np.arange(len(ag_index))
            colors = [COLORS[name.split(" ", 1)[0]] for name in ag_index.index]
            ax.bar(x, ag_index.to_numpy(dtype=float), color=colors)
            ax.set_xticks(x, list(ag_index.index), rotation=60, ha="right")
            ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
            ax.set_xlim(-0.6, 2 * len(ADULT_AGES) - 0.4)
        ax.set_ylabel("per-capita index (1 = parity)")
        ax.set_title("Census-normalised age × gender, ranked")

        title = f"Ad {_plain(ad_row.get('ad_id'))} · {_plain(ad_row.get('page_name'))}"
        body = _plain(shorten(ad_row.get("body")))
        if segments["region_unmapped_share"]:
            axes[0, 0].set_title(
                f"Delivery by state (top {TOP_STATES}, raw)\nno census row (Unknown, territories, abroad): "
                f"{segments['region_unmapped_share'] * 100:.1f}%"
            )
        fig.suptitle(f"{title}\n“{body}”", fontsize=10)
        fig.text(
            0.99, 0.005, "per-capita index = share of delivery ÷ share of 2020 US Census population; "
            "13-17 and unknown gender excluded", ha="right", va="bottom", fontsize=6, color="0.4",
        )
        fig.tight_layout(rect=(0, 0.02, 1, 0.93))
        save_png(fig, out_png)
    return {
        "census_status": status,
        "impressions_per_dollar": segments["impressions_per_dollar"],
        "states_reported": int(len(state_raw)),
        "states_ranked": int(len(state_index)),
        "age_gender_ranked": int(len(ag_index)),
    }


# ---------------------------------------------------------------- choosing ads and writing the folder


def _safe_name(ad_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", ad_id).lstrip(".")
    return name or "_"


def top_ads_by_impressions(ads_parquet: str | os.PathLike, n: int, batch_rows: int = 200_000) -> list[str]:
    """The ``n`` distinct ad ids with the largest impressions_lower (ties: ad_id ascending; nulls last).

    Streams two columns and keeps a running top ``n``: memory does not grow with the table.
    """
    if n <= 0:
        return []
    best: pa.Table | None = None
    keys = [("neg_impressions", "ascending"), ("ad_id", "ascending")]
    for batch in iter_parquet_batches(ads_parquet, batch_rows, columns=["ad_id", "impressions_lower"]):
        impressions = pc.cast(batch.column("impressions_lower"), pa.int64())
        part = pa.table({
            "ad_id": pc.cast(batch.column("ad_id"), pa.string()),
            # null impressions rank after every real value (including 0)
            "neg_impressions": pc.fill_null(pc.negate(impressions), 1),
        })
        merged = part if best is None else pa.concat_tables([best, part])
        # an id listed twice (an unmerged dump) counts once, with its largest impressions
        merged = merged.group_by("ad_id", use_threads=False).aggregate([("neg_impressions", "min")])
        merged = pa.table({"ad_id": merged["ad_id"], "neg_impressions": merged["neg_impressions_min"]})
        best = merged.take(pc.select_k_unstable(merged, min(n, merged.num_rows), keys)).sort_by(keys)
    return [] if best is None else best.column("ad_id").to_pylist()


def read_ads(ads_parquet: str | os.PathLike, ad_ids: Iterable[str], batch_rows: int = 50_000) -> dict[str, dict[str, Any]]:
    """Rows (FIGURE_COLUMNS) of the given ads, read batch by batch and filtered with pyarrow.

    The first row wins if an id occurs twice. Ids not in the table are simply missing from the result.
    """
    wanted = pa.array(sorted(set(ad_ids)), pa.string())
    found: dict[str, dict[str, Any]] = {}
    if len(wanted) == 0:
        return found
    missing_cols = [c for c in FIGURE_COLUMNS if c not in pq.read_schema(ads_parquet).names]
    if missing_cols:
        raise ValueError(f"{ads_parquet}: missing column(s) {missing_cols}; expected the cleaned ads table")
    for batch in iter_parquet_batches(ads_parquet, batch_rows, columns=list(FIGURE_COLUMNS)):
        hits = batch.filter(pc.is_in(pc.cast(batch.column("ad_id"), pa.string()), value_set=wanted))
        for row in hits.to_pylist():
            found.setdefault(str(row["ad_id"]), row)
        if len(found) == len(wanted):
            break
    return found


def plot_delivery_figures(
    ads_parquet: str | os.PathLike,
    census: Census,
    ad_ids: list[str],
    n_auto: int,
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Write ``<out_dir>/<ad_id>.png`` for each chosen ad and ``<out_dir>/index.json`` listing them.

    ``ad_ids`` empty: the ``n_auto`` ads with the largest impressions_lower (ties by ad_id); otherwise
    exactly those ads, in the given order (duplicates dropped). An id not in the table is a ValueError.
    """
    out_dir = Path(out_dir)
    ids = [str(a) for a in dict.fromkeys(ad_ids or [])]
    selection = "explicit" if ids else "auto"
    if not ids:
        ids = top_ads_by_impressions(ads_parquet, int(n_auto))
    rows = read_ads(ads_parquet, ids)
    unknown = [a for a in ids if a not in rows]
    if unknown:
        raise ValueError(f"ad id(s) not in {ads_parquet}: {', '.join(unknown)} (figures: ad_ids in the config)")
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    names: set[str] = set()
    for ad_id in ids:
        name = _safe_name(ad_id)
        while name in names:  # two ids that sanitise alike
            name += "_"
        names.add(name)
        info = plot_delivery(rows[ad_id], census, out_dir / f"{name}.png")
        entries.append({
            "ad_id": ad_id,
            "file": f"{name}.png",
            "page_id": rows[ad_id]["page_id"],
            "page_name": rows[ad_id]["page_name"],
            "impressions_lower": rows[ad_id]["impressions_lower"],
            **info,
        })
        log.info("figure %s: %s", name, info)
    index = {"selection": selection, "n_auto": int(n_auto), "figures": entries}
    io.write_json(out_dir / "index.json", index)
    return index
