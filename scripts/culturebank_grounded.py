"""Snakemake entry: CultureBank grounded evaluation of one model (rule culturebank_grounded)."""
import torch

from alpha.core import io
from alpha.eval import grounded
from alpha.eval.items import read_items
from alpha.eval.scoring import load_model

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
torch.set_num_threads(smk.threads)
spec = smk.params.spec
items = grounded.test_items(read_items(smk.input.prepared), spec["max_items"])
model, tokenizer = load_model(spec["model_dir"])
answers = grounded.answer_questions(model, tokenizer, [i["eval_question"] for i in items], template=spec["chat_template"],
                                    max_new_tokens=int(spec["max_new_tokens"]), seed=int(spec["seed"]))
# a model that judges its own answers is not loaded a second time; any other is freed first
judge_model = (model, tokenizer) if spec["judge_dir"] == spec["model_dir"] else None
del model
if spec["judge_dir"]:
    judge = grounded.LocalJudge(*(judge_model or load_model(spec["judge_dir"])), template=spec["judge_template"],
                                name=spec["judge_name"])
else:
    judge = grounded.EndpointJudge(spec["judge_url"], spec["judge_model_name"], spec["judge_api_key_env"])
rows, summary = grounded.evaluate(items, answers, judge)
grounded.write(rows, summary, smk.wildcards.model, smk.output.per_item, smk.output.result)
