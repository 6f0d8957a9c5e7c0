"""Snakemake entry: the embedding parts joined, and fanned out to the ads (rule gather_embeddings)."""
from pathlib import Path

from alpha.core import io
from alpha.pairs import embeddings

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
report = embeddings.gather(list(smk.input.parts), smk.input.ad_bodies, smk.output.bodies, Path(smk.output.emb).with_suffix(""))
report["jobs"] = [io.read_json(p) for p in smk.input.reports]
io.write_json(smk.output.report, report)
