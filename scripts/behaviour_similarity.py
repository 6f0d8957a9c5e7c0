"""Snakemake entry: behavioural similarity between states, census regions and age x gender groups (rule behaviour_similarity)."""
import logging

from alpha.ads import census
from alpha.core import io
from alpha.correlation import behaviour

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
tables = census.load_census_for_rule(smk)
matrices = behaviour.behaviour_matrices(smk.input.segments, census.CELL_NAMES, tables.cell_population,
                                          age_map=smk.params.age_map, min_ads=int(smk.params.min_ads))
for name in ("states", "regions", "age_gender"):
    matrices[name].to_csv(smk.output[name], float_format="%.6f")
logging.getLogger("alpha").info("behavioural similarity from %d ads", int(matrices["n_ads"]["ads"].iloc[0]))
