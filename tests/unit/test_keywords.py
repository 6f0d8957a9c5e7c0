"""KeyBERT keywords: same answers as plain KeyBERT, its return-shape quirks handled, every row kept."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from alpha.pairs import embeddings
from alpha.tasks import keywords

ADS = [
    "Solar panels solar panels solar energy for homes in sunny Arizona",
    "Vote early this November and make your voice heard in the city council election",
    "Fresh organic coffee beans roasted daily, order online with free shipping",
    "Join our yoga retreat for stress relief, meditation and healthy living",
    "Tickets on sale now for the summer jazz festival downtown. Free parking!",
    "Protect the wetlands: donate today to keep our rivers clean for wildlife",
    "Home insurance quotes in minutes. Save money on your policy today",
    "Senator Lopez fights for lower prescription drug prices. Vote Lopez on November 8",
    "Our free online coding bootcamp helps you land a tech job in 12 weeks",
    "Affordable solar installation for homes and small businesses, save on energy bills",
    "Chip in $5 before midnight to protect voting rights in every state",
    "New running shoes for the summer: free shipping and free returns on every order",
]
PLAIN = dict(keyphrase_ngram_range=(1, 1), stop_words="english", top_n=5)


@pytest.fixture(scope="module")
def kw():
    return keywords.keybert()


@pytest.fixture(scope="module")
def doc_emb(kw):
    return embeddings.encode(kw.model.embedding_model, ADS, batch_size=8)


def plain_keywords(kw, docs):
    found = kw.extract_keywords(docs, **PLAIN)
    found = [found] if len(docs) == 1 else found
    return [[word for word, _ in doc] for doc in found]


def test_cached_path_matches_plain_keybert_over_several_batches(kw, doc_emb):
    ours = keywords.extract_keywords(kw, ADS, doc_emb, top_n=5, batch_docs=4)
    for start in range(0, len(ADS), 4):
        assert ours[start:start + 4] == plain_keywords(kw, ADS[start:start + 4])
    assert all(len(k) == 5 for k in ours)


def test_accepts_the_sentence_transformers_model_too(kw, doc_emb):
    assert keywords.extract_keywords(kw.model.embedding_model, ADS[:3], doc_emb[:3]) == plain_keywords(kw, ADS[:3])


def test_single_document_batch_is_not_flattened(kw, doc_emb):
    single = keywords.extract_keywords(kw, ADS[2:3], doc_emb[2:3])
    assert single == plain_keywords(kw, ADS[2:3])
    assert len(single) == 1 and "coffee" in single[0]


def test_empty_and_stop_word_documents_get_no_keywords(kw, doc_emb):
    zeros = np.zeros((3, doc_emb.shape[1]), np.float32)
    assert keywords.extract_keywords(kw, ["the and of", "", None], zeros) == [[], [], []]
    assert keywords.extract_keywords(kw, [""], zeros[:1]) == [[]]
    assert keywords.extract_keywords(kw, ["it is what it is"], zeros[:1]) == [[]]
    assert keywords.extract_keywords(kw, ["", "of the", "a"], zeros, batch_docs=1) == [[], [], []]


def test_mixed_batch_with_a_stop_word_only_document(kw, doc_emb):
    zeros = np.zeros((2, doc_emb.shape[1]), np.float32)
    texts = [ADS[0], "it is what it is", ADS[3], ""]
    found = keywords.extract_keywords(kw, texts, np.vstack([doc_emb[:1], zeros[:1], doc_emb[3:4], zeros[1:]]))
    assert found[1] == [] and found[3] == []
    assert found[0] == plain_keywords(kw, ADS[:1])[0] and found[2] == plain_keywords(kw, ADS[3:4])[0]


def test_batch_size_does_not_change_the_answer_and_order_is_kept(kw, doc_emb):
    one = keywords.extract_keywords(kw, ADS, doc_emb, batch_docs=1)
    assert one == keywords.extract_keywords(kw, ADS, doc_emb, batch_docs=5000)
    assert one == keywords.extract_keywords(kw, ADS, doc_emb, batch_docs=5, cache_words=0)
    assert keywords.extract_keywords(kw, ADS[::-1], doc_emb[::-1], batch_docs=5) == one[::-1]


def test_hand_checked_keywords(kw):
    text = ["Solar panels solar panels solar energy for homes"]
    first = keywords.extract_keywords(kw, text, embeddings.encode(kw.model.embedding_model, text))[0]
    assert "solar" in first and first == plain_keywords(kw, text)[0]
    assert not set(first) & ENGLISH_STOP_WORDS
    assert first == [w for w in first if w.islower()] and len(first) == len(set(first))


def test_settings_are_checked(kw, doc_emb):
    for bad in (dict(batch_docs=0), dict(batch_docs=5001), dict(top_n=0), dict(cache_words=-1)):
        with pytest.raises(ValueError):
            keywords.extract_keywords(kw, ADS, doc_emb, **bad)
    with pytest.raises(ValueError, match="document embeddings"):
        keywords.extract_keywords(kw, ADS, doc_emb[:-1])


class CountingEmbed:
    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, words):
        self.calls.append(list(words))
        return np.array([[len(w), sum(map(ord, w))] for w in words], dtype=np.float32)


def test_word_cache_embeds_once_and_evicts_least_recently_used():
    embed = CountingEmbed()
    cache = keywords.WordCache(embed, capacity=3)
    first = cache.lookup(["ant", "bee", "cat"])
    np.testing.assert_array_equal(cache.lookup(["cat", "ant"]), first[[2, 0]])
    assert embed.calls == [["ant", "bee", "cat"]] and (cache.hits, cache.embedded) == (2, 3)
    cache.lookup(["dog"])  # evicts "bee", the least recently used
    assert "bee" not in cache and all(w in cache for w in ("ant", "cat", "dog"))
    np.testing.assert_array_equal(cache.lookup(["bee", "dog"]), embed(["bee", "dog"]))
    assert len(cache) == 3
    none = keywords.WordCache(embed, capacity=0)
    none.lookup(["ant"])
    none.lookup(["ant"])
    assert len(none) == 0 and (none.hits, none.embedded) == (0, 2)
    big = keywords.WordCache(embed, capacity=2)
    np.testing.assert_array_equal(big.lookup(["a1", "b2", "c3", "d4"]), embed(["a1", "b2", "c3", "d4"]))
    assert len(big) == 2
