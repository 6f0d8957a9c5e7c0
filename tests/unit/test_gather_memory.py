"""Embedding outputs written front to back (no memory maps): byte-identical to the memory-mapped writers
they replace, and ``gather``'s resident memory bounded by its buffers, not by the number of ads."""
import importlib
import inspect
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alpha.core import blocks
from alpha.core.io import atomic_path, iter_parquet_batches
from alpha.pairs import embeddings

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ the code before (memory-mapped), kept as reference


def old_open_rows(path, rows: int, dim: int) -> np.ndarray:
    if rows * dim == 0:
        return np.zeros((rows, dim), dtype=np.float32)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))


def old_close_rows(path, out: np.ndarray) -> None:
    if isinstance(out, np.memmap):
        out.flush()
    else:
        with open(path, "wb") as fh:
            np.save(fh, out, allow_pickle=False)


def old_gather(part_files, ad_bodies_parquet, bodies_npy, ads_prefix, batch_rows: int = 100_000) -> dict:
    parts = [np.load(p, mmap_mode="r") for p in part_files]
    dims = {p.shape[1] for p in parts if len(p)}
    if len(dims) > 1:
        raise ValueError(f"embedding parts disagree on the dimension: {sorted(dims)}")
    dim = dims.pop() if dims else 0
    distinct = sum(len(p) for p in parts)
    ads_npy, ids_txt = (Path(ads_prefix).with_suffix(s) for s in (".npy", ".ids.txt"))
    with atomic_path(bodies_npy) as tmp:
        out = old_open_rows(tmp, distinct, dim)
        at = 0
        for p in parts:
            for start in range(0, len(p), batch_rows):
                chunk = p[start:start + batch_rows]
                out[at:at + len(chunk)] = chunk
                at += len(chunk)
        old_close_rows(tmp, out)
        del out
    by_body = np.load(bodies_npy, mmap_mode="r")
    n_ads = pq.ParquetFile(ad_bodies_parquet).metadata.num_rows
    with atomic_path(ads_npy) as tmp, atomic_path(ids_txt) as ids_tmp, open(ids_tmp, "w", encoding="utf-8") as ids:
        out = old_open_rows(tmp, n_ads, dim)
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
        old_close_rows(tmp, out)
        del out
    return {"ads": n_ads, "distinct_bodies": distinct, "parts": len(parts), "dim": dim}


def old_write_part(out_npy, rows: int, dim: int, block_vectors) -> None:
    """What the old ``embed_part`` did with its blocks' vectors (row offset, vectors)."""
    with atomic_path(out_npy) as tmp:
        out = old_open_rows(tmp, rows, dim)
        for first, vectors in block_vectors:
            out[first:first + len(vectors)] = vectors
        old_close_rows(tmp, out)
        del out


# ------------------------------------------------------------------ fixtures


def write_case(folder: Path, part_rows: list[int], n_ads: int, dim: int, seed: int = 0, row_group: int = 1000):
    rng = np.random.default_rng(seed)
    parts = []
    for k, n in enumerate(part_rows):
        path = folder / f"part{k}.npy"
        np.save(path, rng.standard_normal((n, dim)).astype(np.float32))
        parts.append(path)
    distinct = sum(part_rows)
    body_row = rng.integers(0, max(distinct, 1), size=n_ads) if distinct else np.zeros(0, dtype=np.int64)
    if n_ads > 10 and distinct:  # runs of one body, and the last and first bodies
        body_row[:7] = distinct - 1
        body_row[7:10] = 0
    pq.write_table(pa.table({"ad_id": [f"ad{i:06d}" for i in range(n_ads)], "body_row": pa.array(body_row, pa.int64())}),
                   folder / "ad_bodies.parquet", row_group_size=row_group)
    return parts, folder / "ad_bodies.parquet"


def outputs(folder: Path, tag: str) -> list[bytes]:
    return [(folder / f"{tag}.bodies.npy").read_bytes(), (folder / f"{tag}-ads.npy").read_bytes(),
            (folder / f"{tag}-ads.ids.txt").read_bytes()]


# ------------------------------------------------------------------ byte identity


@pytest.mark.parametrize("rows, dim", [(0, 0), (0, 384), (5, 0), (3, 384), (123_456, 7), (10**12, 384), (1, 1)])
def test_the_header_is_the_one_np_save_writes(tmp_path, rows, dim):
    header = embeddings._npy_header(rows, dim)
    if rows * dim < 10**7:  # written for real, as the old code wrote it
        old_close_rows(tmp_path / "ref.npy", old_open_rows(tmp_path / "ref.npy", rows, dim))
        data = (tmp_path / "ref.npy").read_bytes()
        assert data[:len(header)] == header and len(data) == len(header) + rows * dim * 4
    reference = io.BytesIO()  # np.save's header writer, choosing the format version itself
    impl = importlib.import_module("numpy.lib._format_impl") if not hasattr(np.lib.format, "_write_array_header") else np.lib.format
    impl._write_array_header(reference, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)}, None)
    assert header == reference.getvalue()


