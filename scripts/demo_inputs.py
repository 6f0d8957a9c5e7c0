"""Snakemake entry: synthetic, format-faithful inputs for the embedded default (rule demo_inputs)."""
import json
import logging
from pathlib import Path

from alpha.core import io
from alpha.demo.ads import write_demo_ads

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
summary = write_demo_ads(
    Path(smk.output.current).parent,
    seed=int(smk.params.seed),
    n_ads=int(smk.params.n_ads),
    n_pages=int(smk.params.n_pages),
    census_dir=Path(smk.input.census_state).parent,
    repeat_body_share=float(smk.params.repeat_body_share),
)
logging.getLogger("alpha.demo.ads").info("demo dumps written: %s", json.dumps(summary, sort_keys=True))
