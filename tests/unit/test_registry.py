"""alpha.workflow.registry: the config's registries as pure functions (what rules/common.smk builds the DAG from)."""
import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from alpha.workflow import registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(monkeypatch):
    """config/config.yaml with the schema's defaults filled in, read from the project root (recipe paths)."""
    monkeypatch.chdir(ROOT)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate(cfg, str(ROOT / "config/schema.yaml"))
    return copy.deepcopy(cfg)


def test_the_embedded_default_has_no_problems(config):
    tasks, problems = registry.load_tasks(config)
    assert problems == []
    assert sorted(tasks) == sorted(config["benchmarks"])
    assert registry.model_problems(config) == [] and registry.shard_set_problems(config) == []
    assert registry.out_of_tables_problems(config) == [] and registry.grounded_problems(config, tasks) == []


def test_model_registry_paths_templates_and_train_eval_models(config):
    assert registry.finetuned(config) == ["alpha-tiny-llama-chat", "alpha-tiny-llama-chat-lora"]
    assert registry.model_path(config, "tiny-llama-chat") == "results/models/tiny"  # base "tiny": the built model
    assert registry.model_path(config, "alpha-tiny-llama-chat") == "results/train/alpha-tiny-llama-chat/model"
    assert registry.model_path(config, "alpha-tiny-llama-chat-lora") == "results/train/alpha-tiny-llama-chat-lora/merged"
    assert registry.chat_template_of(config, "alpha-tiny-llama-chat") == "llama-2"  # inherited from its base
    assert registry.train_eval_models(config) == ["alpha-tiny-llama-chat", "alpha-tiny-llama-chat-lora", "tiny-llama-chat"]
    config["models"]["alpha-tiny-llama-chat"]["recipe_overrides"] = {"shard_set": "ablation-TAG", "lr": 0.001}
    assert registry.recipe_of(config, "alpha-tiny-llama-chat")["shard_set"] == "ablation-TAG"
    assert registry.recipe_override_args(config, "alpha-tiny-llama-chat") == "--set lr=0.001 --set shard_set=ablation-TAG"


def test_model_registry_problems(config):
    models = config["models"]
    models["x"] = {"from": "alpha-tiny-llama-chat", "recipe": "config/recipes/nope.yaml", "train": {"gpus": 1}}
    problems = registry.model_problems(config)
    assert any("models.x.from: 'alpha-tiny-llama-chat' is not a base model" in p for p in problems)
    assert any("models.x.recipe: config/recipes/nope.yaml does not exist" in p for p in problems)
    assert any("models.x.train: unknown keys ['gpus']" in p for p in problems)


def test_recipe_must_name_a_known_shard_set(config):
    config["models"]["alpha-tiny-llama-chat"]["recipe_overrides"] = {"shard_set": "missing"}
    assert registry.recipe_problems(config, "alpha-tiny-llama-chat") == [
        "config/recipes/tiny/full.yaml: shard_set 'missing' is not in shards.sets"]


def test_shard_set_problems_and_spec(config):
    assert registry.task_families(config, "alpha") == ["TAG", "TAP", "TC", "TS"]
    config["shards"]["sets"]["alpha"]["caps"]["XYZ"] = 3
    config["shards"]["sets"]["alpha"]["external"].append({"name": "nowhere", "ratio": 0.1})
    problems = registry.shard_set_problems(config)
    assert problems[0].startswith("shards.sets.alpha.caps.XYZ: not a task or family (TAG, TAP, TC, TS, TAG, TAP-G")
    assert problems[1] == "shards.sets.alpha.external: 'nowhere' is not defined under shards.external"
    spec = registry.shard_set_spec(config, "ablation-TAG")
    assert spec == {"caps": {"TAG": 500}, "external": [], "n_shards": 1}


def test_dumps_named_twice_or_none(config):
    config["ads"]["dumps"] = [{"path": "a/x.jsonl"}, {"path": "b/x.json.gz"}]
    dumps, problems = registry.dumps_from_config(config)
    assert list(dumps) == ["x"] and "dump name 'x' is used twice" in problems[0]
    config["ads"]["dumps"] = []
    assert "ads.dumps is empty" in registry.dumps_from_config(config)[1][0]


def test_dump_params_are_key_sorted_with_the_global_floor(config):
    entry = {"path": "x.csv", "columns": {"z": "a", "b": "c"}, "layout": "wide"}
    params = registry.dump_params(config, entry)
    assert list(params["columns"]) == ["b", "z"] and params["layout"] == "wide"
    assert params["min_kept_share"] == config["ads"]["min_kept_share"]
    assert registry.dump_params(config, {**entry, "min_kept_share": 0})["min_kept_share"] == 0


def test_benchmark_problems_unknown_task_loader_metric_variant_and_shared_columns(config):
    config["benchmarks"]["gss"]["task"] = "no_such_task"
    config["benchmarks"]["culturenli"]["variant"] = "fancy"
    config["benchmarks"]["second_goqa"] = {**config["benchmarks"]["globalopinionqa"], "task": "globalopinionqa"}
    tasks, problems = registry.load_tasks(config)
    assert any(p.startswith("benchmarks.gss.task: unknown benchmark task 'no_such_task'") for p in problems)
    assert "benchmarks.culturenli.variant: 'fancy' is not one of reference, compat" in problems
    assert any("table column 'GlobalOpinionQA Avg Sim' also comes from benchmarks.globalopinionqa" in p for p in problems)


