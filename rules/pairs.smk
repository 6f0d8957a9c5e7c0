# Pair mining for the transcreation / transsuasion tasks: one embedding per ad, then every
# within-page pair in the cosine interval, pages split over `pairs.n_shards` jobs.


rule embed_ads:
    input:
        ads="results/ads/ads.parquet",
        code=code_for("scripts/embed_ads.py"),
    output:
        emb="results/embeddings/ads.npy",
        ids="results/embeddings/ads.ids.txt",
    log:
        "results/logs/embed_ads.log",
    benchmark:
        "results/benchmarks/embed_ads.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 2
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    params:
        batch_size=config["pairs"]["embed_batch_size"],
        allow_bf16=config["pairs"]["allow_bf16"],
    script:
        "../scripts/embed_ads.py"


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
    script:
        "../scripts/mine_pairs.py"
