"""Training shard sets on hand-built sample tables: caps, partition, determinism, external mix,
ShareGPT loading, manifest verification, the external merge sort and bounded memory."""
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alpha.core.io import PARQUET_OPTIONS, write_parquet
from alpha.tasks import shards, sharegpt
from alpha.tasks.samples import ROW_GROUP_ROWS, SAMPLE_SCHEMA, TEST_AFTER_CUTOFF, TEST_UNSEEN_ADVERTISER, TRAIN, family_of


def rows(task, n, split=TRAIN, start=0):
    return [
        {"id": f"{task}:{k}", "task": task, "family": family_of(task), "split": split, "page_id": f"p{k % 3}",
         "ad_ids": [f"a{k}"], "label": "female" if task == "TAP-G" else None, "source": "alpha",
         "messages": [{"role": "user", "content": f"question {k}"}, {"role": "assistant", "content": f"answer {k}"}]}
        for k in range(start, start + n)
    ]


def write(path, records):
    pq.write_table(pa.Table.from_pylist(records, schema=SAMPLE_SCHEMA), path, **PARQUET_OPTIONS)
    return path


def shard_tables(out):
    manifest = json.loads((out / "manifest.json").read_text())
    return [pq.read_table(out / s["file"]) for s in manifest["shards"]]


def all_ids(out):
    return [i for t in shard_tables(out) for i in t.column("id").to_pylist()]


def smallest_select(seed, ids, n):
    select, _ = shards.sample_keys(seed, ids)
    return {ids[k] for k in np.argsort(select, kind="stable")[:n]}


@pytest.fixture
def mixed(tmp_path):
    a = write(tmp_path / "a.parquet", rows("TAG", 10) + rows("TAG", 4, TEST_UNSEEN_ADVERTISER, start=10) + rows("TAP-G", 10))
    b = write(tmp_path / "b.parquet", rows("TAP-A", 10) + rows("TS-E", 6) + rows("TAP-A", 3, TEST_AFTER_CUTOFF, start=10))
    return [a, b]


def test_only_train_rows_and_split_counts(mixed, tmp_path):
    m = shards.build_shard_set(mixed, tmp_path / "out", 3, 1, {"TAG": None, "TAP": None, "TS": None})
    ids = all_ids(tmp_path / "out")
    assert len(ids) == 36 and not {"TAG:10", "TAP-A:10"} & set(ids)
    assert m["counts"]["TAG"] == {TRAIN: 10, TEST_UNSEEN_ADVERTISER: 4}
    assert m["excluded_splits"] == {"TAG": {TEST_UNSEEN_ADVERTISER: 4}, "TAP-A": {TEST_AFTER_CUTOFF: 3}}
    assert {t.column("split").unique().to_pylist()[0] for t in shard_tables(tmp_path / "out") if t.num_rows} == {TRAIN}


def test_cap_keeps_exactly_the_smallest_keys(tmp_path):
    src = write(tmp_path / "a.parquet", rows("TAG", 10))
    m = shards.build_shard_set([src], tmp_path / "out", 2, 5, {"TAG": 3})
    ids = [f"TAG:{k}" for k in range(10)]
    assert set(all_ids(tmp_path / "out")) == smallest_select(5, ids, 3)
    assert m["included"] == {"TAG": 3} and m["excluded_by_cap"] == {"TAG": 7}


def test_task_key_wins_null_keeps_all_unlisted_excluded(mixed, tmp_path):
    m = shards.build_shard_set(mixed, tmp_path / "out", 2, 9, {"TAP": 2, "TAP-G": None, "TAG": 0})
    ids = set(all_ids(tmp_path / "out"))
    assert {i for i in ids if i.startswith("TAP-G:")} == {f"TAP-G:{k}" for k in range(10)}  # task key null beats family cap 2
    assert {i for i in ids if i.startswith("TAP-A:")} == smallest_select(9, [f"TAP-A:{k}" for k in range(10)], 2)
    assert not any(i.startswith(("TAG:", "TS-E:")) for i in ids)  # cap 0; TS-E matches no key
    assert m["included"] == {"TAG": 0, "TAP-A": 2, "TAP-G": 10}
    assert m["excluded_tasks"] == {"TS-E": 6}
    assert m["total_rows"] == len(ids) == 12