@pytest.mark.parametrize(
    "part_rows, n_ads, dim, batch_rows, buffer_bytes",
    [
        ([40, 0, 25, 35], 1000, 16, 33, 16 * 4 * 10),  # 10 rows a buffer: many reads, runs split
        ([40, 0, 25, 35], 1000, 16, 100_000, 1 << 20),  # everything in one buffer
        ([300], 5000, 8, 777, 8 * 4 * 1),  # one row a buffer
        ([1, 2], 50, 4, 7, 64),
        ([0, 0], 0, 16, 10, 1 << 20),  # nothing at all
        ([10, 0], 0, 16, 10, 1 << 20),  # bodies but no ads
        ([1500, 700], 20_000, 32, 4096, 32 * 4 * 1000),
    ],
)
def test_gather_writes_the_bytes_the_memory_mapped_code_wrote(tmp_path, part_rows, n_ads, dim, batch_rows, buffer_bytes):
    parts, ad_bodies = write_case(tmp_path, part_rows, n_ads, dim)
    old = old_gather(parts, ad_bodies, tmp_path / "old.bodies.npy", tmp_path / "old-ads", batch_rows=batch_rows)
    new = embeddings.gather(parts, ad_bodies, tmp_path / "new.bodies.npy", tmp_path / "new-ads", batch_rows=batch_rows,
                            buffer_bytes=buffer_bytes)
    assert new == old
    assert outputs(tmp_path, "new") == outputs(tmp_path, "old")
    assert not list(tmp_path.glob(".*.tmp"))


def test_gather_takes_negative_body_rows_as_indexing_did(tmp_path):
    parts, _ = write_case(tmp_path, [20, 5], 0, 4)
    pq.write_table(pa.table({"ad_id": ["a", "b", "c"], "body_row": pa.array([-1, 3, -25], pa.int64())}), tmp_path / "neg.parquet")
    old_gather(parts, tmp_path / "neg.parquet", tmp_path / "old.bodies.npy", tmp_path / "old-ads")
    embeddings.gather(parts, tmp_path / "neg.parquet", tmp_path / "new.bodies.npy", tmp_path / "new-ads", buffer_bytes=16)
    assert outputs(tmp_path, "new") == outputs(tmp_path, "old")
    pq.write_table(pa.table({"ad_id": ["a"], "body_row": pa.array([-26], pa.int64())}), tmp_path / "bad.parquet")
    with pytest.raises(IndexError):
        embeddings.gather(parts, tmp_path / "bad.parquet", tmp_path / "b.npy", tmp_path / "bad-ads")
    assert not (tmp_path / "bad-ads.npy").exists()


