# Config validation and the named input helpers every stage uses (no lambdas in rules).
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, workflow.source_path("../config/schema.yaml"))


wildcard_constraints:
    dump=r"[A-Za-z0-9_.-]+",
    shard=r"\d+",


DEMO_ADS = "results/demo/ads"
DEMO_DUMPS = {
    "current": {"path": f"{DEMO_ADS}/ads_current.jsonl"},
    "legacy": {"path": f"{DEMO_ADS}/ads_legacy.jsonl"},
    "page": {"path": f"{DEMO_ADS}/ads_page.json"},
    "export": {
        "path": f"{DEMO_ADS}/ads_export.csv",
        "demographics": f"{DEMO_ADS}/ads_export_demos.csv",
        "regions": f"{DEMO_ADS}/ads_export_regions.csv",
    },
}
DEMO_MEDIA = f"{DEMO_ADS}/media_verbalisation.jsonl"


def by_attempt(base):
    """A resource that grows with each Slurm retry (--retries): base, 2 x base, 3 x base ..."""

    def scaled(wildcards, attempt):
        return base * attempt

    return scaled


def demo_enabled():
    return config["demo"]["enabled"]


def _require_files(paths_by_key):
    missing = {key: path for key, path in paths_by_key.items() if path and not Path(path).exists()}
    if missing:
        lines = "\n".join(f"  {key}: {path}" for key, path in missing.items())
        raise WorkflowError(
            f"Input files named in the config do not exist:\n{lines}\n"
            "Fix the paths (config/paper.yaml holds placeholders) or set demo.enabled: true."
        )


def _dumps_from_config():
    dumps = {}
    for i, entry in enumerate(config["ads"]["dumps"]):
        name = entry.get("name") or Path(entry["path"]).name.split(".")[0]
        if name in dumps:
            raise WorkflowError(f"ads.dumps[{i}]: dump name {name!r} is used twice; give each a unique name:")
        dumps[name] = entry
    return dumps


AD_DUMPS = DEMO_DUMPS if demo_enabled() else _dumps_from_config()
AD_MEDIA = DEMO_MEDIA if demo_enabled() else config["ads"]["media_verbalisation"]

if not AD_DUMPS:
    raise WorkflowError("ads.dumps is empty: list at least one dump file, or set demo.enabled: true.")
_require_files(
    {
        **{f"census.{k}": config["census"][k] for k in ("state_population", "sex_age", "pr_municipios")},
        **(
            {}
            if demo_enabled()
            else {
                f"ads.dumps[{name}].{key}": entry.get(key)
                for name, entry in AD_DUMPS.items()
                for key in ("path", "demographics", "regions")
            }
            | {"ads.media_verbalisation": AD_MEDIA}
        ),
    }
)


def get_dump_files(wildcards):
    entry = AD_DUMPS[wildcards.dump]
    files = {"dump": entry["path"]}
    for key in ("demographics", "regions"):
        if entry.get(key):
            files[key] = entry[key]
    if AD_MEDIA:
        files["media"] = AD_MEDIA
    return files


def get_dump_params(wildcards):
    # key order is fixed: Snakemake compares params by their text, so a reordered config must not rerun
    entry = AD_DUMPS[wildcards.dump]
    return {"columns": dict(sorted(entry.get("columns", {}).items())), "format": entry.get("format")}


def get_ingested(kind):
    suffix = {"ads": "parquet", "quarantine": "quarantine.parquet", "report": "report.json"}[kind]
    return expand("results/ads/dumps/{dump}.{suffix}", dump=list(AD_DUMPS), suffix=suffix)


def get_final_targets(wildcards):
    return [
        "results/ads/ads.parquet",
        "results/ads/ingest_report.json",
        "results/ads/segments.parquet",
        "results/ads/census_report.json",
        "results/figures/delivery",
        *get_pair_shards(),
    ]


def get_pair_shards():
    return expand("results/pairs/shards/{shard}.parquet", shard=range(config["pairs"]["n_shards"]))