def test_tie_at_the_cap_is_broken_by_id(tmp_path, monkeypatch):
    real = shards.sample_keys

    def coarse(seed, ids):
        ids = list(ids)
        select, order = real(seed, ids)
        return np.array([0 if int(i.split(":")[1]) % 2 else 1 for i in ids], np.uint64), order

    monkeypatch.setattr(shards, "sample_keys", coarse)
    src = write(tmp_path / "a.parquet", rows("TAG", 10))
    shards.build_shard_set([src], tmp_path / "out", 2, 0, {"TAG": 7}, batch_rows=3)
    odd = {f"TAG:{k}" for k in (1, 3, 5, 7, 9)}
    assert set(all_ids(tmp_path / "out")) == odd | {"TAG:0", "TAG:2"}  # then the 2 smallest ids with key 1


def test_shards_partition_the_kept_rows_in_key_order(mixed, tmp_path):
    shards.build_shard_set(mixed, tmp_path / "out", 4, 3, {"TAG": None, "TAP": 5, "TS": None})
    tables = shard_tables(tmp_path / "out")
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    expected = ({f"TAG:{k}" for k in range(10)} | {f"TS-E:{k}" for k in range(6)}
                | smallest_select(3, [f"TAP-G:{k}" for k in range(10)], 5) | smallest_select(3, [f"TAP-A:{k}" for k in range(10)], 5))
    assert len(ids) == len(set(ids)) and set(ids) == expected
    for k, t in enumerate(tables):
        _, order = shards.sample_keys(3, t.column("id").to_pylist())
        assert (order % 4 == k).all() and (np.diff(order.astype(np.float64)) >= 0).all()
        assert t.schema.equals(SAMPLE_SCHEMA)


def test_output_is_byte_identical_whatever_the_batching_and_input_order(mixed, tmp_path):
    spec = dict(n_shards=3, seed=11, caps={"TAG": None, "TAP": 4, "TS": None})
    ext = tmp_path / "ext.json"
    sharegpt.write_demo_sharegpt(ext, 30, 0)
    external = [{"name": "sharegpt", "path": ext, "ratio": 0.3}]
    runs = [
        shards.build_shard_set(mixed, tmp_path / "r1", **spec, external=external),
        shards.build_shard_set(mixed, tmp_path / "r2", **spec, external=external),
        shards.build_shard_set(mixed, tmp_path / "r3", **spec, external=external, batch_rows=2),
        shards.build_shard_set(mixed[::-1], tmp_path / "r4", **spec, external=external, batch_rows=5),
    ]
    assert all(r == runs[0] for r in runs)
    for name in ["manifest.json"] + [s["file"] for s in runs[0]["shards"]]:
        contents = {(tmp_path / r / name).read_bytes() for r in ("r1", "r2", "r3", "r4")}
        assert len(contents) == 1, name


def test_a_different_seed_gives_a_different_order(tmp_path):
    src = write(tmp_path / "a.parquet", rows("TAG", 50))
    shards.build_shard_set([src], tmp_path / "s1", 1, 1, {"TAG": None})
    shards.build_shard_set([src], tmp_path / "s2", 1, 2, {"TAG": None})
    one, two = all_ids(tmp_path / "s1"), all_ids(tmp_path / "s2")
    assert sorted(one) == sorted(two) and one != two


