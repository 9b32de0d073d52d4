#!/usr/bin/env bash
# tests/slurm/cluster.sh - a single-node Slurm "cluster" on this machine, for the test suite.
#
#   tests/slurm/cluster.sh install   # apt-get the Debian packages if missing (root only)
#   tests/slurm/cluster.sh start     # private munged + slurmctld + slurmd; idempotent; prints the env line
#   tests/slurm/cluster.sh env       # prints "export SLURM_CONF=..." (eval it to use sbatch, squeue, ...)
#   tests/slurm/cluster.sh status    # exit 0 when all three daemons run and the node answers
#   tests/slurm/cluster.sh stop      # cancel jobs, stop the daemons THIS script started (by recorded PID)
#
# Everything lives under one private directory (config, state, spool, logs, munge key and socket);
# /etc/munge, /run/munge and /etc/slurm are never touched, so it can run next to a real Slurm or to
# another instance (own directory, own ports). Needs root: the daemons run as root (SlurmUser=root).
# Exit codes: 0 ok, 1 failure, 3 environment not usable (not root, packages missing) - callers
# turn 3 into "skipped".
#
# Settings (environment):
#   DPT_SLURM_DIR     the private directory                     [/tmp/dpt-slurm-$UID]
#   DPT_SLURM_PORT    slurmctld port; slurmd uses PORT+1        [first free pair from 16817 up]
#   DPT_SLURM_CRED_EXPIRE  cred_expire: also how long a requeued job waits before it may start
#                     again (Slurm's default is 120 s)          [10]
#   DPT_SLURM_TIMEOUT seconds to wait for the node to go idle   [30]
#   DPT_SLURM_PURGE=1 on stop, delete DPT_SLURM_DIR too (only when it is under /tmp)
#
# Deliberately left out: accounting (slurmdbd), cgroups (proctrack/linuxproc, task/none) and more
# than one node. What it is for: sbatch/srun/scancel/scontrol requeue behave as on a real cluster.
set -u
set -o pipefail

DIR=${DPT_SLURM_DIR:-/tmp/dpt-slurm-$(id -u)}
CRED_EXPIRE=${DPT_SLURM_CRED_EXPIRE:-10}
TIMEOUT=${DPT_SLURM_TIMEOUT:-30}
CONF=$DIR/etc/slurm.conf
MUNGE_SOCK=$DIR/munge-run/munge.socket
PIDS=$DIR/pids
NODE=$(hostname -s)
PKGS=(slurmctld slurmd slurm-client munge)
CMDS=(munged munge unmunge mungekey slurmctld slurmd sinfo scontrol squeue scancel sbatch srun ss)

log() { echo "[dpt-slurm] $*" >&2; }
die() { echo "[dpt-slurm] ERROR: $*" >&2; exit 1; }
unusable() { echo "[dpt-slurm] $*" >&2; exit 3; }

missing_cmds() {
    local c out=()
    for c in "${CMDS[@]}"; do command -v "$c" >/dev/null 2>&1 || out+=("$c"); done
    echo "${out[*]}"
}

do_install() {
    local miss; miss=$(missing_cmds)
    [ -z "$miss" ] && return 0
    [ "$(id -u)" -eq 0 ] || unusable "missing: $miss; installing needs root (apt-get install ${PKGS[*]})"
    command -v apt-get >/dev/null || unusable "missing: $miss, and no apt-get to install ${PKGS[*]}"
    log "installing ${PKGS[*]} (missing: $miss)"
    # --no-install-recommends: slurm-wlm's recommends pull ~30 plugin -dev packages we do not need.
    # Services are not started by the package scripts here (no init; policy-rc.d) and we never use them.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" \
        >"${TMPDIR:-/tmp}/dpt-slurm-apt.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" \
            >"${TMPDIR:-/tmp}/dpt-slurm-apt.log" 2>&1 ||
            unusable "apt-get install ${PKGS[*]} failed: $(tail -n 2 "${TMPDIR:-/tmp}/dpt-slurm-apt.log" | tr '\n' ' ')"
    fi
    miss=$(missing_cmds)
    [ -z "$miss" ] || unusable "still missing after apt-get install: $miss"
}

