"""Snakemake entry: KeyBERT keywords of every ad body, reusing the cached embeddings (rule extract_keywords)."""
from pathlib import Path

import torch

from alpha.core import io
from alpha.tasks import keywords

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
torch.set_num_threads(smk.threads)
report = keywords.keywords_for_ads(
    smk.input.ads,
    Path(smk.input.emb).with_suffix(""),
    smk.output.keywords,
    top_n=int(smk.params.top_n),
    batch_docs=int(smk.params.batch_docs),
    cache_bodies=int(smk.params.cache_bodies),
)
io.write_json(smk.output.report, report)
