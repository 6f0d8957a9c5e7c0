"""Snakemake entry: TC and TS samples from one shard of mined pairs (rule pair_tasks)."""
from alpha.core import io
from alpha.tasks import builders

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
rules = builders.PairTaskRules(region_min_rank_diff=int(smk.params.region_min_rank_diff), min_distance=int(smk.params.min_distance))
# batch_rows (pairs per batch, ads per page range) bounds memory; the builder's default until the rule passes it
batching = {"batch_rows": int(smk.params.batch_rows)} if hasattr(smk.params, "batch_rows") else {}
report = builders.build_pair_tasks(smk.input.pairs, smk.input.ads, smk.input.segments, smk.input.splits, smk.output.samples, rules,
                                   **batching)
io.write_json(smk.output.report, report)
