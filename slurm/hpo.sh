#!/bin/bash
# Hyper-parameter optimisation: an array job whose every task is one worker of the same Optuna study (docs/hpo.md).
# The study lives in one journal file on a file system every node sees; each task runs trials (real trkx-train
# runs) until the study has --trials trials, so 16 tasks share 64 trials however fast each one is.
#
#   mkdir -p logs && sbatch --array=0-15 slurm/hpo.sh SPACE CONFIG STUDY TRIALS [--set key=value ...]
#   # a Horovod trial on 4 GPUs per task:
#   sbatch --array=0-15 --ntasks-per-node=4 --gpus-per-task=1 -t 12:00:00 -A ACCOUNT -p gpu \
#       slurm/hpo.sh configs/hpo/filter.yaml configs/filter.yaml filter-a100 64
#
# With several tasks per array element (--ntasks-per-node=N), each trial runs under the MPI launcher of
# slurm/lib/launch.sh (srun --mpi=pmix, or mpirun) on this element's N ranks; with one task it is a plain process.
# TRKX_HPO_STORAGE (default studies/hpo/<STUDY>.journal) and TRKX_HPO_OUT (default: beside the storage) choose
# where the study and the trials' run folders go. Near the time limit SLURM sends USR1: the worker stops its trial
# (failed, "interrupted": it does not count), exits 99 and the element is requeued; the requeued worker resumes the
# study. A worker lost without a signal leaves its trial running; it is failed after trkx_tf.hpo.study.STALE_AFTER_S.
#
# Without SLURM, N workers on one machine:  trkx-hpo run --space SPACE --config CONFIG --study STUDY \
#     --storage studies/hpo/STUDY.journal --trials 20 --workers N
#SBATCH --job-name=trkx-hpo
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=2
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail
if [[ $# -lt 4 ]]; then
    echo "usage: sbatch --array=0-K slurm/hpo.sh SPACE CONFIG STUDY TRIALS [--set key=value ...]" >&2
    exit 2
fi
source "${TRKX_REPO:-$SLURM_SUBMIT_DIR}/slurm/lib/launch.sh"
trkx_setup_env
space=$1 config=$2 study=$3 trials=$4
storage=${TRKX_HPO_STORAGE:-studies/hpo/$study.journal}
mkdir -p "$(dirname "$storage")"
launcher=""
if [[ ${SLURM_NTASKS:-1} -gt 1 ]]; then
    trkx_mpi_launcher
    launcher="${TRKX_LAUNCH[*]}"
fi
out_args=()
[[ -n ${TRKX_HPO_OUT:-} ]] && out_args=(--out "$TRKX_HPO_OUT")
# one worker per array element; the element id seeds its sampler (trkx-hpo reads SLURM_ARRAY_TASK_ID)
trkx_step trkx-hpo run --space "$space" --config "$config" --study "$study" --storage "$storage" \
    --trials "$trials" --launcher "$launcher" "${out_args[@]}" "${@:5}"
