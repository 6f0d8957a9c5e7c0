"""Snakemake entry: the embedded default's tokenizer and tiny Llama (rule build_tiny_model)."""
from alpha.core import io
from alpha.demo import tiny_model
from alpha.tasks.sharegpt import load_sharegpt

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
external = []
if smk.input.external:
    external = (m["content"] for record in load_sharegpt(smk.input.external, "external") for m in record["messages"])
report = tiny_model.build(smk.output[0], tiny_model.corpus(smk.input.samples, external), seed=int(smk.params.seed), **smk.params.spec)
io.write_json(f"{smk.output[0]}/build_report.json", report)
