# Pair mining for the transcreation / transsuasion tasks: the distinct ad bodies, one embedding each
# (scattered over `pairs.embed_jobs` jobs, fanned back out to the ads), then every within-page pair
# in the cosine interval, pages split over `pairs.n_shards` jobs.


rule distinct_bodies:
    input:
        ads="results/ads/ads.parquet",
        code=code_for("scripts/distinct_bodies.py"),
    output:
        bodies="results/embeddings/bodies.parquet",
        ad_bodies="results/embeddings/ad_bodies.parquet",
        report="results/embeddings/bodies.json",
    log:
        "results/logs/distinct_bodies.log",
    benchmark:
        "results/benchmarks/distinct_bodies.tsv"
    conda:
        "../envs/ads.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(60),
    script:
        "../scripts/distinct_bodies.py"


rule embed_ads:
    input:
        bodies="results/embeddings/bodies.parquet",
        code=code_for("scripts/embed_ads.py"),
    output:
        part="results/embeddings/parts/{part}.npy",
        report="results/embeddings/parts/{part}.json",
    log:
        "results/logs/embed_ads/{part}.log",
    benchmark:
        "results/benchmarks/embed_ads/{part}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 2
    resources:
        gres=get_embed_gres,
        mem_mb=by_attempt(4000),
        runtime=by_attempt(240),
    params:
        part=lambda wildcards: int(wildcards.part),
        jobs=config["pairs"]["embed_jobs"],
        block_rows=config["pairs"]["embed_block_rows"],
        batch_size=config["pairs"]["embed_batch_size"],
        allow_bf16=config["pairs"]["allow_bf16"],
    script:
        "../scripts/embed_ads.py"


rule gather_embeddings:
    input:
        parts=embed_parts(".npy"),
        reports=embed_parts(".json"),
        ad_bodies="results/embeddings/ad_bodies.parquet",
        code=code_for("scripts/gather_embeddings.py"),
    output:
        bodies="results/embeddings/bodies.npy",
        emb="results/embeddings/ads.npy",
        ids="results/embeddings/ads.ids.txt",
        report="results/embeddings/ads.json",
    log:
        "results/logs/gather_embeddings.log",
    benchmark:
        "results/benchmarks/gather_embeddings.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(60),
    script:
        "../scripts/gather_embeddings.py"


rule mine_pairs:
    input:
        ads="results/ads/ads.parquet",
        emb="results/embeddings/ads.npy",
        ids="results/embeddings/ads.ids.txt",
        code=code_for("scripts/mine_pairs.py"),
    output:
        pairs="results/pairs/shards/{shard}.parquet",
        report="results/pairs/shards/{shard}.json",
    log:
        "results/logs/mine_pairs/{shard}.log",
    benchmark:
        "results/benchmarks/mine_pairs/{shard}.tsv"
    group:
        "mining"
    conda:
        "../envs/embed.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    params:
        n_shards=config["pairs"]["n_shards"],
        low=config["pairs"]["cosine_low"],
        high=config["pairs"]["cosine_high"],
        min_distance=config["pairs"]["min_distance"],
        unit=config["pairs"]["distance_unit"],
        chunk_rows=config["pairs"]["chunk_rows"],
        batch_rows=config["pairs"]["batch_rows"],
    script:
        "../scripts/mine_pairs.py"
