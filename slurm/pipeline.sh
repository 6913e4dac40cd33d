#!/bin/bash
# The whole pipeline in one job (trkx-pipeline, trkx_tf/pipeline/): the data stages on the first node, the training
# stages as Horovod ranks over every task of the allocation (srun --mpi=pmix, or mpirun), one per GPU.
#
#   mkdir -p logs && sbatch slurm/pipeline.sh [CONFIG] [trkx-pipeline run options: --set k=v, --from, --to ...]
#   sbatch -N 4 --ntasks-per-node=4 --gpus-per-task=1 --cpus-per-task=8 -t 24:00:00 -A ACCOUNT -p gpu \
#       slurm/pipeline.sh configs/trackml_full.yaml
#
# Sets pipeline.launcher=srun and pipeline.np=$SLURM_NTASKS. Stages that are up to date are skipped, so submitting
# the same command again continues where the last job stopped. Near the time limit SLURM sends USR1: trkx-pipeline
# passes it on to the running stage (a training checkpoints), records it, exits 99, and the job is requeued; the
# requeued run resumes the training from its checkpoint. The folders in the config must be on a shared file system.
# Environment: TRKX_ENV_SETUP or TRKX_VENV (see slurm/lib/launch.sh).
#SBATCH --job-name=trkx-pipeline
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
source "${TRKX_REPO:-$SLURM_SUBMIT_DIR}/slurm/lib/launch.sh"
trkx_setup_env
trkx_step trkx-pipeline run --config "${1:-configs/trackml_full.yaml}" --no-progress \
    --set pipeline.launcher=srun --set "pipeline.np=${SLURM_NTASKS:-1}" "${@:2}"
