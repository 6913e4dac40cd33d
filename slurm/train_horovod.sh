#!/bin/bash
# Horovod training: one rank per task (per GPU on GPU nodes), started through srun --mpi=pmix (or mpirun).
#
#   mkdir -p logs && sbatch slurm/train_horovod.sh [CONFIG] [--set key=value ...]
#   sbatch -N 4 --ntasks-per-node=4 --gpus-per-task=1 --cpus-per-task=8 -t 4:00:00 -A ACCOUNT -p gpu \
#       slurm/train_horovod.sh configs/trackml_full.yaml --set train.epochs=50
#
# Command-line options (or SBATCH_ACCOUNT, SBATCH_PARTITION, SBATCH_TIMELIMIT, SBATCH_GPUS_PER_TASK, ...)
# override the defaults below. Environment: TRKX_ENV_SETUP="module load ...; source ..." or TRKX_VENV (default
# .venv of the submit folder); TRKX_MPI_LAUNCHER=srun|mpirun to force a launcher (see slurm/lib/launch.sh).
# Near the time limit SLURM sends USR1: the trainer checkpoints (rank 0 then writes $TRKX_REQUEUE_MARK), exits 99,
# and the job is requeued and resumes, whichever rank srun saw exit first (see trkx_step in slurm/lib/launch.sh).
#SBATCH --job-name=trkx-hvd
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --time=00:30:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
source "${TRKX_REPO:-$SLURM_SUBMIT_DIR}/slurm/lib/launch.sh"
trkx_setup_env
trkx_mpi_launcher
trkx_step "${TRKX_LAUNCH[@]}" trkx-train --config "${1:-configs/demo.yaml}" --set backend.name=horovod "${@:2}"
