"""The Hugging Face exports of the embedded default's shard sets (rule export_dataset, results/datasets/<set>/):
they load back with `datasets` and equal the shards and test sets row for row, the card counts what is there,
and the Parquet bytes do not depend on the process that wrote them."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import yaml

from alpha.tasks import dataset_export, shards
from alpha.tasks.samples import TEST_SPLITS, TRAIN

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def results(demo_run):
    return demo_run / "results"


@pytest.fixture(scope="module")
def config(demo_run):
    return yaml.safe_load((demo_run / "config/config.yaml").read_text())


def _export(results, shard_set):
    out = results / "datasets" / shard_set
    assert out.is_dir(), (f"{out} missing: the `all` target should build results/datasets/<shard set> "
                          "(include rules/dataset.smk in the Snakefile, the exports in get_final_targets)")
    return out, json.loads((out / "export.json").read_text())


def _files(out, export):
    files = {}
    for entry in export["files"]:
        files.setdefault(entry["split"], []).append(str(out / entry["file"]))
    return files


def test_alpha_loads_back_with_datasets_and_equals_the_shards(results, tmp_path):
    import datasets

    out, export = _export(results, "alpha")
    shard_dir = results / "shards/alpha"
    assert shards.verify_manifest(shard_dir) == []
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    expected = {TRAIN: [r for s in manifest["shards"] for r in pq.read_table(shard_dir / s["file"]).to_pylist()]}
    tasks = set(export["tasks_in_test_splits"])
    assert tasks == {t for t, n in manifest["included"].items() if n}
    for split in TEST_SPLITS:
        expected[split] = [r for r in pq.read_table(results / f"tasks/test/{split}.parquet").to_pylist() if r["task"] in tasks]
    files = _files(out, export)
    assert list(files) == [split for split in (TRAIN, *TEST_SPLITS) if expected[split]]
    for split, paths in files.items():
        ds = datasets.load_dataset("parquet", data_files={split: paths}, split=split, cache_dir=str(tmp_path / "hf"))
        assert ds.num_rows == len(expected[split]) == export["splits"][split]["num_examples"]
        assert ds.to_list() == expected[split], split
    assert {r["source"] for r in expected[TRAIN]} == {"alpha", "sharegpt"}  # the demo's ShareGPT stand-in is mixed in
    whole = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert {split: whole[split].num_rows for split in whole} == {split: len(expected[split]) for split in files}


def test_every_shard_set_is_exported_with_a_card_that_counts_it(results, config):
    for shard_set in sorted(config["shards"]["sets"]):
        out, export = _export(results, shard_set)
        manifest = json.loads((results / f"shards/{shard_set}/manifest.json").read_text())
        assert export["source"]["shard_manifest_sha256"] == shards.sha256_of(results / f"shards/{shard_set}/manifest.json")
        assert export["splits"][TRAIN]["num_examples"] == manifest["total_rows"]
        for entry in export["files"]:
            assert shards.sha256_of(out / entry["file"]) == entry["sha256"]
            assert pq.ParquetFile(out / entry["file"]).metadata.num_rows == entry["rows"]
        card = (out / "README.md").read_text()
        meta = yaml.safe_load(card.split("---\n")[1])
        assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == {
            s: v["num_examples"] for s, v in export["splits"].items()}
        assert meta["license"] == "other" and "synthetic" in meta["tags"] and "Embedded demo" in card
        assert "none of their data is in this export" in card
        for key in ("pairs.cosine_low", "pairs.min_distance", "tasks.tap_min_class_size", "ads.cleaning.min_words"):
            assert f"| `{key}` |" in card
        for dump in json.loads((results / "ads/ingest_report.json").read_text())["files"]:
            assert f"| `{dump}` |" in card
    _, alpha = _export(results, "alpha")
    assert [e["synthetic_demo"] for e in alpha["external"]] == [True]


def test_the_parquet_bytes_do_not_depend_on_the_process(results, tmp_path):
    """A second export in this process, with another batch size, writes the same data files."""
    out, export = _export(results, "ablation-TAP")
    again = dataset_export.export_dataset(
        results / "shards/ablation-TAP", tmp_path / "ablation-TAP",
        test_files={split: results / f"tasks/test/{split}.parquet" for split in TEST_SPLITS}, batch_rows=1000)
    assert again["files"] == export["files"]
    for entry in export["files"]:
        assert (tmp_path / "ablation-TAP" / entry["file"]).read_bytes() == (out / entry["file"]).read_bytes()