def test_benchmarks_with_table_columns(config):
    tasks, _ = registry.load_tasks(config)
    assert registry.benchmarks_with(tasks, [registry.TABLE2_VALUE]) == ["opinionqa_xl"]
    assert len(registry.benchmarks_with(registry.logprob_tasks(config, tasks), registry.TABLE1_COLUMNS)) == 6


def test_elicitation_modes_are_twins_of_a_logprob_entry(config):
    assert registry.elicitation_benchmarks(config) == ["globalopinionqa_sampled", "globalopinionqa_verbalised"]
    tasks, problems = registry.load_tasks(config)
    assert problems == []  # the same table columns as their twin: no "column also comes from" problem
    assert "globalopinionqa_sampled" not in registry.logprob_tasks(config, tasks)
    config["benchmarks"]["globalopinionqa_sampled"]["variant"] = "reference"
    _, problems = registry.load_tasks(config)
    assert problems == ["benchmarks.globalopinionqa_sampled (mode sampled) uses variant 'reference' but its logprob twin "
                        "benchmarks.globalopinionqa uses 'compat': results/elicitation.csv compares them, give both one variant"]
    config["benchmarks"]["globalopinionqa_sampled"]["mode"] = "guess"
    with pytest.raises(Exception, match="guess"):
        validate(config, str(ROOT / "config/schema.yaml"))


def test_ablation_rows_and_models_out_of_the_tables(config):
    # the demo's LoRA fine-tune trains on TAP only: its base and both fine-tunes form the ablation
    assert registry.ablation_rows(config) == [
        ("tiny-llama-chat", {"Tasks": "none (base model)", "Shard set": ""}),
        ("alpha-tiny-llama-chat", {"Tasks": "TAG + TAP + TC + TS", "Shard set": "alpha"}),
        ("alpha-tiny-llama-chat-lora", {"Tasks": "TAP", "Shard set": "ablation-TAP"}),
    ]
    models = config["models"]
    models["tag-only"] = {"from": "tiny-llama-chat", "recipe": "config/recipes/tiny/full.yaml",
                          "recipe_overrides": {"shard_set": "ablation-TAG"}, "in_tables": False}
    rows = registry.ablation_rows(config)
    assert [name for name, _ in rows] == ["tiny-llama-chat", "alpha-tiny-llama-chat", "alpha-tiny-llama-chat-lora", "tag-only"]
    assert rows[0][1] == {"Tasks": "none (base model)", "Shard set": ""}
    assert rows[-1][1] == {"Tasks": "TAG", "Shard set": "ablation-TAG"}
    assert registry.out_of_tables_problems(config) == []
    assert [n for n, _ in registry.table_models(config)] == ["tiny-llama-chat", "alpha-tiny-llama-chat",
                                                             "alpha-tiny-llama-chat-lora"]
    models["orphan"] = {"base": "tiny", "in_tables": False}
    assert "models ['orphan'] have in_tables: false" in registry.out_of_tables_problems(config)[0]


def test_grounded_problems(config):
    tasks, _ = registry.load_tasks(config)
    config["eval"]["grounded"].update(enabled=True, judge_model="tiny-llama-chat", judge_url="http://x", benchmark="gss")
    problems = registry.grounded_problems(config, tasks)
    assert problems[0].startswith("give exactly one of judge_model")
    assert problems[1] == "benchmark 'gss' is not a registry benchmark with the culturebank loader"
    config["eval"]["grounded"].update(judge_url=None, benchmark="culturebank", judge_model="no/such/dir")
    assert registry.grounded_problems(config, tasks) == [
        "judge_model 'no/such/dir' is neither a registry model nor a local folder"]
    config["eval"]["grounded"]["judge_model"] = "alpha-tiny-llama-chat-lora"
    assert registry.judge_dir(config) == "results/train/alpha-tiny-llama-chat-lora/merged"


def test_srun_geometry_and_sorted_params():
    geometry = {"nodes": 2, "procs_per_node": 4, "cpus_per_task": 8, "gpus_per_node": 4}
    assert registry.srun_args(geometry) == ("--nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=32 "
                                            "--kill-on-bad-exit=1 --gres=gpu:4")
    assert list(registry.sorted_deep({"b": {"z": 1, "a": [{"y": 1, "x": 2}]}, "a": 0})) == ["a", "b"]
    assert list(registry.sorted_deep({"b": {"z": 1, "a": [{"y": 1, "x": 2}]}})["b"]["a"][0]) == ["x", "y"]


def test_the_registry_imports_no_data_library():
    import subprocess
    import sys

    code = ("import sys; from alpha.workflow import registry, code_deps; "
            "heavy = sorted(m for m in ('pandas', 'pyarrow', 'numpy', 'torch') if m in sys.modules); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "scripts", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
