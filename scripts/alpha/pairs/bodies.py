"""The distinct ad bodies: each creative text once, the unit that embedding and keyword jobs share out.

Real dumps rerun one body with other targeting, so the expensive per-text work (sentence embeddings,
KeyBERT keywords) is done once per distinct body and fanned back out to the ads. The plan is two
Parquet files, streamed from ``ads.parquet`` in batches:

* ``bodies.parquet``: ``body`` (string), one row per distinct body in first-occurrence order (the
  row number is the body's id; small row groups so that a job reads only its blocks);
* ``ad_bodies.parquet``: ``ad_id``, ``body_row`` (int64), in ``ads.parquet`` order.

Bodies are matched by a 128-bit blake2b of the text (missing bodies count as ""): memory is about
100 bytes per distinct body, never the texts themselves.
"""
from __future__ import annotations

import hashlib
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from alpha.core.io import PARQUET_OPTIONS, atomic_path, iter_parquet_batches

log = logging.getLogger("alpha.pairs.bodies")

BODIES_SCHEMA = pa.schema([("body", pa.string())])
AD_BODIES_SCHEMA = pa.schema([("ad_id", pa.string()), ("body_row", pa.int64())])
BODY_ROW_GROUP = 1024


def body_key(text: str | None) -> bytes:
    return hashlib.blake2b((text or "").encode("utf-8", "surrogatepass"), digest_size=16).digest()


def plan(ads_parquet, bodies_out, ad_bodies_out, batch_rows: int = 50_000) -> dict:
    """Write the two plan files (see the module docstring); return counts for the job's report."""
    seen: dict[bytes, int] = {}
    pending: list[str] = []  # new bodies not yet written: whole row groups only, the rest at the end
    ads = 0
    with atomic_path(bodies_out) as bodies_tmp, atomic_path(ad_bodies_out) as index_tmp, \
            pq.ParquetWriter(bodies_tmp, BODIES_SCHEMA, **PARQUET_OPTIONS) as bodies, \
            pq.ParquetWriter(index_tmp, AD_BODIES_SCHEMA, **PARQUET_OPTIONS) as index:
        for batch in iter_parquet_batches(ads_parquet, batch_rows, columns=["ad_id", "body"]):
            texts = batch.column("body").to_pylist()
            rows = np.empty(len(texts), dtype=np.int64)
            for i, text in enumerate(texts):
                key = body_key(text)
                row = seen.get(key)
                if row is None:
                    row = seen[key] = len(seen)
                    pending.append(text or "")
                rows[i] = row
            while len(pending) >= BODY_ROW_GROUP:
                bodies.write_table(pa.table({"body": pending[:BODY_ROW_GROUP]}, schema=BODIES_SCHEMA))
                del pending[:BODY_ROW_GROUP]
            index.write_table(pa.table({"ad_id": batch.column("ad_id"), "body_row": rows}, schema=AD_BODIES_SCHEMA))
            ads += len(texts)
            log.info("distinct bodies: %d ads read, %d distinct bodies", ads, len(seen))
        if pending or not seen:
            bodies.write_table(pa.table({"body": pending}, schema=BODIES_SCHEMA))
    return {"ads": ads, "distinct_bodies": len(seen), "repeated_ads": ads - len(seen)}


def n_bodies(bodies_parquet) -> int:
    return pq.ParquetFile(bodies_parquet).metadata.num_rows
