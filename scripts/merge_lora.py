"""Snakemake entry: fold a LoRA adapter into its base weights, in a process of its own (rule merge_lora)."""
from alpha.core import io
from alpha.train import finetune

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
report = finetune.merge_lora(smk.params.base, smk.input.adapter, smk.output[0])
io.write_json(f"{smk.output[0]}/merge_report.json", report)
