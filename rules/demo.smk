# The embedded default: format-faithful synthetic inputs, generated deterministically from config.


rule demo_inputs:
    input:
        census_state=config["census"]["state_population"],
        census_sex_age=config["census"]["sex_age"],
        code=workflow.source_path("../scripts/alpha/demo.py"),
    output:
        current=DEMO_DUMPS["current"]["path"],
        legacy=DEMO_DUMPS["legacy"]["path"],
        page=DEMO_DUMPS["page"]["path"],
        export=DEMO_DUMPS["export"]["path"],
        export_demos=DEMO_DUMPS["export"]["demographics"],
        export_regions=DEMO_DUMPS["export"]["regions"],
        media=DEMO_MEDIA,
        truth=f"{DEMO_ADS}/truth.parquet",
    params:
        seed=config["seed"],
        n_ads=config["demo"]["n_ads"],
        n_pages=config["demo"]["n_pages"],
    log:
        "results/logs/demo_inputs.log",
    resources:
        mem_mb=2000,
        runtime=10,
    threads: 1
    conda:
        "../envs/ads.yaml"
    script:
        "../scripts/demo_inputs.py"
