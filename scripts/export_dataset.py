"""Snakemake entry: one shard set as a Hugging Face dataset with its card (rule export_dataset)."""
from pathlib import Path

from alpha.core import io
from alpha.tasks import dataset_export

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
opts = smk.params.export
dataset_export.export_dataset(
    smk.input.shards,
    smk.output[0],
    shard_set=smk.wildcards.shard_set,
    test_files={Path(path).stem: path for path in smk.input.test_sets},  # results/tasks/test/<split>.parquet
    test_report=next(iter(smk.input.test_report), None),
    ingest_report=smk.input.ingest_report,
    ads=smk.input.ads,
    external={entry["name"]: entry["path"] for entry in smk.params.spec["external"]},
    benchmarks=smk.params.benchmarks,
    settings=smk.params.settings,
    spec=smk.params.spec,
    card={
        "name": opts["name"],
        "license_name": opts["license_name"],
        "license_link": opts["license_link"],
        "dump_collected": opts["dump_collected"],
        "demo": smk.params.demo,
        "demo_external": smk.params.demo_external,
    },
    code_files=list(smk.input.code),
    batch_rows=int(opts["batch_rows"]),
    test_rows_per_file=int(opts["test_rows_per_file"]),
)
