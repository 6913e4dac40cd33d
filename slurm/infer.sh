#!/bin/bash
# Tracks for many events: trkx-infer on MPI ranks, one per task, across nodes (trkx_tf/ranks.py).
#
#   mkdir -p logs && sbatch slurm/infer.sh [CONFIG] --input EVENTS --out DIR [trkx-infer options ...]
#   sbatch -N 4 --ntasks-per-node=8 --cpus-per-task=4 -t 1:00:00 -A ACCOUNT -p cpu \
#       slurm/infer.sh configs/trackml_full.yaml --input /scratch/trackml/test --out /scratch/tracks \
#       --filter-ckpt runs/full-filter --gnn-ckpt runs/full-gnn --module-map /scratch/shards/module_map.npz
#   sbatch slurm/infer.sh configs/demo.yaml --model demo-mu20 --input EVENTS --out DIR   # a released model
#
# Event i (sorted ids) goes to rank i mod $SLURM_NTASKS; each rank writes its events' submissions (and edges) and
# restores the models itself; rank 0 writes timings.json and prints the table. The submissions are byte-identical
# whatever the number of tasks. --out must be on a file system every node sees. Each task's TensorFlow uses
# infer.threads threads (0: its cores); give GPU nodes one task per GPU (--gpus-per-task=1).
# A rank that fails stops the job with its error and no timings.json; the events already written stay.
# Command-line options (or SBATCH_ACCOUNT, SBATCH_PARTITION, SBATCH_TIMELIMIT, ...) override the defaults below.
# Environment: TRKX_ENV_SETUP or TRKX_VENV, TRKX_MPI_LAUNCHER=srun|mpirun (see slurm/lib/launch.sh).
#SBATCH --job-name=trkx-infer
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
trkx_step "${TRKX_LAUNCH[@]}" trkx-infer --config "${1:-configs/demo.yaml}" --no-progress "${@:2}"
