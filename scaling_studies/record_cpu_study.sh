#!/usr/bin/env bash
# Records the CPU scaling study scaling_studies/${NAME:-cpu-2cores}/ on this machine: configs/scaling.yaml
# (μ=200 sector graphs, one size bucket, IN 64 wide x 8 steps), 1 and 2 ranks, Horovod (horovodrun) and
# tf.distribute (TF_CONFIG workers), one TensorFlow thread per rank and each rank pinned to its own core
# (backend.threads=1, backend.pin_cores=true in the config), 3 repeats interleaved over rank counts AND backends
# (each `trkx-scaling run --repeats R` adds repeat R-1: recorded runs are skipped), and 3 plain trkx-train runs
# (backend single, no launcher) that the report checks the 1-rank runs against.
# Horovod runs through `horovodrun --gloo` by default (HVD_LAUNCHER=horovodrun for its MPI controller): with one
# core per rank, Horovod's MPI background thread busy-waits on the rank's only core, which cost 3x in step time at
# 2 ranks on a loaded machine (scaling_studies/README.md); Gloo waits without spinning.
# Run from anywhere: bash scaling_studies/record_cpu_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${NAME:-cpu-2cores}
HVD_LAUNCHER=${HVD_LAUNCHER:-horovodrun-gloo}
export PATH="$PWD/.venv/bin:$PATH"
if [ ! -f data/scaling/shards/manifest.json ]; then  # 6 simulated μ=200 events -> 96 sector graphs (~1 min)
  [ -d data/scaling/events ] || trkx-simulate --config configs/scaling.yaml
  trkx-build --config configs/scaling.yaml --no-progress
fi
uptime
for repeats in 1 2 3; do
  trkx-scaling run --config configs/scaling.yaml --name "$NAME" --repeats "$repeats" \
      --launcher "$HVD_LAUNCHER" > /dev/null
  trkx-scaling run --config configs/scaling.yaml --name "$NAME" --repeats "$repeats" \
      --backend tfdist --launcher tfconfig > /dev/null
  # the reference the 1-rank runs are checked against: one plain trkx-train, same workload, no launcher
  trkx-scaling run --config configs/scaling.yaml --name "$NAME" --repeats "$repeats" \
      --backend single --launcher plain --ranks 1 > /dev/null
done
uptime
trkx-scaling report --name "$NAME"
