"""Held-out test sets: ads of unseen advertisers (pages held out by seed) and ads delivered after a
cut-off date. Every ad gets exactly one split; a pair belongs to a split only when both its ads do."""
from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from alpha.core.io import iter_parquet_batches
from alpha.tasks.samples import SPLITS, TEST_AFTER_CUTOFF, TEST_UNSEEN_ADVERTISER, TRAIN, stable_key

log = logging.getLogger("alpha.tasks.splits")

SPLITS_SCHEMA = pa.schema([("ad_id", pa.string()), ("page_id", pa.string()), ("split", pa.string())])


def page_held_out(page_id: str, seed: int, fraction: float) -> bool:
    """A page is held out when its seeded hash falls below ``fraction``: independent of every other
    page, so adding advertisers never moves an existing one between splits."""
    return stable_key(seed, f"page:{page_id}") < fraction * 2**64


def split_of(held_out: bool, date: dt.date | None, cutoff: dt.date) -> str:
    """Unseen advertiser wins over the date rule; an ad with no date stays in train (and is counted)."""
    if held_out:
        return TEST_UNSEEN_ADVERTISER
    if date is not None and date > cutoff:
        return TEST_AFTER_CUTOFF
    return TRAIN


def split_ads(ads_parquet, out_parquet, seed: int, heldout_page_fraction: float, cutoff: dt.date | str, batch_rows: int = 65536) -> dict:
    """One row per ad (ads.parquet order): ad_id, page_id, split. The date is delivery_start, else created."""
    if not 0.0 <= heldout_page_fraction < 1.0:
        raise ValueError(f"heldout_page_fraction must be in [0, 1), got {heldout_page_fraction}")
    cutoff = dt.date.fromisoformat(str(cutoff))
    counts: Counter = Counter()
    pages: dict[str, set] = {s: set() for s in SPLITS}
    no_date = 0
    held: dict[str, bool] = {}
    with pq.ParquetWriter(out_parquet, SPLITS_SCHEMA, compression="zstd") as writer:
        for batch in iter_parquet_batches(ads_parquet, batch_rows, ["ad_id", "page_id", "delivery_start", "created"]):
            page_ids = batch.column("page_id").to_pylist()
            starts = batch.column("delivery_start").to_pylist()
            created = batch.column("created").to_pylist()
            splits = []
            for page, start, made in zip(page_ids, starts, created):
                date = start or made
                no_date += date is None
                if page not in held:
                    held[page] = page_held_out(page, seed, heldout_page_fraction)
                split = split_of(held[page], date, cutoff)
                splits.append(split)
                pages[split].add(page)
            counts.update(splits)
            writer.write_table(pa.table([batch.column("ad_id"), batch.column("page_id"), pa.array(splits, pa.string())],
                                        schema=SPLITS_SCHEMA))
    report = {
        "seed": seed,
        "heldout_page_fraction": heldout_page_fraction,
        "cutoff_date": cutoff.isoformat(),
        "ads": {s: counts[s] for s in SPLITS},
        "pages": {s: len(pages[s]) for s in SPLITS},
        "ads_without_date": no_date,
    }
    log.info("splits: %s", report["ads"])
    return report


def load_splits(path, ad_ids: set[str] | None = None) -> dict[str, str]:
    table = pq.read_table(path, columns=["ad_id", "split"])
    if ad_ids is not None:
        table = table.filter(pa.compute.is_in(table.column("ad_id"), pa.array(sorted(ad_ids), pa.string())))
    return dict(zip(table.column("ad_id").to_pylist(), table.column("split").to_pylist()))


def pair_split(split_1: str, split_2: str) -> str | None:
    """The split of a pair: its ads' common split, None when they straddle two (the pair is dropped)."""
    return split_1 if split_1 == split_2 else None

