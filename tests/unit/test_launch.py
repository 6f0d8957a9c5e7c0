"""The per-node launcher: Slurm host lists, the rendezvous from fake SLURM_* environments, the exact
torchrun command, the errors, and one real torchrun run (1 node, 2 processes) through the entry script."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alpha.train import launch
from alpha.train.launch import Rendezvous, expand_hostlist, plan, rendezvous_from_env, rendezvous_port, resolve_nproc

ROOT = Path(__file__).resolve().parents[2]
PY = "/py"
TORCHRUN = [PY, "-m", "torch.distributed.run"]


def four_nodes(node_id, **extra):
    """What srun --nodes=4 --ntasks=4 --ntasks-per-node=1 sets on node ``node_id`` of job 123456."""
    return {"SLURM_JOB_ID": "123456", "SLURM_JOB_NODELIST": "gpu[01-04]", "SLURM_NNODES": "4",
            "SLURM_STEP_NODELIST": "gpu[01-04]", "SLURM_STEP_NUM_NODES": "4", "SLURM_STEP_NUM_TASKS": "4",
            "SLURM_NODEID": str(node_id), "SLURM_LOCALID": "0",
            "SLURMD_NODENAME": f"gpu{node_id + 1:02}" if isinstance(node_id, int) else "gpu01",
            "SLURM_GPUS_ON_NODE": "8", "SLURM_CPUS_ON_NODE": "64", **extra}


def one_node_two_tasks(**extra):
    """A one-node batch job with two CPU tasks (the local test cluster), launcher run in the batch step."""
    return {"SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "alpha-dev", "SLURM_NNODES": "1", "SLURM_NTASKS": "2",
            "SLURM_NODEID": "0", "SLURM_CPUS_ON_NODE": "2", **extra}


# --- host lists -------------------------------------------------------------------------------

@pytest.mark.parametrize("hostlist, hosts", [
    ("gpu[01-04]", ["gpu01", "gpu02", "gpu03", "gpu04"]),
    ("node[8-11]", ["node8", "node9", "node10", "node11"]),          # no padding, crossing digit counts
    ("node[08-11]", ["node08", "node09", "node10", "node11"]),       # padded to the low bound's width
    ("c[098-101]", ["c098", "c099", "c100", "c101"]),
    ("c[9-10,001-002]", ["c9", "c10", "c001", "c002"]),              # each range keeps its own width
    ("a[1-2,5],b3", ["a1", "a2", "a5", "b3"]),
    ("x[1,3-4]y", ["x1y", "x3y", "x4y"]),                            # literal suffix after the brackets
    ("x[1,3-4]y.ib", ["x1y.ib", "x3y.ib", "x4y.ib"]),
    ("rack[1-2]-gpu[01-02]", ["rack1-gpu01", "rack1-gpu02", "rack2-gpu01", "rack2-gpu02"]),  # leftmost slowest
    ("r[2,1]n[1-2]", ["r2n1", "r2n2", "r1n1", "r1n2"]),             # Slurm's order, not sorted
    ("gpu17", ["gpu17"]),
    ("n[5]", ["n5"]),
    ("login1,gpu[3-4],cpu-a.local", ["login1", "gpu3", "gpu4", "cpu-a.local"]),
    ("  gpu[1-2]\n", ["gpu1", "gpu2"]),
])
def test_expand_hostlist(hostlist, hosts):
    assert expand_hostlist(hostlist) == hosts


def test_expand_hostlist_large_padded_range():
    hosts = expand_hostlist("c[001-1000]")
    assert len(hosts) == 1000 and hosts[:2] == ["c001", "c002"] and hosts[-2:] == ["c999", "c1000"]


@pytest.mark.parametrize("hostlist, message", [
    ("", "empty"),
    ("   ", "empty"),
    ("a,,b", "empty host name"),
    ("a,", "empty host name"),
    ("gpu[01-", "unclosed"),
    ("gpu01]", "unmatched ']'"),
    ("a[[1-2]]", "nested"),
    ("a[]", "bad range ''"),
    ("a[1-]", "bad range '1-'"),
    ("a[-3]", "bad range '-3'"),
    ("a[1,,2]", "bad range ''"),
    ("a[x-y]", "bad range 'x-y'"),
    ("a[1-2-3]", "bad range '1-2-3'"),
    ("a[3-1]", "runs backwards"),
    ("a[ 1-2]", "bad range ' 1-2'"),
    ("a b", "unexpected ' '"),
    ("gpu$1", "unexpected '$'"),
    ("n[1-99999999]", "over 100000 hosts"),
    ("a[1-1000]b[1-1000]", "over 100000 hosts"),
])
def test_malformed_hostlist_names_the_value(hostlist, message):
    with pytest.raises(ValueError, match="malformed host list") as err:
        expand_hostlist(hostlist)
    assert message in str(err.value) and repr(hostlist) in str(err.value)


# --- rendezvous and the torchrun command ------------------------------------------------------

def test_four_nodes_node0():
    rdzv = rendezvous_from_env(four_nodes(0))
    assert rdzv == Rendezvous(nnodes=4, node_rank=0, hosts=("gpu01", "gpu02", "gpu03", "gpu04"), master="gpu01",
                              endpoint_host="gpu01", port=20000 + 123456 % 12000, run_id="123456")
    assert rdzv.endpoint == "gpu01:23456"


def test_four_nodes_node3_exact_argv_and_env():
    launched = plan(["--nproc-per-node", "auto", "--", "scripts/train.py", "--recipe", "r.yaml", "--", "x"],
                    four_nodes(3), python=PY, cuda_count=lambda: pytest.fail("SLURM_GPUS_ON_NODE wins"))
    assert launched.rendezvous.node_rank == 3 and launched.rendezvous.master == "gpu01"
    assert launched.argv == TORCHRUN + [
        "--nnodes", "4", "--rdzv-backend", "c10d", "--rdzv-endpoint", "gpu01:23456", "--rdzv-id", "123456",
        "--nproc-per-node", "8", "--max-restarts", "0",
        "scripts/train.py", "--recipe", "r.yaml", "--", "x"]   # everything after the first '--', verbatim
    assert launched.env["OMP_NUM_THREADS"] == "8"                # 64 CPUs / 8 processes
    assert launched.env["SLURM_NODEID"] == "3"                   # the rest passes through
    assert launched.summary == ("launch_node: node 3/4 (gpu04), master gpu01, rendezvous c10d gpu01:23456 "
                                "id 123456, 8 process(es) per node, world size 32")


def test_every_node_of_a_job_agrees_on_the_rendezvous():
    argvs = [plan(["--nproc-per-node", "8", "--", "t.py"], four_nodes(n), python=PY).argv for n in range(4)]
    assert all(argv == argvs[0] for argv in argvs)   # c10d: no per-node argument at all


def test_static_backend_passes_the_slurm_node_rank():
    argv = plan(["--nproc-per-node", "8", "--rdzv-backend", "static", "--max-restarts", "2", "--", "t.py"],
                four_nodes(3), python=PY).argv
    assert argv == TORCHRUN + ["--nnodes", "4", "--rdzv-backend", "static", "--rdzv-endpoint", "gpu01:23456",
                               "--node-rank", "3", "--nproc-per-node", "8", "--max-restarts", "2", "t.py"]


def test_step_node_list_wins_over_the_job_one():
    env = four_nodes(1, SLURM_STEP_NODELIST="gpu[03-04]", SLURM_STEP_NUM_NODES="2", SLURM_STEP_NUM_TASKS="2")
    rdzv = rendezvous_from_env(env)
    assert (rdzv.hosts, rdzv.master, rdzv.nnodes, rdzv.node_rank) == (("gpu03", "gpu04"), "gpu03", 2, 1)


def test_job_node_list_without_a_step():
    env = {"SLURM_JOB_ID": "9", "SLURM_JOB_NODELIST": "a[1-2,5],b3", "SLURM_JOB_NUM_NODES": "4", "SLURM_NODEID": "2"}
    rdzv = rendezvous_from_env(env)
    assert (rdzv.master, rdzv.node_rank, rdzv.nnodes, rdzv.endpoint) == ("a1", 2, 4, "a1:20009")


def test_one_node_two_cpu_tasks_exact_argv():
    launched = plan(["--nproc-per-node", "2", "--", "scripts/train.py", "--smoke"], one_node_two_tasks(), python=PY)
    assert launched.rendezvous.master == "alpha-dev" and launched.rendezvous.endpoint == "127.0.0.1:20077"
    assert launched.argv == TORCHRUN + [
        "--nnodes", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:20077", "--rdzv-id", "77",
        "--nproc-per-node", "2", "--max-restarts", "0", "scripts/train.py", "--smoke"]
    assert launched.env["OMP_NUM_THREADS"] == "1"


def test_one_node_without_nodeid_is_node0():
    env = one_node_two_tasks()
    del env["SLURM_NODEID"]
    assert rendezvous_from_env(env).node_rank == 0


def test_no_slurm_is_standalone_exact_argv():
    launched = plan(["--nproc-per-node", "auto", "--", "t.py", "a"], {"PATH": "/bin", "MASTER_PORT": "29500"},
                    python=PY, cuda_count=lambda: 0)
    assert launched.rendezvous.standalone and launched.rendezvous.port is None
    assert launched.argv == TORCHRUN + ["--standalone", "--nnodes", "1", "--nproc-per-node", "1",
                                        "--max-restarts", "0", "t.py", "a"]
    assert launched.env == {"PATH": "/bin", "MASTER_PORT": "29500"}   # no Slurm CPU count: nothing added
    assert launched.summary == "launch_node: standalone (no Slurm job), 1 node, 1 process(es)"


def test_standalone_flag_ignores_slurm():
    argv = plan(["--standalone", "--nproc-per-node", "2", "--", "t.py"], four_nodes(3), python=PY).argv
    assert argv == TORCHRUN + ["--standalone", "--nnodes", "1", "--nproc-per-node", "2", "--max-restarts", "0", "t.py"]


def test_default_python_is_this_interpreter():
    assert plan(["--nproc-per-node", "1", "--", "t.py"], {}).argv[:3] == [sys.executable, "-m", "torch.distributed.run"]


def test_omp_num_threads_is_kept_when_set():
    assert plan(["--nproc-per-node", "8", "--", "t.py"], four_nodes(0, OMP_NUM_THREADS="4")).env["OMP_NUM_THREADS"] == "4"


# --- port -------------------------------------------------------------------------------------

def test_port_is_deterministic_and_in_range():
    assert rendezvous_port({"SLURM_JOB_ID": "0"}) == 20000
    assert rendezvous_port({"SLURM_JOB_ID": "11999"}) == 31999
    assert rendezvous_port({"SLURM_JOB_ID": "12000"}) == 20000
    assert rendezvous_port({"SLURM_JOB_ID": "5000123"}) == 20000 + 5000123 % 12000
    assert rendezvous_port({"SLURM_JOB_ID": "100"}, port_base=40000, port_span=100) == 40000
    ports = {rendezvous_port({"SLURM_JOB_ID": str(j)}) for j in range(700000, 700000 + 12000)}
    assert len(ports) == 12000 and max(ports) < 32768          # consecutive jobs never share a port


def test_master_port_overrides():
    assert rendezvous_port({"SLURM_JOB_ID": "123456", "MASTER_PORT": "29555"}) == 29555
    assert rendezvous_from_env(four_nodes(2, MASTER_PORT="29555")).endpoint == "gpu01:29555"


def test_port_options_reach_the_rendezvous():
    argv = plan(["--nproc-per-node", "8", "--port-base", "40000", "--port-span", "1000", "--", "t.py"],
                four_nodes(0), python=PY).argv
    assert argv[argv.index("--rdzv-endpoint") + 1] == "gpu01:40456"


@pytest.mark.parametrize("env, kwargs, message", [
    ({"SLURM_JOB_ID": "1", "MASTER_PORT": "http"}, {}, "MASTER_PORT='http' is not an integer"),
    ({"SLURM_JOB_ID": "1", "MASTER_PORT": "70000"}, {}, "MASTER_PORT='70000' is not a TCP port"),
    ({"SLURM_JOB_ID": "1", "MASTER_PORT": "0"}, {}, "MASTER_PORT='0' is not a TCP port"),
    ({"SLURM_JOB_ID": "12_3"}, {}, "SLURM_JOB_ID='12_3' is not an integer"),
    ({"SLURM_JOB_ID": "1"}, {"port_base": 60000, "port_span": 6000}, "not within 1-65535"),
    ({"SLURM_JOB_ID": "1"}, {"port_span": 0}, "not within 1-65535"),
])
def test_bad_port_settings(env, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rendezvous_port(env, **kwargs)


# --- processes per node -----------------------------------------------------------------------

def test_resolve_nproc():
    assert resolve_nproc("4", {}) == 4 and resolve_nproc(3, {}) == 3
    assert resolve_nproc("auto", {"SLURM_GPUS_ON_NODE": "8"}, cuda_count=lambda: 2) == 8
    assert resolve_nproc("auto", {"SLURM_GPUS_ON_NODE": "0"}, cuda_count=lambda: 2) == 2
    assert resolve_nproc("AUTO", {}, cuda_count=lambda: 0) == 1


@pytest.mark.parametrize("value, message", [("0", "not positive"), ("-2", "not positive"), ("gpu", "'gpu'"), ("1.5", "'1.5'")])
def test_bad_nproc(value, message):
    with pytest.raises(ValueError, match=message):
        resolve_nproc(value, {})


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("env, message", [
    (four_nodes(4), "SLURM_NODEID='4' is outside \\[0, 4\\) for SLURM_STEP_NODELIST='gpu\\[01-04\\]'"),
    (four_nodes(-1), "SLURM_NODEID='-1' is outside"),
    (four_nodes("x"), "SLURM_NODEID='x' is not an integer"),
    (four_nodes(0, SLURM_STEP_NUM_NODES="3"), "SLURM_STEP_NUM_NODES='3' but SLURM_STEP_NODELIST='gpu\\[01-04\\]' expands to 4"),
    ({"SLURM_JOB_ID": "5", "SLURM_JOB_NODELIST": "n[1-3]", "SLURM_NNODES": "2", "SLURM_NODEID": "0"},
     "SLURM_NNODES='2' but SLURM_JOB_NODELIST='n\\[1-3\\]' expands to 3"),
    (four_nodes(0, SLURM_STEP_NODELIST="gpu[01-04"), "malformed host list 'gpu\\[01-04'"),
    (four_nodes(0, SLURM_STEP_NODELIST="gpu[1-2],gpu[2-3]", SLURM_STEP_NUM_NODES=""), "names a host twice"),
    ({"SLURM_JOB_ID": "5"}, "no SLURM_STEP_NODELIST, SLURM_JOB_NODELIST or SLURM_NODELIST"),
    ({"SLURM_JOB_ID": "5", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_NNODES": "2"}, "SLURM_NODEID is not set in a 2-node job"),
    (four_nodes(0, SLURM_STEP_NUM_TASKS="8"), "SLURM_STEP_NUM_TASKS='8' on 4 node\\(s\\)"),
    (four_nodes(0, SLURM_LOCALID="1"), "SLURM_LOCALID='1': a second launcher task"),
])
def test_bad_slurm_environment(env, message):
    with pytest.raises(ValueError, match=message):
        rendezvous_from_env(env)


def test_bad_command_lines():
    with pytest.raises(ValueError, match="no '--' before the training command"):
        plan(["--nproc-per-node", "2", "t.py"], {})
    with pytest.raises(ValueError, match="no training command"):
        plan(["--nproc-per-node", "2", "--"], {})
    with pytest.raises(SystemExit):
        plan(["--rdzv-backend", "etcd", "--", "t.py"], {})


def test_main_execs_torchrun_and_reports_errors(capsys):
    calls = []
    assert launch.main(["--nproc-per-node", "8", "--", "t.py"], four_nodes(3), execve=lambda *a: calls.append(a)) == 0
    (path, argv, env), = calls
    assert path == sys.executable and argv[0] == sys.executable and argv[-1] == "t.py" and env["SLURM_NODEID"] == "3"
    assert capsys.readouterr().err.startswith("launch_node: node 3/4 (gpu04), master gpu01")
    assert launch.main(["--", "t.py"], four_nodes(7), execve=lambda *a: pytest.fail("must not exec")) == 2
    assert "launch_node: error: SLURM_NODEID='7' is outside [0, 4)" in capsys.readouterr().err


# --- the entry script, for real ---------------------------------------------------------------

TARGET = """\
import json, os, sys
keys = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "OMP_NUM_THREADS", "TORCHELASTIC_RUN_ID"]
record = {k: os.environ.get(k) for k in keys} | {"argv": sys.argv[1:], "ppid": os.getppid()}
with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.json"), "w") as fh:
    json.dump(record, fh)
