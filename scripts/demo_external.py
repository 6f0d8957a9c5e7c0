"""Snakemake entry: the embedded demo's ShareGPT-format instruction set (rule demo_external)."""
from pathlib import Path

from alpha.core import io
from alpha.tasks import sharegpt

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
Path(smk.output[0]).parent.mkdir(parents=True, exist_ok=True)
sharegpt.write_demo_sharegpt(smk.output[0], n=int(smk.params.n), seed=int(smk.params.seed))