def test_external_ratio(tmp_path):
    src = write(tmp_path / "a.parquet", rows("TAG", 10) + rows("TC-A", 10))
    ext = tmp_path / "ext.json"
    sharegpt.write_demo_sharegpt(ext, 8, 3)
    external = [{"name": "chat", "path": ext, "ratio": 0.5}, {"name": "more", "path": ext, "ratio": 2.0}]
    m = shards.build_shard_set([src], tmp_path / "out", 2, 4, {"TAG": None}, external=external)
    got = [e for e in m["external"]]
    assert [(e["name"], e["requested"], e["available"], e["taken"]) for e in got] == [("chat", 5, 8, 5), ("more", 20, 8, 8)]
    assert got[0]["rejected"] == {"consecutive_roles": 1, "no_assistant": 1}
    ids = all_ids(tmp_path / "out")
    chat = [i for i in ids if i.startswith("chat:")]
    assert set(chat) == smallest_select(4, [f"chat:demo-{k:05d}" for k in range(8)], 5)
    assert len([i for i in ids if i.startswith("more:")]) == 8 and m["total_rows"] == 10 + 5 + 8
    table = pa.concat_tables(shard_tables(tmp_path / "out"))
    external_rows = table.filter(pa.compute.equal(table.column("task"), "chat")).to_pylist()
    assert all(r["family"] == "external" and r["source"] == "chat" and r["page_id"] is None and r["ad_ids"] == [] for r in external_rows)


def conversation(*turns, id=None):
    out = {"conversations": [{"from": f, "value": v} for f, v in turns]}
    if id is not None:
        out["id"] = id
    return out


