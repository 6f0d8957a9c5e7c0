#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_cluster.sh started, by the pids it recorded (never by name),
# in reverse start order: slurmd, slurmctld, slurmdbd, MariaDB, munged.
set -uo pipefail
STATE=${ALPHA_SLURM_STATE:-/var/tmp/alpha-slurm}
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    pidfile=$STATE/pids/$name.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        echo "[slurm] stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
done
rm -f "$STATE/started"
