"""Snakemake entry: KeyBERT keywords of one job's blocks of the distinct ad bodies (rule extract_keywords)."""
import torch

from alpha.core import io
from alpha.tasks import keywords

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
torch.set_num_threads(smk.threads)
report = keywords.keywords_part(
    smk.input.bodies,
    smk.input.emb,
    smk.output.part,
    part=smk.params.part,
    jobs=int(smk.params.jobs),
    block_docs=int(smk.params.block_docs),
    top_n=int(smk.params.top_n),
    batch_docs=int(smk.params.batch_docs),
)
io.write_json(smk.output.report, report)
