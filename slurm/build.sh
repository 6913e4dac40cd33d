#!/bin/bash
# Graph shards from many events: trkx-build on MPI ranks, one per task, across nodes (trkx_tf/ranks.py).
#
#   mkdir -p logs && sbatch slurm/build.sh [CONFIG] [trkx-build options ...]
#   sbatch -N 8 --ntasks-per-node=32 -t 2:00:00 -A ACCOUNT -p cpu \
#       slurm/build.sh configs/trackml_full.yaml --input /scratch/trackml/train_1 --out /scratch/shards/train_1
#
# Event i (sorted ids) goes to rank i mod $SLURM_NTASKS, then shard k to rank k mod $SLURM_NTASKS; rank 0 fits the
# module map, writes the manifest and prints the summary. The shards are byte-identical whatever the number of
# tasks. --out must be on a file system every node sees (the ranks write into <out>/.tmp-build-<pid>/).
# Each rank uses TRKX_WORKERS processes (default 1: give each task its cores with --ntasks-per-node instead).
# A rank that fails stops the job with its error, before the manifest; an interrupted build (time limit, node
# failure) is resumed by submitting the same command again: complete shards are verified and kept.
# Command-line options (or SBATCH_ACCOUNT, SBATCH_PARTITION, SBATCH_TIMELIMIT, ...) override the defaults below.
# Environment: TRKX_ENV_SETUP or TRKX_VENV, TRKX_MPI_LAUNCHER=srun|mpirun (see slurm/lib/launch.sh).
#SBATCH --job-name=trkx-build
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
source "${TRKX_REPO:-$SLURM_SUBMIT_DIR}/slurm/lib/launch.sh"
trkx_setup_env
trkx_mpi_launcher
trkx_step "${TRKX_LAUNCH[@]}" trkx-build --config "${1:-configs/demo.yaml}" --workers "${TRKX_WORKERS:-1}" \
    --no-progress "${@:2}"
