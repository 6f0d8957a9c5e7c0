"""Shard sets as Hugging Face datasets (alpha.tasks.dataset_export) on a small hand-built run: the export loads
back with `datasets` and equals the shard and test rows, the card and export.json count what is there, reruns
are byte-identical, and rows of benchmark (or unknown) provenance stop the export."""
import datetime as dt
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from alpha.core.io import PARQUET_OPTIONS, write_json
from alpha.tasks import builders, dataset_export, shards, sharegpt
from alpha.tasks.dataset_export import BenchmarkDataError, ProvenanceError
from alpha.tasks.samples import SAMPLE_SCHEMA, TEST_AFTER_CUTOFF, TEST_SPLITS, TEST_UNSEEN_ADVERTISER, TRAIN, family_of

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("female", "male")


def rows(task, n, split=TRAIN, start=0, source="alpha"):
    return [
        {"id": f"{task}:{k}", "task": task, "family": family_of(task), "split": split, "page_id": f"p{k % 4}",
         "ad_ids": [f"a{k}", f"b{k}"] if task.startswith(("TC", "TS")) else [f"a{k}"],
         "label": LABELS[k % 2] if task.startswith("TAP") else None, "source": source,
         "messages": [{"role": "system", "content": "You are an expert marketer."},
                      {"role": "user", "content": f"question {k} | with a pipe\nand a newline"},
                      {"role": "assistant", "content": f"answer {k} é"}]}
        for k in range(start, start + n)
    ]


def write(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records, schema=SAMPLE_SCHEMA), path, **PARQUET_OPTIONS)
    return path


BENCHMARKS = {"culturebank": {"task": "culturebank", "paths": ["bench/culturebank"]},
              "globalopinionqa": {"task": "globalopinionqa", "paths": ["bench/goqa"]}}
SETTINGS = {"pairs.cosine_low": 0.7, "pairs.min_distance": 15, "tasks.tap_min_class_size": 1, "seed": 7,
            "tasks.tag_audiences": [["gender"], ["age"]]}


@pytest.fixture
def run(tmp_path):
    """Sample files, a shard set (TAG all, TAP capped, TS-E left out, a ShareGPT mix), the test sets and their
    report, a merge report and a small ads table: what rule export_dataset reads."""
    samples = write(tmp_path / "samples/ads.parquet",
                    rows("TAG", 40) + rows("TAG", 6, TEST_UNSEEN_ADVERTISER, start=40) + rows("TAG", 5, TEST_AFTER_CUTOFF, start=46)
                    + rows("TAP-G", 30) + rows("TAP-G", 8, TEST_AFTER_CUTOFF, start=30))
    pairs = write(tmp_path / "samples/pairs/0.parquet", rows("TS-E", 25) + rows("TS-E", 5, TEST_UNSEEN_ADVERTISER, start=25))
    external = tmp_path / "external/sharegpt.json"
    external.parent.mkdir()
    sharegpt.write_demo_sharegpt(external, n=12, seed=3)
    shard_dir = tmp_path / "shards/mix"
    shards.build_shard_set([samples, pairs], shard_dir, 3, seed=7, caps={"TAG": None, "TAP": 10},
                           external=[{"name": "sharegpt", "path": str(external), "ratio": 0.2}])
    tests = {split: tmp_path / f"test/{split}.parquet" for split in TEST_SPLITS}
    (tmp_path / "test").mkdir()
    write_json(tmp_path / "test/report.json", builders.build_test_sets([samples, pairs], tests, seed=7, min_class_size=1))
    write_json(tmp_path / "ingest_report.json", {"files": {
        "jan": {"file": "jan.jsonl", "format": "jsonl", "in": 10, "kept": 7, "quarantined": 2, "duplicates": 1},
        "feb": {"file": "feb.csv", "format": "csv", "in": 5, "kept": 5, "quarantined": 0, "duplicates": 0}}})
    d = dt.date.fromisoformat
    ads = pa.table({"source_file": ["jan.jsonl"] * 3 + ["feb.csv"] * 2,
                    "created": [d("2022-01-05"), None, d("2022-01-02"), d("2022-02-01"), d("2022-02-03")],
                    "delivery_start": [d("2022-01-06"), d("2021-12-30"), None, d("2022-02-02"), None],
                    "delivery_stop": [d("2022-01-20"), None, d("2022-03-01"), None, d("2022-02-10")]})
    pq.write_table(ads, tmp_path / "ads.parquet")
    return {"shard_dir": shard_dir, "tests": tests, "tmp": tmp_path, "external": external}


