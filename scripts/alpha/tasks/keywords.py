"""KeyBERT keywords of ad bodies for TAG: top-5 unigrams, English stop words, no MMR / MaxSum.

The scoring is KeyBERT's own (``KeyBERT.extract_keywords``, cosine to the document, descending);
we only hand it what it would otherwise compute itself: the document embeddings already cached by
``embed_ads``, and the embeddings of each batch's candidate vocabulary, taken from a bounded LRU
cache so that a word seen in many batches of a block is embedded once, not once per batch.

Scattered (rule ``extract_keywords``, ``tasks.keywords.jobs`` jobs) over the distinct bodies
(:mod:`alpha.pairs.bodies`), in blocks of ``tasks.keywords.block_docs`` that each get a word cache
of their own, so that no result depends on the job split; ``gather_keywords`` fans the keywords out
to the ads.

KeyBERT's return shapes are normalised here: it flattens a one-document result to a list of
(word, score), returns ``[]`` for a whole batch whose vocabulary is empty (every document empty or
stop words only), and ``[]`` for a single document without candidates. Every input text gets a
list of keywords (possibly empty), in input order.
"""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from alpha.core import blocks
from alpha.core.io import atomic_path

log = logging.getLogger("alpha.tasks.keywords")

NGRAM_RANGE = (1, 1)
STOP_WORDS = "english"
MAX_BATCH_DOCS = 5000
DEFAULT_CACHE_WORDS = 200_000


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


def _part_schema():
    import pyarrow as pa

    return pa.schema([("body_row", pa.int64()), ("keywords", pa.list_(pa.string()))])


def _save_keywords(path, found: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(found, fh, ensure_ascii=False)


def _load_keywords(path) -> list[list[str]]:
    with open(path, encoding="utf-8") as fh:
        found = json.load(fh)
    if not isinstance(found, list):
        raise ValueError(f"{path}: not a list of keyword lists")
    return found


def keywords_part(bodies_parquet, body_embeddings_npy, out_parquet, part: int, jobs: int, block_docs: int, top_n: int = 5,
                  batch_docs: int = 2000, cache_words: int = DEFAULT_CACHE_WORDS, checkpoints=None, model=None) -> dict:
    """Keywords of job ``part``'s blocks of the distinct bodies -> Parquet (body_row, keywords), body order.

    A block of ``block_docs`` bodies is analysed by itself, ``batch_docs`` per KeyBERT call, with a
    word cache of its own: its keywords do not depend on the job split. Finished blocks go to
    ``checkpoints`` (default ``<out_parquet>.blocks/``) and are reused after a kill."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alpha.pairs.bodies import n_bodies

    check_settings(top_n, batch_docs, cache_words)
    rows = n_bodies(bodies_parquet)
    emb = np.load(body_embeddings_npy, mmap_mode="r")
    if len(emb) != rows:
        raise ValueError(f"{body_embeddings_npy} has {len(emb)} embeddings but {bodies_parquet} has {rows} bodies; rerun embed_ads")
    start, stop = blocks.job_rows(rows, block_docs, part, jobs)
    kw = keybert(model)
    settings = f"{top_n}|{batch_docs}|{cache_words}|{NGRAM_RANGE}|{STOP_WORDS}"
    saved = blocks.Checkpoints(checkpoints or f"{out_parquet}.blocks", suffix=".json", save=_save_keywords, load=_load_keywords)
    progress = blocks.Progress(stop - start, f"extract_keywords part {part + 1}/{jobs}", log)
    schema = _part_schema()
    words = hits = without = 0
    with atomic_path(out_parquet) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for block, table in blocks.iter_blocks(bodies_parquet, rows, block_docs, part, jobs, ["body"]):
            texts = table.column("body").to_pylist()
            first, last = blocks.block_rows_range(block, rows, block_docs)
            doc_emb = np.asarray(emb[first:last], dtype=np.float32)
            key = blocks.content_key(texts, settings + "|" + blocks.array_key(doc_emb))
            found = saved.load(block, key)
            computed = found is None or len(found) != len(texts)
            if computed:
                cache = WordCache(kw.model.embed, cache_words)
                found = keywords_batched(kw, texts, doc_emb, top_n, batch_docs, cache)
                saved.save(block, key, found)
                words, hits = words + cache.embedded, hits + cache.hits
            writer.write_table(pa.table({"body_row": np.arange(first, last, dtype=np.int64), "keywords": found}, schema=schema))
            without += sum(not k for k in found)
            progress.advance(len(texts), computed=computed)
    saved.clear()
    return {"part": part, "jobs": jobs, "bodies": stop - start, "bodies_without_keywords": without,
            "blocks_reused": saved.reused, "words_embedded": words, "cache_hits": hits}


def gather_keywords(part_files, ad_bodies_parquet, out_parquet, batch_rows: int = 100_000) -> dict:
    """The parts (in part order) fanned out to the ads -> Parquet (ad_id string, keywords list<string>)
    in ``ads.parquet`` order. Holds the distinct bodies' keyword lists as one Arrow column (a few
    bytes a word), never a Python object per ad."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from alpha.core.io import iter_parquet_batches

    found = pa.concat_tables([pq.read_table(p) for p in part_files]) if part_files else _part_schema().empty_table()
    rows = found.column("body_row").to_numpy()
    if not np.array_equal(rows, np.arange(len(rows))):
        raise ValueError("keyword parts do not cover the distinct bodies in order; rerun extract_keywords")
    by_body = found.column("keywords").combine_chunks()
    schema = pa.schema([("ad_id", pa.string()), ("keywords", pa.list_(pa.string()))])
    ads = without = 0
    with atomic_path(out_parquet) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in iter_parquet_batches(ad_bodies_parquet, batch_rows, columns=["ad_id", "body_row"]):
            body_rows = batch.column("body_row").to_numpy()
            if len(body_rows) and body_rows.max() >= len(rows):
                raise ValueError(f"{ad_bodies_parquet}: body row {int(body_rows.max())} but the parts hold {len(rows)} bodies;"
                                 " rerun extract_keywords")
            keywords = by_body.take(pa.array(body_rows))
            writer.write_table(pa.table({"ad_id": batch.column("ad_id"), "keywords": keywords}, schema=schema))
            ads += len(body_rows)
            without += int(pc.sum(pc.equal(pc.list_value_length(keywords), 0)).as_py() or 0)
    log.info("keywords gathered: %d distinct bodies -> %d ads (%d without keywords)", len(rows), ads, without)
    return {"ads": ads, "distinct_bodies": len(rows), "ads_without_keywords": without}
