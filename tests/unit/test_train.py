"""The pure parts of the trainer (alpha.train.finetune): recipes, DeepSpeed config, the shard manifest, the
streamed and rank-partitioned sample order with seek-on-resume, truncation, and collation.
No training runs here."""
import json
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from alpha.core import chat
from alpha.core.chat import IGNORE_INDEX
from alpha.demo.tiny_model import train_tokenizer
from alpha.train import finetune as train
from alpha.train.finetune import Recipe, ShardStream

REPO = Path(__file__).resolve().parents[2]
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
TEMPLATE = chat.LLAMA2_TEMPLATE
# manifest order (not alphabetical) and rows per file; row groups of 3 rows
LAYOUT = [("b.parquet", 7), ("a.parquet", 5), ("c.parquet", 8)]
ROWS = sum(n for _, n in LAYOUT)  # 20; file boundaries at 7 and 12, row groups start at 0 3 6 | 7 10 | 12 15 18


def conversation(g):
    return [{"role": "user", "content": f"question {g}"}, {"role": "assistant", "content": f"answer {g}"}]


def write_shards(root, layout, row_group_size=3, make=conversation):
    root.mkdir(parents=True, exist_ok=True)
    g = 0
    for name, n in layout:
        table = pa.table({"messages": pa.array([make(g + i) for i in range(n)], type=MESSAGES)})
        pq.write_table(table, root / name, row_group_size=row_group_size)
        g += n
    (root / "manifest.json").write_text(json.dumps({"shards": [{"file": name, "rows": n} for name, n in layout]}))
    return root


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([f"question {k} answer {k}" for k in range(30)], 400)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = write_shards(tmp_path_factory.mktemp("shards"), LAYOUT)
    files, rows = train.shard_files(root)
    assert rows == ROWS
    # the layout the tests rely on
    assert [pq.ParquetFile(f).metadata.num_row_groups for f in files] == [3, 2, 3]
    return files


@pytest.fixture(scope="module")
def expected(tok):
    """Encoding of global sample g (of any epoch)."""
    cache = {}

    def enc(g):
        g %= ROWS
        if g not in cache:
            e = chat.encode_conversation(tok, conversation(g), TEMPLATE, 10**9)
            cache[g] = {"input_ids": e.input_ids, "labels": e.labels}
        return cache[g]

    return enc


def stream(shards, tok, max_length=10_000, **kw):
    return ShardStream(shards, ROWS, tok, TEMPLATE, max_length, **kw)


def take(s, n):
    return list(islice(iter(s), n))


# ---------------------------------------------------------------- recipes


