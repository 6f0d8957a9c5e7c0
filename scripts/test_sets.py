"""Snakemake entry: the held-out test sets, TAP class-balanced (rule test_sets)."""
from alpha.core import io
from alpha.tasks import builders
from alpha.tasks.samples import TEST_SPLITS

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
# batch_rows (samples per batch) bounds memory; the builder's default until the rule passes it
batching = {"batch_rows": int(smk.params.batch_rows)} if hasattr(smk.params, "batch_rows") else {}
report = builders.build_test_sets(
    list(smk.input.samples),
    {split: smk.output[split] for split in TEST_SPLITS},
    seed=int(smk.params.seed),
    min_class_size=int(smk.params.min_class_size),
    **batching,
)
io.write_json(smk.output.report, report)
