#!/usr/bin/env bash
# A single-node SLURM on this machine, for the tests and for trying the templates in slurm/.
#
#   scripts/slurm_local.sh start    # install slurm-wlm + munge (apt, once), write the config, start the daemons
#   scripts/slurm_local.sh status   # daemons, node and queue
#   scripts/slurm_local.sh stop     # cancel this cluster's jobs, stop the daemons by their pid files
#
# Then, in your shell:  export SLURM_CONF=/tmp/trkx-slurm/slurm.conf  (start prints it), and
#   mkdir -p logs && sbatch --wait slurm/train_horovod.sh configs/demo.yaml
#
# Needs root (the daemons run as root: SlurmUser=root; munged runs as the munge user). Everything lives in the
# scratch folder $TRKX_SLURM_DIR (default /tmp/trkx-slurm): slurm.conf, state, spool, logs, pid files and a
# private munge socket, so a system munged or SLURM is left alone. Ports: $TRKX_SLURM_PORT (slurmctld, default
# 6817) and the next one (slurmd). Known to work: Debian 12's slurm-wlm 22.05 with proctrack/linuxproc and
# task/none (no cgroups needed); `srun --mpi=pmix` for Open MPI 4.1 programs.
set -euo pipefail

DIR=${TRKX_SLURM_DIR:-/tmp/trkx-slurm}
CONF=$DIR/slurm.conf
PORT=${TRKX_SLURM_PORT:-6817}
MUNGE_KEY=${TRKX_MUNGE_KEY:-/etc/munge/munge.key}
HOST=$(hostname -s)
export SLURM_CONF=$CONF

die() { echo "slurm_local.sh: $2" >&2; exit "$1"; }  # status 3: cannot install, 4: not root, 1: other
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
    echo "installing slurm-wlm and munge (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends slurm-wlm munge; } >"$DIR/apt.log" 2>&1 \
        || die 3 "apt-get install slurm-wlm munge failed, see $DIR/apt.log"
}

ensure_munge_key() {
    [[ -s $MUNGE_KEY ]] && return 0
    echo "writing a new munge key to $MUNGE_KEY"
    mkdir -p "$(dirname "$MUNGE_KEY")"
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    chown munge:munge "$MUNGE_KEY" && chmod 0400 "$MUNGE_KEY"
}

write_conf() {
    mkdir -p "$DIR"/{state,spool,log}
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh: one node ($HOST), $(nproc) CPUs, everything under $DIR.
ClusterName=trkx
SlurmctldHost=$HOST
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=${TRKX_SLURM_CRED_EXPIRE:-10}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Launchers choose their PMI explicitly (srun --mpi=pmix for MPI programs, plain srun for tf.distribute).
MpiDefault=none
SchedulerType=sched/backfill
# short scheduling passes: a requeued job starts again seconds after its begin time, not a minute later
SchedulerParameters=sched_interval=5,bf_interval=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
JobRequeue=1
MailProg=/bin/true
InactiveLimit=0
KillWait=10
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
    alive "$DIR/munge/munged.pid" && return 0
    install -d -o munge -g munge -m 0711 "$DIR/munge"
    runuser -u munge -- munged --socket="$DIR/munge/munge.socket" --key-file="$MUNGE_KEY" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" \
        || die 1 "munged did not start, see $DIR/munge/munged.log"
}

wait_idle() {
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null | head -1 || true)
        case $state in
            idle|mix|alloc) return 0 ;;
            down*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    die 1 "node $HOST is not idle after 60 s (state '${state:-unknown}'), see $DIR/log/"
}

start() {
    [[ $(id -u) == 0 ]] || die 4 "must run as root (SlurmUser=root, munged as munge)"
    mkdir -p "$DIR"
    install_packages
    ensure_munge_key
    write_conf
    start_munged
    alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF" || die 1 "slurmctld did not start, see $DIR/log/slurmctld.log"
    alive "$DIR/slurmd.pid" || slurmd -f "$CONF" || die 1 "slurmd did not start, see $DIR/log/slurmd.log"
    wait_idle
    sinfo
    echo "local SLURM is up; in your shell:  export SLURM_CONF=$CONF"
}

stop_pidfile() {  # name pidfile: TERM, wait up to 15 s, then KILL
    local name=$1 pidfile=$2 pid
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$pidfile"
    echo "stopped $name (pid $pid)"
}

stop() {
    if alive "$DIR/slurmctld.pid"; then  # end this cluster's jobs first, so no job step outlives slurmd
        scancel --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 20); do [[ -z $(squeue -h -t R,CG 2>/dev/null) ]] && break; sleep 0.5; done
    fi
    stop_pidfile slurmd "$DIR/slurmd.pid"
    stop_pidfile slurmctld "$DIR/slurmctld.pid"
    stop_pidfile munged "$DIR/munge/munged.pid"
}

status() {
    local rc=0 name pidfile
    for name in munged slurmctld slurmd; do
        pidfile=$DIR/$name.pid; [[ $name == munged ]] && pidfile=$DIR/munge/munged.pid
        if alive "$pidfile"; then echo "$name: running (pid $(cat "$pidfile"))"; else echo "$name: stopped"; rc=3; fi
    done
    if [[ $rc == 0 ]]; then sinfo; squeue; echo "export SLURM_CONF=$CONF"; fi
    return $rc
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status   (state folder: \$TRKX_SLURM_DIR, default /tmp/trkx-slurm)" >&2; exit 2 ;;
esac
