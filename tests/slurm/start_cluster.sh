#!/usr/bin/env bash
# Start a real single-node Slurm cluster on localhost (Debian, as root) for the workflow's tests:
# munged, MariaDB, slurmdbd (so sacct works), slurmctld and slurmd, started as plain daemons (no
# systemd, no cgroups). Idempotent: when the cluster already answers, it is a quick no-op.
#
#   sudo tests/slurm/start_cluster.sh        # then: sbatch, squeue, sacct, scancel work as usual
#   sudo tests/slurm/stop_cluster.sh         # stops only what this script started (by pid)
#
# State, logs and pid files live in $ALPHA_SLURM_STATE (default /var/tmp/alpha-slurm).
set -euo pipefail

STATE=${ALPHA_SLURM_STATE:-/var/tmp/alpha-slurm}
CLUSTER=alpha
ACCOUNT=alpha
PARTITION=debug
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
HOST=$(hostname -s)

say() { echo "[slurm] $*"; }
die() { echo "[slurm] ERROR: $*" >&2; exit 1; }

wait_for() {  # wait_for <seconds> <what> <log> <command...>
    local limit=$1 what=$2 log=$3; shift 3
    for _ in $(seq 1 $((limit * 4))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what did not come up within ${limit}s; see $log"
}

healthy() {
    sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && sacct -n -X -S now-1minutes >/dev/null 2>&1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts system daemons)"
command -v apt-get >/dev/null || die "needs Debian/Ubuntu (apt-get)"

if [ -f "$STATE/started" ] && healthy; then
    say "already running (state in $STATE)"
    exit 0
fi

missing=()
for bin in slurmctld slurmd sbatch munged slurmdbd mariadbd; do
    command -v "$bin" >/dev/null || missing+=("$bin")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Slurm, munge, slurmdbd and MariaDB (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq slurmctld slurmd slurm-client munge slurmdbd mariadb-server >"$STATE.apt.log" 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq slurmctld slurmd slurm-client munge slurmdbd mariadb-server >"$STATE.apt.log" 2>&1; } ||
        die "apt-get install failed; see $STATE.apt.log"
fi

mkdir -p "$STATE"/{log,spool/ctld,spool/d,run,pids,mysql/data,mysql/run}
chmod 755 "$STATE" "$STATE/pids"
chown -R slurm:slurm "$STATE/spool" "$STATE/log" "$STATE/run"

# --- munge -----------------------------------------------------------------
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
start_daemon() {  # start_daemon <name> <pidfile-written-by-us> <command...>
    local name=$1; shift
    "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
    echo $! >"$STATE/pids/$name.pid"
}
munge_ok() { [ -S /run/munge/munge.socket.2 ] && timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    touch "$STATE/log/munged.log" && chown munge:munge "$STATE/log/munged.log"
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground --pid-file=/run/munge/alpha-munged.pid --log-file="$STATE/log/munged.log"
    wait_for 20 munged "$STATE/log/munged.log" munge_ok
fi
say "munge ok"

# --- MariaDB (accounting storage for slurmdbd) ------------------------------
SOCK=$STATE/mysql/run/mysqld.sock
MYSQL_LOG=$STATE/mysql/mariadb.log
if ! mariadb -S "$SOCK" -e 'select 1' >/dev/null 2>&1; then
    if [ ! -d "$STATE/mysql/data/mysql" ]; then
        mariadb-install-db --user=mysql --datadir="$STATE/mysql/data" >"$STATE/log/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed; see $STATE/log/mariadb-install.log"
    fi
    chown -R mysql:mysql "$STATE/mysql"
    start_daemon mariadbd /usr/sbin/mariadbd --user=mysql --datadir="$STATE/mysql/data" --socket="$SOCK" \
        --bind-address=127.0.0.1 --port=3306 --pid-file="$STATE/mysql/run/mariadbd.pid" \
        --log-error="$MYSQL_LOG" --innodb-buffer-pool-size=64M
    wait_for 60 MariaDB "$MYSQL_LOG" mariadb -S "$SOCK" -e 'select 1'
fi
mariadb -S "$SOCK" <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmdbpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
say "MariaDB ok"

# --- configuration -----------------------------------------------------------
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
cat >"$DBD_CONF" <<EOF
# written by tests/slurm/start_cluster.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.daemon.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1  # TCP: 'localhost' would mean the default socket path
StoragePort=3306
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmdbpass
EOF
chown slurm:slurm "$DBD_CONF" && chmod 600 "$DBD_CONF"

cat >"$CONF" <<EOF
# written by tests/slurm/start_cluster.sh: one node, no cgroups, no systemd
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.daemon.pid
SlurmdPidFile=$STATE/run/slurmd.daemon.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1  # TCP: 'localhost' would mean the default socket path
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# --- slurmdbd, cluster registration, slurmctld, slurmd -------------------------
if ! sacctmgr -n show cluster >/dev/null 2>&1; then
    start_daemon slurmdbd /usr/sbin/slurmdbd -D
    wait_for 60 slurmdbd "$STATE/log/slurmdbd.log" sacctmgr -n show cluster
fi
sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i -Q add account "$ACCOUNT" Cluster="$CLUSTER" Description="ALPHA tests" Organization=alpha >/dev/null 2>&1 || true
sacctmgr -i -Q add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true
[ -n "${SUDO_USER:-}" ] && sacctmgr -i -Q add user "$SUDO_USER" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true
say "slurmdbd ok (cluster $CLUSTER, account $ACCOUNT)"

if ! scontrol ping 2>/dev/null | grep -q UP; then
    start_daemon slurmctld /usr/sbin/slurmctld -D -i
    wait_for 60 slurmctld "$STATE/log/slurmctld.log" bash -c 'scontrol ping | grep -q UP'
fi
if ! pgrep -F "$STATE/pids/slurmd.pid" >/dev/null 2>&1; then
    start_daemon slurmd /usr/sbin/slurmd -D
fi
wait_for 60 "node $HOST" "$STATE/log/slurmd.log" bash -c "sinfo -h -n $HOST -o %T | grep -qE '^(idle|mixed|allocated)'" ||
    scontrol update nodename="$HOST" state=resume
say "slurmctld and slurmd ok ($CPUS CPUs, $MEM_MB MB on partition $PARTITION)"

# --- health check: a job must run and show up COMPLETED in sacct --------------
job=$(sbatch --parsable --job-name=alpha-health --output="$STATE/log/health-%j.out" --time=2 --mem=100 --wrap 'hostname')
for _ in $(seq 1 120); do
    state=$(sacct -n -X -j "$job" -o State 2>/dev/null | tr -d ' ' | head -1)
    [ "$state" = COMPLETED ] && break
    case "$state" in FAILED|CANCELLED*|TIMEOUT|NODE_FAIL) die "health-check job $job ended $state; see $STATE/log";; esac
    sleep 0.5
done
[ "$state" = COMPLETED ] || die "health-check job $job not COMPLETED in sacct after 60s (state: ${state:-none}); see $STATE/log"
touch "$STATE/started"
say "cluster up: job $job COMPLETED in sacct"
