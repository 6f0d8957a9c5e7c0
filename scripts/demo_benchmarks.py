"""Snakemake entry: the embedded default's benchmark files, in the released layouts (rule demo_benchmarks)."""
import logging

from alpha.core import io
from alpha.demo.benchmarks import write_demo_benchmarks
from alpha.demo.lean import planted_lean
from alpha.demo.surveys import write_demo_surveys

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
out, seed = smk.output[0], int(smk.params.seed)
# the surveys' group opinions follow the demo ads' planted audiences (paper 3.2's relationship)
written = {**write_demo_benchmarks(out, seed), **write_demo_surveys(out, seed, lean=planted_lean())}
logging.getLogger("alpha").info("demo benchmarks written under %s: %s", out, ", ".join(sorted(written)))
