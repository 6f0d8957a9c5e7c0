"""Snakemake entry: results/train_tasks.csv, one row per model x test split x task (rule train_tasks_table)."""
import csv

from alpha.core import io

COLUMNS = ["model", "split", "task", "n", "perplexity", "bleu", "rouge_l", "bertscore_f1", "tap_accuracy",
           "tap_accuracy_ranked", "tap_majority_baseline", "tap_unparsed"]

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
with open(smk.output[0], "w", newline="", encoding="utf-8") as fh:
    writer = csv.DictWriter(fh, COLUMNS, extrasaction="raise")
    writer.writeheader()
    for path in smk.input.results:
        result = io.read_json(path)
        for row in result["rows"]:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in {"model": result["model"], **row}.items()})
