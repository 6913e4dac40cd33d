#!/bin/bash
# Strong-scaling sweep inside one allocation: trkx-scaling runs the same global workload on N = 1, 2, 4, ...
# up to the allocation's task count (each N started with srun, Horovod backend), then writes the report to
# scaling_studies/<scaling.name>/. One allocation means every N runs on the same nodes and network.
#
#   mkdir -p logs && sbatch slurm/scaling_sweep.sh [CONFIG] [--set key=value ...]
#   sbatch -N 16 --ntasks-per-node=4 --gpus-per-task=1 -t 6:00:00 -A ACCOUNT -p gpu \
#       slurm/scaling_sweep.sh configs/demo.yaml --set scaling.name=a100-sweep --set scaling.global_batch=64
#
# TRKX_RANKS=1,2,4 picks the rank counts (default: powers of two up to $SLURM_NTASKS). Runs already recorded are
# skipped, so a requeued sweep (USR1 near the time limit) continues with the run it was in.
#SBATCH --job-name=trkx-sweep
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
source "${TRKX_REPO:-$SLURM_SUBMIT_DIR}/slurm/lib/launch.sh"
trkx_setup_env
ranks=1; for ((n = 2; n <= SLURM_NTASKS; n *= 2)); do ranks+=,$n; done
trkx_step trkx-scaling run --config "${1:-configs/demo.yaml}" --launcher srun --ranks "${TRKX_RANKS:-$ranks}" \
    --set scaling.tasks_per_node="${SLURM_NTASKS_PER_NODE:-$SLURM_NTASKS}" "${@:2}"
