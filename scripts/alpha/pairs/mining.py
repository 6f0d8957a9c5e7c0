"""Exact within-page pair mining: every pair above the similarity threshold, none dropped.

sentence-transformers' ``paraphrase_mining`` keeps at most ``top_k`` neighbours per sentence and
``max_pairs`` pairs in total, so large pages silently lose pairs. Here each page's normalised
embeddings are multiplied block by block (row chunks against the columns to their right: upper
triangle only), so the product is at most ``chunk_rows`` x page size floats, and every candidate above
the threshold is kept. Each block is then read ``SCAN_CELLS`` cells at a time (candidates, their edit
distances and the pairs they yield never hold more), and the pairs are handed on in (i, j) order.
Candidates near a boundary are re-scored in float64 so that the open interval (low, high) is applied
exactly. The edit-distance filter then runs on candidates only, through rapidfuzz's Levenshtein with
``score_cutoff`` (it stops as soon as the distance passes the cutoff).

``mine_shard`` streams: ads.parquet in batches, the shard's pages in groups of at most ``batch_rows``
ads, embeddings read page by page from the ``.npy`` (not memory-mapped: a map keeps every file page
it touched resident, which would grow to the whole file), and the pairs written one Parquet row group
at a time. Per job memory is one page group, one page's embeddings, one product block and one output
row group, whatever the number of ads.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Mapping, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from alpha.core.io import atomic_path, iter_parquet_batches

# Identical texts embed to cosine 1 up to rounding: anything this close to 1 counts as 1.0.
DUPLICATE_TOLERANCE = 1e-6
_FLOAT32_MARGIN = 1e-5  # float32 block products are re-scored in float64 within this margin
# Cells of a product block scanned at once (at least one row): the candidates they yield and their
# temporaries stay under ~20 MB however large the page.
SCAN_CELLS = 1 << 18

Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


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


def normalise(embeddings: np.ndarray, copy: bool = True) -> np.ndarray:
    """Rows scaled to unit length (zero rows kept), float32; ``copy=False`` scales a float32 input in place."""
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    divisor = np.where(norms == 0, 1.0, norms)
    if copy:
        return emb / divisor
    emb /= divisor
    return emb


def similar_pairs(emb: np.ndarray, low: float, high: float, chunk_rows: int = 1024) -> Triple:
    """All (i, j, cosine) with i < j and low < cosine < high, for L2-normalised rows of ``emb``, in (i, j) order.

    Rows are taken ``chunk_rows`` at a time against the rows after them, so the largest
    temporary is chunk_rows x n floats whatever the page size.
    """
    parts = list(iter_similar_pairs(emb, low, high, chunk_rows))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    i, j, cos = (np.concatenate(column) for column in zip(*parts))
    return i, j, cos


def iter_similar_pairs(emb: np.ndarray, low: float, high: float, chunk_rows: int = 1024) -> Iterator[Triple]:
    """``similar_pairs`` in consecutive pieces of rows (i ranges), each in (i, j) order.

    The float32 product of each row chunk is taken exactly as one ``chunk_rows`` x (n - start) matmul:
    BLAS rounds differently for other shapes, and the cosines written must not depend on how the
    block is read. The block is then scanned ``SCAN_CELLS`` cells (whole rows, at least one) at a time.
    """
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n = len(emb)
    upper = high - DUPLICATE_TOLERANCE if high >= 1.0 else high
    for start in range(0, max(n - 1, 0), chunk_rows):
        stop = min(start + chunk_rows, n)
        block = emb[start:stop] @ emb[start:].T  # rows start..stop against columns start..n
        step = max(1, SCAN_CELLS // block.shape[1])
        for first in range(0, stop - start, step):
            yield _in_interval(emb, block[first:first + step], start + first, start, low, upper)
        del block  # before the next product, not after it: one block at a time


def _in_interval(emb: np.ndarray, cells: np.ndarray, row0: int, col0: int, low: float, upper: float) -> Triple:
    """Pairs (i, j, cosine) of one slice of a product block (rows from ``row0``, columns from ``col0``) with
    j > i and low < cosine < upper; boundary cases are re-scored in float64."""
    rows, cols = np.nonzero(cells > low - _FLOAT32_MARGIN)
    i, j = rows + row0, cols + col0
    keep = j > i  # strictly above the diagonal of the square part
    rows, cols, i, j = rows[keep], cols[keep], i[keep], j[keep]
    cos = cells[rows, cols].astype(np.float64)
    near = (np.abs(cos - low) <= _FLOAT32_MARGIN) | (np.abs(cos - upper) <= _FLOAT32_MARGIN)
    if near.any():  # exact re-score where float32 rounding could flip the decision
        e64_i, e64_j = emb[i[near]].astype(np.float64), emb[j[near]].astype(np.float64)
        cos[near] = np.einsum("ij,ij->i", e64_i, e64_j) / (np.linalg.norm(e64_i, axis=1) * np.linalg.norm(e64_j, axis=1))
    ok = (cos > low) & (cos < upper)
    return i[ok].astype(np.int64, copy=False), j[ok].astype(np.int64, copy=False), cos[ok]


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
    dist = _distances(_as_sequences(texts, rule.unit), i, j, rule.min_distance)
    return dist > rule.min_distance, dist


def _distances(seqs: Sequence[str], i: np.ndarray, j: np.ndarray, cutoff: int) -> np.ndarray:
    left = [seqs[k] for k in i]
    right = [seqs[k] for k in j]
    dist = process.cpdist(left, right, scorer=Levenshtein.distance, score_cutoff=cutoff, workers=1)
    return np.asarray(dist, dtype=np.int64)


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
    parts = list(iter_scored(texts, normalise(embeddings), rule, chunk_rows))
    if not parts:
        return PagePairs(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))
    return PagePairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("i", "j", "cosine", "distance")))


def iter_scored(texts: Sequence[str], normalised: np.ndarray, rule: PairRule, chunk_rows: int = 1024) -> Iterator[PagePairs]:
    """``score_page`` of already normalised embeddings, in consecutive non-empty pieces (i ranges), so a
    page's pairs never have to be held at once."""
    seqs = None  # most small pages have no candidate at all: spell them only when one does
    for i, j, cos in iter_similar_pairs(normalised, rule.low, rule.high, chunk_rows):
        if not len(i):
            continue
        seqs = seqs if seqs is not None else _as_sequences(texts, rule.unit)
        dist = _distances(seqs, i, j, rule.min_distance)
        order = np.lexsort((j, i))
        yield PagePairs(i[order], j[order], cos[order], dist[order])


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
    return shard_of_sizes(Counter(page_ids), n_shards)


