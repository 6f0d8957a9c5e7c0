"""Snakemake entry: census-normalise every ad's delivery, streaming (rule normalise_census)."""
from alpha import census, io

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
table = census.load_census(
    smk.input.state_population,
    smk.input.sex_age,
    smk.input.pr_municipios,
    include_puerto_rico=bool(smk.params.include_puerto_rico),
)
report = census.normalise_ads(smk.input.ads, smk.output.segments, table, batch_rows=int(smk.params.batch_rows))
io.write_json(smk.output.report, report)