# pid_ok PID NAME: PID is alive, not a zombie (PID 1 here may not reap orphans), and its comm is NAME
# (guards against a recycled PID).
pid_ok() {
    [ -n "${1:-}" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    local st; st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
rec_pid() { [ -f "$PIDS" ] && awk -v n="$1" '$1 == n {print $2}' "$PIDS" | tail -n 1; }
sconf() { SLURM_CONF=$CONF "$@"; }

dump_logs() {
    local f
    for f in "$DIR"/log/*.log "$DIR"/munge/munged.log; do
        [ -f "$f" ] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 20 "$f" >&2
    done
}

is_up() {
    local n
    for n in munged slurmctld slurmd; do pid_ok "$(rec_pid $n)" "$n" || return 1; done
    sconf scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
    case "$(sconf sinfo -h -n "$NODE" -o %T 2>/dev/null)" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

# stop_pids NAME...: SIGTERM each recorded, living PID; wait up to 15 s; then SIGKILL what is left.
stop_pids() {
    local n p e left=() still rc=0
    for n in "$@"; do
        p=$(rec_pid "$n")
        pid_ok "$p" "$n" || continue
        log "stopping $n (pid $p)"
        kill -TERM "$p" 2>/dev/null
        left+=("$n:$p")
    done
    for _ in $(seq 150); do
        still=()
        for e in "${left[@]}"; do pid_ok "${e#*:}" "${e%%:*}" && still+=("$e"); done
        left=("${still[@]}")
        [ ${#left[@]} -eq 0 ] && return 0
        sleep 0.1
    done
    for e in "${left[@]}"; do
        log "${e%%:*} (pid ${e#*:}) ignored SIGTERM for 15 s: SIGKILL"
        kill -KILL "${e#*:}" 2>/dev/null
    done
    sleep 0.5
    for e in "${left[@]}"; do
        pid_ok "${e#*:}" "${e%%:*}" && { log "could not stop ${e%%:*} (pid ${e#*:})"; rc=1; }
    done
    return $rc
}

do_stop() {
    local jobs rc=0
    if [ ! -f "$PIDS" ]; then
        log "nothing recorded in $PIDS: nothing to stop"
    else
        if pid_ok "$(rec_pid slurmctld)" slurmctld; then
            jobs=$(sconf squeue -h -o %i 2>/dev/null | tr '\n' ' ')
            if [ -n "${jobs// /}" ]; then
                log "cancelling jobs: $jobs"
                # shellcheck disable=SC2086
                sconf scancel $jobs 2>/dev/null
                for _ in $(seq 40); do
                    [ -z "$(sconf squeue -h -o %i 2>/dev/null)" ] && break
                    sleep 0.25
                done
            fi
        fi
        stop_pids slurmd slurmctld || rc=1 # together
        stop_pids munged || rc=1           # last: the slurm daemons talk to munge until they exit
        [ $rc -eq 0 ] && rm -f "$PIDS"
    fi
    if [ $rc -eq 0 ] && [ "${DPT_SLURM_PURGE:-0}" = 1 ]; then
        case "$DIR" in
            /tmp/?*) rm -rf "$DIR" && log "removed $DIR" ;;
            *) log "not removing $DIR (not under /tmp)" ;;
        esac
    fi
    [ $rc -eq 0 ] && log "stopped" || log "stop incomplete (see above)"
    return $rc
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

pick_ports() {
    if [ -n "${DPT_SLURM_PORT:-}" ]; then
        CTLD_PORT=$DPT_SLURM_PORT
        SLURMD_PORT=$((DPT_SLURM_PORT + 1))
        local p
        for p in $CTLD_PORT $SLURMD_PORT; do
            port_busy "$p" && die "TCP port $p is in use: $(ss -Hltnp "sport = :$p" | head -n 1)"
        done
        return 0
    fi
    local base
    for base in $(seq 16817 2 16999); do
        if ! port_busy "$base" && ! port_busy $((base + 1)); then
            CTLD_PORT=$base SLURMD_PORT=$((base + 1))
            return 0
        fi
    done
    die "no free port pair between 16817 and 17000; set DPT_SLURM_PORT"
}

write_conf() {
    local hw kv CPUs='' Boards=1 SocketsPerBoard=1 CoresPerSocket=1 ThreadsPerCore=1 RealMemory=''
    hw=$(slurmd -C 2>/dev/null | head -n 1) || die "'slurmd -C' failed"
    for kv in $hw; do
        case "$kv" in
            CPUs=* | Boards=* | SocketsPerBoard=* | CoresPerSocket=* | ThreadsPerCore=* | RealMemory=*)
                printf -v "${kv%%=*}" '%s' "${kv#*=}" ;;
        esac
    done
    [ -n "$CPUs" ] && [ -n "$RealMemory" ] || die "could not read CPUs/RealMemory from 'slurmd -C': $hw"
    cat >"$CONF" <<EOF
# written by tests/slurm/cluster.sh on $(date -u +%FT%TZ); hardware from 'slurmd -C'
ClusterName=dptci
# Job ids that no other instance uses at the same time: Open MPI names its shared-memory segments
# after the PMIx namespace, i.e. the Slurm job id, and two jobs "1" of two instances at once crashed
# in mca_btl_vader. Instances that run together have different ports, hence different ranges.
FirstJobId=$(( ((CTLD_PORT - 16817) / 2 % 90 + 1) * 100000 + RANDOM % 50000 ))
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK,cred_expire=$CRED_EXPIRE
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
# PMIx puts each step's directory under TmpFS (spmix_appdir_UID_JOB.STEP): private, so that two
# instances whose job ids both start at 1 cannot collide
TmpFS=$DIR/tmp
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2
MpiDefault=pmix
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUs Boards=$Boards SocketsPerBoard=$SocketsPerBoard CoresPerSocket=$CoresPerSocket ThreadsPerCore=$ThreadsPerCore RealMemory=$RealMemory State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

# wait_pidfile FILE: up to 5 s for a daemon's pid file
wait_pidfile() {
    for _ in $(seq 50); do [ -s "$1" ] && return 0; sleep 0.1; done
    return 1
}

do_start() {
    local t0 miss st=''
    t0=$(date +%s%N)
    [ "$(id -u)" -eq 0 ] || unusable "must run as root (the daemons run as root with SlurmUser=root)"
    miss=$(missing_cmds)
    [ -z "$miss" ] || unusable "missing commands: $miss (run '$0 install' or apt-get install ${PKGS[*]})"
    if is_up; then
        log "already running (conf $CONF)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    if [ -f "$PIDS" ]; then
        log "a partial or stale instance is recorded: stopping it first"
        do_stop || die "could not stop the stale instance"
    fi
    pick_ports
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log" "$DIR/munge-run" "$DIR/tmp"
    mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log" "$DIR/munge" "$DIR/munge-run" "$DIR/tmp" ||
        die "cannot create directories under $DIR"
    # munged insists: key directory private, socket directory (and its parents) o+x
    chmod 700 "$DIR/munge"
    chmod 755 "$DIR" "$DIR/munge-run"
    : >"$PIDS"

    # munge: a private instance with its own key and socket
    [ -s "$DIR/munge/munge.key" ] ||
        mungekey --create --keyfile="$DIR/munge/munge.key" --bits=1024 || die "mungekey failed"
    chmod 600 "$DIR/munge/munge.key"
    munged --socket="$MUNGE_SOCK" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge-run/munged.pid" --seed-file="$DIR/munge/munged.seed" \
        --log-file="$DIR/munge/munged.log" --origin=127.0.0.1 || { dump_logs; die "munged did not start"; }
    wait_pidfile "$DIR/munge-run/munged.pid" || { dump_logs; die "munged wrote no pid file"; }
    echo "munged $(cat "$DIR/munge-run/munged.pid")" >>"$PIDS"
    munge -S "$MUNGE_SOCK" -n | unmunge -S "$MUNGE_SOCK" >/dev/null || { dump_logs; die "munge round trip failed"; }

    write_conf
    slurmctld -f "$CONF" || { dump_logs; die "slurmctld did not start"; }
    wait_pidfile "$DIR/run/slurmctld.pid" || { dump_logs; die "slurmctld wrote no pid file"; }
    echo "slurmctld $(cat "$DIR/run/slurmctld.pid")" >>"$PIDS"
    slurmd -f "$CONF" -N "$NODE" || { dump_logs; die "slurmd did not start"; }
    wait_pidfile "$DIR/run/slurmd.pid" || { dump_logs; die "slurmd wrote no pid file"; }
    echo "slurmd $(cat "$DIR/run/slurmd.pid")" >>"$PIDS"

    for _ in $(seq $((TIMEOUT * 5))); do
        st=$(sconf sinfo -h -n "$NODE" -o %T 2>/dev/null)
        [ "$st" = idle ] && break
        sleep 0.2
    done
    if [ "$st" != idle ]; then
        log "node state after ${TIMEOUT}s: '${st:-no answer}'"
        sconf scontrol show node "$NODE" >&2 2>/dev/null
        dump_logs
        die "the node did not go idle (daemons left running: '$0 stop' stops them)"
    fi
    log "up in $((($(date +%s%N) - t0) / 1000000)) ms: node $NODE idle, ports $CTLD_PORT/$SLURMD_PORT," \
        "conf $CONF, pids $(tr '\n' ' ' <"$PIDS")"
    echo "export SLURM_CONF=$CONF"
}

do_status() {
    local n p rc=0
    for n in munged slurmctld slurmd; do
        p=$(rec_pid $n)
        if pid_ok "$p" "$n"; then echo "$n: running (pid $p)"; else echo "$n: not running"; rc=1; fi
    done
    [ $rc -eq 0 ] && { sconf sinfo || rc=1; }
    return $rc
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *)
        echo "usage: $0 install|start|stop|status|env" >&2
        exit 2
        ;;
esac
