"""Scattered embedding and keyword jobs: blocks independent of the job split, byte-identical gathers for
any job count, checkpointed blocks reused after a kill, progress lines, the distinct-body plan."""
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from alpha.core import blocks
from alpha.pairs import bodies, embeddings
from alpha.tasks import keywords

WORDS = "solar vote coffee yoga jazz wetlands insurance senator coding chip shoes river boots surf".split()


def corpus(n: int, distinct: int) -> list[str | None]:
    """``n`` ad bodies with ``distinct`` creatives rerun in a scattered order, plus a missing and an empty body."""
    rng = np.random.default_rng(7)
    creative = [" ".join(rng.choice(WORDS, size=3 + k % 9)) + f" offer {k}" for k in range(distinct)]
    return [creative[k] for k in rng.integers(0, distinct, size=n)] + [None, ""]


def write_ads(folder, texts):
    ids = [f"ad{i:04d}" for i in range(len(texts))]
    pq.write_table(pa.table({"ad_id": ids, "page_id": ["p"] * len(ids), "body": texts}), folder / "ads.parquet",
                   row_group_size=37)
    return ids


class BatchSensitiveModel:
    """A stand-in encoder whose floats depend on the call's batch, as the real one's do (padding):
    only a split into fixed blocks can make the gathered vectors independent of the job count."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = 0

    def get_embedding_dimension(self):
        return 4

    def encode(self, texts, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar):
        self.calls += 1
        longest = max(len(t) for t in texts)
        out = np.array([[len(t), sum(map(ord, t)) % 97, t.count(" "), 1.0] for t in texts], dtype=np.float32)
        out[:, 3] += longest * 1e-3  # the batch leaks into every vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture()
def plan(tmp_path):
    texts = corpus(400, 90)
    ids = write_ads(tmp_path, texts)
    report = bodies.plan(tmp_path / "ads.parquet", tmp_path / "bodies.parquet", tmp_path / "ad_bodies.parquet", batch_rows=50)
    return tmp_path, texts, ids, report


# ------------------------------------------------------------------------- blocks


def test_jobs_take_whole_contiguous_blocks_covering_every_row_once():
    for rows, block_rows in [(0, 5), (1, 5), (10, 5), (11, 5), (1000, 64)]:
        for jobs in (1, 2, 3, 7, 40):
            parts = [blocks.job_blocks(rows, block_rows, p, jobs) for p in range(jobs)]
            assert [b for part in parts for b in part] == list(range(blocks.n_blocks(rows, block_rows)))
            spans = [blocks.job_rows(rows, block_rows, p, jobs) for p in range(jobs)]
            covered = [r for start, stop in spans for r in range(start, stop)]
            assert covered == list(range(rows))
    assert blocks.job_blocks(11, 5, 0, 2) == range(0, 1) and blocks.job_blocks(11, 5, 1, 2) == range(1, 3)
    assert blocks.job_rows(11, 5, 1, 2) == (5, 11)
    with pytest.raises(ValueError, match="part"):
        blocks.job_blocks(10, 5, 2, 2)
    with pytest.raises(ValueError, match="block_rows"):
        blocks.n_blocks(10, 0)


def test_read_rows_reads_any_range_across_row_groups(tmp_path):
    values = [f"r{i}" for i in range(100)]
    pq.write_table(pa.table({"v": values}), tmp_path / "t.parquet", row_group_size=7)
    for start, stop in [(0, 0), (0, 100), (3, 4), (6, 8), (13, 99), (100, 100)]:
        assert blocks.read_rows(tmp_path / "t.parquet", start, stop, ["v"]).column("v").to_pylist() == values[start:stop]
    with pytest.raises(ValueError, match="has 100"):
        blocks.read_rows(tmp_path / "t.parquet", 90, 101, ["v"])


def test_progress_lines_give_rows_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="test.progress")
    now = [0.0]
    progress = blocks.Progress(1000, "embed_ads part 1/2", logging.getLogger("test.progress"), every_s=60, clock=lambda: now[0])
    now[0] = 10.0
    progress.advance(100, computed=False)  # from a checkpoint: counted as done, not in the rate
    assert not caplog.messages  # less than a minute since the start
    now[0] = 70.0
    progress.advance(300)
    assert caplog.messages == ["embed_ads part 1/2: 400 / 1000 rows (40%), 4.3 rows/s, ETA 00:02:20, 100 from checkpoints"]
    now[0] = 80.0
    progress.advance(600)  # the end is always logged
    assert caplog.messages[-1].startswith("embed_ads part 1/2: 1000 / 1000 rows (100%), 11.2 rows/s, ETA 00:00:00")


def test_checkpoints_reuse_only_the_same_key_and_survive_torn_files(tmp_path):
    saved = blocks.Checkpoints(tmp_path / "ck")
    saved.save(3, "k1", np.arange(4.0))
    np.testing.assert_array_equal(saved.load(3, "k1"), np.arange(4.0))
    assert saved.load(3, "k2") is None and saved.load(4, "k1") is None
    saved.save(3, "k2", np.ones(2))  # a new key replaces the stale block
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["000003-k2.npy"]
    (tmp_path / "ck/000003-k2.npy").write_bytes(b"\x93NUMPY torn")
    assert saved.load(3, "k2") is None and saved.reused == 1
    saved.clear()
    assert not (tmp_path / "ck").exists()


# ------------------------------------------------------------------------- the distinct-body plan


def test_plan_lists_each_body_once_in_first_occurrence_order(plan):
    folder, texts, ids, report = plan
    distinct = list(dict.fromkeys(t or "" for t in texts))
    assert report == {"ads": len(texts), "distinct_bodies": len(distinct), "repeated_ads": len(texts) - len(distinct)}
    assert pq.read_table(folder / "bodies.parquet").column("body").to_pylist() == distinct
    index = pq.read_table(folder / "ad_bodies.parquet")
    assert index.column("ad_id").to_pylist() == ids
    assert [distinct[r] for r in index.column("body_row").to_pylist()] == [t or "" for t in texts]
    groups = pq.ParquetFile(folder / "bodies.parquet").metadata
    assert all(groups.row_group(g).num_rows <= bodies.BODY_ROW_GROUP for g in range(groups.num_row_groups))


# ------------------------------------------------------------------------- embeddings


def embed_all(folder, jobs, block_rows, model, tag):
    parts = [folder / f"{tag}-{p}.npy" for p in range(jobs)]
    for p, out in enumerate(parts):
        embeddings.embed_part(folder / "bodies.parquet", out, p, jobs, block_rows, batch_size=8, allow_bf16=False, model=model)
    embeddings.gather(parts, folder / "ad_bodies.parquet", folder / f"{tag}.bodies.npy", folder / f"{tag}-ads", batch_rows=33)
    return folder / f"{tag}.bodies.npy", folder / f"{tag}-ads"


def test_embeddings_are_byte_identical_for_any_job_count(plan):
    folder, texts, ids, _ = plan
    model = BatchSensitiveModel()
    one = embed_all(folder, 1, 16, model, "one")
    for jobs in (2, 5, 9):
        many = embed_all(folder, jobs, 16, model, f"j{jobs}")
        assert many[0].read_bytes() == one[0].read_bytes()
        for suffix in (".npy", ".ids.txt"):
            assert many[1].with_suffix(suffix).read_bytes() == one[1].with_suffix(suffix).read_bytes()
    other_blocks = embed_all(folder, 1, 40, model, "b40")
    assert other_blocks[0].read_bytes() != one[0].read_bytes()  # the stand-in is batch-sensitive: blocks matter
    got_ids, vectors = embeddings.load(one[1])
    assert got_ids == ids
    by_body = np.load(one[0])
    rows = pq.read_table(folder / "ad_bodies.parquet").column("body_row").to_numpy()
    np.testing.assert_array_equal(vectors, by_body[rows])
    assert not list(folder.glob("*.blocks"))  # checkpoints removed once a part is written


def test_a_killed_embedding_job_resumes_from_its_finished_blocks(plan, monkeypatch):
    folder, *_ = plan
    model = BatchSensitiveModel()
    reference = embed_all(folder, 1, 16, model, "ref")[0]
    out = folder / "resume-0.npy"
    real_encode = embeddings.encode
    calls = {"n": 0}

    def dies_on_the_third_block(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(embeddings, "encode", dies_on_the_third_block)
    with pytest.raises(KeyboardInterrupt):
        embeddings.embed_part(folder / "bodies.parquet", out, 0, 1, 16, batch_size=8, allow_bf16=False, model=model)
    assert not out.exists() and len(list((folder / "resume-0.npy.blocks").glob("*.npy"))) == 2
    monkeypatch.setattr(embeddings, "encode", real_encode)
    before = model.calls
    report = embeddings.embed_part(folder / "bodies.parquet", out, 0, 1, 16, batch_size=8, allow_bf16=False, model=model)
    n = blocks.n_blocks(bodies.n_bodies(folder / "bodies.parquet"), 16)
    assert report["blocks_reused"] == 2 and model.calls - before == n - 2
    assert np.load(out).tobytes() == np.load(reference).tobytes()
    # a checkpoint computed with other settings is never reused
    embeddings.embed_part(folder / "bodies.parquet", folder / "b8.npy", 0, 1, 16, batch_size=8, allow_bf16=False, model=model)
    other = embeddings.embed_part(folder / "bodies.parquet", folder / "b8.npy", 0, 1, 16, batch_size=4, allow_bf16=False,
                                  model=model, checkpoints=folder / "resume-0.npy.blocks")
    assert other["blocks_reused"] == 0


def test_gather_refuses_parts_that_do_not_cover_the_bodies(plan):
    folder, *_ = plan
    model = BatchSensitiveModel()
    embeddings.embed_part(folder / "bodies.parquet", folder / "p0.npy", 0, 2, 16, allow_bf16=False, model=model)
    with pytest.raises(ValueError, match="rerun embed_ads"):
        embeddings.gather([folder / "p0.npy"], folder / "ad_bodies.parquet", folder / "b.npy", folder / "ads")
    assert not (folder / "ads.npy").exists() and not (folder / "ads.ids.txt").exists()


def test_the_real_encoder_gives_the_same_bytes_for_one_and_three_jobs(plan):
    folder, *_ = plan
    model = embeddings.load_model()
    torch.set_num_threads(2)
    one = embed_all(folder, 1, 32, model, "one")[0]
    three = embed_all(folder, 3, 32, model, "three")[0]
    assert one.read_bytes() == three.read_bytes()
    vectors = np.load(one)
    np.testing.assert_allclose(np.linalg.norm(vectors[:-1], axis=1), 1.0, rtol=1e-5)  # the last body is ""


# ------------------------------------------------------------------------- keywords


@pytest.fixture(scope="module")
def kw():
    return keywords.keybert()


def keywords_all(folder, jobs, block_docs, kw, tag, body_emb):
    parts = [folder / f"{tag}-{p}.parquet" for p in range(jobs)]
    reports = [keywords.keywords_part(folder / "bodies.parquet", body_emb, out, p, jobs, block_docs, batch_docs=7, model=kw)
               for p, out in enumerate(parts)]
    gathered = keywords.gather_keywords(parts, folder / "ad_bodies.parquet", folder / f"{tag}.parquet", batch_rows=41)
    return folder / f"{tag}.parquet", reports, gathered


def test_keywords_are_the_same_for_any_job_count_and_fan_out_to_every_ad(plan, kw):
    folder, texts, ids, _ = plan
    distinct = pq.read_table(folder / "bodies.parquet").column("body").to_pylist()
    body_emb = folder / "body_emb.npy"
    np.save(body_emb, embeddings.encode(kw.model.embedding_model, distinct, batch_size=16))
    one, reports, gathered = keywords_all(folder, 1, 30, kw, "one", body_emb)
    for jobs in (2, 4):
        assert keywords_all(folder, jobs, 30, kw, f"j{jobs}", body_emb)[0].read_bytes() == one.read_bytes()
    table = pq.read_table(one)
    assert table.schema == pa.schema([("ad_id", pa.string()), ("keywords", pa.list_(pa.string()))])
    assert table.column("ad_id").to_pylist() == ids
    by_body = dict(zip(distinct, keywords.extract_keywords(kw, distinct, np.load(body_emb), batch_docs=7)))
    assert table.column("keywords").to_pylist() == [by_body[t or ""] for t in texts]  # same as plain batching
    assert gathered == {"ads": len(texts), "distinct_bodies": len(distinct), "ads_without_keywords": 2}
    assert reports[0]["bodies"] == len(distinct) and reports[0]["words_embedded"] > 0


def test_a_killed_keyword_job_resumes_and_refuses_other_embeddings(plan, kw, monkeypatch):
    folder, *_ = plan
    distinct = pq.read_table(folder / "bodies.parquet").column("body").to_pylist()
    body_emb = folder / "body_emb.npy"
    np.save(body_emb, embeddings.encode(kw.model.embedding_model, distinct, batch_size=16))
    reference, *_ = keywords_all(folder, 1, 30, kw, "ref", body_emb)
    real = keywords.keywords_batched
    calls = {"n": 0}

    def dies_on_the_second_block(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(keywords, "keywords_batched", dies_on_the_second_block)
    with pytest.raises(KeyboardInterrupt):
        keywords.keywords_part(folder / "bodies.parquet", body_emb, folder / "k.parquet", 0, 1, 30, batch_docs=7, model=kw)
    monkeypatch.setattr(keywords, "keywords_batched", real)
    report = keywords.keywords_part(folder / "bodies.parquet", body_emb, folder / "k.parquet", 0, 1, 30, batch_docs=7, model=kw)
    assert report["blocks_reused"] == 1
    keywords.gather_keywords([folder / "k.parquet"], folder / "ad_bodies.parquet", folder / "k-ads.parquet", batch_rows=41)
    assert (folder / "k-ads.parquet").read_bytes() == reference.read_bytes()
    np.save(folder / "short.npy", np.load(body_emb)[:-1])
    with pytest.raises(ValueError, match="rerun embed_ads"):
        keywords.keywords_part(folder / "bodies.parquet", folder / "short.npy", folder / "x.parquet", 0, 1, 30, model=kw)
    with pytest.raises(ValueError, match="rerun extract_keywords"):
        keywords.gather_keywords([folder / "k.parquet"] * 2, folder / "ad_bodies.parquet", folder / "bad.parquet")
