# Zero-shot evaluation (paper 4.2): each registry benchmark is prepared once, every registry model
# scores its prompts (one forward pass per prompt; the GPU step), metrics run on CPU from the saved
# per-item probabilities (a new metric never reruns scoring), and the tables collect the cells.


rule prepare_benchmark:
    input:
        unpack(get_benchmark_inputs),
        code=code_for("scripts/prepare_benchmark.py"),
    output:
        prepared="results/eval_items/{benchmark}.parquet",
        quarantine="results/eval_items/{benchmark}.quarantine.jsonl",
        report="results/eval_items/{benchmark}.report.json",
    log:
        "results/logs/prepare_benchmark/{benchmark}.log",
    benchmark:
        "results/benchmarks/prepare_benchmark/{benchmark}.tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    params:
        spec=get_benchmark_params,
    script:
        "../scripts/prepare_benchmark.py"


rule score_benchmark:
    input:
        weights=get_model_weights,
        prepared="results/eval_items/{benchmark}.parquet",
        task=get_task_file,
        code=code_for("scripts/score_benchmark.py"),
    output:
        "results/eval/{model}/{benchmark}.parquet",
    log:
        "results/logs/score_benchmark/{model}/{benchmark}.log",
    benchmark:
        "results/benchmarks/score_benchmark/{model}/{benchmark}.tsv"
    conda:
        "../envs/eval.yaml"
    threads: config["eval"]["threads"]
    resources:
        gres=get_score_gres,
        mem_mb=get_score_resource("mem_mb"),
        runtime=get_score_resource("runtime"),
    params:
        model_dir=get_model_dir,
        spec=get_score_params,
    script:
        "../scripts/score_benchmark.py"


rule benchmark_metrics:
    input:
        prepared="results/eval_items/{benchmark}.parquet",
        scores="results/eval/{model}/{benchmark}.parquet",
        task=get_task_file,
        code=code_for("scripts/benchmark_metrics.py"),
    output:
        "results/eval/{model}/{benchmark}.json",
    log:
        "results/logs/benchmark_metrics/{model}/{benchmark}.log",
    group:
        "metrics"
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(20),
    params:
        spec=get_metric_params,
    script:
        "../scripts/benchmark_metrics.py"


rule table1:
    input:
        results=get_table_results(TABLE1_COLUMNS),
        code=code_for("scripts/make_table.py"),
    output:
        csv=report("results/table1.csv", caption="../report/table1.rst", category="Tables"),
        sidecar="results/table1.json",
        ci_csv="results/table1_ci.csv",
        delta_csv="results/table1_delta.csv",
        delta="results/table1_delta.json",
    log:
        "results/logs/table1.log",
    localrule: True
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=get_table_params,
    script:
        "../scripts/make_table.py"


rule table2:
    input:
        results=get_table_results([TABLE2_COLUMN]),
        code=code_for("scripts/make_table.py"),
    output:
        csv=report("results/table2.csv", caption="../report/table2.rst", category="Tables"),
        sidecar="results/table2.json",
    log:
        "results/logs/table2.log",
    localrule: True
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=get_table_params,
    script:
        "../scripts/make_table.py"


rule ablation_table:
    input:
        results=get_ablation_results,
        code=code_for("scripts/make_table.py"),
    output:
        csv=report("results/ablation.csv", caption="../report/ablation.rst", category="Tables"),
        sidecar="results/ablation.json",
    log:
        "results/logs/ablation_table.log",
    localrule: True
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=get_ablation_params,
    script:
        "../scripts/make_table.py"


rule plot_table1:
    input:
        sidecar="results/table1.json",
        delta="results/table1_delta.json",
        code=code_for("scripts/plot_table1.py"),
    output:
        report("results/figures/table1.png", caption="../report/table1_figure.rst", category="Tables"),
    log:
        "results/logs/plot_table1.log",
    localrule: True
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_table1.py"


# CultureBank's grounded evaluation (eval.grounded; off by default): free-text answers judged for
# entailment of the cultural knowledge by a local causal LM or an OpenAI-compatible endpoint.
rule culturebank_grounded:
    input:
        unpack(get_grounded_inputs),
        code=code_for("scripts/culturebank_grounded.py"),
    output:
        per_item="results/eval/{model}/culturebank_grounded.parquet",
        result="results/eval/{model}/culturebank_grounded.json",
    log:
        "results/logs/culturebank_grounded/{model}.log",
    benchmark:
        "results/benchmarks/culturebank_grounded/{model}.tsv"
    conda:
        "../envs/eval.yaml"
    threads: config["eval"]["threads"]
    resources:
        gres=get_score_gres,
        mem_mb=get_score_resource("mem_mb"),
        runtime=get_score_resource("runtime"),
    params:
        spec=get_grounded_params,
    script:
        "../scripts/culturebank_grounded.py"


rule grounded_table:
    input:
        results=expand("results/eval/{model}/culturebank_grounded.json", model=list(MODELS)),
        code=code_for("scripts/make_table.py"),
    output:
        csv=report("results/culturebank_grounded.csv", caption="../report/grounded.rst", category="Tables"),
        sidecar="results/culturebank_grounded.json",
    log:
        "results/logs/grounded_table.log",
    localrule: True
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=get_table_params,
    script:
        "../scripts/make_table.py"


# The elicitation modes side by side (registry entries with mode: sampled / verbalised, next to their
# logprob twin): one column per metric and mode, with the invalid-output counts in the sidecar.
rule elicitation_table:
    input:
        results=get_elicitation_results,
        code=code_for("scripts/make_table.py"),
    output:
        csv=report("results/elicitation.csv", caption="../report/elicitation.rst", category="Tables"),
        sidecar="results/elicitation.json",
    log:
        "results/logs/elicitation_table.log",
    localrule: True
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=get_elicitation_params,
    script:
        "../scripts/make_table.py"