def shard_of_sizes(sizes: Mapping[str, int], n_shards: int) -> dict[str, int]:
    """``shard_of_pages`` from the number of ads of each page."""
    load = [0] * n_shards
    shard = {}
    for page, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        k = min(range(n_shards), key=lambda s: (load[s], s))
        shard[page] = k
        load[k] += size * size
    return shard


PAIRS_SCHEMA_FIELDS = (("page_id", "string"), ("ad_id_1", "string"), ("ad_id_2", "string"), ("cosine", "float64"), ("distance", "int32"))
# pyarrow's own default for pq.write_table, which wrote these files before they were streamed: same bytes
ROW_GROUP_ROWS = 1024 * 1024
BATCH_ROWS = 16_384  # ads read per batch, and at most held per page group (a larger page is held alone)


def pairs_schema():
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, typ)()) for name, typ in PAIRS_SCHEMA_FIELDS])


def mine_shard(ads_parquet, embeddings_path, shard: int, n_shards: int, rule: PairRule, out_parquet, chunk_rows: int = 1024,
               batch_rows: int = BATCH_ROWS) -> dict:
    """Score every within-page pair of the pages assigned to ``shard``; writes one Parquet table.

    Reads ads.parquet in batches of ``batch_rows`` (ad_id and page_id to check the embeddings' ids and
    count pages, then ad_id, page_id and body once per group of the shard's pages holding at most
    ``batch_rows`` ads); embeddings are read page by page; pairs are written a row group at a time.
    The output is the one a single ``pq.write_table`` of all the pairs gives."""
    if batch_rows < 1 or chunk_rows < 1:
        raise ValueError(f"batch_rows and chunk_rows must be positive, got {batch_rows} and {chunk_rows}")
    vectors = _VectorFile(Path(embeddings_path).with_suffix(".npy"))
    sizes = _page_sizes(ads_parquet, Path(embeddings_path), vectors.n_rows, batch_rows)
    assignment = shard_of_sizes(sizes, n_shards)
    pages = sorted(page for page, k in assignment.items() if k == shard)
    with atomic_path(out_parquet) as tmp, vectors:
        writer = _PairWriter(tmp)
        for group in _page_groups(pages, sizes, batch_rows):
            _mine_group(_read_pages(ads_parquet, group, batch_rows), group, vectors, rule, chunk_rows, writer)
        writer.close()
    return {"shard": shard, "pages": len(pages), "ads": sum(sizes[p] for p in pages), "pairs_in_interval": writer.written,
            "pairs_past_distance": writer.past_distance}


