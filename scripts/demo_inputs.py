"""Snakemake entry: synthetic, format-faithful inputs for the embedded default (rule demo_inputs)."""
import logging
from pathlib import Path

from alpha import io
from alpha.demo_ads import write_demo_ads

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
counts = write_demo_ads(
    Path(smk.output.current).parent,
    seed=int(smk.params.seed),
    census_dir=Path(smk.input.census_state).parent,
    n_ads=int(smk.params.n_ads),
    n_pages=int(smk.params.n_pages),
)
logging.getLogger("alpha.demo").info("demo dumps written: %s", counts)
