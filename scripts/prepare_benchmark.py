"""Snakemake entry: one benchmark's released files -> prepared items (rule prepare_benchmark)."""
from alpha.core import io
from alpha.eval import prepare
from alpha.eval.task_spec import load_task

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
spec = smk.params.spec
prepare.prepare(
    load_task(spec["task"]), spec["path"], spec["options"], spec["variant"],
    smk.output.prepared, smk.output.quarantine, smk.output.report, benchmark=smk.wildcards.benchmark,
)