MALFORMED = {
    "not_an_object": ["just a string"],
    "bad_id": {"id": [1], "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    "no_turns": {"id": "x", "conversations": []},
    "bad_turn": {"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "a"}]},
    "unknown_role": conversation(("human", "q"), ("bing", "a")),
    "empty_value": conversation(("human", "q"), ("gpt", "   ")),
    "misplaced_system": conversation(("human", "q"), ("system", "s"), ("gpt", "a")),
    "first_not_user": conversation(("system", "s"), ("gpt", "a"), ("human", "q")),
    "consecutive_roles": conversation(("human", "q"), ("human", "q2"), ("gpt", "a")),
    "no_assistant": conversation(("system", "s"), ("human", "q")),
    "ends_with_user": conversation(("human", "q"), ("gpt", "a"), ("human", "q2")),
}
VALID = [
    conversation(("system", "Be brief."), ("human", "Hi"), ("gpt", "Hello!"), id="c1"),
    conversation(("user", "2+2?"), ("assistant", "4"), ("user", "and 3+3?"), ("assistant", "6")),
]


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_sharegpt_each_malformed_case_is_counted(tmp_path, reason):
    path = tmp_path / "set.json"
    path.write_text(json.dumps([MALFORMED[reason]] + VALID))
    data = sharegpt.load_sharegpt(path, "sg")
    records = list(data)
    assert [r["id"] for r in records] == ["sg:c1", "sg:2"]
    assert data.rejected == {reason: 1} and data.accepted == 2


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_sharegpt_json_and_json_lines(tmp_path, suffix):
    entries = VALID + list(MALFORMED.values()) + [VALID[0]]  # the repeated c1 is a duplicate
    path = tmp_path / f"set{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(e) for e in entries) + "\n{not json\n\n")
    else:
        path.write_text(json.dumps(entries, indent=1))
    data = sharegpt.load_sharegpt(path, "sg")
    records = list(data.records())
    assert [r["messages"] for r in records] == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
         {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}],
    ]
    assert records[0] | {"messages": None} == {"id": "sg:c1", "task": "sg", "family": "external", "split": TRAIN, "page_id": None,
                                               "ad_ids": [], "label": None, "source": "sg", "messages": None}
    expected = {reason: 1 for reason in MALFORMED} | {"duplicate_id": 1} | ({"invalid_json": 1} if suffix == ".jsonl" else {})
    assert data.rejected == expected
    assert set(expected) <= set(sharegpt.REASONS)
    assert pa.Table.from_pylist(records, schema=SAMPLE_SCHEMA).num_rows == 2
    list(data)
    assert data.rejected == expected  # a second pass recounts, not doubles


def test_json_list_streams_element_by_element_with_tiny_chunks():
    text = json.dumps([{"a": "x" * 50, "b": [1, 2]}, 12345, "s", {"k": {"n": None}}], indent=2)
    got = list(sharegpt._json_array(io.StringIO(text), "mem", chunk_chars=3))
    assert got == json.loads(text)
    assert list(sharegpt._json_array(io.StringIO(" [ ] "), "mem", chunk_chars=1)) == []


@pytest.mark.parametrize("text", ['{"id": 1}', '[{"a": 1}, {"b": ]', '[{"a": 1}] x', '[{"a": 1} {"b": 2}]'])
def test_a_file_that_is_not_a_json_list_raises(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.json"):
        list(sharegpt.load_sharegpt(path, "sg"))


def test_demo_sharegpt_is_deterministic(tmp_path):
    sharegpt.write_demo_sharegpt(tmp_path / "a.json", 25, 7)
    sharegpt.write_demo_sharegpt(tmp_path / "b.json", 25, 7)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    data = sharegpt.load_sharegpt(tmp_path / "a.json", "demo")
    records = list(data)
    assert len(records) == 25 and sum(data.rejected.values()) == 2
    assert any(r["messages"][0]["role"] == "system" for r in records) and any(len(r["messages"]) >= 4 for r in records)


def test_manifest_is_verified_and_tampering_detected(mixed, tmp_path):
    out = tmp_path / "out"
    m = shards.build_shard_set(mixed, out, 3, 2, {"TAG": None, "TAP": 3})
    assert shards.verify_manifest(out) == []
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(m)) and str(tmp_path) not in (out / "manifest.json").read_text()
    assert sum(s["rows"] for s in m["shards"]) == m["total_rows"] == 10 + 3 + 3
    assert [s["file"] for s in m["shards"]] == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] + [s["file"] for s in m["shards"]]

    victim = out / m["shards"][1]["file"]
    victim.write_bytes(victim.read_bytes()[:-1] + b"x")
    assert any("shard-00001.parquet: sha256" in p for p in shards.verify_manifest(out))
    victim.unlink()
    assert shards.verify_manifest(out) == ["shard-00001.parquet: missing"]
    write(out / "shard-00001.parquet", rows("TAG", 1))
    assert any("1 rows, manifest says" in p for p in shards.verify_manifest(out))
    write(out / "shard-00009.parquet", rows("TAG", 1))
    assert "shard-00009.parquet: not listed in the manifest" in shards.verify_manifest(out)
    (out / "manifest.json").unlink()
    assert shards.verify_manifest(out) == [f"manifest.json missing in {out}"]


def test_fewer_shards_than_before_leave_no_stale_files(mixed, tmp_path):
    shards.build_shard_set(mixed, tmp_path / "out", 5, 2, {"TAG": None})
    shards.build_shard_set(mixed, tmp_path / "out", 2, 2, {"TAG": None})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "shard-00000.parquet", "shard-00001.parquet"]
    assert shards.verify_manifest(tmp_path / "out") == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(sample_files=[]), ValueError, "no sample files"),
        (dict(caps={"TAG": -1}), ValueError, "'TAG' is negative"),
        (dict(caps={"TAGG": 1}), ValueError, "unknown task or family 'TAGG'"),
        (dict(n_shards=0), ValueError, "n_shards"),
        (dict(fan_in=1), ValueError, "fan_in"),
        (dict(external=[{"name": "sg", "path": "nowhere.json", "ratio": 0.1}]), FileNotFoundError, r"external\[0\] \('sg'\)"),
        (dict(external=[{"name": "TAG", "path": __file__, "ratio": 0.1}]), ValueError, "name"),
        (dict(external=[{"name": "sg", "path": __file__, "ratio": -1}]), ValueError, "ratio"),
    ],
)
def test_clear_errors(mixed, tmp_path, kwargs, error, match):
    args = dict(sample_files=mixed, out_dir=tmp_path / "out", n_shards=2, seed=0, caps={"TAG": None}) | kwargs
    with pytest.raises(error, match=match):
        shards.build_shard_set(**args)


