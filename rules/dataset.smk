# Hugging Face datasets: each training shard set (and the held-out test sets, limited to its tasks) as
# Parquet files that `datasets.load_dataset` reads, with a dataset card generated from the data and export.json.
import functools
import operator

from alpha.tasks.names import TEST_SPLITS

# The config values the card lists under "Filters and thresholds" (alpha.tasks.dataset_export.SETTING_NOTES).
DATASET_CARD_SETTINGS = (
    "seed",
    "ads.cleaning.min_words",
    "ads.cleaning.drop_unnamed_pages",
    "ads.cleaning.require_demographics",
    "ads.min_kept_share",
    "census.include_puerto_rico",
    "pairs.cosine_low",
    "pairs.cosine_high",
    "pairs.min_distance",
    "pairs.distance_unit",
    "tasks.keywords.top_n",
    "tasks.splits.heldout_page_fraction",
    "tasks.splits.cutoff_date",
    "tasks.tag_audiences",
    "tasks.region_min_rank_diff",
    "tasks.tap_min_class_size",
)
DATASET_TEST_SPLITS = TEST_SPLITS if config["dataset_export"]["test_splits"] else ()


rule export_dataset:
    input:
        shards="results/shards/{shard_set}",
        test_sets=expand("results/tasks/test/{split}.parquet", split=DATASET_TEST_SPLITS),
        test_report=["results/tasks/test/report.json"] if DATASET_TEST_SPLITS else [],
        ingest_report="results/ads/ingest_report.json",
        ads="results/ads/ads.parquet",
        code=code_for("scripts/export_dataset.py"),
    output:
        directory("results/datasets/{shard_set}"),
    log:
        "results/logs/export_dataset/{shard_set}.log",
    benchmark:
        "results/benchmarks/export_dataset/{shard_set}.tsv"
    conda:
        "../envs/dataset.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    params:
        spec=get_shard_set_spec,
        # what the card lists, and what the export's guard refuses: the benchmark registry and the ATP waves
        settings={
            key: registry.sorted_deep(functools.reduce(operator.getitem, key.split("."), config))
            for key in DATASET_CARD_SETTINGS
        },
        benchmarks={
            **{
                name: {"task": _benchmark_task(name), "paths": sorted(registry.benchmark_files(config, name))}
                for name in sorted(BENCHMARKS)
            },
            "atp_waves": {"task": "atp", "paths": [config["correlation"]["atp_waves"]]},
        },
        export=registry.sorted_deep(config["dataset_export"]),
        demo=config["demo"]["enabled"],
        demo_external=DEMO_EXTERNAL,
    script:
        "../scripts/export_dataset.py"
