# Sourced by the templates in slurm/ (and by tests/slurm): environment set-up, the MPI launcher, and one job
# step run with signal forwarding and the requeue rule. Defines functions only.
#
# Variables read:
#   TRKX_REPO           repository root (default: the folder sbatch was called from, $SLURM_SUBMIT_DIR)
#   TRKX_ENV_SETUP      shell commands that set up the environment ("module load ...; source .../activate");
#                       when unset, $TRKX_VENV/bin/activate is sourced (default $TRKX_REPO/.venv)
#   TRKX_MPI_LAUNCHER   auto (default) | srun | mpirun: how Horovod ranks start; auto takes `srun --mpi=pmix`
#                       when this SLURM has the pmix plugin, else `mpirun -np $SLURM_NTASKS`
#   TRKX_REQUEUE_EXIT   the trainer's "checkpointed, requeue me" exit status (default 99)
#   TRKX_REQUEUE_MARK_DIR  a folder every node of the job can write, for the requeue marker of trkx_step
#                       (default $SLURM_SUBMIT_DIR, else the current folder)
#
# Variables set for the job step:
#   TRKX_REQUEUE_MARK   the requeue marker: the step's writer rank (rank 0) creates this file once its checkpoint
#                       is complete, before it exits $TRKX_REQUEUE_EXIT (see trkx_step)

trkx_repo() {
    echo "${TRKX_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}"
}

# Sets up the software environment and one thread pool per CPU of the task.
trkx_setup_env() {
    if [[ -n ${TRKX_ENV_SETUP:-} ]]; then
        eval "$TRKX_ENV_SETUP"
    else
        # shellcheck disable=SC1091
        source "${TRKX_VENV:-$(trkx_repo)/.venv}/bin/activate"
    fi
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
    export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-$OMP_NUM_THREADS}
    export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
    # a hung (not dead) Horovod rank ends the job after 10 minutes instead of stalling it until the time limit
    export HOROVOD_STALL_SHUTDOWN_TIME_SECONDS=${HOROVOD_STALL_SHUTDOWN_TIME_SECONDS:-600}
}

# Fills the array TRKX_LAUNCH with the command that starts $SLURM_NTASKS MPI (Horovod) ranks.
trkx_mpi_launcher() {
    local how=${TRKX_MPI_LAUNCHER:-auto}
    if [[ $how == auto ]]; then
        if srun --mpi=list 2>&1 | grep -Eq '^[[:space:]]*pmix[[:space:]]*$'; then how=srun; else how=mpirun; fi
    fi
    case $how in
        srun) TRKX_LAUNCH=(srun --mpi=pmix --kill-on-bad-exit=1) ;;
        mpirun)
            # Open MPI: runs as root only when told so; no core binding (a task may own several CPUs)
            [[ $(id -u) == 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
            TRKX_LAUNCH=(mpirun -np "$SLURM_NTASKS" --bind-to none) ;;
        *) echo "trkx: TRKX_MPI_LAUNCHER=$how: expected auto, srun or mpirun" >&2; return 2 ;;
    esac
}

_trkx_forward() {  # trap handler: pass the signal on to the running step
    kill -s "$1" "$_trkx_step_pid" 2>/dev/null && _trkx_signalled=$1 && _trkx_forwarded=$1
    echo "trkx: got SIG$1, forwarded to the job step (pid $_trkx_step_pid)"
}

# Runs "$@" as the job's step. SIGUSR1 (sbatch --signal=B:USR1@T, near the time limit) and SIGTERM reach the
# batch shell only; they are forwarded to the step, which checkpoints and exits $TRKX_REQUEUE_EXIT. The job is
# then requeued and the next run (SLURM_RESTART_COUNT=1, 2, ...) resumes from the checkpoint.
#
# The requeue rule: the step exited $TRKX_REQUEUE_EXIT, or a signal was forwarded to it and the requeue marker
# $TRKX_REQUEUE_MARK exists. The marker makes the decision independent of which rank exits first: under
# `srun --kill-on-bad-exit=1` the first rank to exit 99 makes srun terminate the others (SIGTERM), and the step's
# status becomes 143 (or 137) however cleanly they were finishing. The writer rank creates the marker only once
# its checkpoint is complete, so a step whose rank 0 died before that is not requeued: it fails (rerunning the
# same command resumes from the last complete checkpoint).
# Returns the step's exit status (0 after a successful requeue).
trkx_step() {
    local rc=0 requeue=${TRKX_REQUEUE_EXIT:-99} marked=
    export TRKX_REQUEUE_MARK="${TRKX_REQUEUE_MARK_DIR:-${SLURM_SUBMIT_DIR:-$PWD}}/.trkx-requeue-${SLURM_JOB_ID:-$$}"
    rm -f "$TRKX_REQUEUE_MARK"  # left by an earlier run of this job that was killed before reading it
    echo "trkx: job ${SLURM_JOB_ID:-none} (restart ${SLURM_RESTART_COUNT:-0})" \
         "on ${SLURM_JOB_NODELIST:-$(hostname -s)}, ${SLURM_NTASKS:-1} tasks: $*"
    _trkx_forwarded=
    "$@" &
    _trkx_step_pid=$!
    trap '_trkx_forward USR1' USR1
    trap '_trkx_forward TERM' TERM
    while :; do  # `wait` returns early when a trapped signal arrives: wait again for the step's own status
        _trkx_signalled=
        wait "$_trkx_step_pid" && rc=0 || rc=$?
        [[ -z $_trkx_signalled ]] && break
    done
    trap - USR1 TERM
    if [[ -e $TRKX_REQUEUE_MARK ]]; then
        marked=$(head -c 300 "$TRKX_REQUEUE_MARK" 2>/dev/null | tr -s '\n' ' ') || true
        marked=${marked:-empty marker}
        rm -f "$TRKX_REQUEUE_MARK"
    fi
    if [[ -n ${SLURM_JOB_ID:-} ]] && [[ $rc == "$requeue" || ( $rc != 0 && -n $_trkx_forwarded && -n $marked ) ]]; then
        if [[ $rc == "$requeue" ]]; then
            echo "trkx: step exited $rc (checkpointed): requeueing job $SLURM_JOB_ID"
        else  # e.g. srun terminated the last ranks when the first one exited $requeue
            echo "trkx: step exited $rc after SIG$_trkx_forwarded, checkpointed (${marked% }):" \
                 "requeueing job $SLURM_JOB_ID"
        fi
        scontrol requeue "$SLURM_JOB_ID" && return 0
        echo "trkx: scontrol requeue failed; the job ends with status $rc" >&2
    fi
    echo "trkx: step finished with status $rc"
    return "$rc"
}
