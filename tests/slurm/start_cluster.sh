#!/usr/bin/env bash
# Start a real single-node Slurm cluster on localhost (Debian, as root) for the workflow's tests:
# munged, MariaDB, slurmdbd (so sacct works), slurmctld and slurmd, started as plain background
# daemons (no systemd, no cgroups). Idempotent: when the cluster already answers, it is a quick no-op.
#
#   sudo tests/slurm/start_cluster.sh        # then: sbatch, squeue, sacct, scancel work as usual
#   sudo tests/slurm/stop_cluster.sh         # stops only what this script started (by pid)
#
# Environment:
#   ALPHA_SLURM_STATE    state, spool, logs and pid files (default /var/tmp/alpha-slurm)
#   ALPHA_SLURM_DB_PORT  TCP port of the private MariaDB on 127.0.0.1 (default 13306, so that a
#                        system MySQL/MariaDB on 3306 does not get in the way)
set -euo pipefail

STATE=${ALPHA_SLURM_STATE:-/var/tmp/alpha-slurm}
DB_PORT=${ALPHA_SLURM_DB_PORT:-13306}
CLUSTER=alpha
ACCOUNT=alpha
PARTITION=debug
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
HOST=$(hostname -s)
T0=$SECONDS

say() { echo "[slurm] $*"; }
die() { echo "[slurm] ERROR: $*" >&2; exit 1; }
logs_of() {  # the log files of a daemon, for error messages
    local name=$1 f out=(); shift
    for f in "$STATE/log/$name.log" "$STATE/log/$name.out" "$@"; do [ -s "$f" ] && out+=("$f") || true; done
    printf '%s ' "${out[@]:-$STATE/log/}"
}
fail_daemon() {  # fail_daemon <name> <message> [extra log]: die, with the tail of the daemon's logs
    local name=$1 msg=$2 f
    for f in "$STATE/log/$name.log" "$STATE/log/$name.out" ${3:+"$3"}; do
        [ -s "$f" ] && { echo "----- last lines of $f" >&2; tail -n 15 "$f" >&2; }
    done
    die "$name: $msg; see $(logs_of "$name" ${3:+"$3"})"
}
wait_for() {  # wait_for <seconds> <command...>: poll every 0.25 s; non-zero on timeout
    local limit=$1; shift
    local end=$((SECONDS + limit))
    while [ $SECONDS -lt $end ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    "$@" >/dev/null 2>&1
}
# A process we recorded, still running (not a zombie) and still the program we started.
ours_alive() {  # ours_alive <name> <comm>
    local pid stat
    pid=$(cat "$STATE/pids/$1.pid" 2>/dev/null) || return 1
    stat=$(ps -o stat= -p "$pid" 2>/dev/null) && [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
stop_ours() {  # stop_ours <name> <comm>: a recorded process that is alive but not answering
    ours_alive "$1" "$2" || return 0
    local pid; pid=$(cat "$STATE/pids/$1.pid")
    say "restarting $1 (pid $pid does not answer)"
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 15 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
}
start_daemon() {  # start_daemon <name> <command...>: detached (own session), pid recorded
    local name=$1; shift
    setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 9>&- &
    echo $! >"$STATE/pids/$name.pid"
}

node_state() { sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n 1; }
node_ready() { node_state | grep -qE '^(idle|mixed|allocated|completing)$'; }
healthy() {
    timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' && node_ready && timeout 10 scontrol show slurmd >/dev/null 2>&1 &&
        timeout 10 sacct -n -X -S now-1minutes >/dev/null 2>&1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts system daemons)"
command -v apt-get >/dev/null || die "needs Debian/Ubuntu (apt-get)"

# One start or stop at a time (tests may call this concurrently); the daemons do not inherit the lock.
mkdir -p "$STATE"
exec 9>"$STATE/lock"
flock -w 300 9 || die "another start/stop holds $STATE/lock for more than 300s"

if [ -f "$CONF" ] && command -v sinfo >/dev/null && healthy; then
    say "already running (node $HOST $(node_state), partition $PARTITION; state in $STATE)"
    exit 0
fi

# --- packages --------------------------------------------------------------------
missing=()
for pkg in slurmctld slurmd slurm-client munge slurmdbd mariadb-server; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (log: $STATE/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' init scripts from starting system munge/MariaDB/Slurm services during
    # the install (this script runs its own daemons, and stops only those).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt_install() { apt-get install -y -q -o Dpkg::Options::=--force-confold --no-install-recommends "${missing[@]}"; }
    { apt_install || { apt-get update -q && apt_install; }; } >"$STATE/apt.log" 2>&1 ||
        { tail -n 20 "$STATE/apt.log" >&2; die "apt-get install failed; see $STATE/apt.log"; }
fi
for bin in slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mariadbd mariadb-install-db; do
    command -v "$bin" >/dev/null || die "$bin not found after installing the packages"
done
id slurm >/dev/null 2>&1 || die "user 'slurm' missing (should come with the slurm packages)"

mkdir -p "$STATE"/{log,spool/ctld,spool/d,run,pids,mysql/data,mysql/run}
chmod 755 "$STATE" "$STATE/pids"
chown slurm:slurm "$STATE/spool" "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log" "$STATE/run"

# --- munge ---------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null ||
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    say "created /etc/munge/munge.key"
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge && chmod 755 /run/munge
munge_ok() { [ -S /run/munge/munge.socket.2 ] && timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    stop_ours munged munged
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged --foreground --force --pid-file=/run/munge/alpha-munged.pid
    wait_for 20 munge_ok || fail_daemon munged "not answering after 20s"
    say "munged started"
fi

# --- MariaDB (storage for slurmdbd): a private instance, data under $STATE/mysql -------
SOCK=$STATE/mysql/run/mysqld.sock
MYSQL_LOG=$STATE/mysql/mariadb.log
db_ok() { mariadb --protocol=socket -S "$SOCK" -e 'select 1'; }
if ! db_ok >/dev/null 2>&1; then
    stop_ours mariadbd mariadbd
    if ss -Hltn "sport = :$DB_PORT" 2>/dev/null | grep -q .; then
        die "TCP port $DB_PORT (for the private MariaDB) is taken by another process; set ALPHA_SLURM_DB_PORT"
    fi
    chown -R mysql:mysql "$STATE/mysql"
    if [ ! -d "$STATE/mysql/data/mysql" ]; then
        mariadb-install-db --user=mysql --datadir="$STATE/mysql/data" --auth-root-authentication-method=socket \
            >"$STATE/log/mariadb-install.log" 2>&1 ||
            fail_daemon mariadbd "mariadb-install-db failed" "$STATE/log/mariadb-install.log"
    fi
    start_daemon mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql/data" \
        --socket="$SOCK" --bind-address=127.0.0.1 --port="$DB_PORT" --pid-file="$STATE/mysql/run/mariadbd.pid" \
        --log-error="$MYSQL_LOG" --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
        --skip-name-resolve
    wait_for 60 db_ok || fail_daemon mariadbd "not answering on $SOCK after 60s" "$MYSQL_LOG"
    say "MariaDB started (127.0.0.1:$DB_PORT)"
fi
db_ok >/dev/null 2>&1 || fail_daemon mariadbd "not answering on $SOCK" "$MYSQL_LOG"
mariadb --protocol=socket -S "$SOCK" <<'SQL' || die "could not create the slurm database user in MariaDB"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmdbpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

# --- configuration -----------------------------------------------------------------
CPUS=$(nproc)
MEM_TOTAL_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024}' /proc/meminfo)
MEM_MB=$((MEM_TOTAL_MB * 9 / 10))                      # a bit below MemTotal: slurmd must see >= this
[ $((MEM_TOTAL_MB - MEM_MB)) -gt 2048 ] && MEM_MB=$((MEM_TOTAL_MB - 2048))
DEF_MEM=$((MEM_MB / CPUS)); [ "$DEF_MEM" -gt 1024 ] && DEF_MEM=1024   # jobs without --mem share the node
PLUGIN_DIR=$(dirname "$(find /usr/lib -name 'select_cons_tres.so' -print -quit 2>/dev/null)")
JOBACCT=jobacct_gather/linux
[ -f "$PLUGIN_DIR/jobacct_gather_linux.so" ] || JOBACCT=jobacct_gather/none

cat >"$DBD_CONF" <<EOF
# written by tests/slurm/start_cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.daemon.pid
LogFile=$STATE/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
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
JobAcctGatherType=$JOBACCT
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
chmod 644 "$CONF"

# --- slurmdbd, then the cluster and account (before slurmctld, so it registers at once) ----
dbd_ok() { timeout 10 sacctmgr -n show cluster; }
if ! dbd_ok >/dev/null 2>&1; then
    stop_ours slurmdbd slurmdbd
    start_daemon slurmdbd /usr/sbin/slurmdbd -D
    wait_for 60 dbd_ok || fail_daemon slurmdbd "sacctmgr cannot reach it after 60s"
    say "slurmdbd started"
fi
sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" ||
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i -Q add account "$ACCOUNT" Cluster="$CLUSTER" Description="ALPHA tests" Organization=alpha >/dev/null ||
    die "sacctmgr add account $ACCOUNT failed"
for user in root ${SUDO_USER:+"$SUDO_USER"}; do
    sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" user="$user" format=user | grep -qx "$user" ||
        sacctmgr -i -Q add user "$user" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null ||
        die "sacctmgr add user $user failed"
done
# plain sbatch (no --account) charges alpha, not the built-in root account
sacctmgr -n -P show user root format=defaultaccount | grep -qx "$ACCOUNT" ||
    sacctmgr -i -Q modify user where name=root set DefaultAccount="$ACCOUNT" >/dev/null ||
    die "sacctmgr could not make $ACCOUNT root's default account"

# --- slurmctld and slurmd ------------------------------------------------------------
ctld_ok() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }
# Jobs saved in the controller's state by a cluster that died without stopping (a session cut off,
# a reboot) come back as RUNNING on a node that has no such processes and hold its CPUs until they
# time out, so the health check below would wait behind them. A test cluster starts clean instead:
# -c drops the saved jobs, job ids carry on after the highest one accounting knows (so sacct never
# mixes two jobs under one id), and the orphans accounting still shows as running are closed.
next_job_id() {
    local max
    max=$(sacct -n -X -a -D -S 1970-01-01 -E now -o JobIDRaw -P 2>/dev/null | grep -oE '^[0-9]+' | sort -n | tail -n 1)
    echo $(( ${max:-0} + 1 ))
}
if ! ctld_ok; then
    stop_ours slurmctld slurmctld
    sed -i '/^FirstJobId=/d' "$CONF" && echo "FirstJobId=$(next_job_id)" >>"$CONF"
    start_daemon slurmctld /usr/sbin/slurmctld -D -i -c
    wait_for 60 ctld_ok || fail_daemon slurmctld "scontrol ping does not say UP after 60s"
    say "slurmctld started"
else
    scontrol reconfigure >/dev/null 2>&1 || true   # pick up a rewritten slurm.conf
fi
# slurmctld registers with slurmdbd (sacctmgr then shows its ControlHost)
ctld_registered() { [ -n "$(sacctmgr -n -P show cluster where name="$CLUSTER" format=controlhost 2>/dev/null)" ]; }
wait_for 30 ctld_registered ||
    fail_daemon slurmctld "did not register with slurmdbd within 30s (sacctmgr show cluster: no ControlHost)"
runaway=$(sacctmgr -i -n -P show runawayjobs 2>/dev/null | grep -cE '^[0-9]+\|' || true)
[ "${runaway:-0}" -eq 0 ] || say "closed $runaway job(s) left running in accounting by a cluster that died"

if ! ours_alive slurmd slurmd && ! timeout 5 scontrol show slurmd >/dev/null 2>&1; then
    start_daemon slurmd /usr/sbin/slurmd -D
    say "slurmd started"
fi
# The node comes up idle (ReturnToService=2); one left DOWN/DRAIN by an earlier run is resumed.
end=$((SECONDS + 60)); resumed=0
until node_ready; do
    state=$(node_state)
    if [ $SECONDS -ge $end ]; then
        sinfo -R >&2 || true
        fail_daemon slurmd "node $HOST not idle after 60s (state: ${state:-none})"
    fi
    case $state in
        *'*') ;;                                         # not responding yet: slurmd registering
        down*|drain*|fail*)
            if [ $resumed -lt 3 ]; then
                scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 && say "resumed node $HOST (was $state)"
                resumed=$((resumed + 1))
            fi ;;
    esac
    sleep 0.5
done
say "node $HOST $(node_state): $CPUS CPUs, $MEM_MB MB, partition $PARTITION, $JOBACCT"

# --- health check: a job must run and show up COMPLETED in sacct ---------------------
job=$(sbatch --parsable --job-name=alpha-health --output="$STATE/log/health-%j.out" --time=2 --mem=100 \
    --wrap 'hostname') || die "sbatch of the health-check job failed"
job=${job%%;*}
state=
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
    state=$(sacct -n -X -j "$job" -o State 2>/dev/null | awk 'NF {print $1; exit}')
    [ "$state" = COMPLETED ] && break
    case $state in
        FAILED|CANCELLED*|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
            fail_daemon slurmd "health-check job $job ended $state (output: $STATE/log/health-$job.out)";;
    esac
    sleep 0.5
done
[ "$state" = COMPLETED ] ||
    fail_daemon slurmctld "health-check job $job not COMPLETED in sacct after 60s (state: ${state:-none}; squeue: $(squeue -h -j "$job" -o %T 2>/dev/null))"
touch "$STATE/started"
say "cluster up in $((SECONDS - T0))s: health-check job $job COMPLETED in sacct"
