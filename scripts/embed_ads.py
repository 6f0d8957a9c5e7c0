"""Snakemake entry: one sentence embedding per ad body, cached as NumPy (rule embed_ads)."""
import logging
from pathlib import Path

import pyarrow.parquet as pq
import torch

from alpha.core import io
from alpha.pairs import embeddings

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
torch.set_num_threads(smk.threads)  # fixed thread count: the same floats on every machine that runs it
table = pq.read_table(smk.input.ads, columns=["ad_id", "body"])
texts, index = embeddings.distinct_texts(table.column("body").to_pylist())  # each distinct body once
model = embeddings.load_model()
bf16 = embeddings.choose_precision(model, texts[:256], allow_bf16=bool(smk.params.allow_bf16))
vectors = embeddings.encode(model, texts, batch_size=int(smk.params.batch_size), bf16=bf16)
embeddings.save(Path(smk.output.emb).with_suffix(""), table.column("ad_id").to_pylist(), vectors[index])
logging.getLogger("alpha.pairs.embeddings").info("%d ads embedded: %d distinct bodies (%s)", len(index), len(texts),
                                                 "bf16" if bf16 else "float32")
