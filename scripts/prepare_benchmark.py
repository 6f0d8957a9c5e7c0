"""Snakemake entry: one benchmark's released files -> prepared items (rule prepare_benchmark)."""
from alpha import evaluation, io

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
spec = smk.params.spec
evaluation.prepare(
    evaluation.load_task(spec["task"]), spec["path"], spec["options"], spec["variant"],
    smk.output.prepared, smk.output.quarantine, smk.output.report, benchmark=smk.wildcards.benchmark,
)