def export(run, out=None, **kwargs):
    tmp = run["tmp"]
    args = dict(shard_set="mix", test_files=run["tests"], test_report=tmp / "test/report.json",
                ingest_report=tmp / "ingest_report.json", ads=tmp / "ads.parquet", external={"sharegpt": str(run["external"])},
                benchmarks=BENCHMARKS, settings=SETTINGS, card={"name": "ALPHA50M", "dump_collected": {"jan": "2022-04-01"}},
                code_files=[ROOT / "scripts/export_dataset.py"])
    args.update(kwargs)
    return dataset_export.export_dataset(run["shard_dir"], out or tmp / "datasets/mix", **args)


def shard_rows(shard_dir):
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    return [r for s in manifest["shards"] for r in pq.read_table(shard_dir / s["file"]).to_pylist()]


def test_rows_load_back_with_datasets_unchanged(run, tmp_path):
    import datasets

    manifest = export(run)
    out = tmp_path / "datasets/mix"
    files = {}
    for entry in manifest["files"]:
        files.setdefault(entry["split"], []).append(str(out / entry["file"]))
    assert list(files) == [TRAIN, TEST_UNSEEN_ADVERTISER, TEST_AFTER_CUTOFF]
    expected = {TRAIN: shard_rows(run["shard_dir"])}
    for split in TEST_SPLITS:  # only the tasks the shard set trains on: TS-E is not in it
        expected[split] = [r for r in pq.read_table(run["tests"][split]).to_pylist() if r["task"] in ("TAG", "TAP-G")]
    assert {r["task"] for r in pq.read_table(run["tests"][TEST_UNSEEN_ADVERTISER]).to_pylist()} >= {"TS-E"}
    for split, paths in files.items():
        ds = datasets.load_dataset("parquet", data_files={split: paths}, split=split, cache_dir=str(tmp_path / "hf"))
        assert ds.to_list() == expected[split], split
        assert ds.features["messages"] == datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    assert {r["source"] for r in expected[TRAIN]} == {"alpha", "sharegpt"}
    # the folder itself: splits from the card's configs
    whole = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert {split: whole[split].num_rows for split in whole} == {split: len(rows_) for split, rows_ in expected.items()}
    # train files are the shards, one for one, in order; the schema is the shards' with the datasets features
    shard_files = [s["file"] for s in json.loads((run["shard_dir"] / "manifest.json").read_text())["shards"] if s["rows"]]
    assert [e["from"] for e in manifest["files"] if e["split"] == TRAIN] == shard_files
    schema = pq.read_schema(out / manifest["files"][0]["file"])
    assert schema.remove_metadata().equals(SAMPLE_SCHEMA) and b"huggingface" in schema.metadata


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_card_and_export_json_count_what_is_there(run, tmp_path):
    manifest = export(run)
    out = tmp_path / "datasets/mix"
    card = (out / "README.md").read_text()
    meta = _front_matter(card)
    on_disk = {}
    for entry in manifest["files"]:
        path = out / entry["file"]
        assert pq.ParquetFile(path).metadata.num_rows == entry["rows"]
        assert shards.sha256_of(path) == entry["sha256"] and path.stat().st_size == entry["size"]
        on_disk[entry["split"]] = on_disk.get(entry["split"], 0) + entry["rows"]
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == on_disk
    assert {s: v["num_examples"] for s, v in manifest["splits"].items()} == on_disk
    assert meta["dataset_info"]["download_size"] == sum(e["size"] for e in manifest["files"])
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in on_disk]}]
    assert meta["license"] == "other" and meta["language"] == ["en"] and meta["size_categories"] == ["n<1K"]
    assert set(meta["task_categories"]) == {"text-generation", "text-classification"}
    assert [f["name"] for f in meta["dataset_info"]["features"]] == SAMPLE_SCHEMA.names
    # the counts table: one row per task, one column per split, and the totals
    for task in ("TAG", "TAP-G", "sharegpt"):
        line = next(line for line in card.splitlines() if line.startswith(f"| `{task}` | {family_of(task)} |"))
        cells = [c.strip() for c in line.strip("|").split("|")][2:]
        per_split = [manifest["splits"][s]["tasks"].get(task, 0) for s in on_disk]
        assert cells == [f"{n:,}" for n in per_split] + [f"{sum(per_split):,}"]
    train = manifest["splits"][TRAIN]["tasks"]
    source = json.loads((run["shard_dir"] / "manifest.json").read_text())
    assert train == {"TAG": 40, "TAP-G": 10, "sharegpt": source["external"][0]["taken"]}
    assert manifest["source"]["shard_manifest_sha256"] == shards.sha256_of(run["shard_dir"] / "manifest.json")
    assert "TS-E" not in json.dumps(manifest["splits"])


