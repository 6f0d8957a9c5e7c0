"""Exact within-page pair mining: every pair above the similarity threshold, none dropped.

sentence-transformers' ``paraphrase_mining`` keeps at most ``top_k`` neighbours per sentence and
``max_pairs`` pairs in total, so large pages silently lose pairs. Here each page's normalised
embeddings are multiplied block by block (row chunks against the columns to their right: upper
triangle only), so memory is bounded by ``chunk_rows`` x page size, and every candidate above the
threshold is kept. Candidates near a boundary are re-scored in float64 so that the open interval
(low, high) is applied exactly. The edit-distance filter then runs on candidates only, through
rapidfuzz's Levenshtein with ``score_cutoff`` (it stops as soon as the distance passes the cutoff).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

# Identical texts embed to cosine 1 up to rounding: anything this close to 1 counts as 1.0.
DUPLICATE_TOLERANCE = 1e-6
_FLOAT32_MARGIN = 1e-5  # float32 block products are re-scored in float64 within this margin


@dataclass(frozen=True)
class PairRule:
    """Which pairs count: cosine in the open interval (low, high), then edit distance > min_distance."""

    low: float = 0.7
    high: float = 1.0
    min_distance: int = 15
    unit: str = "words"  # "words" (the authors' preprint) or "chars"

    def __post_init__(self):
        if self.unit not in ("words", "chars"):
            raise ValueError(f"unit must be 'words' or 'chars', not {self.unit!r}")
        if not -1.0 <= self.low < self.high <= 1.0:
            raise ValueError(f"need -1 <= low < high <= 1, got ({self.low}, {self.high})")


def normalise(embeddings: np.ndarray) -> np.ndarray:
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms == 0, 1.0, norms)


def similar_pairs(emb: np.ndarray, low: float, high: float, chunk_rows: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i, j, cosine) with i < j and low < cosine < high, for L2-normalised rows of ``emb``.

    Rows are taken ``chunk_rows`` at a time against the rows after them, so the largest
    temporary is chunk_rows x n floats whatever the page size.
    """
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n = len(emb)
    out_i, out_j, out_c = [], [], []
    upper = high - DUPLICATE_TOLERANCE if high >= 1.0 else high
    for start in range(0, max(n - 1, 0), chunk_rows):
        stop = min(start + chunk_rows, n)
        block = emb[start:stop] @ emb[start:].T  # rows start..stop against columns start..n
        rows, cols = np.nonzero(block > low - _FLOAT32_MARGIN)
        keep = cols > rows  # strictly above the diagonal of the square part
        rows, cols = rows[keep], cols[keep]
        if not len(rows):
            continue
        i, j = rows + start, cols + start
        cos = block[rows, cols].astype(np.float64)
        near = (np.abs(cos - low) <= _FLOAT32_MARGIN) | (np.abs(cos - upper) <= _FLOAT32_MARGIN)
        if near.any():  # exact re-score where float32 rounding could flip the decision
            e64_i, e64_j = emb[i[near]].astype(np.float64), emb[j[near]].astype(np.float64)
            cos[near] = np.einsum("ij,ij->i", e64_i, e64_j) / (
                np.linalg.norm(e64_i, axis=1) * np.linalg.norm(e64_j, axis=1)
            )
        ok = (cos > low) & (cos < upper)
        out_i.append(i[ok])
        out_j.append(j[ok])
        out_c.append(cos[ok])
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64), np.concatenate(out_c)


def _as_sequences(texts: Sequence[str], unit: str) -> list[str]:
    """For word-level distance, spell each text as one character per word (same word, same
    character), so rapidfuzz's fast string Levenshtein counts word edits."""
    if unit == "chars":
        return list(texts)
    vocab: dict[str, str] = {}
    out = []
    for text in texts:
        out.append("".join(vocab.setdefault(w, chr(0x100 + len(vocab))) for w in text.split()))
    return out


def edit_distance_filter(texts: Sequence[str], i: np.ndarray, j: np.ndarray, rule: PairRule) -> tuple[np.ndarray, np.ndarray]:
    """Keep candidate pairs whose Levenshtein distance exceeds ``rule.min_distance``; returns (mask, distance).

    Distances above the cutoff are reported as cutoff + 1 (rapidfuzz stops counting there)."""
    if not len(i):
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    seqs = _as_sequences(texts, rule.unit)
    left = [seqs[k] for k in i]
    right = [seqs[k] for k in j]
    dist = process.cpdist(left, right, scorer=Levenshtein.distance, score_cutoff=rule.min_distance, workers=1)
    dist = np.asarray(dist, dtype=np.int64)
    return dist > rule.min_distance, dist


