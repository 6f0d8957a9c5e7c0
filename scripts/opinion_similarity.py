"""Snakemake entry: opinion similarity between census regions and age x gender groups from raw Pew ATP waves (rule opinion_similarity)."""
from pathlib import Path

from alpha.core import io
from alpha.correlation import opinion

smk = snakemake  # noqa: F821  (injected by Snakemake)
io.setup_logging(smk.log[0])
folder = Path(smk.params.waves)
waves = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".sav", ".zsav"))
if not waves:
    raise FileNotFoundError(f"correlation.atp_waves: no .sav files in {folder}")
matrices = opinion.opinion_matrices(waves)
matrices["regions"].to_csv(smk.output.regions, float_format="%.6f")
matrices["age_gender"].to_csv(smk.output.age_gender, float_format="%.6f")
io.write_json(smk.output.questions, {"waves": [Path(w).name for w in waves],
                                     "regions": matrices["questions_regions"].to_dict(),
                                     "age_gender": matrices["questions_age_gender"].to_dict()})
