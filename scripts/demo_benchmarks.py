"""Snakemake entry: the embedded default's benchmark files, in the released layouts (rule demo_benchmarks)."""
import logging

from alpha import io
from alpha.benchmarks.demo import write_demo_benchmarks
from alpha.benchmarks.demo_surveys import write_demo_surveys

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
out, seed = smk.output[0], int(smk.params.seed)
written = {**write_demo_benchmarks(out, seed), **write_demo_surveys(out, seed)}
logging.getLogger("alpha").info("demo benchmarks written under %s: %s", out, ", ".join(sorted(written)))
