"""The scattered embedding and keyword jobs on the session's demo run: one job gives the bytes the demo's
several jobs gave, and an embedding job killed with SIGKILL resumes from its checkpointed blocks."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from workflow_helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.workflow]


@pytest.fixture(scope="module")
def settings(demo_run):
    config = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    assert config["pairs"]["embed_jobs"] > 1 and config["tasks"]["keywords"]["jobs"] > 1  # the demo scatters both
    return config


@pytest.fixture(scope="module")
def one_job_embeddings(demo_run, settings, tmp_path_factory):
    import torch

    from alpha.pairs import embeddings

    out = tmp_path_factory.mktemp("one_job")
    torch.set_num_threads(2)  # the rule's threads: the float kernels depend on the thread count
    pairs = settings["pairs"]
    results = demo_run / "results/embeddings"
    embeddings.embed_part(results / "bodies.parquet", out / "part.npy", 0, 1, pairs["embed_block_rows"],
                          batch_size=pairs["embed_batch_size"], allow_bf16=pairs["allow_bf16"])
    embeddings.gather([out / "part.npy"], results / "ad_bodies.parquet", out / "bodies.npy", out / "ads")
    return out


def test_one_embedding_job_gives_the_bytes_of_the_demos_jobs(demo_run, one_job_embeddings):
    results = demo_run / "results/embeddings"
    assert len(list((results / "parts").glob("*.npy"))) > 1
    assert (one_job_embeddings / "bodies.npy").read_bytes() == (results / "bodies.npy").read_bytes()
    assert (one_job_embeddings / "ads.npy").read_bytes() == (results / "ads.npy").read_bytes()
    assert (one_job_embeddings / "ads.ids.txt").read_bytes() == (results / "ads.ids.txt").read_bytes()
    report = json.loads((results / "bodies.json").read_text())
    assert report["distinct_bodies"] < report["ads"]  # the demo reruns creatives: the work is per distinct body


def test_one_keyword_job_gives_the_bytes_of_the_demos_jobs(demo_run, settings, tmp_path):
    from alpha.tasks import keywords

    kw_settings = settings["tasks"]["keywords"]
    results = demo_run / "results"
    keywords.keywords_part(results / "embeddings/bodies.parquet", results / "embeddings/bodies.npy", tmp_path / "part.parquet",
                           0, 1, kw_settings["block_docs"], top_n=kw_settings["top_n"], batch_docs=kw_settings["batch_docs"])
    keywords.gather_keywords([tmp_path / "part.parquet"], results / "embeddings/ad_bodies.parquet", tmp_path / "keywords.parquet")
    assert (tmp_path / "keywords.parquet").read_bytes() == (results / "tasks/keywords.parquet").read_bytes()


KILLABLE = """
import json, sys, torch
sys.path.insert(0, {scripts!r})
from alpha.core.io import setup_logging
from alpha.pairs import embeddings
setup_logging({log!r})
torch.set_num_threads(2)
report = embeddings.embed_part({bodies!r}, {out!r}, 0, {jobs}, {block_rows}, batch_size={batch}, allow_bf16={bf16})
print(json.dumps(report))
"""


def test_a_killed_embedding_job_resumes_from_its_checkpoints(demo_run, settings, tmp_path):
    pairs = settings["pairs"]
    results = demo_run / "results/embeddings"
    out = tmp_path / "0.npy"
    code = KILLABLE.format(scripts=str(ROOT / "scripts"), log=str(tmp_path / "embed.log"), bodies=str(results / "bodies.parquet"),
                           out=str(out), jobs=pairs["embed_jobs"], block_rows=pairs["embed_block_rows"],
                           batch=pairs["embed_batch_size"], bf16=pairs["allow_bf16"])
    job = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    checkpoints = tmp_path / "0.npy.blocks"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*.npy")) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    done = list(checkpoints.glob("*.npy"))
    assert done and not out.exists(), "the job must be killed after its first block and before its output"
    rerun = subprocess.run([sys.executable, "-c", code], check=True, timeout=600, capture_output=True, text=True)
    assert json.loads(rerun.stdout.splitlines()[-1])["blocks_reused"] == len(done)
    assert "from checkpoints" in (tmp_path / "embed.log").read_text()
    assert np.load(out).tobytes() == np.load(results / "parts/0.npy").tobytes()
    assert not checkpoints.exists()
