# Behaviour-opinion correlation (paper 3.2): do groups that behave alike on the ads also answer the
# Pew ATP surveys alike? Census regions and age x gender groups, Pearson r with a bootstrap CI.


rule behaviour_similarity:
    input:
        segments="results/ads/segments.parquet",
        state_population=config["census"]["state_population"],
        sex_age=config["census"]["sex_age"],
        pr_municipios=config["census"]["pr_municipios"],
        code=code_for("scripts/behaviour_similarity.py"),
    output:
        states="results/correlation/behaviour_states.csv",
        regions="results/correlation/behaviour_regions.csv",
        age_gender="results/correlation/behaviour_age_gender.csv",
    params:
        include_puerto_rico=config["census"]["include_puerto_rico"],
        min_ads=config["correlation"]["min_ads"],
        age_map=dict(sorted(config["correlation"]["age_map"].items())),
    log:
        "results/logs/behaviour_similarity.log",
    benchmark:
        "results/benchmarks/behaviour_similarity.tsv"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../envs/ads.yaml"
    script:
        "../scripts/behaviour_similarity.py"


rule opinion_similarity:
    input:
        waves=get_correlation_waves,
        code=code_for("scripts/opinion_similarity.py"),
    output:
        regions="results/correlation/opinion_regions.csv",
        age_gender="results/correlation/opinion_age_gender.csv",
        questions="results/correlation/opinion_questions.json",
    params:
        waves=config["correlation"]["atp_waves"],
    log:
        "results/logs/opinion_similarity.log",
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../envs/eval.yaml"
    script:
        "../scripts/opinion_similarity.py"


rule correlation_summary:
    input:
        behaviour_regions="results/correlation/behaviour_regions.csv",
        behaviour_age_gender="results/correlation/behaviour_age_gender.csv",
        opinion_regions="results/correlation/opinion_regions.csv",
        opinion_age_gender="results/correlation/opinion_age_gender.csv",
        code=code_for("scripts/correlation_summary.py"),
    output:
        summary=report("results/correlation/summary.json", caption="../report/correlation.rst", category="Behaviour and opinion"),
        figures=report(
            directory("results/figures/correlation"),
            patterns=["{name}.png"],
            caption="../report/correlation_figures.rst",
            category="Behaviour and opinion",
        ),
    params:
        n_boot=config["correlation"]["n_boot"],
        seed=config["seed"],
    log:
        "results/logs/correlation_summary.log",
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(20),
    conda:
        "../envs/eval.yaml"
    script:
        "../scripts/correlation_summary.py"