def write_recipe(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


RECIPE = """\
shard_set: alpha
max_length: 128
deepspeed: config/deepspeed/zero2.json
lora: true
lora_target_modules: [q_proj]
learning_rate: 1.0e-4
per_device_train_batch_size: 2
bf16: auto
max_steps: 5
"""


def test_load_recipe_splits_recipe_and_training_arguments(tmp_path):
    recipe, targs = train.load_recipe(write_recipe(tmp_path, RECIPE))
    assert recipe == Recipe(shard_set="alpha", max_length=128, deepspeed="config/deepspeed/zero2.json", lora=True,
                            lora_target_modules=["q_proj"])
    assert (recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout) == (16, 32, 0.05)
    assert targs == {"learning_rate": 1e-4, "per_device_train_batch_size": 2, "bf16": "auto", "max_steps": 5}


def test_load_recipe_applies_overrides(tmp_path):
    recipe, targs = train.load_recipe(write_recipe(tmp_path, RECIPE),
                                      {"max_length": 64, "lora": False, "learning_rate": 5e-5, "seed": 3})
    assert (recipe.max_length, recipe.lora, recipe.shard_set) == (64, False, "alpha")
    assert targs == {"learning_rate": 5e-5, "per_device_train_batch_size": 2, "bf16": "auto", "max_steps": 5, "seed": 3}


def test_empty_recipe_is_all_defaults(tmp_path):
    assert train.load_recipe(write_recipe(tmp_path, "# nothing\n")) == (Recipe(), {})
    assert Recipe().deepspeed is None and Recipe().lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_load_recipe_rejects_unknown_keys_naming_them(tmp_path):
    path = write_recipe(tmp_path, "max_length: 3\nlr: 0.1\nfoo_bar: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError) as err:
        train.load_recipe(path)
    assert str(err.value).startswith(f"{path}: unknown recipe keys ['foo_bar', 'lr'] ")
    with pytest.raises(ValueError, match=r"unknown recipe keys \['lora_rank'\]"):
        train.load_recipe(write_recipe(tmp_path, RECIPE), {"lora_rank": 4})


@pytest.mark.parametrize("keys", [["output_dir"], ["resume_from_checkpoint"], ["output_dir", "resume_from_checkpoint"]])
def test_load_recipe_rejects_workflow_keys(tmp_path, keys):
    path = write_recipe(tmp_path, RECIPE + "".join(f"{k}: somewhere\n" for k in keys))
    with pytest.raises(ValueError) as err:
        train.load_recipe(path)
    assert str(err.value) == f"{path}: {keys} are set by the workflow, not by recipes"
    with pytest.raises(ValueError, match="set by the workflow"):
        train.load_recipe(write_recipe(tmp_path, RECIPE), {keys[0]: "x"})


@pytest.mark.parametrize("path", sorted((REPO / "config" / "recipes").glob("*/*.yaml")), ids=lambda p: p.stem)
def test_shipped_recipes_load(path):
    recipe, targs = train.load_recipe(path)
    assert recipe.deepspeed is None or (REPO / recipe.deepspeed).is_file()
    assert "per_device_train_batch_size" in targs


def test_deepspeed_config_adds_torch_adam_only_without_cuda(tmp_path):
    path = REPO / "config" / "deepspeed" / "zero2.json"
    original = json.loads(path.read_text())
    assert train.deepspeed_config(path, cuda=True) == original
    cpu = train.deepspeed_config(path, cuda=False)
    assert cpu["optimizer"]["params"] == {**original["optimizer"]["params"], "torch_adam": True}
    assert {k: v for k, v in cpu.items() if k != "optimizer"} == {k: v for k, v in original.items() if k != "optimizer"}
    assert cpu["optimizer"]["type"] == original["optimizer"]["type"]

    bare = tmp_path / "ds.json"
    bare.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    assert train.deepspeed_config(bare, cuda=True) == {"zero_optimization": {"stage": 3}}
    # no optimizer block: the Trainer builds a torch optimizer itself, nothing to switch
    assert train.deepspeed_config(bare, cuda=False) == {"zero_optimization": {"stage": 3}}


# ---------------------------------------------------------------- shard manifest


def test_shard_files_in_manifest_order(shards):
    assert [f.name for f in shards] == ["b.parquet", "a.parquet", "c.parquet"]


def test_shard_files_row_count_mismatch(tmp_path):
    root = write_shards(tmp_path / "s", LAYOUT)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shards"][1]["rows"] = 6
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="do not match manifest.json"):
        train.shard_files(root)


def test_shard_files_empty_set(tmp_path):
    root = tmp_path / "none"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"shards": []}))
    with pytest.raises(ValueError, match="the shard set is empty"):
        train.shard_files(root)
    zero = write_shards(tmp_path / "zero", [("z.parquet", 0)])
    with pytest.raises(ValueError, match="the shard set is empty"):
        train.shard_files(zero)


# ---------------------------------------------------------------- streaming order


