# The embedded default: format-faithful synthetic inputs, generated deterministically from config.
# The raw dumps carry access_token values in their snapshot URLs, as real dumps do, so they are
# temp(): removed once ingested, no token stays under results/ (regenerated on demand, same bytes).


rule demo_inputs:
    input:
        census_state=config["census"]["state_population"],
        census_sex_age=config["census"]["sex_age"],
        code=code_for("scripts/demo_inputs.py"),
    output:
        current=temp(DEMO_DUMPS["current"]["path"]),
        legacy=temp(DEMO_DUMPS["legacy"]["path"]),
        page=temp(DEMO_DUMPS["page"]["path"]),
        single=temp(DEMO_DUMPS["single"]["path"]),
        wide=temp(DEMO_DUMPS["wide"]["path"]),
        library_report=f"{DEMO_ADS}/ads_library_report.csv",  # not an ad dump: a test checks the error
        export=temp(DEMO_DUMPS["export"]["path"]),
        export_demos=temp(DEMO_DUMPS["export"]["demographics"]),
        export_regions=temp(DEMO_DUMPS["export"]["regions"]),
        media=temp(DEMO_MEDIA),
        truth=f"{DEMO_ADS}/truth.parquet",
    log:
        "results/logs/demo_inputs.log",
    benchmark:
        "results/benchmarks/demo_inputs.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(10),
    params:
        seed=config["seed"],
        n_ads=config["demo"]["n_ads"],
        n_pages=config["demo"]["n_pages"],
        repeat_body_share=config["demo"]["repeat_body_share"],
    script:
        "../scripts/demo_inputs.py"


# The six benchmarks in their released layouts (OpinionQA human_resp/model_input, raw ATP .sav waves
# with field dates, GSS .dta, GlobalOpinionQA / CultureBank / CultureNLI files), small and planted.
rule demo_benchmarks:
    input:
        code=code_for("scripts/demo_benchmarks.py"),
    output:
        directory(DEMO_BENCHMARKS),
    log:
        "results/logs/demo_benchmarks.log",
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(10),
    params:
        seed=config["seed"],
    script:
        "../scripts/demo_benchmarks.py"