def _mine_group(table, group: Sequence[str], vectors: _VectorFile, rule: PairRule, chunk_rows: int, writer: _PairWriter) -> None:
    """Score the pages of one group; ``table`` holds their ads sorted by (page, row)."""
    rows = table.column("row").to_numpy()
    bounds = np.concatenate([[0], np.cumsum(np.bincount(table.column("rank").to_numpy(), minlength=len(group)))])
    for page, start, stop in zip(group, bounds[:-1], bounds[1:]):
        if stop - start < 2:
            continue
        texts = table.column("body").slice(start, stop - start).to_pylist()
        ad_ids = table.column("ad_id").slice(start, stop - start).combine_chunks()
        emb = normalise(vectors.rows(rows[start:stop]), copy=False)
        for scored in iter_scored(texts, emb, rule, chunk_rows):
            writer.add(page, ad_ids, scored, rule.min_distance)


def _page_sizes(ads_parquet, embeddings_path: Path, n_vectors: int, batch_rows: int) -> Counter[str]:
    """Ads per page, streaming ad_id and page_id; checks that the embeddings are the ads', row for row."""
    stale = f"{embeddings_path}: embeddings are not for {ads_parquet} (ids differ); rerun embed_ads"
    sizes: Counter[str] = Counter()
    n_ids = 0
    with open(embeddings_path.with_suffix(".ids.txt"), encoding="utf-8") as ids:
        for batch in iter_parquet_batches(ads_parquet, batch_rows, columns=["ad_id", "page_id"]):
            expected = [line.rstrip("\n") for line in islice(ids, batch.num_rows)]
            n_ids += len(expected)
            if batch.column("ad_id").to_pylist() != expected:
                raise ValueError(stale)
            counts = batch.column("page_id").value_counts()
            sizes.update(dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())))
        n_ids += sum(1 for _ in ids)
    if n_ids != n_vectors:
        raise ValueError(f"{embeddings_path}: {n_ids} ids but {n_vectors} embeddings")
    if n_ids != sum(sizes.values()):
        raise ValueError(stale)
    return sizes


def _page_groups(pages: Sequence[str], sizes: Mapping[str, int], max_ads: int) -> Iterator[list[str]]:
    """Consecutive runs of ``pages`` holding at most ``max_ads`` ads together (a larger page alone)."""
    group: list[str] = []
    total = 0
    for page in pages:
        if group and total + sizes[page] > max_ads:
            yield group
            group, total = [], 0
        group.append(page)
        total += sizes[page]
    if group:
        yield group