def test_single_rank_streams_every_row_in_order_and_wraps(shards, tok, expected):
    s = stream(shards, tok)
    got = take(s, 2 * ROWS + 7)  # the stream is infinite: more than two epochs
    assert got == [expected(g) for g in range(2 * ROWS + 7)]
    assert s.stats == {"samples": 2 * ROWS + 7, "truncated": 0, "left_truncated": 0}


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_partition_the_global_order(shards, tok, expected, world):
    n = 2 * ROWS + 5  # global samples, over more than two epochs
    per_rank = [take(stream(shards, tok, rank=r, world=world), -(-n // world)) for r in range(world)]
    # rank r owns global samples r, r + world, ...: interleaving the ranks gives the global order
    interleaved = [per_rank[g % world][g // world] for g in range(n)]
    assert interleaved == [expected(g) for g in range(n)]


def test_two_ranks_are_disjoint_and_cover_an_epoch(shards, tok):
    decoded = [
        [tok.decode(x["input_ids"]) for x in take(stream(shards, tok, rank=r, world=2), ROWS // 2)]
        for r in range(2)
    ]
    rows = [chat.render(tok, conversation(g), TEMPLATE) for g in range(ROWS)]
    assert decoded[0] == rows[0::2] and decoded[1] == rows[1::2]
    assert not set(decoded[0]) & set(decoded[1])
    assert sorted(decoded[0] + decoded[1]) == sorted(rows)


@pytest.fixture(scope="module")
def fresh(shards, tok):
    """The first 60 samples of each rank of a fresh stream, by (world, rank)."""
    return {(w, r): take(stream(shards, tok, rank=r, world=w), 60) for w in (1, 2, 3) for r in range(w)}


# world 1: row-group starts 3 6 10 15 18, mid-group 4 8 13 19, file starts 7 12, epoch starts 20 40, later 27 45
@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 6, 7, 8, 10, 12, 13, 15, 18, 19, 20, 21, 27, 40, 45])
def test_start_seeks_like_skipping_one_rank(shards, tok, fresh, k):
    got = take(stream(shards, tok, start=k), 10)
    assert got == fresh[1, 0][k:k + 10]


# every start up to past the second epoch, for each rank of two and three
@pytest.mark.parametrize("world", [2, 3])
def test_start_seeks_like_skipping_many_ranks(shards, tok, fresh, world):
    for rank in range(world):
        for k in range(0, 2 * ROWS // world + 2):
            got = take(stream(shards, tok, rank=rank, world=world, start=k), 5)
            assert got == fresh[world, rank][k:k + 5], (rank, k)


def test_start_skips_whole_files_and_row_groups_unread(shards, tok, expected, monkeypatch):
    read = []
    original = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        read.append((self.metadata.num_rows, i))
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    # global 16 = c.parquet (8 rows) row group 1; rank 0 of 2 at start 8
    it = iter(stream(shards, tok, rank=0, world=2, start=8))
    assert next(it) == expected(16)
    assert read == [(8, 1)]
    # next epoch: global 40 = b.parquet (7 rows) row group 0
    it = iter(stream(shards, tok, start=ROWS * 2))
    read.clear()
    assert next(it) == expected(0)
    assert read == [(7, 0)]


def test_stream_restarts_identically(shards, tok):
    s = stream(shards, tok, rank=1, world=2, start=3)
    assert take(s, 12) == take(s, 12)


# ---------------------------------------------------------------- truncation


LONG = [{"role": "system", "content": " ".join(f"question {k}" for k in range(12))},
        {"role": "user", "content": "question 7"},
        {"role": "assistant", "content": "answer 1 answer 2 answer 3"}]


@pytest.fixture(scope="module")
def long_full(tok):
    e = chat.encode_conversation(tok, LONG, TEMPLATE, 10**9)
    first = next(i for i, lab in enumerate(e.labels) if lab != IGNORE_INDEX)
    assert 2 * (len(e.input_ids) - first) < first  # the answer is shorter than the prompt
    return e.input_ids, e.labels, first


def test_truncation_keeps_the_start_when_the_answer_starts_within(shards, tok, long_full):
    ids, labels, first = long_full
    s = stream(shards, tok, max_length=first + 1)  # exactly one answer token fits
    out = s.encode(LONG)
    assert out == {"input_ids": ids[:first + 1], "labels": labels[:first + 1]}
    assert out["labels"][-1] == ids[first] != IGNORE_INDEX
    assert s.stats == {"samples": 1, "truncated": 1, "left_truncated": 0}


def test_truncation_keeps_the_end_when_the_answer_would_be_cut_off(shards, tok, long_full):
    ids, labels, first = long_full
    s = stream(shards, tok, max_length=first)  # not one answer token would fit
    out = s.encode(LONG)
    assert out == {"input_ids": ids[-first:], "labels": labels[-first:]}
    assert tok.decode(out["input_ids"]).endswith(" answer 1 answer 2 answer 3 </s>")
    assert labels[-first:].count(IGNORE_INDEX) == first - (len(ids) - first)
    assert s.stats == {"samples": 1, "truncated": 1, "left_truncated": 1}


def test_no_truncation_at_or_under_max_length(shards, tok, long_full):
    ids, labels, _ = long_full
    s = stream(shards, tok, max_length=len(ids))
    assert s.encode(LONG) == {"input_ids": ids, "labels": labels}
    assert s.stats == {"samples": 1, "truncated": 0, "left_truncated": 0}


def test_stream_counts_truncations(tmp_path, tok, long_full):
    ids, labels, first = long_full
    short = [{"role": "user", "content": "question 1"}, {"role": "assistant", "content": "answer 1"}]
    late_answer = [{"role": "user", "content": "question 1 " * 40}, {"role": "assistant", "content": "answer 1"}]
    late = chat.encode_conversation(tok, late_answer, TEMPLATE, 10**9)
    assert next(i for i, lab in enumerate(late.labels) if lab != IGNORE_INDEX) >= first + 2  # its answer starts beyond max_length
    rows = [LONG, short, late_answer, LONG]
    root = write_shards(tmp_path / "t", [("t.parquet", 4)], make=lambda g: rows[g])
    files, n = train.shard_files(root)
    s = ShardStream(files, n, tok, TEMPLATE, first + 2, world=1)
    got = take(s, 4)
    assert [len(x["input_ids"]) for x in got] == [first + 2, len(chat.encode_conversation(tok, short, TEMPLATE, 10**9).input_ids),
                                                  first + 2, first + 2]
    assert got[0] == got[3] == {"input_ids": ids[:first + 2], "labels": labels[:first + 2]}
    assert got[2] == {"input_ids": late.input_ids[-(first + 2):], "labels": late.labels[-(first + 2):]}
    assert s.stats == {"samples": 4, "truncated": 3, "left_truncated": 1}


# ---------------------------------------------------------------- collation


def test_collate_right_pads():
    batch = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
             {"input_ids": [8], "labels": [8]},
             {"input_ids": [9, 10], "labels": [-100, -100]}]
    out = train.collate(pad_id=2)(batch)
    assert set(out) == {"input_ids", "labels", "attention_mask"}
    assert all(t.dtype == torch.long for t in out.values())
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2], [9, 10, 2]]
    assert out["labels"].tolist() == [[-100, 6, 7], [8, -100, -100], [-100, -100, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]


def test_saved_tokenizer_config_does_not_depend_on_hf_hub_offline(tmp_path, monkeypatch):
    """transformers writes local_files_only from the loading environment: two jobs, one with HF_HUB_OFFLINE
    set, must still write the same bytes."""
    from transformers import AutoTokenizer

    train_tokenizer(["a tiny corpus for a tiny tokenizer"] * 10, 120).save_pretrained(tmp_path / "base")
    written = {}
    for offline in (None, "1"):
        if offline is None:
            monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        else:
            monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        out = tmp_path / f"out-{offline}"
        train.save_tokenizer(AutoTokenizer.from_pretrained(tmp_path / "base", local_files_only=offline == "1"), out)
        written[offline] = (out / "tokenizer_config.json").read_bytes()
        assert b"local_files_only" not in written[offline]
    assert written[None] == written["1"]
    assert json.loads(written["1"])["eos_token"] == "</s>"
