"""Snakemake entry: sentence embeddings of one job's blocks of the distinct ad bodies (rule embed_ads)."""
import torch

from alpha.core import io
from alpha.pairs import embeddings

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
torch.set_num_threads(smk.threads)  # fixed thread count: the same floats on every machine that runs it
report = embeddings.embed_part(
    smk.input.bodies,
    smk.output.part,
    part=smk.params.part,
    jobs=int(smk.params.jobs),
    block_rows=int(smk.params.block_rows),
    batch_size=int(smk.params.batch_size),
    allow_bf16=bool(smk.params.allow_bf16),
)
io.write_json(smk.output.report, report)
