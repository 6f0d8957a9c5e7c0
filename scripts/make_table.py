"""Snakemake entry: results/table1.csv or results/table2.csv and its JSON sidecar (rules table1, table2)."""
from alpha import io, tables

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
models = [tuple(pair) for pair in smk.params.spec["models"]]
results = [io.read_json(path) for path in smk.input.results]
if smk.rule == "table1":
    rows, sidecar = tables.table1(models, results)
else:
    rows, sidecar = tables.table2(models, results, smk.params.spec["cutoffs"])
tables.write_table(rows, sidecar, smk.output.csv, smk.output.sidecar)
