"""Snakemake entry: behaviour vs opinion similarity across group pairs, with figures (rule correlation_summary)."""
from pathlib import Path

import pandas as pd

from alpha.core import io
from alpha.correlation import figures, summary

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
read = {name: pd.read_csv(smk.input[name], index_col=0) for name in
        ("behaviour_regions", "behaviour_age_gender", "opinion_regions", "opinion_age_gender")}
behaviour = {"regions": read["behaviour_regions"], "age_gender": read["behaviour_age_gender"]}
opinion = {"regions": read["opinion_regions"], "age_gender": read["opinion_age_gender"]}
summary = summary.summarise(behaviour, opinion, n_boot=int(smk.params.n_boot), seed=int(smk.params.seed))
io.write_json(smk.output.summary, io.finite(summary))
out = Path(smk.output.figures)
for kind, title in (("regions", "Census regions"), ("age_gender", "Age x gender groups")):
    figures.plot_similarity_heatmaps(behaviour[kind], opinion[kind], title, out / f"similarity_{kind}.png")
figures.plot_correlation_scatter(summary, out / "scatter.png")
