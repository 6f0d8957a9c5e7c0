"""Snakemake entry: one model on the held-out training-task test sets (rule eval_train_tasks)."""
import torch

from alpha.core import io
from alpha.train import task_eval

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
torch.set_num_threads(smk.threads)
spec = smk.params.spec
test_files = {split: smk.input[split] for split in ("test_unseen_advertiser", "test_after_cutoff")}
samples = task_eval.select_samples(test_files, int(spec["max_per_task"]), int(spec["seed"]))
scorer = task_eval.Scorer(smk.params.model_dir, spec["chat_template"], int(spec["batch_size"]))
rows, items = task_eval.evaluate(scorer, samples, int(spec["max_new_tokens"]))
task_eval.write_items(items, smk.output.per_item)
io.write_json(smk.output.metrics, {
    "model": smk.wildcards.model,
    "samples": len(samples),
    "signatures": task_eval.signatures(),
    "rows": [{k: task_eval.finite(v) for k, v in row.items()} for row in rows],
})
