#!/bin/bash
# tf.distribute training: MultiWorkerMirroredStrategy, one worker per task, started by srun. Each worker builds
# the cluster from SLURM (SlurmClusterResolver); with GPUs, give each task its GPU(s) with --gpus-per-task.
#
#   mkdir -p logs && sbatch slurm/train_tfdist.sh [CONFIG] [--set key=value ...]
#   sbatch -N 2 --ntasks-per-node=4 --gpus-per-task=1 -t 4:00:00 -A ACCOUNT -p gpu \
#       slurm/train_tfdist.sh configs/trackml_full.yaml
#
# Options, environment hook and requeue as in train_horovod.sh.
#SBATCH --job-name=trkx-tfdist
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
trkx_step srun --kill-on-bad-exit=1 trkx-train --config "${1:-configs/demo.yaml}" --set backend.name=tfdist "${@:2}"
