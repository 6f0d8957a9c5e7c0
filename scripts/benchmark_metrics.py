"""Snakemake entry: every metric of one benchmark for one model, from saved scores (rule benchmark_metrics)."""
from alpha.core import io
from alpha.eval import results
from alpha.eval.task_spec import load_task

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
spec = smk.params.spec
result = results.evaluate(
    load_task(spec["task"]), spec["variant"], smk.input.prepared, smk.input.scores,
    benchmark=smk.wildcards.benchmark, model=smk.wildcards.model, bootstrap=spec.get("bootstrap"),
)
io.write_json(smk.output[0], result)
