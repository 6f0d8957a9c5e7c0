"""Snakemake entry: score every within-page pair of one shard of pages (rule mine_pairs)."""
from pathlib import Path

from alpha.core import io
from alpha.pairs import mining

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
rule = mining.PairRule(low=smk.params.low, high=smk.params.high, min_distance=smk.params.min_distance, unit=smk.params.unit)
report = mining.mine_shard(
    smk.input.ads,
    Path(smk.input.emb).with_suffix(""),
    shard=int(smk.wildcards.shard),
    n_shards=int(smk.params.n_shards),
    rule=rule,
    out_parquet=smk.output.pairs,
    chunk_rows=int(smk.params.chunk_rows),
    batch_rows=int(smk.params.batch_rows),
)
io.write_json(smk.output.report, report)
