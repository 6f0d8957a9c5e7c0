"""Snakemake entry: one model's option probabilities on one benchmark's prompts (rule score_benchmark)."""
import logging

import torch

from alpha.core import io
from alpha.eval import elicitation, scoring
from alpha.eval.task_spec import load_task

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
torch.set_num_threads(smk.threads)
spec = smk.params.spec
metadata = {"model": smk.wildcards.model, "benchmark": smk.wildcards.benchmark}
if spec.get("mode", "logprob") == "logprob":
    summary = scoring.score_prepared(
        smk.params.model_dir, smk.input.prepared, smk.output[0], task=load_task(spec["task"]),
        chat_template=spec["chat_template"], batch_size=int(spec["batch_size"]),
        max_tokens_per_batch=spec["max_tokens_per_batch"], on_too_long=spec["on_too_long"], metadata=metadata,
        permutations=int(spec.get("permutations", 1)), seed=int(spec.get("seed", 0)),
    )
else:
    summary = elicitation.elicit_prepared(
        smk.params.model_dir, smk.input.prepared, smk.output[0], task=load_task(spec["task"]), mode=spec["mode"],
        chat_template=spec["chat_template"], batch_size=int(spec["batch_size"]), seed=int(spec["seed"]), metadata=metadata,
    )
logging.getLogger("alpha").info("scored: %s", summary)