def test_card_lists_settings_dumps_licence_and_how_to_load(run, tmp_path):
    export(run)
    card = (tmp_path / "datasets/mix/README.md").read_text()
    for key, value in SETTINGS.items():
        assert f"| `{key}` | `{json.dumps(value) if not isinstance(value, str) else value}` |" in card
    jan = next(line for line in card.splitlines() if line.startswith("| `jan` |"))
    assert "2021-12-30 to 2022-03-01" in jan and "2022-04-01" in jan  # ad dates over all three date columns; collected
    assert "not recorded" in next(line for line in card.splitlines() if line.startswith("| `feb` |"))
    assert "Meta Ad Library" in card and "US Census Bureau" in card and "none of their data is in this export" in card
    assert 'load_dataset(\n    "parquet"' in card and '"test_after_cutoff": "data/test_after_cutoff-*.parquet"' in card
    assert "third-party" in card and "Embedded demo" not in card
    demo = export(run, card={"demo": True, "demo_external": str(run["external"])})
    assert demo["external"][0]["synthetic_demo"]
    assert "Embedded demo" in (tmp_path / "datasets/mix/README.md").read_text()


def test_unknown_collected_dump_is_an_error(run):
    with pytest.raises(ValueError, match="dump_collected names dumps"):
        export(run, card={"dump_collected": {"march": "2022-04-01"}})


