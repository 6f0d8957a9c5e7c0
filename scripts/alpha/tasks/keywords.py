"""KeyBERT keywords of ad bodies for TAG: top-5 unigrams, English stop words, no MMR / MaxSum.

The scoring is KeyBERT's own (``KeyBERT.extract_keywords``, cosine to the document, descending);
we only hand it what it would otherwise compute itself: the document embeddings already cached by
``embed_ads``, and the embeddings of each batch's candidate vocabulary, taken from a bounded LRU
cache so that a word seen in many batches is embedded once, not once per batch.

KeyBERT's return shapes are normalised here: it flattens a one-document result to a list of
(word, score), returns ``[]`` for a whole batch whose vocabulary is empty (every document empty or
stop words only), and ``[]`` for a single document without candidates. Every input text gets a
list of keywords (possibly empty), in input order.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from alpha.core.io import atomic_path, iter_parquet_batches

log = logging.getLogger("alpha.tasks.keywords")

NGRAM_RANGE = (1, 1)
STOP_WORDS = "english"
MAX_BATCH_DOCS = 5000
DEFAULT_CACHE_WORDS = 200_000
DEFAULT_CACHE_BODIES = 500_000  # about 100 MB of keyword lists at the most


class WordCache:
    """Word -> embedding, least recently used evicted past ``capacity`` words (0: keep nothing).

    Vectors live in one preallocated float matrix (untouched pages cost no memory), so the cache
    holds at most capacity x dim floats plus a dict of words."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], capacity: int = DEFAULT_CACHE_WORDS):
        if capacity < 0:
            raise ValueError(f"cache capacity must be >= 0, got {capacity}")
        self.embed = embed
        self.capacity = capacity
        self.hits = 0
        self.embedded = 0
        self._slot: OrderedDict[str, int] = OrderedDict()
        self._vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, word: str) -> bool:
        return word in self._slot

    def lookup(self, words: Sequence[str]) -> np.ndarray:
        """Embeddings of ``words`` (distinct), row k for words[k]; embeds only the words not cached."""
        if not words:
            return np.empty((0, 0), dtype=np.float32)
        cached = [k for k, w in enumerate(words) if w in self._slot]
        missing = [k for k, w in enumerate(words) if w not in self._slot]
        fresh = np.asarray(self.embed([words[k] for k in missing])) if missing else None
        like = fresh if fresh is not None else self._vectors
        out = np.empty((len(words), like.shape[1]), dtype=like.dtype)
        if cached:
            out[cached] = self._vectors[[self._slot[words[k]] for k in cached]]
            for k in cached:
                self._slot.move_to_end(words[k])
        if fresh is not None:
            out[missing] = fresh
            self._store([words[k] for k in missing], fresh)
        self.hits += len(cached)
        self.embedded += len(missing)
        return out

    def _store(self, words: list[str], vectors: np.ndarray) -> None:
        if not self.capacity:
            return
        if self._vectors is None:
            self._vectors = np.empty((self.capacity, vectors.shape[1]), dtype=vectors.dtype)
        # A batch vocabulary larger than the cache: only its last `capacity` words can stay.
        skip = max(len(words) - self.capacity, 0)
        for word, vector in zip(words[skip:], vectors[skip:]):
            if len(self._slot) < self.capacity:
                slot = len(self._slot)
            else:
                _, slot = self._slot.popitem(last=False)
            self._slot[word] = slot
            self._vectors[slot] = vector


def keybert(model=None):
    """KeyBERT over ``model`` (a sentence-transformers model; default the packaged all-MiniLM-L6-v2,
    loaded offline, never from a hub). A KeyBERT instance is returned as it is."""
    from keybert import KeyBERT

    if isinstance(model, KeyBERT):
        return model
    if model is None:
        from alpha.pairs.embeddings import load_model

        model = load_model()
    return KeyBERT(model=model)


def check_settings(top_n: int, batch_docs: int, cache_words: int) -> None:
    if not 1 <= batch_docs <= MAX_BATCH_DOCS:
        raise ValueError(f"batch_docs must be in 1..{MAX_BATCH_DOCS}, got {batch_docs}")
    if top_n < 1:  # KeyBERT's argsort()[-0:] would return every candidate for top_n=0
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    if cache_words < 0:
        raise ValueError(f"cache_words must be >= 0, got {cache_words}")