@dataclass(frozen=True)
class PagePairs:
    i: np.ndarray
    j: np.ndarray
    cosine: np.ndarray
    distance: np.ndarray


def score_page(texts: Sequence[str], embeddings: np.ndarray, rule: PairRule, chunk_rows: int = 1024) -> PagePairs:
    """Every pair of one page inside the cosine interval, with its edit distance (capped at
    rule.min_distance + 1), sorted by (i, j). Transcreation uses all of them, transsuasion only
    those past the distance threshold."""
    i, j, cos = similar_pairs(normalise(embeddings), rule.low, rule.high, chunk_rows)
    _, dist = edit_distance_filter(texts, i, j, rule)
    order = np.lexsort((j, i))
    return PagePairs(i[order], j[order], cos[order], dist[order])


def mine_page(texts: Sequence[str], embeddings: np.ndarray, rule: PairRule, chunk_rows: int = 1024) -> PagePairs:
    """Every pair of one page that passes the whole rule (cosine interval and edit distance)."""
    scored = score_page(texts, embeddings, rule, chunk_rows)
    keep = scored.distance > rule.min_distance
    return PagePairs(scored.i[keep], scored.j[keep], scored.cosine[keep], scored.distance[keep])


def page_slices(page_ids: Sequence[str]) -> Iterator[tuple[str, slice]]:
    """(page id, row slice) for rows already grouped by page."""
    page_ids = list(page_ids)
    start = 0
    for k in range(1, len(page_ids) + 1):
        if k == len(page_ids) or page_ids[k] != page_ids[start]:
            yield page_ids[start], slice(start, k)
            start = k


def shard_of_pages(page_ids: Iterable[str], n_shards: int) -> dict[str, int]:
    """Assign pages to shards balancing the pair work (size squared), largest pages first; deterministic."""
    sizes: dict[str, int] = {}
    for p in page_ids:
        sizes[p] = sizes.get(p, 0) + 1
    load = [0] * n_shards
    shard = {}
    for page, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        k = min(range(n_shards), key=lambda s: (load[s], s))
        shard[page] = k
        load[k] += size * size
    return shard


PAIRS_SCHEMA_FIELDS = (("page_id", "string"), ("ad_id_1", "string"), ("ad_id_2", "string"), ("cosine", "float64"), ("distance", "int32"))


def mine_shard(ads_parquet, embeddings_path, shard: int, n_shards: int, rule: PairRule, out_parquet, chunk_rows: int = 1024) -> dict:
    """Score every within-page pair of the pages assigned to ``shard``; writes one Parquet table.

    Reads only ad_id, page_id and body; embeddings are memory-mapped and gathered page by page,
    so memory is one page's embeddings plus one chunk of products."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alpha.pairs.embeddings import load as load_embeddings

    table = pq.read_table(ads_parquet, columns=["ad_id", "page_id", "body"])
    ids, emb = load_embeddings(embeddings_path)
    ad_ids = table.column("ad_id").to_pylist()
    if ids != ad_ids:
        raise ValueError(f"{embeddings_path}: embeddings are not for {ads_parquet} (ids differ); rerun embed_ads")
    page_ids = table.column("page_id").to_pylist()
    bodies = table.column("body").to_pylist()
    assignment = shard_of_pages(page_ids, n_shards)
    rows_of: dict[str, list[int]] = {}
    for row, page in enumerate(page_ids):
        if assignment[page] == shard:
            rows_of.setdefault(page, []).append(row)
    cols: dict[str, list] = {name: [] for name, _ in PAIRS_SCHEMA_FIELDS}
    n_ads = 0
    for page in sorted(rows_of):
        rows = np.asarray(rows_of[page])
        n_ads += len(rows)
        if len(rows) < 2:
            continue
        scored = score_page([bodies[r] for r in rows], np.asarray(emb[rows]), rule, chunk_rows)
        cols["page_id"].extend([page] * len(scored.i))
        cols["ad_id_1"].extend(ad_ids[r] for r in rows[scored.i])
        cols["ad_id_2"].extend(ad_ids[r] for r in rows[scored.j])
        cols["cosine"].extend(scored.cosine.tolist())
        cols["distance"].extend(scored.distance.tolist())
    schema = pa.schema([(name, getattr(pa, typ)()) for name, typ in PAIRS_SCHEMA_FIELDS])
    pq.write_table(pa.table(cols, schema=schema), out_parquet, compression="zstd")
    n_pairs = len(cols["page_id"])
    return {"shard": shard, "pages": len(rows_of), "ads": n_ads, "pairs_in_interval": n_pairs,
            "pairs_past_distance": int(sum(d > rule.min_distance for d in cols["distance"]))}
