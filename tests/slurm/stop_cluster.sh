#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_cluster.sh started, by the pids it recorded (never by name),
# in reverse start order: slurmd, slurmctld, slurmdbd, MariaDB, munged.
set -uo pipefail
STATE=${ALPHA_SLURM_STATE:-/var/tmp/alpha-slurm}
alive() {  # running, and not a zombie waiting to be reaped
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ]
}
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    pidfile=$STATE/pids/$name.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.25; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
        echo "[slurm] stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
done
rm -f "$STATE/started"
