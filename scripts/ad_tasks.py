"""Snakemake entry: TAG and TAP samples, one pass over the ads (rule ad_tasks)."""
from alpha.core import io
from alpha.tasks import builders

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
report = builders.build_ad_tasks(
    smk.input.ads,
    smk.input.segments,
    smk.input.keywords,
    smk.input.splits,
    smk.output.samples,
    tag_audiences=smk.params.tag_audiences,
    batch_rows=int(smk.params.batch_rows),
)
io.write_json(smk.output.report, report)
