# ALPHA50M instruction tasks: keywords and splits per ad, TAG/TAP per ad, TC/TS per pair shard,
# held-out test sets, then training shard sets (the full mix and the ablations) from config.


rule extract_keywords:
    input:
        bodies="results/embeddings/bodies.parquet",
        emb="results/embeddings/bodies.npy",
        code=code_for("scripts/extract_keywords.py"),
    output:
        part="results/tasks/keywords/parts/{part}.parquet",
        report="results/tasks/keywords/parts/{part}.json",
    log:
        "results/logs/extract_keywords/{part}.log",
    benchmark:
        "results/benchmarks/extract_keywords/{part}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 2
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(240),
    params:
        part=lambda wildcards: int(wildcards.part),
        jobs=config["tasks"]["keywords"]["jobs"],
        block_docs=config["tasks"]["keywords"]["block_docs"],
        top_n=config["tasks"]["keywords"]["top_n"],
        batch_docs=config["tasks"]["keywords"]["batch_docs"],
    script:
        "../scripts/extract_keywords.py"


rule gather_keywords:
    input:
        parts=keyword_parts(".parquet"),
        reports=keyword_parts(".json"),
        ad_bodies="results/embeddings/ad_bodies.parquet",
        code=code_for("scripts/gather_keywords.py"),
    output:
        keywords="results/tasks/keywords.parquet",
        report="results/tasks/keywords.json",
    log:
        "results/logs/gather_keywords.log",
    benchmark:
        "results/benchmarks/gather_keywords.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(60),
    script:
        "../scripts/gather_keywords.py"


rule split_ads:
    input:
        ads="results/ads/ads.parquet",
        code=code_for("scripts/split_ads.py"),
    output:
        splits="results/tasks/splits.parquet",
        report="results/tasks/splits.json",
    log:
        "results/logs/split_ads.log",
    benchmark:
        "results/benchmarks/split_ads.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(30),
    params:
        seed=config["seed"],
        heldout_page_fraction=config["tasks"]["splits"]["heldout_page_fraction"],
        cutoff_date=str(config["tasks"]["splits"]["cutoff_date"]),
    script:
        "../scripts/split_ads.py"


rule ad_tasks:
    input:
        unpack(get_task_inputs),
        keywords="results/tasks/keywords.parquet",
        code=code_for("scripts/ad_tasks.py"),
    output:
        samples="results/tasks/samples/ads.parquet",
        report="results/tasks/samples/ads.json",
    log:
        "results/logs/ad_tasks.log",
    benchmark:
        "results/benchmarks/ad_tasks.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    params:
        tag_audiences=config["tasks"]["tag_audiences"],
        batch_rows=config["tasks"]["batch_rows"],
    script:
        "../scripts/ad_tasks.py"


rule pair_tasks:
    input:
        unpack(get_task_inputs),
        pairs="results/pairs/shards/{shard}.parquet",
        code=code_for("scripts/pair_tasks.py"),
    output:
        samples="results/tasks/samples/pairs/{shard}.parquet",
        report="results/tasks/samples/pairs/{shard}.json",
    log:
        "results/logs/pair_tasks/{shard}.log",
    benchmark:
        "results/benchmarks/pair_tasks/{shard}.tsv"
    group:
        "mining"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    params:
        region_min_rank_diff=config["tasks"]["region_min_rank_diff"],
        min_distance=config["pairs"]["min_distance"],
        batch_rows=config["tasks"]["batch_rows"],
    script:
        "../scripts/pair_tasks.py"


rule test_sets:
    input:
        samples=get_sample_files(),
        code=code_for("scripts/test_sets.py"),
    output:
        test_unseen_advertiser="results/tasks/test/test_unseen_advertiser.parquet",
        test_after_cutoff="results/tasks/test/test_after_cutoff.parquet",
        report="results/tasks/test/report.json",
    log:
        "results/logs/test_sets.log",
    benchmark:
        "results/benchmarks/test_sets.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    params:
        seed=config["seed"],
        min_class_size=config["tasks"]["tap_min_class_size"],
        batch_rows=config["tasks"]["batch_rows"],
    script:
        "../scripts/test_sets.py"


rule demo_external:
    input:
        code=code_for("scripts/demo_external.py"),
    output:
        DEMO_EXTERNAL,
    log:
        "results/logs/demo_external.log",
    benchmark:
        "results/benchmarks/demo_external.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(1000),
        runtime=by_attempt(10),
    params:
        seed=config["seed"],
        n=config["demo"]["n_external"],
    script:
        "../scripts/demo_external.py"


rule make_shards:
    input:
        samples=get_sample_files(),
        external=get_shard_set_external_files,
        code=code_for("scripts/make_shards.py"),
    output:
        directory("results/shards/{shard_set}"),
    log:
        "results/logs/make_shards/{shard_set}.log",
    benchmark:
        "results/benchmarks/make_shards/{shard_set}.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    params:
        seed=config["seed"],
        spec=get_shard_set_spec,
        batch_rows=config["shards"]["batch_rows"],
    script:
        "../scripts/make_shards.py"
