"""Snakemake entry: census-normalise every ad's delivery, streaming (rule normalise_census)."""
from alpha.ads import census
from alpha.core import io

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
report = census.normalise_ads(
    smk.input.ads, smk.output.segments, census.load_census_for_rule(smk), batch_rows=int(smk.params.batch_rows)
)
io.write_json(smk.output.report, report)
