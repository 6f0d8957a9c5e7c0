"""Exact pair mining on hand-made pages where the expected pairs are known."""
import io
import itertools

import numpy as np
import pytest

from alpha.pairs import mining as pairs
from alpha.pairs.mining import PairRule


def unit(angle_deg):
    a = np.deg2rad(angle_deg)
    return [np.cos(a), np.sin(a)]


def brute_force(emb, texts, rule):
    emb = pairs.normalise(emb).astype(np.float64)
    out = set()
    for i, j in itertools.combinations(range(len(emb)), 2):
        cos = float(emb[i] @ emb[j] / (np.linalg.norm(emb[i]) * np.linalg.norm(emb[j])))
        if rule.low < cos < 1.0 - pairs.DUPLICATE_TOLERANCE:
            a, b = (texts[i].split(), texts[j].split()) if rule.unit == "words" else (texts[i], texts[j])
            from rapidfuzz.distance import Levenshtein

            if Levenshtein.distance(a, b) > rule.min_distance:
                out.add((i, j))
    return out


def test_boundaries_exactly_07_and_duplicates_at_1():
    emb = np.array([[1.0, 0.0], [0.7, np.sqrt(1 - 0.49)], [1.0, 0.0], [0.7000001, np.sqrt(1 - 0.7000001**2)], [0.0, 1.0]])
    i, j, cos = pairs.similar_pairs(pairs.normalise(emb), 0.7, 1.0, chunk_rows=2)
    found = set(zip(i.tolist(), j.tolist()))
    assert (0, 1) not in found and (1, 2) not in found  # cosine exactly 0.7: excluded (open interval)
    assert (0, 2) not in found  # identical vectors: cosine 1.0, a duplicate, excluded
    assert {(0, 3), (2, 3)} <= found  # just above 0.7
    assert (0, 4) not in found and {(1, 4), (3, 4)} <= found  # cos 0 out; cos 0.714 in


@pytest.mark.parametrize("chunk_rows", [1, 3, 64, 4096])
def test_no_pair_is_lost_whatever_the_chunk(chunk_rows):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16))
    emb = np.repeat(base, 20, axis=0) + rng.normal(scale=0.5, size=(120, 16))  # dense clusters: many pairs
    i, j, _ = pairs.similar_pairs(pairs.normalise(emb), 0.7, 1.0, chunk_rows=chunk_rows)
    e = pairs.normalise(emb).astype(np.float64)
    sims = e @ e.T
    expected = {(a, b) for a in range(120) for b in range(a + 1, 120) if 0.7 < sims[a, b] < 1 - 1e-6}
    assert set(zip(i.tolist(), j.tolist())) == expected
    assert len(expected) > 900  # dense clusters: hundreds of pairs


def test_edit_distance_exactly_15_is_excluded_16_kept():
    base = " ".join(f"w{k}" for k in range(40))
    words = base.split()
    fifteen = " ".join(words[:25] + [f"x{k}" for k in range(15)])  # 15 substitutions
    sixteen = " ".join(words[:24] + [f"x{k}" for k in range(16)])  # 16 substitutions
    texts = [base, fifteen, sixteen]
    rule = PairRule(min_distance=15, unit="words")
    keep, dist = pairs.edit_distance_filter(texts, np.array([0, 0]), np.array([1, 2]), rule)
    assert dist.tolist() == [15, 16] and keep.tolist() == [False, True]


def test_character_unit():
    texts = ["a" * 20, "a" * 4 + "b" * 16, "a" * 5 + "b" * 15]
    keep, dist = pairs.edit_distance_filter(texts, np.array([0, 0]), np.array([1, 2]), PairRule(unit="chars"))
    assert keep.tolist() == [True, False] and dist.tolist() == [16, 15]


def test_word_unit_counts_words_not_characters():
    texts = ["the quick brown fox", "the quick brown wolf"]
    _, dist = pairs.edit_distance_filter(texts, np.array([0]), np.array([1]), PairRule(min_distance=0))
    assert dist.tolist() == [1]


def test_mine_page_matches_brute_force():
    rng = np.random.default_rng(3)
    vocab = [f"v{k}" for k in range(60)]
    texts = [" ".join(rng.choice(vocab, size=rng.integers(5, 40))) for _ in range(80)]
    emb = np.repeat(rng.normal(size=(4, 8)), 20, axis=0) + rng.normal(scale=0.6, size=(80, 8))
    for rule in (PairRule(), PairRule(unit="chars", min_distance=40), PairRule(low=0.5, min_distance=3)):
        got = pairs.mine_page(texts, emb, rule, chunk_rows=7)
        assert set(zip(got.i.tolist(), got.j.tolist())) == brute_force(emb, texts, rule)
        assert (np.diff(got.i) >= 0).all()


def test_rule_validation():
    with pytest.raises(ValueError):
        PairRule(unit="tokens")
    with pytest.raises(ValueError):
        PairRule(low=0.9, high=0.8)