@pytest.mark.parametrize("merge", [{}, dict(batch_rows=2, fan_in=2)], ids=["one run", "multi-level merge"])
def test_duplicate_ids_fail_and_leave_no_temporary_files(tmp_path, merge):
    a = write(tmp_path / "a.parquet", rows("TAG", 5))
    b = write(tmp_path / "b.parquet", rows("TAG", 1, start=3))
    with pytest.raises(ValueError, match="'TAG:3' appears more than once"):
        shards.build_shard_set([a, b], tmp_path / "out", 2, 0, {"TAG": None}, **merge)
    leftovers = [p.name for p in (tmp_path / "out").iterdir()]
    assert not [n for n in leftovers if n.startswith(".")] and "manifest.json" not in leftovers


def big_table(n):
    k = np.arange(n)
    ids = pa.array([f"TAG:{i}" for i in k])
    content = pa.array([f"answer number {i} " + "x" * 80 for i in k])
    role = pa.array(["assistant"] * n)
    messages = pa.ListArray.from_arrays(pa.array(k, pa.int32()).to_numpy().tolist() + [n],
                                        pa.StructArray.from_arrays([role, content], ["role", "content"]))
    columns = {"id": ids, "task": pa.array(["TAG"] * n), "family": pa.array(["TAG"] * n), "split": pa.array([TRAIN] * n),
               "page_id": pa.array(["p"] * n), "ad_ids": pa.array([[]] * n, pa.list_(pa.string())), "label": pa.nulls(n, pa.string()),
               "source": pa.array(["alpha"] * n), "messages": messages}
    return pa.table(columns).cast(SAMPLE_SCHEMA)


def test_merge_memory_is_bounded_by_batch_rows_not_by_the_shard(tmp_path):
    """One shard holding every row, 4x more rows the second time: pass 2 merges the shard's sorted
    runs a chunk at a time, so the rows held and the Arrow peak stay where batch_rows puts them."""
    batch_rows, peaks = 4096, {}
    for n in (40_000, 160_000):
        table = big_table(n)
        total_bytes = table.nbytes
        pq.write_table(table, tmp_path / f"big{n}.parquet", row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)
        del table
        stats = shards.ShardStats()
        m = shards.build_shard_set([tmp_path / f"big{n}.parquet"], tmp_path / f"out{n}", 1, 0, {"TAG": None},
                                   batch_rows=batch_rows, stats=stats)
        assert m["total_rows"] == n == stats.spill_rows[0] and stats.runs[0] >= n // batch_rows and stats.merges == 0
        assert stats.max_rows_held <= 2 * batch_rows + ROW_GROUP_ROWS, stats.max_rows_held
        peaks[n] = stats.peak_arrow_bytes
    assert peaks[160_000] < 1.2 * peaks[40_000], peaks
    assert peaks[160_000] < total_bytes / 4, (peaks, total_bytes)  # sorting the shard in memory would hold all of it
    shard = pq.ParquetFile(tmp_path / "out160000" / m["shards"][0]["file"]).metadata
    assert [shard.row_group(g).num_rows for g in range(shard.num_row_groups)] == [ROW_GROUP_ROWS] * 9 + [160_000 - 9 * ROW_GROUP_ROWS]


MERGES = {
    "one run": dict(batch_rows=1_000_000),
    "many runs": dict(batch_rows=1_000),
    "multi-level": dict(batch_rows=300, fan_in=4),
    "binary merges": dict(batch_rows=2_000, fan_in=2),
}