def test_gather_refuses_parts_of_different_dimensions(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((2, 4), np.float32))
    pq.write_table(pa.table({"ad_id": ["a"], "body_row": pa.array([0], pa.int64())}), tmp_path / "ab.parquet")
    with pytest.raises(ValueError, match="disagree on the dimension"):
        embeddings.gather([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "ab.parquet", tmp_path / "x.npy", tmp_path / "x")


def test_gather_casts_parts_that_are_not_float32_as_the_memory_map_did(tmp_path):
    rng = np.random.default_rng(3)
    np.save(tmp_path / "p0.npy", rng.standard_normal((30, 6)))  # float64
    np.save(tmp_path / "p1.npy", rng.standard_normal((20, 6)).astype(">f4"))  # big-endian
    parts = [tmp_path / "p0.npy", tmp_path / "p1.npy"]
    pq.write_table(pa.table({"ad_id": [str(i) for i in range(200)], "body_row": pa.array(rng.integers(0, 50, 200), pa.int64())}),
                   tmp_path / "ab.parquet")
    old_gather(parts, tmp_path / "ab.parquet", tmp_path / "old.bodies.npy", tmp_path / "old-ads", batch_rows=64)
    embeddings.gather(parts, tmp_path / "ab.parquet", tmp_path / "new.bodies.npy", tmp_path / "new-ads", batch_rows=64,
                      buffer_bytes=6 * 4 * 7)
    assert outputs(tmp_path, "new") == outputs(tmp_path, "old")


def test_the_row_writer_matches_the_memory_map_block_by_block(tmp_path):
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((1000, 24)).astype(np.float32)
    cuts = [0, 1, 2, 100, 101, 640, 1000]
    old_write_part(tmp_path / "old.npy", 1000, 24, [(a, vectors[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    with open(tmp_path / "new.npy", "wb") as fh:
        out = embeddings._RowWriter(fh, 1000, 24)
        for a, b in zip(cuts[:-1], cuts[1:]):
            out.write(vectors[a:b].astype(np.float64) if a == 100 else vectors[a:b])
        out.close()
    assert (tmp_path / "new.npy").read_bytes() == (tmp_path / "old.npy").read_bytes()
    with open(tmp_path / "short.npy", "wb") as fh:
        out = embeddings._RowWriter(fh, 3, 24)
        out.write(vectors[:2])
        with pytest.raises(ValueError, match="wrote 2 rows of 3"):
            out.close()
        with pytest.raises(ValueError, match="do not fit"):
            out.write(vectors[:2])


class TinyModel:
    """A deterministic stand-in encoder (8 dimensions)."""

    class device:  # noqa: N801 - what embed_part reads of a torch.device
        type = "cpu"

        def __str__(self) -> str:
            return "cpu"

    device = device()

    def get_embedding_dimension(self) -> int:
        return 8

    def encode(self, texts, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar):
        rows = np.array([[len(t) + k + 0.25 * (ord(t[0]) if t else 0) for k in range(8)] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("jobs, part", [(1, 0), (3, 1), (3, 2), (40, 39)])
def test_embed_part_writes_the_bytes_the_memory_mapped_code_wrote(tmp_path, jobs, part):
    texts = [f"body {k} " + "x" * (k % 13) for k in range(101)]
    pq.write_table(pa.table({"body": texts}), tmp_path / "bodies.parquet", row_group_size=17)
    model = TinyModel()
    embeddings.embed_part(tmp_path / "bodies.parquet", tmp_path / "new.npy", part, jobs, 10, batch_size=4, allow_bf16=False,
                          model=model)
    start, stop = blocks.job_rows(101, 10, part, jobs)
    block_vectors = [(blocks.block_rows_range(b, 101, 10)[0] - start,
                      embeddings.encode(model, texts[slice(*blocks.block_rows_range(b, 101, 10))], batch_size=4))
                     for b in blocks.job_blocks(101, 10, part, jobs)]
    old_write_part(tmp_path / "old.npy", stop - start, 8, block_vectors)
    assert (tmp_path / "new.npy").read_bytes() == (tmp_path / "old.npy").read_bytes()


# ------------------------------------------------------------------ memory

CHILD = """
import json, logging, resource, sys
from pathlib import Path
logging.disable(logging.CRITICAL)
sys.path[:0] = [{scripts!r}]
import numpy as np, pyarrow.parquet as pq
from alpha.core.io import atomic_path, iter_parquet_batches
from alpha.pairs import embeddings
exec({old_code!r})
args = json.loads(sys.argv[1])
run = old_gather if args["impl"] == "old" else embeddings.gather
# a warm-up on 1,000 of the ads: pyarrow's thread pool and memory pool, numpy: a fixed cost, not measured
pq.write_table(pq.read_table(args["ad_bodies"]).slice(0, 1000), args["prefix"] + ".warm.parquet")
run(args["parts"], args["prefix"] + ".warm.parquet", args["bodies"], args["prefix"])


def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))


try:  # reset the high-water mark to what is resident now (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before, peak = status("VmRSS"), lambda: status("VmHWM")
except OSError:
    before, peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run(args["parts"], args["ad_bodies"], args["bodies"], args["prefix"])
print(json.dumps({{"baseline_mb": before / 1024, "growth_mb": (peak() - before) / 1024}}))
"""


def peak_growth_mb(impl: str, parts, ad_bodies, folder: Path) -> dict:
    """Peak resident memory (anonymous and file-backed pages, memory maps included) that a fresh process
    (numpy and pyarrow, no torch) gains while running the gather, above what it held after a warm-up
    gather of 1,000 ads."""
    old_code = "\n\n".join(inspect.getsource(f) for f in (old_open_rows, old_close_rows, old_gather))
    script = CHILD.format(scripts=str(ROOT / "scripts"), old_code=old_code)
    args = {"impl": impl, "parts": [str(p) for p in parts], "ad_bodies": str(ad_bodies),
            "bodies": str(folder / f"{impl}.bodies.npy"), "prefix": str(folder / f"{impl}-ads")}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


GROWTH_BOUND_MB = 80  # 3 buffers of GATHER_BUFFER_BYTES (16 MiB) + one Parquet batch of 100k ids (~20 MB) + slack


def test_gather_memory_is_bounded_by_its_buffers_not_by_the_ads(tmp_path):
    """200k ads x 384 float32 (300 MB of output) from 50k bodies: the memory-mapped gather's resident
    memory grew with the outputs it touched; the streaming one stays within its buffers."""
    parts, ad_bodies = write_case(tmp_path, [25_000, 25_000], 200_000, 384, row_group=50_000)
    new = peak_growth_mb("new", parts, ad_bodies, tmp_path)
    old = peak_growth_mb("old", parts, ad_bodies, tmp_path)
    print(f"peak RSS growth: memory-mapped {old['growth_mb']:.0f} MB, streaming {new['growth_mb']:.0f} MB "
          f"(baselines {old['baseline_mb']:.0f} / {new['baseline_mb']:.0f} MB)")
    assert new["growth_mb"] < GROWTH_BOUND_MB
    assert old["growth_mb"] > GROWTH_BOUND_MB  # the bound tells the two apart
    assert outputs(tmp_path, "new") == outputs(tmp_path, "old")
