"""Snakemake entry: Table 1 as a heatmap, models x columns, fine-tunes' significant differences marked (rule plot_table1)."""
from alpha.core import io
from alpha.eval import figures

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
figures.plot_table(io.read_json(smk.input.sidecar), smk.output[0], delta=io.read_json(smk.input.delta))
