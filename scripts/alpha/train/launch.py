"""Per-node launcher for multi-node training: derive the torchrun rendezvous from ``SLURM_*``.

The train rule starts one launcher task per node; each one execs torchrun, which starts the
node's worker processes::

    srun --nodes=N --ntasks=N --ntasks-per-node=1 \\
        python scripts/launch_node.py --nproc-per-node 8 -- scripts/train.py <train args>

Everything here is a pure function of an environment mapping (``plan`` builds the argv and the
environment; ``main`` only parses, prints one line and execs), so it is tested without Slurm.

Choices, each for a reason:

* Rendezvous: c10d on the first host of the step's node list (Slurm's node 0), run id
  ``SLURM_JOB_ID``. A single-node job rendezvous on 127.0.0.1 instead, so it never depends on the
  node name resolving (the local test cluster's node is ``hostname -s`` at ``NodeAddr=127.0.0.1``).
* ``--node-rank`` is not passed with c10d: torch (2.x, checked on 2.13) ignores it for every
  backend but ``static`` and logs a warning on each non-zero node; c10d numbers the nodes by its
  own sort of their host names. ``rdzv_backend="static"`` passes ``--node-rank SLURM_NODEID``
  instead, for global ranks that follow Slurm's node order (node rank * nproc + local rank).
* ``--max-restarts 0``: a failed worker fails the job at once; Snakemake's retries resubmit it
  and the trainer resumes from its last checkpoint, rather than torchrun retrying in place.
* No Slurm job (no ``SLURM_JOB_ID``), or ``standalone=True``: ``torchrun --standalone``, a
  single node that picks a free local port itself (``MASTER_PORT`` is not used).
* Port: ``MASTER_PORT`` when set, else ``port_base + SLURM_JOB_ID % port_span``, by default
  20000-31999: below Linux's ephemeral range (32768+), so no outgoing connection holds it. Job
  ids are sequential, so two jobs whose rendezvous share a master node collide only when their
  ids differ by a multiple of ``port_span`` (12000 jobs apart, both still running).
* Processes per node: an integer, or ``auto`` = ``SLURM_GPUS_ON_NODE``, else the visible CUDA
  device count, else 1 (a CPU-only run names its count explicitly).
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

TORCHRUN = ("-m", "torch.distributed.run")
PORT_BASE = 20000
PORT_SPAN = 12000
MAX_HOSTS = 100_000  # a typo like n[1-99999999] fails instead of filling memory
LOCAL_HOST = "127.0.0.1"
BACKENDS = ("c10d", "static")

_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_INTEGER = re.compile(r"-?[0-9]+")
_LITERAL = re.compile(r"[A-Za-z0-9._-]*")


# --- host lists -------------------------------------------------------------------------------

def _split_top_level(hostlist: str) -> list[str]:
    """Split on the commas outside brackets: ``a[1-2,5],b3`` -> ``["a[1-2,5]", "b3"]``."""
    items, depth, start = [], 0, 0
    for pos, char in enumerate(hostlist):
        if char == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"malformed host list {hostlist!r}: nested '[' at position {pos}")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"malformed host list {hostlist!r}: unmatched ']' at position {pos}")
        elif char == "," and depth == 0:
            items.append(hostlist[start:pos])
            start = pos + 1
    if depth:
        raise ValueError(f"malformed host list {hostlist!r}: unclosed '['")
    items.append(hostlist[start:])
    return items


def _expand_range(body: str, hostlist: str) -> list[str]:
    """``01-03,7`` -> ``["01", "02", "03", "7"]``: each range is padded to its low bound's width,
    as Slurm does (``8-11`` -> 8, 9, 10, 11; ``08-11`` -> 08, 09, 10, 11)."""
    numbers: list[str] = []
    for part in body.split(","):
        match = _RANGE.fullmatch(part)
        if not match:
            raise ValueError(f"malformed host list {hostlist!r}: bad range {part!r} in [{body}]")
        low, high = match.group(1), match.group(2) or match.group(1)
        if int(high) < int(low):
            raise ValueError(f"malformed host list {hostlist!r}: range {part!r} runs backwards")
        if int(high) - int(low) >= MAX_HOSTS:
            raise ValueError(f"malformed host list {hostlist!r}: range {part!r} has over {MAX_HOSTS} hosts")
        numbers.extend(str(n).zfill(len(low)) for n in range(int(low), int(high) + 1))
    return numbers


def _expand_item(item: str, hostlist: str) -> list[str]:
    """One comma-free item: literal text and bracket groups, expanded as a cartesian product with
    the leftmost group varying slowest (Slurm's order: ``r[1-2]-g[1-2]`` -> r1-g1, r1-g2, r2-g1, ...)."""
    if not item:
        raise ValueError(f"malformed host list {hostlist!r}: empty host name")
    hosts, pos = [""], 0
    while pos < len(item):
        if item[pos] == "[":
            end = item.index("]", pos)
            numbers = _expand_range(item[pos + 1:end], hostlist)
            if len(hosts) * len(numbers) > MAX_HOSTS:
                raise ValueError(f"malformed host list {hostlist!r}: over {MAX_HOSTS} hosts")
            hosts = [host + number for host in hosts for number in numbers]
            pos = end + 1
        else:
            literal = _LITERAL.match(item, pos).group()
            if not literal:
                raise ValueError(f"malformed host list {hostlist!r}: unexpected {item[pos]!r} in {item!r}")
            hosts = [host + literal for host in hosts]
            pos += len(literal)
    return hosts


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand a Slurm host list (``gpu[01-04]``, ``a[1-2,5],b3``, ``rack[1-2]-gpu[01-02]``) into
    host names, in the order ``scontrol show hostnames`` prints them."""
    text = hostlist.strip()
    if not text:
        raise ValueError(f"malformed host list {hostlist!r}: empty")
    hosts: list[str] = []
    for item in _split_top_level(text):
        hosts.extend(_expand_item(item, hostlist))
        if len(hosts) > MAX_HOSTS:
            raise ValueError(f"malformed host list {hostlist!r}: over {MAX_HOSTS} hosts")
    return hosts


# --- rendezvous -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rendezvous:
    """Where and how this node joins: ``hosts`` in Slurm's node order, ``master`` = hosts[0],
    ``endpoint_host`` what torchrun connects to (the master, or 127.0.0.1 on one node)."""

    nnodes: int
    node_rank: int
    hosts: tuple[str, ...]
    master: str
    endpoint_host: str
    port: int | None  # None: torchrun --standalone picks one
    run_id: str | None
    standalone: bool = False

    @property
    def endpoint(self) -> str:
        return f"{self.endpoint_host}:{self.port}"


def _int_var(env: Mapping[str, str], name: str) -> int:
    value = env[name]
    if not _INTEGER.fullmatch(value.strip()):  # int() would also take "1_000" and non-ASCII digits
        raise ValueError(f"{name}={value!r} is not an integer")
    return int(value)


def rendezvous_port(env: Mapping[str, str], port_base: int = PORT_BASE, port_span: int = PORT_SPAN) -> int:
    """``MASTER_PORT`` when set, else ``port_base + SLURM_JOB_ID % port_span``."""
    if env.get("MASTER_PORT", "").strip():
        port = _int_var(env, "MASTER_PORT")
        if not 1 <= port <= 65535:
            raise ValueError(f"MASTER_PORT={env['MASTER_PORT']!r} is not a TCP port (1-65535)")
        return port
    if port_span < 1 or port_base < 1 or port_base + port_span - 1 > 65535:
        raise ValueError(f"port range {port_base}+{port_span} is not within 1-65535")
    job_id = _int_var(env, "SLURM_JOB_ID")
    if job_id < 0:
        raise ValueError(f"SLURM_JOB_ID={env['SLURM_JOB_ID']!r} is negative")
    return port_base + job_id % port_span


def slurm_nodes(env: Mapping[str, str]) -> tuple[list[str], str, str | None]:
    """The nodes of this job step (``SLURM_STEP_NODELIST`` inside ``srun``, else the job's), with
    the names of the node-list and node-count variables used (the count may be absent)."""
    if env.get("SLURM_STEP_NODELIST"):
        list_var, count_vars = "SLURM_STEP_NODELIST", ("SLURM_STEP_NUM_NODES", "SLURM_NNODES")
    elif env.get("SLURM_JOB_NODELIST"):
        list_var, count_vars = "SLURM_JOB_NODELIST", ("SLURM_NNODES", "SLURM_JOB_NUM_NODES")
    elif env.get("SLURM_NODELIST"):
        list_var, count_vars = "SLURM_NODELIST", ("SLURM_NNODES", "SLURM_JOB_NUM_NODES")
    else:
        raise ValueError(f"SLURM_JOB_ID={env.get('SLURM_JOB_ID')!r} is set but no SLURM_STEP_NODELIST, "
                         "SLURM_JOB_NODELIST or SLURM_NODELIST")
    count_var = next((name for name in count_vars if env.get(name, "").strip()), None)
    return expand_hostlist(env[list_var]), list_var, count_var


def rendezvous_from_env(env: Mapping[str, str], *, standalone: bool = False,
                        port_base: int = PORT_BASE, port_span: int = PORT_SPAN) -> Rendezvous:
    """This node's rendezvous from a Slurm environment; a standalone single node without one.

    Raises ValueError, naming the variable and its value, for a malformed host list, a node count
    that disagrees with it, a ``SLURM_NODEID`` outside [0, nnodes), or more than one launcher task
    per node.
    """
    if standalone or not env.get("SLURM_JOB_ID", "").strip():
        return Rendezvous(nnodes=1, node_rank=0, hosts=(LOCAL_HOST,), master=LOCAL_HOST,
                          endpoint_host=LOCAL_HOST, port=None, run_id=None, standalone=True)
    hosts, list_var, count_var = slurm_nodes(env)
    if len(set(hosts)) != len(hosts):
        raise ValueError(f"{list_var}={env[list_var]!r} names a host twice")
    nnodes = len(hosts)
    if count_var is not None and _int_var(env, count_var) != nnodes:
        raise ValueError(f"{count_var}={env[count_var]!r} but {list_var}={env[list_var]!r} "
                         f"expands to {nnodes} host(s)")
    if env.get("SLURM_NODEID", "").strip():
        node_rank = _int_var(env, "SLURM_NODEID")
    elif nnodes == 1:
        node_rank = 0
    else:
        raise ValueError(f"SLURM_NODEID is not set in a {nnodes}-node job: start one launcher per node "
                         "with srun --ntasks-per-node=1")
    if not 0 <= node_rank < nnodes:
        raise ValueError(f"SLURM_NODEID={env['SLURM_NODEID']!r} is outside [0, {nnodes}) "
                         f"for {list_var}={env[list_var]!r}")
    if list_var == "SLURM_STEP_NODELIST" and env.get("SLURM_STEP_NUM_TASKS", "").strip():
        tasks = _int_var(env, "SLURM_STEP_NUM_TASKS")
        if tasks != nnodes:
            raise ValueError(f"SLURM_STEP_NUM_TASKS={env['SLURM_STEP_NUM_TASKS']!r} on {nnodes} node(s): "
                             "run exactly one launcher task per node (srun --ntasks=N --ntasks-per-node=1)")
    if env.get("SLURM_LOCALID", "").strip() and _int_var(env, "SLURM_LOCALID") != 0:
        raise ValueError(f"SLURM_LOCALID={env['SLURM_LOCALID']!r}: a second launcher task on this node; "
                         "run exactly one per node (srun --ntasks-per-node=1)")
    return Rendezvous(
        nnodes=nnodes,
        node_rank=node_rank,
        hosts=tuple(hosts),
        master=hosts[0],
        endpoint_host=LOCAL_HOST if nnodes == 1 else hosts[0],
        port=rendezvous_port(env, port_base, port_span),
        run_id=env["SLURM_JOB_ID"].strip(),
    )


def resolve_nproc(value: str | int, env: Mapping[str, str], cuda_count: Callable[[], int] | None = None) -> int:
    """Worker processes on this node: a positive integer, or ``auto`` = ``SLURM_GPUS_ON_NODE``,
    else ``cuda_count()`` (default: torch's CUDA device count), else 1."""
    if str(value).strip().lower() != "auto":
        if not _INTEGER.fullmatch(str(value).strip()):
            raise ValueError(f"--nproc-per-node={value!r} is neither a positive integer nor 'auto'")
        nproc = int(value)
        if nproc < 1:
            raise ValueError(f"--nproc-per-node={value!r} is not positive")
        return nproc
    if env.get("SLURM_GPUS_ON_NODE", "").strip() and _int_var(env, "SLURM_GPUS_ON_NODE") > 0:
        return _int_var(env, "SLURM_GPUS_ON_NODE")
    if cuda_count is None:
        cuda_count = _torch_cuda_count
    return max(1, int(cuda_count()))


def _torch_cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# --- torchrun command -------------------------------------------------------------------------

def torchrun_argv(rdzv: Rendezvous, nproc: int, target: Sequence[str], *, python: str | None = None,
                  rdzv_backend: str = "c10d", max_restarts: int = 0) -> list[str]:
    """The full torchrun command (``python -m torch.distributed.run ...``), ``target`` (a script
    and its arguments, or ``-m module ...``) appended verbatim."""
    if not target:
        raise ValueError("no training command: put the script and its arguments after '--'")
    if rdzv_backend not in BACKENDS:
        raise ValueError(f"rdzv_backend={rdzv_backend!r} is not one of {BACKENDS}")
    if max_restarts < 0:
        raise ValueError(f"max_restarts={max_restarts!r} is negative")
    argv = [python or sys.executable, *TORCHRUN]
    if rdzv.standalone:
        argv += ["--standalone", "--nnodes", "1"]
    else:
        argv += ["--nnodes", str(rdzv.nnodes), "--rdzv-backend", rdzv_backend, "--rdzv-endpoint", rdzv.endpoint]
        argv += ["--rdzv-id", rdzv.run_id] if rdzv_backend == "c10d" else ["--node-rank", str(rdzv.node_rank)]
    argv += ["--nproc-per-node", str(nproc), "--max-restarts", str(max_restarts)]
    return argv + list(target)


def torchrun_env(env: Mapping[str, str], nproc: int) -> dict[str, str]:
    """The launcher's environment, plus ``OMP_NUM_THREADS`` = ``SLURM_CPUS_ON_NODE // nproc`` when
    it is unset and Slurm says how many CPUs the node has (torchrun would force 1, with a warning)."""
    out = dict(env)
    if not out.get("OMP_NUM_THREADS") and out.get("SLURM_CPUS_ON_NODE", "").strip().isdigit():
        out["OMP_NUM_THREADS"] = str(max(1, int(out["SLURM_CPUS_ON_NODE"]) // nproc))
    return out


def describe(rdzv: Rendezvous, nproc: int, rdzv_backend: str = "c10d", env: Mapping[str, str] | None = None) -> str:
    """One line for the job log."""
    if rdzv.standalone:
        return f"launch_node: standalone (no Slurm job), 1 node, {nproc} process(es)"
    here = (env or {}).get("SLURMD_NODENAME") or rdzv.hosts[rdzv.node_rank]
    return (f"launch_node: node {rdzv.node_rank}/{rdzv.nnodes} ({here}), master {rdzv.master}, "
            f"rendezvous {rdzv_backend} {rdzv.endpoint} id {rdzv.run_id}, {nproc} process(es) per node, "
            f"world size {rdzv.nnodes * nproc}")


@dataclass(frozen=True)
class Plan:
    argv: list[str]
    env: dict[str, str]
    summary: str
    rendezvous: Rendezvous
    nproc: int
    dry_run: bool = False


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Launcher options before ``--``, the training command after it."""
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(
        prog="launch_node.py", usage="%(prog)s [options] -- SCRIPT [ARGS...]",
        description="Per-node torchrun launcher: the rendezvous comes from SLURM_* (see alpha.train.launch).")
    parser.add_argument("--nproc-per-node", default="auto", help="worker processes on this node, or 'auto' (default)")
    parser.add_argument("--standalone", action="store_true", help="ignore Slurm: one node, local rendezvous")
    parser.add_argument("--rdzv-backend", choices=BACKENDS, default="c10d")
    parser.add_argument("--port-base", type=int, default=PORT_BASE, help=f"default {PORT_BASE}")
    parser.add_argument("--port-span", type=int, default=PORT_SPAN, help=f"default {PORT_SPAN}")
    parser.add_argument("--max-restarts", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="print the torchrun command instead of running it")
    if split == len(argv):
        parser.parse_known_args(argv)  # --help still works; a bad option still fails here
        raise ValueError(f"no '--' before the training command in {shlex.join(argv)!r}")
    return parser.parse_args(argv[:split]), argv[split + 1:]


def plan(argv: Sequence[str], env: Mapping[str, str], *, python: str | None = None,
         cuda_count: Callable[[], int] | None = None) -> Plan:
    """Everything ``main`` does short of exec: parse, derive, build argv and environment."""
    args, target = parse_args(argv)
    rdzv = rendezvous_from_env(env, standalone=args.standalone, port_base=args.port_base, port_span=args.port_span)
    nproc = resolve_nproc(args.nproc_per_node, env, cuda_count)
    command = torchrun_argv(rdzv, nproc, target, python=python, rdzv_backend=args.rdzv_backend,
                            max_restarts=args.max_restarts)
    return Plan(command, torchrun_env(env, nproc), describe(rdzv, nproc, args.rdzv_backend, env), rdzv, nproc,
                args.dry_run)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         execve: Callable = os.execve) -> int:
    """Print the summary line to stderr and replace this process with torchrun, so Slurm's signals
    (cancel, time limit, requeue) reach torchrun and its exit status is the task's. Returns 2 on a
    bad environment or command line, without starting anything."""
    try:
        launch = plan(sys.argv[1:] if argv is None else argv, os.environ if env is None else env)
    except ValueError as exc:
        print(f"launch_node: error: {exc}", file=sys.stderr)
        return 2
    print(launch.summary, file=sys.stderr)
    if launch.dry_run:
        print(shlex.join(launch.argv))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    execve(launch.argv[0], launch.argv, launch.env)
    return 0  # only reached with a stand-in execve
