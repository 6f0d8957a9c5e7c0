#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_cluster.sh started, by the pids it recorded in
# $ALPHA_SLURM_STATE/pids (never by name), in reverse start order: slurmd, slurmctld, slurmdbd,
# MariaDB, munged. Each gets TERM, up to 20 s to exit, then KILL. A no-op when nothing is recorded.
set -uo pipefail
STATE=${ALPHA_SLURM_STATE:-/var/tmp/alpha-slurm}
alive() {  # running, and not a zombie waiting to be reaped
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ]
}
[ -d "$STATE/pids" ] || { echo "[slurm] nothing to stop (no $STATE/pids)"; exit 0; }
exec 9>"$STATE/lock"                  # wait for a start that is under way (same lock as start_cluster.sh)
flock -w 300 9 || echo "[slurm] warning: $STATE/lock held for 300s; stopping anyway" >&2
stopped=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    pidfile=$STATE/pids/$name.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    # only the program that was started under this pid (a pid left from before a reboot may be reused)
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 80); do alive "$pid" || break; sleep 0.25; done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null
            echo "[slurm] killed $name (pid $pid; did not exit within 20s of TERM)"
        else
            echo "[slurm] stopped $name (pid $pid)"
        fi
        stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
done
rm -f "$STATE/started"
[ "$stopped" -gt 0 ] || echo "[slurm] nothing to stop (no running daemon recorded in $STATE/pids)"
exit 0