def test_rerun_and_other_batch_sizes_write_identical_bytes(run, tmp_path):
    first = export(run, out=tmp_path / "a/mix")
    (tmp_path / "b/mix/data").mkdir(parents=True)
    (tmp_path / "b/mix/data/train-00007-of-00009.parquet").write_bytes(b"stale")  # a replaced export leaves nothing behind
    second = export(run, out=tmp_path / "b/mix", batch_rows=3)
    assert first == second

    def tree(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert tree(tmp_path / "a/mix") == tree(tmp_path / "b/mix")
    assert not list(tmp_path.glob("b/.mix.*"))  # no temporary folder left


def test_test_splits_are_cut_into_files_of_at_most_n_rows(run, tmp_path):
    manifest = export(run, test_rows_per_file=3)
    unseen = [e for e in manifest["files"] if e["split"] == TEST_UNSEEN_ADVERTISER]
    n = len(unseen)
    assert n == -(-manifest["splits"][TEST_UNSEEN_ADVERTISER]["num_examples"] // 3) and n > 1
    assert [e["file"] for e in unseen] == [f"data/{TEST_UNSEEN_ADVERTISER}-{k:05d}-of-{n:05d}.parquet" for k in range(n)]
    assert all(e["rows"] == 3 for e in unseen[:-1])
    out = tmp_path / "datasets/mix"
    got = [r for e in unseen for r in pq.read_table(out / e["file"]).to_pylist()]
    assert got == [r for r in pq.read_table(run["tests"][TEST_UNSEEN_ADVERTISER]).to_pylist() if r["task"] != "TS-E"]


def test_without_test_sets_only_train(run, tmp_path):
    manifest = export(run, test_files=None, test_report=None, ingest_report=None, ads=None, settings=None)
    assert list(manifest["splits"]) == [TRAIN] and manifest["dumps"] == []
    meta = _front_matter((tmp_path / "datasets/mix/README.md").read_text())
    assert [d["split"] for d in meta["configs"][0]["data_files"]] == [TRAIN]


def _shard_set(tmp_path, records, external=()):
    src = write(tmp_path / "src.parquet", records)
    out = tmp_path / "shards/bad"
    shards.build_shard_set([src], out, 1, seed=1, caps={"TAG": None, "TAP": None}, external=list(external))
    return out


@pytest.mark.parametrize("source", ["culturebank", "GlobalOpinionQA", "opinionqa_xl", "pew-atp"])
def test_rows_from_a_benchmark_are_refused(tmp_path, source):
    shard_dir = _shard_set(tmp_path, rows("TAG", 5) + rows("TAP-G", 2, source=source))
    with pytest.raises(BenchmarkDataError, match=r"row 'TAP-G:\d'.*benchmark"):
        dataset_export.export_dataset(shard_dir, tmp_path / "out", benchmarks=BENCHMARKS)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_benchmarks_named_in_the_config_are_refused_too(tmp_path):
    shard_dir = _shard_set(tmp_path, rows("TAG", 5, source="my_survey"))
    with pytest.raises(BenchmarkDataError, match="my_survey"):
        dataset_export.export_dataset(shard_dir, tmp_path / "out", benchmarks={"my_survey": {"task": "gss", "paths": []}})


def test_external_sets_named_like_or_stored_in_a_benchmark_are_refused(tmp_path):
    bench = tmp_path / "bench/culturebank"
    bench.mkdir(parents=True)
    conversations = bench / "as_sharegpt.json"
    sharegpt.write_demo_sharegpt(conversations, n=4, seed=1)
    named = _shard_set(tmp_path / "named", rows("TAG", 5), [{"name": "culturebank_chat", "path": str(conversations), "ratio": 1}])
    with pytest.raises(BenchmarkDataError, match="named like the benchmark 'culturebank'"):
        dataset_export.export_dataset(named, tmp_path / "out", external={"culturebank_chat": str(conversations)})
    stored = _shard_set(tmp_path / "stored", rows("TAG", 5), [{"name": "cbc", "path": str(conversations), "ratio": 1}])
    with pytest.raises(BenchmarkDataError, match="inside benchmark 'culturebank'"):
        dataset_export.export_dataset(stored, tmp_path / "out", external={"cbc": str(conversations)},
                                      benchmarks={"culturebank": {"task": "culturebank", "paths": [str(bench)]}})


def test_rows_of_unknown_provenance_are_refused(tmp_path):
    shard_dir = _shard_set(tmp_path, rows("TAG", 3) + rows("TAP-A", 2, source="scraped"))
    with pytest.raises(ProvenanceError, match="'scraped' is neither 'alpha' nor an external set"):
        dataset_export.export_dataset(shard_dir, tmp_path / "out")
    wrong_family = [dict(r, family="TS") for r in rows("TAG", 3)]
    with pytest.raises(ProvenanceError, match="family 'TS'"):
        dataset_export.export_dataset(_shard_set(tmp_path / "f", wrong_family), tmp_path / "out")


def test_benchmark_match():
    names = dataset_export.benchmark_names({"opinionqa_xl": {"task": "opinionqa_raw"}})
    for name in ("culturenli", "CultureNLI-train", "gss", "pew_atp", "opinionqa-xl", "atp_wave_92", "globalopinionqa_sampled"):
        assert dataset_export.benchmark_match(name, names), name
    for name in ("alpha", "sharegpt", "cbc", "TAG", "TAP-G", "staples", None):
        assert dataset_export.benchmark_match(name, names) is None, name


def test_a_shard_set_that_differs_from_its_manifest_is_refused(run, tmp_path):
    manifest = json.loads((run["shard_dir"] / "manifest.json").read_text())
    first = run["shard_dir"] / manifest["shards"][0]["file"]
    first.write_bytes(first.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match="does not match its manifest"):
        export(run)


def test_a_folder_it_did_not_write_is_never_replaced(run, tmp_path):
    (tmp_path / "datasets/mix").mkdir(parents=True)
    (tmp_path / "datasets/mix/notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="refusing to replace it"):
        export(run)
    with pytest.raises(ValueError, match="must not contain each other"):
        export(run, out=run["shard_dir"] / "export")
    assert (tmp_path / "datasets/mix/notes.txt").read_text() == "mine"


def test_card_settings_listed_by_the_rule_have_notes_and_exist_in_the_schema():
    text = (ROOT / "rules/dataset.smk").read_text()
    block = re.search(r"DATASET_CARD_SETTINGS = \((.*?)\n\)", text, flags=re.S).group(1)
    keys = re.findall(r'"([a-z_.]+)"', block)
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    assert keys and set(keys) <= set(dataset_export.SETTING_NOTES)
    for key in keys:
        node = schema
        for part in key.split("."):
            node = node["properties"][part]
        assert "default" in node or node.get("type"), key


def test_size_categories():
    assert [dataset_export.size_category(n) for n in (0, 999, 1000, 54_000_000, 2 * 10**9)] == [
        "n<1K", "n<1K", "1K<n<10K", "10M<n<100M", "1B<n<10B"]
