"""Which registry models the paper's tables request, on config/paper.yaml with its per-task ablation
models switched on (dry runs on stand-in inputs: nothing is trained or scored)."""
import re

import pytest
import yaml

from workflow_helpers import paper_standin_workflow, snakemake

ABLATION_SETS = ("TAG", "TAP", "TC", "TS")


pytestmark = pytest.mark.workflow  # starts Snakemake: not part of make test-fast

def _with_ablation_models(configfile, in_tables):
    config = yaml.safe_load(configfile.read_text())
    for family in ABLATION_SETS:
        config["models"][f"alpha-llama-2-13b-chat-{family}"] = {
            "from": "llama-2-13b-chat",
            "recipe": "config/recipes/paper/alpha50m-zero3.yaml",
            "recipe_overrides": {"shard_set": f"ablation-{family}"},
            "label": f"ALPHA-13B ({family} only)",
            "in_tables": in_tables,
        }
    path = configfile.with_name(f"ablation_{in_tables}.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _scored_models(workdir, configfile, target):
    out = snakemake(workdir, target, "-n", "--replace-workflow-config", "--configfile", str(configfile)).stdout
    blocks = re.split(r"^\s*rule ", out, flags=re.M)[1:]
    return {
        re.search(r"model=([^,\s]+)", block).group(1)
        for block in blocks if block.startswith("score_benchmark:")
    }


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    return paper_standin_workflow(tmp_path_factory.mktemp("paper_tables"), n_dumps=2)


def test_ablation_only_models_are_scored_for_the_ablation_table_not_for_table1(paper):
    workdir, configfile = paper
    ablation_models = {f"alpha-llama-2-13b-chat-{f}" for f in ABLATION_SETS}
    configured = _with_ablation_models(configfile, in_tables=False)
    table_models = _scored_models(workdir, configured, "results/table1.csv")
    assert len(table_models) == 13 and not table_models & ablation_models
    assert _scored_models(workdir, configured, "results/ablation.csv") == ablation_models | {
        "llama-2-13b-chat", "alpha-llama-2-13b-chat"}
    # by default (in_tables: true) every registry model is a row of Table 1
    assert _scored_models(workdir, _with_ablation_models(configfile, in_tables=True), "results/table1.csv") == (
        table_models | ablation_models)


def test_a_model_out_of_the_tables_must_belong_to_the_ablation(paper):
    workdir, configfile = paper
    config = yaml.safe_load(configfile.read_text())
    config["models"]["vicuna-7b"]["in_tables"] = False
    path = configfile.with_name("orphan.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake(workdir, "results/table1.csv", "-n", "--replace-workflow-config", "--configfile", str(path), check=False)
    assert proc.returncode != 0
    assert "['vicuna-7b'] have in_tables: false but are not part of the per-task ablation" in proc.stdout + proc.stderr
