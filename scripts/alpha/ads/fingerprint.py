"""Vectorised 64-bit row fingerprints of Arrow columns (for content-level deduplication).

Strings are hashed with a polynomial over their UTF-8 bytes modulo 2**64, list elements and
columns are combined position by position, and every stage goes through the splitmix64 finaliser.
It is not cryptographic: it only has to tell distinct ads apart, and for non-adversarial data the
chance that two of N distinct rows collide is about N**2 / 2**65.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_P = np.uint64(0x100000001B3)  # FNV prime, odd
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_NULL = np.uint64(0x6A09E667F3BCC909)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arithmetic wraps around, as intended)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of values[offsets[i]:offsets[i+1]] for each i (empty segments give 0), wrapping."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.uint64)
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    if values.size and nonempty.any():
        with np.errstate(over="ignore"):
            out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty])
    return out


def _positions(offsets: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    return np.arange(offsets[-1] - offsets[0], dtype=np.int64) - np.repeat(offsets[:-1] - offsets[0], lengths)


def _powers(n: int) -> np.ndarray:
    powers = np.full(max(n, 1), _P, dtype=np.uint64)
    powers[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(powers, dtype=np.uint64)


def _hash_strings(arr: pa.Array) -> np.ndarray:
    arr = arr.cast(pa.large_string()) if not pa.types.is_large_string(arr.type) else arr
    arr = pc.fill_null(arr, "\x00<null>")  # nulls and "" must differ
    arr = pa.concat_arrays([arr]) if arr.offset else arr
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[: len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8, count=int(offsets[-1])) if data_buf is not None else np.zeros(0, np.uint8)
    data = data[offsets[0]:]
    offsets = offsets - offsets[0]
    pos = _positions(offsets)
    with np.errstate(over="ignore"):
        terms = (data.astype(np.uint64) + np.uint64(1)) * _powers(int(pos.max()) + 1 if pos.size else 1)[pos]
    lengths = np.diff(offsets).astype(np.uint64)
    return _mix(_segment_sums(terms, offsets) ^ (lengths * _GOLDEN))


def _hash_array(arr: pa.Array) -> np.ndarray:
    typ = arr.type
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        valid = np.asarray(arr.is_valid())
        arr = arr.cast(pa.large_list(typ.value_type)) if pa.types.is_list(typ) else arr
        arr = pc.fill_null(arr, pa.scalar([], arr.type)) if arr.null_count else arr
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        flat = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        offsets = offsets - offsets[0]
        elements = _hash_array(flat)
        pos = _positions(offsets).astype(np.uint64)
        with np.errstate(over="ignore"):
            terms = _mix(elements ^ (pos * _P))
        lengths = np.diff(offsets).astype(np.uint64)
        h = _mix(_segment_sums(terms, offsets) + lengths)
        return np.where(valid, h, _NULL)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _hash_strings(arr)
    if pa.types.is_floating(typ):
        values = pc.fill_null(arr.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        values = np.where(values == 0.0, 0.0, values)  # -0.0 == 0.0
        h = _mix(values.view(np.uint64))
    elif pa.types.is_integer(typ) or pa.types.is_date(typ) or pa.types.is_timestamp(typ):
        if pa.types.is_date32(typ):
            arr = arr.view(pa.int32())
        elif not pa.types.is_integer(typ):
            arr = arr.view(pa.int64())
        values = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        h = _mix(values.view(np.uint64))
    else:
        raise TypeError(f"cannot fingerprint a column of type {typ}")
    return np.where(np.asarray(arr.is_valid()), h, _NULL)


def row_fingerprints(table: pa.Table | pa.RecordBatch, columns: list[str]) -> np.ndarray:
    """One uint64 per row over the named columns (order matters; equal rows give equal values)."""
    h = np.full(table.num_rows, np.uint64(len(columns)), dtype=np.uint64)
    for i, name in enumerate(columns):
        col = table.column(name)
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        with np.errstate(over="ignore"):
            h = _mix(h * _P + _hash_array(arr) + np.uint64(i))
    return h