def vocabulary(texts: Sequence[str]) -> list[str]:
    """The candidate words KeyBERT would consider for ``texts``: its CountVectorizer, fitted the
    same way (so the order matches the ``word_embeddings`` it expects); [] if none."""
    from sklearn.feature_extraction.text import CountVectorizer

    try:
        count = CountVectorizer(ngram_range=NGRAM_RANGE, stop_words=STOP_WORDS, min_df=1).fit(texts)
    except ValueError:  # "empty vocabulary": every text is empty or stop words only
        return []
    return count.get_feature_names_out().tolist()


def batch_keywords(kw, texts: list[str], doc_embeddings: np.ndarray, top_n: int, cache: WordCache) -> list[list[str]]:
    """One KeyBERT call over ``texts`` with precomputed document and (cached) word embeddings."""
    words = vocabulary(texts)
    if not words:
        return [[] for _ in texts]
    found = kw.extract_keywords(
        texts, keyphrase_ngram_range=NGRAM_RANGE, stop_words=STOP_WORDS, top_n=top_n, min_df=1,
        use_mmr=False, use_maxsum=False, doc_embeddings=doc_embeddings, word_embeddings=cache.lookup(words),
    )
    if len(texts) == 1:  # KeyBERT flattens a one-document result ([] when it has no candidates)
        found = [found]
    if len(found) != len(texts):
        raise RuntimeError(f"KeyBERT returned {len(found)} results for {len(texts)} documents")
    return [[word for word, _ in doc] for doc in found]


def _texts(texts: Sequence[str | None]) -> list[str]:
    return [t or "" for t in texts]


def keywords_batched(kw, texts: Sequence[str | None], doc_embeddings: np.ndarray, top_n: int, batch_docs: int,
                     cache: WordCache) -> list[list[str]]:
    """:func:`extract_keywords` with a KeyBERT instance and a cache the caller keeps (and reads counts from)."""
    if len(texts) != len(doc_embeddings):
        raise ValueError(f"{len(texts)} texts but {len(doc_embeddings)} document embeddings")
    out: list[list[str]] = []
    for start in range(0, len(texts), batch_docs):
        stop = start + batch_docs
        emb = np.asarray(doc_embeddings[start:stop], dtype=np.float32)
        out.extend(batch_keywords(kw, _texts(texts[start:stop]), emb, top_n, cache))
    return out


def extract_keywords(model, texts: Sequence[str], doc_embeddings: np.ndarray, top_n: int = 5, batch_docs: int = 2000,
                     cache_words: int = DEFAULT_CACHE_WORDS) -> list[list[str]]:
    """Keywords of each text (KeyBERT score order, best first), in input order; [] for texts that
    are empty or stop words only. ``model``: a KeyBERT instance or a sentence-transformers model;
    row i of ``doc_embeddings`` embeds ``texts[i]``. ``cache_words=0`` embeds every batch's whole
    vocabulary, as KeyBERT alone would."""
    check_settings(top_n, batch_docs, cache_words)
    kw = keybert(model)
    return keywords_batched(kw, texts, doc_embeddings, top_n, batch_docs, WordCache(kw.model.embed, cache_words))


def _check_ids(expected: Sequence[str], got: Sequence[str], ads_parquet, embeddings_path) -> None:
    if list(expected) != list(got):
        raise ValueError(f"{embeddings_path}: embeddings are not for {ads_parquet} (ad ids differ); rerun embed_ads")


class BodyCache:
    """Cleaned body -> its keywords, least recently used evicted past ``capacity`` bodies: a body that
    real dumps rerun with other targeting is analysed once (0: keep nothing)."""

    def __init__(self, capacity: int = DEFAULT_CACHE_BODIES):
        if capacity < 0:
            raise ValueError(f"body cache capacity must be >= 0, got {capacity}")
        self.capacity, self.hits = capacity, 0
        self._found: OrderedDict[str, list[str]] = OrderedDict()

    def get(self, body: str) -> list[str] | None:
        found = self._found.get(body)
        if found is not None:
            self._found.move_to_end(body)
            self.hits += 1
        return found

    def put(self, body: str, keywords: list[str]) -> None:
        if self.capacity:
            self._found[body] = keywords
            if len(self._found) > self.capacity:
                self._found.popitem(last=False)


