"""Snakemake entry: assign every ad to train or a held-out test set (rule split_ads)."""
from alpha.core import io
from alpha.tasks import splits

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
report = splits.split_ads(
    smk.input.ads,
    smk.output.splits,
    seed=int(smk.params.seed),
    heldout_page_fraction=float(smk.params.heldout_page_fraction),
    cutoff=smk.params.cutoff_date,
)
io.write_json(smk.output.report, report)