def test_page_slices_and_sharding():
    ids = ["a", "a", "b", "c", "c", "c"]
    assert [(p, (s.start, s.stop)) for p, s in pairs.page_slices(ids)] == [("a", (0, 2)), ("b", (2, 3)), ("c", (3, 6))]
    shard = pairs.shard_of_pages(ids, 2)
    assert shard == {"c": 0, "a": 1, "b": 1}
    assert pairs.shard_of_pages(ids, 2) == shard  # deterministic


# ------------------------------------------------------------------ streamed shards: same bytes, bounded memory


def clustered_page(rng, n, dim=16, clusters=4):
    emb = np.repeat(rng.normal(size=(clusters, dim)), -(-n // clusters), axis=0)[:n] + rng.normal(scale=0.5, size=(n, dim))
    vocab = [f"v{k}" for k in range(40)]
    texts = [" ".join(rng.choice(vocab, size=rng.integers(5, 30))) for _ in range(n)]
    return texts, emb


@pytest.mark.parametrize("chunk_rows", [7, 120, 500])  # smaller than, equal to and larger than the page
def test_block_size_does_not_change_the_pairs(chunk_rows):
    texts, emb = clustered_page(np.random.default_rng(5), 120)
    rule = PairRule(low=0.5, min_distance=3)
    ref = pairs.score_page(texts, emb, rule, chunk_rows=120)
    got = pairs.score_page(texts, emb, rule, chunk_rows=chunk_rows)
    assert len(ref.i) > 1000
    assert got.i.tolist() == ref.i.tolist() and got.j.tolist() == ref.j.tolist()  # same pairs, same (i, j) order
    assert got.distance.tolist() == ref.distance.tolist()
    # float32 products round by BLAS kernel shape: cosines agree to float32 precision across block sizes
    np.testing.assert_allclose(got.cosine, ref.cosine, rtol=0, atol=1e-6)


@pytest.mark.parametrize("chunk_rows, scan_cells", [(3, 1), (16, 500), (120, 4000), (400, 10**6)])
def test_scanning_a_block_in_slices_is_exact_and_bounded(chunk_rows, scan_cells, monkeypatch):
    """The product block is chunk_rows x (n - start); it is scanned SCAN_CELLS cells at a time (at least
    one row), and the pieces together are exactly the pairs of a whole-block scan, bit for bit."""
    texts, emb = clustered_page(np.random.default_rng(6), 300)
    normalised = pairs.normalise(emb)
    monkeypatch.setattr(pairs, "SCAN_CELLS", scan_cells)
    seen = []
    real = pairs._in_interval

    def spy(emb_, cells, *args):
        seen.append(cells.size)
        return real(emb_, cells, *args)

    monkeypatch.setattr(pairs, "_in_interval", spy)
    pieces = list(pairs.iter_similar_pairs(normalised, 0.5, 1.0, chunk_rows))
    assert max(seen) <= max(scan_cells, len(emb))
    monkeypatch.setattr(pairs, "_in_interval", real)
    i, j, cos = (np.concatenate(c) for c in zip(*pieces))
    whole = []  # the unsliced scan: each chunk's full block at once
    for start in range(0, len(emb) - 1, chunk_rows):
        block = normalised[start:start + chunk_rows] @ normalised[start:].T
        whole.append(real(normalised, block, start, start, 0.5, 1.0 - pairs.DUPLICATE_TOLERANCE))
    wi, wj, wc = (np.concatenate(c) for c in zip(*whole))
    assert np.array_equal(i, wi) and np.array_equal(j, wj) and np.array_equal(cos.view(np.uint64), wc.view(np.uint64))
    assert (np.diff(i) >= 0).all()


def write_shard_inputs(d, rng, page_sizes, dim=16):
    """ads.parquet (pages interleaved, as in real dumps) and embeddings saved as embed_ads does."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alpha.pairs import embeddings

    texts, embs, page_ids = [], [], []
    for p, size in enumerate(page_sizes):
        t, e = clustered_page(rng, size, dim)
        texts += t
        embs.append(e)
        page_ids += [f"page{p:04d}"] * size
    order = rng.permutation(len(texts))
    ad_ids = [f"ad{k:06d}" for k in range(len(texts))]
    table = pa.table({"ad_id": ad_ids, "page_id": [page_ids[k] for k in order], "body": [texts[k] for k in order]})
    pq.write_table(table, d / "ads.parquet", row_group_size=97)
    embeddings.save(d / "ads", ad_ids, pairs.normalise(np.concatenate(embs))[order])
    return d / "ads.parquet", d / "ads"


def reference_shard(ads, emb_prefix, shard, n_shards, rule, chunk_rows, row_group_size=None):
    """The pre-streaming mine_shard: everything read at once, one pq.write_table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(ads, columns=["ad_id", "page_id", "body"])
    emb = np.load(emb_prefix.with_suffix(".npy"))
    ad_ids, page_ids, bodies = (table.column(c).to_pylist() for c in ("ad_id", "page_id", "body"))
    assignment = pairs.shard_of_pages(page_ids, n_shards)
    rows_of = {}
    for row, page in enumerate(page_ids):
        if assignment[page] == shard:
            rows_of.setdefault(page, []).append(row)
    cols = {name: [] for name, _ in pairs.PAIRS_SCHEMA_FIELDS}
    for page in sorted(rows_of):
        rows = np.asarray(rows_of[page])
        if len(rows) < 2:
            continue
        scored = pairs.score_page([bodies[r] for r in rows], emb[rows], rule, chunk_rows)
        cols["page_id"].extend([page] * len(scored.i))
        cols["ad_id_1"].extend(ad_ids[r] for r in rows[scored.i])
        cols["ad_id_2"].extend(ad_ids[r] for r in rows[scored.j])
        cols["cosine"].extend(scored.cosine.tolist())
        cols["distance"].extend(scored.distance.tolist())
    out = io.BytesIO()
    pq.write_table(pa.table(cols, schema=pairs.pairs_schema()), out, compression="zstd", row_group_size=row_group_size)
    return out.getvalue(), len(cols["page_id"])


@pytest.mark.parametrize("chunk_rows, batch_rows, row_group_rows", [(4, 1, 50), (16, 60, 1000), (300, 10_000, pairs.ROW_GROUP_ROWS)])
def test_streamed_shard_is_byte_identical_to_one_write(tmp_path, monkeypatch, chunk_rows, batch_rows, row_group_rows):
    """Pages larger and smaller than chunk_rows and than a page group (batch_rows), row groups filled and split."""
    ads, emb = write_shard_inputs(tmp_path, np.random.default_rng(7), [150, 40, 1, 33, 7, 2, 90, 12])
    rule = PairRule(low=0.5, min_distance=3)
    monkeypatch.setattr(pairs, "ROW_GROUP_ROWS", row_group_rows)
    for shard in range(2):
        out = tmp_path / f"{shard}.parquet"
        report = pairs.mine_shard(ads, emb, shard, 2, rule, out, chunk_rows=chunk_rows, batch_rows=batch_rows)
        expected, n_pairs = reference_shard(ads, emb, shard, 2, rule, chunk_rows, row_group_rows)
        assert out.read_bytes() == expected
        assert report["pairs_in_interval"] == n_pairs > 0


def test_shard_without_pairs_and_stale_embeddings(tmp_path):
    ads, emb = write_shard_inputs(tmp_path, np.random.default_rng(8), [1, 1, 1])
    out = tmp_path / "0.parquet"
    report = pairs.mine_shard(ads, emb, 0, 1, PairRule(), out)
    assert out.read_bytes() == reference_shard(ads, emb, 0, 1, PairRule(), 1024)[0]
    assert report == {"shard": 0, "pages": 3, "ads": 3, "pairs_in_interval": 0, "pairs_past_distance": 0}
    ids = emb.with_suffix(".ids.txt")
    good = ids.read_text()
    ids.write_text(good.replace("ad000001", "ad999999"))
    with pytest.raises(ValueError, match="ids differ"):
        pairs.mine_shard(ads, emb, 0, 1, PairRule(), out)
    ids.write_text(good + "extra\n")
    with pytest.raises(ValueError, match="4 ids but 3 embeddings"):
        pairs.mine_shard(ads, emb, 0, 1, PairRule(), out)


def test_vector_rows_are_the_saved_rows(tmp_path):
    from alpha.pairs import embeddings

    vectors = np.random.default_rng(9).normal(size=(50, 8)).astype(np.float32)
    embeddings.save(tmp_path / "e", [str(k) for k in range(50)], vectors)
    file = pairs._VectorFile(tmp_path / "e.npy")
    rows = np.array([0, 1, 2, 7, 9, 10, 49])  # runs and single rows, first and last
    with file:
        assert np.array_equal(file.rows(rows), vectors[rows])


def shard_peak(tmp_path, page_sizes, monkeypatch):
    """Peak of numpy / Python (tracemalloc) plus Arrow (a proxy pool's high-water mark) while mining shard 0."""
    import tracemalloc

    import pyarrow as pa

    ads, emb = write_shard_inputs(tmp_path, np.random.default_rng(10), page_sizes)
    monkeypatch.setattr(pairs, "ROW_GROUP_ROWS", 2000)
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        report = pairs.mine_shard(ads, emb, 0, 2, PairRule(low=0.5, min_distance=3), tmp_path / "0.parquet", chunk_rows=64, batch_rows=500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous)
    return peak + pool.max_memory(), report


def test_shard_memory_does_not_grow_with_the_number_of_ads(tmp_path, monkeypatch):
    """Same settings and the same largest page, 5x the ads: the old mine_shard held every ad's id, page and
    body as Python objects, and every pair, and grew about 4x here."""
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small, small_report = shard_peak(tmp_path / "small", [120] + [40] * 30, monkeypatch)
    large, large_report = shard_peak(tmp_path / "large", [120] + [40] * 150, monkeypatch)
    assert large_report["ads"] > 4 * small_report["ads"] and large_report["pairs_in_interval"] > 3 * small_report["pairs_in_interval"]
    assert large < 1.5 * small, (small, large)
