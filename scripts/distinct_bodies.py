"""Snakemake entry: the distinct ad bodies and each ad's body row (rule distinct_bodies)."""
from alpha.core import io
from alpha.pairs import bodies

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
io.write_json(smk.output.report, bodies.plan(smk.input.ads, smk.output.bodies, smk.output.ad_bodies))