sys.exit(int(sys.argv[2]))
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**slurm):
    drop = ("SLURM_", "MASTER_", "TORCHELASTIC_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "GROUP_RANK", "OMP_NUM_THREADS")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | slurm


def run_entry(tmp_path, exit_code, nodeid="0"):
    target = tmp_path / "target.py"
    target.write_text(TARGET)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = clean_env(SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="testnode", SLURM_NNODES="1", SLURM_NODEID=nodeid,
                    SLURM_STEP_NODELIST="testnode", SLURM_STEP_NUM_NODES="1", SLURM_STEP_NUM_TASKS="1",
                    SLURM_LOCALID="0", SLURM_CPUS_ON_NODE="2", MASTER_PORT=str(free_port()))
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "launch_node.py"), "--nproc-per-node", "2", "--",
                             str(target), str(out), str(exit_code)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=60)
    return proc, stdout + stderr, out


@pytest.mark.workflow  # starts torchrun
def test_entry_script_runs_two_ranks_on_one_node(tmp_path):
    started = time.monotonic()
    proc, log, out = run_entry(tmp_path, 0)
    assert proc.returncode == 0, log
    assert "launch_node: node 0/1 (testnode), master testnode, rendezvous c10d 127.0.0.1:" in log
    records = sorted((json.loads(p.read_text()) for p in out.glob("rank*.json")), key=lambda r: r["RANK"])
    assert [(r["RANK"], r["LOCAL_RANK"], r["WORLD_SIZE"], r["LOCAL_WORLD_SIZE"], r["GROUP_RANK"]) for r in records] == [
        ("0", "0", "2", "2", "0"), ("1", "1", "2", "2", "0")]
    assert all(r["argv"] == [str(out), "0"] and r["OMP_NUM_THREADS"] == "1" for r in records)
    assert {r["TORCHELASTIC_RUN_ID"] for r in records} == {"4242"}
    # exec, not a child: the workers' parent is the launcher's own process, so Slurm's signals reach torchrun
    assert {r["ppid"] for r in records} == {proc.pid}
    assert time.monotonic() - started < 30


@pytest.mark.workflow  # starts torchrun
def test_entry_script_fails_with_the_workers(tmp_path):
    proc, log, out = run_entry(tmp_path, 3)
    assert proc.returncode != 0, log
    assert len(list(out.glob("rank*.json"))) == 2    # both ran, then failed: torchrun exits non-zero


@pytest.mark.workflow  # starts torchrun
def test_entry_script_rejects_a_bad_environment_without_starting_torchrun(tmp_path):
    proc, log, out = run_entry(tmp_path, 0, nodeid="1")
    assert proc.returncode == 2
    assert "launch_node: error: SLURM_NODEID='1' is outside [0, 1)" in log
    assert not list(out.glob("rank*.json"))