def _read_pages(ads_parquet, group: Sequence[str], batch_rows: int):
    """The ads of ``group``'s pages: columns row (in ads.parquet), rank (index in ``group``), ad_id and body,
    sorted by (rank, row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = pa.array(group, pa.string())
    parts = []
    offset = 0
    for batch in iter_parquet_batches(ads_parquet, batch_rows, columns=["ad_id", "page_id", "body"]):
        rank = pc.index_in(batch.column("page_id"), value_set=value_set)
        found = np.flatnonzero(rank.is_valid().to_numpy(zero_copy_only=False))
        if len(found):
            take = pa.array(found)
            parts.append(pa.table({"row": found + offset, "rank": rank.take(take), "ad_id": batch.column("ad_id").take(take),
                                   "body": batch.column("body").take(take)}))
        offset += batch.num_rows
    table = pa.concat_tables(parts)
    return table.take(np.lexsort((table.column("row").to_numpy(), table.column("rank").to_numpy())))


class _VectorFile:
    """Rows of a 2-D ``.npy`` read on demand with plain reads (within ``with``). A memory map would do, but every
    file page it touches stays resident (and counts as the job's memory) until unmapped: over a shard, the file."""

    def __init__(self, path: Path):
        mapped = np.load(path, mmap_mode="r")  # header only: no data page is touched
        if mapped.ndim != 2 or np.isfortran(mapped):
            raise ValueError(f"{path}: expected a C-ordered 2-D array of embeddings, got shape {mapped.shape}")
        self.path, self.n_rows, self.dim, self.dtype, self.offset = path, mapped.shape[0], mapped.shape[1], mapped.dtype, mapped.offset
        del mapped
        self.fh: BinaryIO | None = None

    def __enter__(self) -> _VectorFile:
        self.fh = open(self.path, "rb", buffering=0)
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (ascending); runs of consecutive rows are read at once."""
        out = np.empty((len(rows), self.dim), dtype=self.dtype)
        raw = out.reshape(len(rows), -1).view(np.uint8)
        row_bytes = self.dim * self.dtype.itemsize
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        for first, last in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(rows)]])):
            self.fh.seek(self.offset + int(rows[first]) * row_bytes)
            _read_into(self.fh, memoryview(raw[first:last]).cast("B"))
        return out


def _read_into(fh: BinaryIO, buffer: memoryview) -> None:
    done = 0
    while done < len(buffer):
        n = fh.readinto(buffer[done:])
        if not n:
            raise ValueError(f"{fh.name}: truncated embeddings file")
        done += n


class _PairWriter:
    """Pairs → Parquet, a row group of ROW_GROUP_ROWS at a time.

    Each row group is written from one contiguous chunk per column (the bytes depend on the chunking),
    so the file equals one ``pq.write_table`` of every pair. Until then pairs wait in fixed buffers as
    indexes into their page's ad ids (24 bytes a pair, allocated once); the strings are only made for
    the row group being written."""

    def __init__(self, path: str | os.PathLike):
        import pyarrow.parquet as pq

        self.schema = pairs_schema()
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.page = np.empty(ROW_GROUP_ROWS, np.int32)  # index into self.pages
        self.i = np.empty(ROW_GROUP_ROWS, np.int32)  # index into that page's ad ids
        self.j = np.empty(ROW_GROUP_ROWS, np.int32)
        self.cosine = np.empty(ROW_GROUP_ROWS, np.float64)
        self.distance = np.empty(ROW_GROUP_ROWS, np.int32)
        self.pages: list[tuple[str, object]] = []  # (page id, its ad ids as a pa.Array) of the pending pairs
        self.n_pending = self.written = self.past_distance = 0

    def add(self, page: str, ad_ids, scored: PagePairs, min_distance: int) -> None:
        """Pairs ``scored`` of ``page``, whose ad ids (a pa.Array, in page order) they index."""
        self.past_distance += int(np.count_nonzero(scored.distance > min_distance))
        done = 0
        while done < len(scored.i):
            if not self.pages or self.pages[-1][1] is not ad_ids:
                self.pages.append((page, ad_ids))
            k = min(len(scored.i) - done, ROW_GROUP_ROWS - self.n_pending)
            into, part = slice(self.n_pending, self.n_pending + k), slice(done, done + k)
            self.page[into] = len(self.pages) - 1
            self.i[into], self.j[into] = scored.i[part], scored.j[part]
            self.cosine[into], self.distance[into] = scored.cosine[part], scored.distance[part]
            self.n_pending += k
            done += k
            if self.n_pending == ROW_GROUP_ROWS:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        n = self.n_pending
        page = pa.array(self.page[:n])
        columns = [pa.array([p for p, _ in self.pages], pa.string()).take(page)]
        sizes = np.array([len(ids) for _, ids in self.pages])
        first = (np.cumsum(sizes) - sizes)[self.page[:n]]  # where each pair's page starts among all their ad ids
        ad_ids = pa.concat_arrays([ids for _, ids in self.pages])
        columns += [ad_ids.take(pa.array(first + side[:n])) for side in (self.i, self.j)]
        columns += [pa.array(self.cosine[:n], pa.float64()), pa.array(self.distance[:n], pa.int32())]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema), row_group_size=n)
        self.written += n
        self.n_pending, self.pages = 0, []

    def close(self) -> None:
        if self.n_pending:
            self._flush()
        if self.written == 0:
            self.writer.write_table(self.schema.empty_table())
        self.writer.close()
