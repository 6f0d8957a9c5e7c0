"""Snakemake entry: merge per-dump tables, drop duplicates, write the ingest report (rule merge_ads)."""
from pathlib import Path

from alpha.ads import ingest
from alpha.core import io

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
parts = [
    (Path(a), Path(q), io.read_json(r))
    for a, q, r in zip(smk.input.ads, smk.input.quarantine, smk.input.reports)
]
report = ingest.merge_dumps(
    parts,
    Path(smk.output.ads),
    Path(smk.output.quarantine),
    Path(smk.output.duplicates),
    batch_rows=smk.params.batch_rows,
)
io.write_json(smk.output.report, report)
