"""Snakemake entry: one training shard set (rule make_shards)."""
from pathlib import Path

from alpha.core import io
from alpha.tasks import shards

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
spec = smk.params.spec
Path(smk.output[0]).mkdir(parents=True, exist_ok=True)
shards.build_shard_set(
    list(smk.input.samples),
    smk.output[0],
    n_shards=int(spec["n_shards"]),
    seed=int(smk.params.seed),
    caps=spec["caps"],
    external=spec["external"],
    batch_rows=int(smk.params.batch_rows),
)
