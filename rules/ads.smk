# Ads stage: dumps → one clean Parquet table → census-normalised segments → Figure-2 views.


rule ingest_dump:
    input:
        unpack(get_dump_files),
        code=code_for("scripts/ingest_dump.py"),
    output:
        ads="results/ads/dumps/{dump}.parquet",
        quarantine="results/ads/dumps/{dump}.quarantine.parquet",
        report="results/ads/dumps/{dump}.report.json",
    log:
        "results/logs/ingest_dump/{dump}.log",
    benchmark:
        "results/benchmarks/ingest_dump/{dump}.tsv"
    group:
        "ingest"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    params:
        dump=get_dump_params,
        min_words=config["ads"]["cleaning"]["min_words"],
        drop_unnamed_pages=config["ads"]["cleaning"]["drop_unnamed_pages"],
        require_demographics=config["ads"]["cleaning"]["require_demographics"],
        batch_rows=config["ads"]["batch_rows"],
    script:
        "../scripts/ingest_dump.py"


rule merge_ads:
    input:
        ads=get_ingested("ads"),
        quarantine=get_ingested("quarantine"),
        reports=get_ingested("report"),
        code=code_for("scripts/merge_ads.py"),
    output:
        ads="results/ads/ads.parquet",
        quarantine="results/ads/quarantine.parquet",
        duplicates="results/ads/duplicates.parquet",
        report="results/ads/ingest_report.json",
    log:
        "results/logs/merge_ads.log",
    benchmark:
        "results/benchmarks/merge_ads.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    params:
        batch_rows=config["ads"]["batch_rows"],
    script:
        "../scripts/merge_ads.py"


rule normalise_census:
    input:
        ads="results/ads/ads.parquet",
        state_population=config["census"]["state_population"],
        sex_age=config["census"]["sex_age"],
        pr_municipios=config["census"]["pr_municipios"],
        code=code_for("scripts/normalise_census.py"),
    output:
        segments="results/ads/segments.parquet",
        report="results/ads/census_report.json",
    log:
        "results/logs/normalise_census.log",
    benchmark:
        "results/benchmarks/normalise_census.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    params:
        include_puerto_rico=config["census"]["include_puerto_rico"],
        batch_rows=config["census"]["batch_rows"],
    script:
        "../scripts/normalise_census.py"


rule delivery_figures:
    input:
        ads="results/ads/ads.parquet",
        segments="results/ads/segments.parquet",
        state_population=config["census"]["state_population"],
        sex_age=config["census"]["sex_age"],
        pr_municipios=config["census"]["pr_municipios"],
        code=code_for("scripts/plot_delivery.py"),
    output:
        dir=report(
            directory("results/figures/delivery"),
            patterns=["{name}.png"],
            caption="../report/delivery.rst",
            category="Ad delivery",
        ),
    log:
        "results/logs/delivery_figures.log",
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(10),
    params:
        ad_ids=config["figures"]["ad_ids"],
        n_auto=config["figures"]["n_auto"],
        include_puerto_rico=config["census"]["include_puerto_rico"],
    script:
        "../scripts/plot_delivery.py"
