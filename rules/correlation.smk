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
    log:
        "results/logs/behaviour_similarity.log",
    benchmark:
        "results/benchmarks/behaviour_similarity.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    params:
        include_puerto_rico=config["census"]["include_puerto_rico"],
        min_ads=config["correlation"]["min_ads"],
        age_map=dict(sorted(config["correlation"]["age_map"].items())),
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
    log:
        "results/logs/opinion_similarity.log",
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    params:
        waves=config["correlation"]["atp_waves"],
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
        summary=report(
            "results/correlation/summary.json", caption="../report/correlation.rst", category="Behaviour and opinion"
        ),
        figures=report(
            directory("results/figures/correlation"),
            patterns=["{name}.png"],
            caption="../report/correlation_figures.rst",
            category="Behaviour and opinion",
        ),
    log:
        "results/logs/correlation_summary.log",
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(20),
    params:
        n_boot=config["correlation"]["n_boot"],
        seed=config["seed"],
    script:
        "../scripts/correlation_summary.py"
