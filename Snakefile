# ALPHA / "Align Via Actions": behaviour data from Meta Ad Library dumps → census-normalised
# segments → instruction tasks → fine-tuning → zero-shot benchmarks → results/table1.csv.
# This file is the table of contents: configuration, the stages, and the targets.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/ads.smk"
include: "rules/pairs.smk"
include: "rules/tasks.smk"
include: "rules/models.smk"
include: "rules/train_eval.smk"
include: "rules/eval.smk"
include: "rules/correlation.smk"
include: "rules/dataset.smk"


rule all:
    default_target: True
    input:
        get_final_targets,
    localrule: True
