"""The workflow end to end on the embedded default: outputs, secrets, determinism, reruns, config errors."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from workflow_helpers import copy_workflow, jobs_in_dry_run, output_files, snakemake

pytestmark = pytest.mark.e2e


def test_ads_stage_outputs(demo_run):
    results = demo_run / "results"
    report = json.loads((results / "ads/ingest_report.json").read_text())
    totals = report["totals"]
    assert totals["in"] == totals["kept"] + totals["quarantined"] + totals["duplicates"]
    assert set(report["files"]) == {"current", "legacy", "single", "page", "wide", "export"}
    for entry in report["files"].values():
        assert entry["in"] == entry["kept"] + entry["quarantined"] + entry["duplicates"]
    for reason in ("malformed_json", "empty_body", "unnamed_page", "too_short"):
        assert totals["quarantined_by_reason"].get(reason, 0) > 0, reason
    assert totals["duplicates"] > 0 and totals["multi_frame_merged"] > 0
    assert report["files"]["export"]["unmapped_columns"] == ["collector_batch"]

    ads = pq.read_table(results / "ads/ads.parquet")
    assert ads.num_rows == totals["kept"] > 2000
    assert len(set(ads.column("ad_id").to_pylist())) == ads.num_rows
    assert pq.read_table(results / "ads/quarantine.parquet").num_rows == totals["quarantined"]
    assert pq.read_table(results / "ads/duplicates.parquet").num_rows == totals["duplicates"]
    assert any(t is not None for t in ads.column("media_verbalisation").to_pylist())

    segments = pq.read_table(results / "ads/segments.parquet")
    assert segments.column("ad_id").to_pylist() == ads.column("ad_id").to_pylist()
    assert "census_status" in segments.column_names
    figures = sorted((results / "figures/delivery").glob("*.png"))
    assert len(figures) == 2


def test_collector_quirks_survive_ingestion(demo_run):
    """The demo's real-export quirks end to end: unpadded and 'date time' dates, a single-object JSON
    file keyed by a document id, a wide CSV, rounded page ids repaired from page URLs or quarantined."""
    results = demo_run / "results"
    report = json.loads((results / "ads/ingest_report.json").read_text())
    files, totals = report["files"], report["totals"]
    truth = pq.read_table(results / "demo/ads/truth.parquet").to_pandas().set_index("ad_id")
    ads = pq.read_table(results / "ads/ads.parquet").to_pandas().set_index("ad_id")
    quarantine = pq.read_table(results / "ads/quarantine.parquet").to_pandas()

    assert files["single"]["single_object"] and files["single"]["kept"] == 1
    assert ads.loc[truth.index[truth.in_single][0], "source_file"] == "ads_single.json"
    assert files["wide"]["kept"] == truth.in_wide.sum() > 0 and files["wide"]["unmapped_columns"] == []
    assert (ads.loc[truth.index[truth.in_wide], "source_file"] == "ads_wide.csv").all()
    assert totals["id_sources"]["snapshot_url"] >= 1 + truth.mangled_id.sum() - truth.malformed_only.sum()

    lost = truth.index[truth.mangled_page_lost]
    assert totals["quarantined_by_reason"]["mangled_page_id"] == len(lost) == 3
    assert set(quarantine.loc[quarantine.reason == "mangled_page_id", "ad_id"]) == set(lost)
    assert not set(lost) & set(ads.index)
    repaired = truth.index[truth.mangled_page_id & ~truth.mangled_page_lost]
    assert len(repaired) >= 3 and files["export"]["page_id_sources"]["page_url"] >= len(repaired)
    assert (ads.loc[repaired, "page_id"] == truth.loc[repaired, "page_id"]).all()
    assert not ads.page_id.str.contains("E+", regex=False).any()

    kept = truth.index[truth.primary_dump.eq("ads_export.csv") & truth.index.isin(ads.index)]
    assert (ads.loc[kept, "delivery_start"].astype(str) == truth.loc[kept, "delivery_start"].astype(str)).all()
    assert "bad_date" not in totals["quarantined_by_reason"]


def test_library_report_download_is_refused(demo_run):
    from alpha.ads import ingest
    from alpha.ads.cleaning import CleaningOptions

    path = demo_run / "results/demo/ads/ads_library_report.csv"
    with pytest.raises(ingest.IngestError, match="Ad Library Report download"):
        ingest.ingest_dump(ingest.DumpSpec("report", path), demo_run / "r.parquet", demo_run / "q.parquet", CleaningOptions())


def _strings_in_parquet(path):
    table = pq.read_table(path)
    for name in table.column_names:
        col = table.column(name)
        typ = col.type
        while pa.types.is_list(typ):
            col, typ = pa.chunked_array([c.flatten() for c in col.chunks], typ.value_type), typ.value_type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            yield from (s for s in col.to_pylist() if s)


def test_no_access_token_anywhere_under_results(demo_run):
    results = demo_run / "results"
    checked = 0
    for path in results.rglob("*"):
        if not path.is_file():
            continue
        checked += 1
        assert b"access_token" not in path.read_bytes().lower(), path
        if path.suffix == ".parquet":  # compressed pages: look at the decoded strings too
            for text in _strings_in_parquet(path):
                assert "access_token" not in text.lower(), (path, text[:200])
    assert checked > 10


def test_two_runs_are_byte_identical(demo_run, slurm_run_compared, tmp_path):
    if slurm_run_compared:  # tests/slurm/test_slurm.py::test_workflow_runs_through_slurm_and_matches_the_local_run
        pytest.skip("covered by the byte-for-byte comparison of the Slurm run with the local run")
    second = copy_workflow(tmp_path / "second")
    snakemake(second, "all")
    first_files, second_files = output_files(demo_run / "results"), output_files(second / "results")
    assert first_files.keys() == second_files.keys()
    different = [name for name in first_files if first_files[name] != second_files[name]]
    assert not different, different


def test_census_parameter_change_reruns_only_downstream(demo_run, tmp_path):
    assert jobs_in_dry_run(demo_run) == set()
    config = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    config["census"]["include_puerto_rico"] = not config["census"]["include_puerto_rico"]
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    # segments feed the figures and the tasks; embeddings, keywords, pairs and splits do not read them.
    # New samples change the shards, hence the tiny model's corpus, the training and the evaluation.
    assert jobs_in_dry_run(demo_run, "--configfile", str(changed)) == {
        "normalise_census", "delivery_figures", "ad_tasks", "pair_tasks", "test_sets", "make_shards",
        "build_tiny_model", "train_model", "merge_lora", "eval_train_tasks", "train_tasks_table",
        "score_benchmark", "benchmark_metrics", "table1", "table2", "plot_table1", "ablation_table",
        "elicitation_table", "export_dataset",
        "behaviour_similarity", "correlation_summary",  # paper 3.2 reads the segments
    }


def test_cleaning_parameter_change_reruns_ingestion(demo_run, tmp_path):
    config = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    config["ads"]["cleaning"]["min_words"] += 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = jobs_in_dry_run(demo_run, "--configfile", str(changed))
    assert {"ingest_dump", "merge_ads", "normalise_census", "delivery_figures"} <= jobs


def test_lint(demo_run):
    out = snakemake(demo_run, "--lint", check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(sedd=1), "sedd"),
        (lambda c: c["census"].update(include_puerto_rico="yes"), "include_puerto_rico"),
        (lambda c: c["ads"]["cleaning"].update(min_wrds=3), "min_wrds"),
        (lambda c: c["census"].update(sex_age="config/census/nope.csv"), "config/census/nope.csv"),
        (
            lambda c: (c["demo"].update(enabled=False), c["ads"].update(dumps=[{"path": "/data/missing.jsonl"}])),
            "/data/missing.jsonl",
        ),
        (lambda c: c["benchmarks"]["gss"].update(task="gsss"), "unknown benchmark task 'gsss'"),
        (lambda c: c["benchmarks"]["gss"].update(variant="compat"), "variant of metric 'temporal_steerability'"),
        (lambda c: c["benchmarks"]["culturenli"].update(variant="textbook"), "textbook"),
        (lambda c: c["benchmarks"]["culturenli"].update(path="/data/culturenli/data.tsv"), "/data/culturenli/data.tsv"),
    ],
    ids=["unknown-key", "wrong-type", "unknown-nested-key", "missing-census", "missing-dump", "unknown-task",
         "variant-without-metric", "unknown-variant", "missing-benchmark-file"],
)
def test_config_errors_stop_before_any_job(tmp_path, edit, message):
    workdir = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    edit(config)
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake(workdir, "all", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()


def test_pairs_cover_pages_once_and_find_the_planted_paraphrase_families(demo_run):
    import itertools

    import pandas as pd

    results = demo_run / "results"
    shards = sorted((results / "pairs/shards").glob("*.parquet"))
    assert len(shards) == yaml.safe_load((demo_run / "config/config.yaml").read_text())["pairs"]["n_shards"]
    frames = [pq.read_table(s).to_pandas().assign(shard=k) for k, s in enumerate(shards)]
    pairs = pd.concat(frames)
    ads = pq.read_table(results / "ads/ads.parquet", columns=["ad_id", "page_id", "body"]).to_pandas()
    page = dict(zip(ads.ad_id, ads.page_id))
    body = dict(zip(ads.ad_id, ads.body))
    assert len(pairs) > 1000
    assert pairs.groupby("page_id").shard.nunique().max() == 1  # a page lives in one shard
    assert (pairs.ad_id_1.map(page) == pairs.page_id).all() and (pairs.ad_id_2.map(page) == pairs.page_id).all()
    assert ((pairs.cosine > 0.7) & (pairs.cosine < 1.0)).all()
    assert not pairs.duplicated(["ad_id_1", "ad_id_2"]).any()
    truth = pq.read_table(results / "demo/ads/truth.parquet").to_pandas()
    truth = truth[truth.ad_id.isin(ads.ad_id)]
    found = set(zip(pairs.ad_id_1, pairs.ad_id_2)) | set(zip(pairs.ad_id_2, pairs.ad_id_1))
    family_pairs = [
        (a, b) for _, g in truth.groupby("family_id") for a, b in itertools.combinations(g.ad_id, 2) if body[a] != body[b]
    ]
    recall = sum(p in found for p in family_pairs) / len(family_pairs)
    assert recall > 0.8, recall  # near-paraphrases of one message are found
