"""Snakemake entry: the paper's Figure-2 view (raw vs census-normalised delivery) for chosen ads (rule delivery_figures)."""
from alpha import census, figures, io

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
table = census.load_census(
    smk.input.state_population,
    smk.input.sex_age,
    smk.input.pr_municipios,
    include_puerto_rico=bool(smk.params.get("include_puerto_rico", True)),
)
figures.plot_delivery_figures(
    smk.input.ads,
    table,
    ad_ids=list(smk.params.ad_ids or []),
    n_auto=int(smk.params.n_auto),
    out_dir=smk.output.dir,
)
