"""KeyBERT keywords: same answers as plain KeyBERT, KeyBERT's return-shape quirks handled, rows kept."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from alpha import embeddings, keywords

TEXTS = [
    "Solar panels solar panels solar energy for homes in sunny Arizona",
    "Vote early this November and make your voice heard in the city council election",
    "Fresh organic coffee beans roasted daily, order online with free shipping",
    "Join our yoga retreat for stress relief, meditation and healthy living",
    "Tickets on sale now for the summer jazz festival downtown",
    "Protect the wetlands: donate to keep our rivers clean for wildlife",
    "Home insurance quotes in minutes, save money on your policy today",
]


@pytest.fixture(scope="module")
def kw():
    return keywords.keybert()


@pytest.fixture(scope="module")
def doc_emb(kw):
    return embeddings.encode(kw.model.embedding_model, TEXTS, batch_size=8)


def test_matches_plain_keybert_over_several_batches(kw, doc_emb):
    ours = keywords.extract_keywords(kw, TEXTS, doc_emb, top_n=5, batch_docs=3)
    for start in range(0, len(TEXTS), 3):
        batch = TEXTS[start:start + 3]
        plain = kw.extract_keywords(batch, keyphrase_ngram_range=(1, 1), stop_words="english", top_n=5)
        plain = [plain] if len(batch) == 1 else plain
        assert ours[start:start + 3] == [[w for w, _ in doc] for doc in plain]


def test_batch_size_does_not_change_the_answer_and_order_is_kept(kw, doc_emb):
    one = keywords.extract_keywords(kw, TEXTS, doc_emb, batch_docs=1)
    assert one == keywords.extract_keywords(kw, TEXTS, doc_emb, batch_docs=5000)
    rev = keywords.extract_keywords(kw, TEXTS[::-1], doc_emb[::-1], batch_docs=2)
    assert rev == one[::-1]


def test_hand_checked_keywords(kw, doc_emb):
    first = keywords.extract_keywords(kw, TEXTS[:1], doc_emb[:1])[0]
    assert "solar" in first and len(first) == 5
    assert not set(first) & ENGLISH_STOP_WORDS


def test_single_document_and_stop_word_batches(kw, doc_emb):
    zeros = np.zeros((3, doc_emb.shape[1]), np.float32)
    assert keywords.extract_keywords(kw, ["the and of", "", None], zeros) == [[], [], []]
    single = keywords.extract_keywords(kw, [TEXTS[2]], doc_emb[2:3])
    assert len(single) == 1 and "coffee" in single[0]
    mixed = keywords.extract_keywords(kw, [TEXTS[0], "it is what it is", ""], np.vstack([doc_emb[:1], zeros[:2]]))
    assert mixed[1:] == [[], []] and "solar" in mixed[0]


def test_word_cache_embeds_each_word_once_and_stays_bounded(kw, doc_emb):
    cache = keywords.WordCache(kw.model, capacity=10_000)
    keywords.extract_keywords(kw, TEXTS + TEXTS, np.vstack([doc_emb, doc_emb]), batch_docs=len(TEXTS), cache=cache)
    assert cache.hits == cache.embedded > 0  # the second batch is all cache hits
    small = keywords.WordCache(kw.model, capacity=5)
    small.lookup(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    assert len(small._vectors) == 5


def test_bad_batch_size(kw, doc_emb):
    with pytest.raises(ValueError, match="batch_docs"):
        keywords.extract_keywords(kw, TEXTS, doc_emb, batch_docs=5001)


def test_keywords_for_ads_file(kw, doc_emb, tmp_path):
    ids = [f"ad{i}" for i in range(len(TEXTS))]
    pq.write_table(pa.table({"ad_id": ids, "body": TEXTS}), tmp_path / "ads.parquet", row_group_size=3)
    embeddings.save(tmp_path / "emb", ids, doc_emb)
    report = keywords.keywords_for_ads(tmp_path / "ads.parquet", tmp_path / "emb", tmp_path / "kw.parquet", batch_docs=2, kw=kw)
    table = pq.read_table(tmp_path / "kw.parquet")
    assert table.column("ad_id").to_pylist() == ids and report["ads"] == len(TEXTS)
    assert table.column("keywords").to_pylist() == keywords.extract_keywords(kw, TEXTS, doc_emb, batch_docs=2)
    embeddings.save(tmp_path / "other", ids[::-1], doc_emb)
    with pytest.raises(ValueError, match="rerun embed_ads"):
        keywords.keywords_for_ads(tmp_path / "ads.parquet", tmp_path / "other", tmp_path / "kw2.parquet", kw=kw)
