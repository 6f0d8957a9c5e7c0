"""Snakemake entry: parse and clean one Ad Library dump (rule ingest_dump)."""
from pathlib import Path

from alpha.ads import ingest
from alpha.ads.cleaning import CleaningOptions
from alpha.core import io

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = io.setup_logging(smk.log[0])
try:
    spec = ingest.DumpSpec(
        name=smk.wildcards.dump,
        path=Path(smk.input.dump),
        format=smk.params.dump["format"],
        demographics=Path(smk.input.demographics) if "demographics" in smk.input.keys() else None,
        regions=Path(smk.input.regions) if "regions" in smk.input.keys() else None,
        columns=smk.params.dump["columns"] or {},
        layout=smk.params.dump["layout"],
        wide_regions=tuple(smk.params.dump["wide_regions"]),
        encoding=smk.params.dump["encoding"],
    )
    media = ingest.load_media(Path(smk.input.media)) if "media" in smk.input.keys() else None
    report = ingest.ingest_dump(
        spec,
        Path(smk.output.ads),
        Path(smk.output.quarantine),
        CleaningOptions(
            min_words=smk.params.min_words,
            drop_unnamed_pages=smk.params.drop_unnamed_pages,
            require_demographics=smk.params.require_demographics,
        ),
        media=media,
        batch_rows=smk.params.batch_rows,
        min_kept_share=smk.params.dump["min_kept_share"],
    )
    io.write_json(smk.output.report, report)
except ingest.IngestError as err:
    log.error("%s", err)
    raise SystemExit(f"ingest_dump failed: {err}")  # noqa: B904  (the message is the whole report)