def test_merge_output_is_byte_identical_for_one_run_many_runs_and_multi_level_merges(tmp_path):
    """Two shards of more than one row group each, built from one sorted run per shard, from many
    runs merged at once and from runs merged in levels: the same bytes, which are also those of the
    whole sorted shard written in one go (the former in-memory pass 2)."""
    a = write(tmp_path / "a.parquet", rows("TAG", 24_000) + rows("TS-E", 6_000))
    b = write(tmp_path / "b.parquet", rows("TAP-G", 5_000) + rows("TAP-A", 2_000, TEST_AFTER_CUTOFF))
    ext = tmp_path / "ext.json"
    sharegpt.write_demo_sharegpt(ext, 400, 0)
    spec = dict(n_shards=2, seed=3, caps={"TAG": None, "TAP": 4_000, "TS": None}, external=[{"name": "sg", "path": ext, "ratio": 0.01}])
    manifests, stats = {}, {}
    for k, (name, merge) in enumerate(MERGES.items()):
        stats[name] = shards.ShardStats()
        manifests[name] = shards.build_shard_set([a, b][:: 1 - 2 * (k % 2)], tmp_path / str(k), **spec, **merge, stats=stats[name])
    assert stats["one run"].runs == [1, 1]
    assert min(stats["many runs"].runs) > 1 and stats["many runs"].merges == 0
    assert min(stats["multi-level"].runs) > 4 * 4 and stats["multi-level"].merges > 2 * 4
    assert stats["binary merges"].merges > 2 * 2
    assert all(m == manifests["one run"] for m in manifests.values())
    for entry in manifests["one run"]["shards"]:
        contents = {(tmp_path / str(k) / entry["file"]).read_bytes() for k in range(len(MERGES))}
        assert len(contents) == 1, entry["file"]
        table = pq.read_table(tmp_path / "0" / entry["file"]).cast(SAMPLE_SCHEMA)  # Parquet drops nested fields' nullability
        assert table.num_rows > ROW_GROUP_ROWS
        write_parquet(tmp_path / "whole.parquet", table.combine_chunks(), ROW_GROUP_ROWS, PARQUET_OPTIONS)
        assert (tmp_path / "whole.parquet").read_bytes() == contents.pop()


def test_merge_breaks_order_key_ties_by_id_across_runs(tmp_path, monkeypatch):
    """Order keys squeezed into 6 values: almost every row ties with rows in other runs, and the merge
    must still give (order, id) order, comparing ids as UTF-8 bytes like Arrow's sort does."""
    real = shards.sample_keys
    monkeypatch.setattr(shards, "sample_keys", lambda seed, ids: (lambda s, o: (s, o % np.uint64(6)))(*real(seed, ids)))
    records = rows("TAG", 600) + rows("TS-E", 300)
    for k, r in enumerate(records[::7]):
        r["id"] += ["é", "日本", "\U0001f600", "Z", "~"][k % 5]
    src = write(tmp_path / "a.parquet", records)
    merges = {"one run": dict(batch_rows=10_000), "many runs": dict(batch_rows=50), "multi-level": dict(batch_rows=40, fan_in=3)}
    for name, merge in merges.items():
        shards.build_shard_set([src], tmp_path / name, 2, 4, {"TAG": None, "TS": None}, **merge)
    for k, t in enumerate(shard_tables(tmp_path / "multi-level")):
        ids = t.column("id").to_pylist()
        keys = list(zip((real(4, ids)[1] % np.uint64(6)).tolist(), (i.encode() for i in ids)))
        assert keys == sorted(keys) and {o % 2 for o, _ in keys} == {k}
    for name in ["manifest.json", "shard-00000.parquet", "shard-00001.parquet"]:
        assert len({(tmp_path / m / name).read_bytes() for m in merges}) == 1, name
