"""Snakemake entry: the keyword parts fanned out to the ads (rule gather_keywords)."""
from alpha.core import io
from alpha.tasks import keywords

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
report = keywords.gather_keywords(list(smk.input.parts), smk.input.ad_bodies, smk.output.keywords)
parts = [io.read_json(p) for p in smk.input.reports]
report.update({key: sum(p[key] for p in parts) for key in ("words_embedded", "cache_hits", "blocks_reused")})
report["jobs"] = parts
io.write_json(smk.output.report, report)
