"""Snakemake entry: one result table as CSV and its JSON sidecar (rules table1, table2, ablation_table, grounded_table);
table1 also writes its bootstrap CIs and the fine-tunes' paired differences from their bases."""
from alpha.core import io
from alpha.eval import tables

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
models = [tuple(pair) for pair in smk.params.spec["models"]]
results = [io.read_json(path) for path in smk.input.results]
if smk.rule == "table1":
    rows, sidecar = tables.table1(models, results)
    ci_rows, ci_columns = tables.ci_table(models, results)
    tables.write_csv(ci_rows, ci_columns, smk.output.ci_csv)
    delta_rows, delta_sidecar = tables.delta_table(models, results, smk.params.spec["bases"])
    tables.write_table(delta_rows, delta_sidecar, smk.output.delta_csv, smk.output.delta)
elif smk.rule == "grounded_table":
    rows, sidecar = tables.build_table(models, results, tables.GROUNDED_COLUMNS)
elif smk.rule == "elicitation_table":
    rows, sidecar = tables.elicitation(models, results, smk.params.spec["modes"], smk.params.spec["columns"])
elif smk.rule == "table2":
    rows, sidecar = tables.table2(models, results, smk.params.spec["cutoffs"])
else:
    rows, sidecar = tables.ablation(models, results, smk.params.spec["text"])
tables.write_table(rows, sidecar, smk.output.csv, smk.output.sidecar)