def keywords_once_per_body(kw, texts: Sequence[str | None], doc_embeddings: np.ndarray, top_n: int, batch_docs: int,
                           cache: WordCache, bodies: BodyCache) -> tuple[list[list[str]], int]:
    """Keywords of ``texts`` with each distinct body analysed once (within the call, and across calls
    through ``bodies``), fanned back out in input order; and how many bodies were analysed. A batch's
    vocabulary is the union of its documents' words, so leaving repeats out changes no result."""
    texts = _texts(texts)
    todo: dict[str, int] = {}  # body -> its first row
    known: dict[str, list[str]] = {}
    for row, body in enumerate(texts):
        if body in todo or body in known:
            continue
        cached = bodies.get(body)
        if cached is None:
            todo[body] = row
        else:
            known[body] = cached
    rows = list(todo.values())
    found = keywords_batched(kw, list(todo), np.asarray(doc_embeddings)[rows], top_n, batch_docs, cache) if rows else []
    for body, keywords in zip(todo, found):
        bodies.put(body, keywords)
        known[body] = keywords
    return [known[body] for body in texts], len(rows)


def keywords_for_ads(ads_parquet, embeddings_path, out_parquet, top_n: int = 5, batch_docs: int = 2000,
                     cache_words: int = DEFAULT_CACHE_WORDS, model=None, cache_bodies: int = DEFAULT_CACHE_BODIES) -> dict:
    """Keywords of every ad body -> Parquet (ad_id string, keywords list<string>), ads.parquet row order.

    Streams ``batch_docs`` ads at a time against the memory-mapped embeddings (``embeddings_path``
    as given to ``alpha.pairs.embeddings.save``); the word cache is shared by the whole file, and each
    distinct body is analysed once (``BodyCache``). Written to a temporary file and renamed, so a
    failed run leaves no output."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alpha.pairs.embeddings import load as load_embeddings

    check_settings(top_n, batch_docs, cache_words)
    ids, emb = load_embeddings(embeddings_path)
    n_ads = pq.ParquetFile(ads_parquet).metadata.num_rows
    if n_ads != len(ids):
        raise ValueError(f"{embeddings_path} has {len(ids)} embeddings but {ads_parquet} has {n_ads} ads; rerun embed_ads")
    kw = keybert(model)
    cache = WordCache(kw.model.embed, cache_words)
    bodies = BodyCache(cache_bodies)
    schema = pa.schema([("ad_id", pa.string()), ("keywords", pa.list_(pa.string()))])
    done = batches = without = analysed = 0
    with atomic_path(out_parquet) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in iter_parquet_batches(ads_parquet, batch_docs, columns=["ad_id", "body"]):
            ad_ids = batch.column("ad_id").to_pylist()
            _check_ids(ids[done:done + len(ad_ids)], ad_ids, ads_parquet, embeddings_path)
            found, n_new = keywords_once_per_body(kw, batch.column("body").to_pylist(), emb[done:done + len(ad_ids)],
                                                  top_n, batch_docs, cache, bodies)
            writer.write_table(pa.table({"ad_id": ad_ids, "keywords": found}, schema=schema))
            done += len(ad_ids)
            analysed += n_new
            batches += 1
            without += sum(not k for k in found)
            log.info("keywords: %d / %d ads, batch %d (%d bodies analysed, %d words embedded, %d cache hits, %d cached)",
                     done, n_ads, batches, analysed, cache.embedded, cache.hits, len(cache))
    return {"ads": done, "batches": batches, "ads_without_keywords": without, "top_n": top_n, "batch_docs": batch_docs,
            "cache_words": cache_words, "words_embedded": cache.embedded, "cache_hits": cache.hits,
            "bodies_analysed": analysed, "body_cache_hits": bodies.hits}
