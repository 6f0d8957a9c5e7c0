# Training-task evaluation (paper 4.1): perplexity, BLEU, ROUGE-L and BERTScore on TAG/TC/TS and
# TAP accuracy, for every fine-tuned model and its base, on both held-out test sets.


rule eval_train_tasks:
    input:
        weights=get_model_weights,
        test_unseen_advertiser="results/tasks/test/test_unseen_advertiser.parquet",
        test_after_cutoff="results/tasks/test/test_after_cutoff.parquet",
        code=code_for("scripts/eval_train_tasks.py"),
    output:
        metrics="results/train_eval/{model}.json",
        per_item="results/train_eval/{model}.items.parquet",
    log:
        "results/logs/eval_train_tasks/{model}.log",
    benchmark:
        "results/benchmarks/eval_train_tasks/{model}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gres=get_eval_gres,
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        model_dir=get_model_dir,
        spec=get_train_eval_params,
    script:
        "../scripts/eval_train_tasks.py"


rule train_tasks_table:
    input:
        results=expand("results/train_eval/{model}.json", model=train_eval_models()),
        code=code_for("scripts/train_tasks_table.py"),
    output:
        report(
            "results/train_tasks.csv",
            caption="../report/train_tasks.rst",
            category="Training tasks",
        ),
    log:
        "results/logs/train_tasks_table.log",
    localrule: True
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/train_tasks_table.py"
