"""Snakemake entry: the paper's Figure-2 view (raw vs census-normalised delivery) for chosen ads (rule delivery_figures)."""
from alpha.ads import census, figures
from alpha.core import io

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
figures.plot_delivery_figures(
    smk.input.ads,
    census.load_census_for_rule(smk),
    ad_ids=list(smk.params.ad_ids or []),
    n_auto=int(smk.params.n_auto),
    out_dir=smk.output.dir,
)
