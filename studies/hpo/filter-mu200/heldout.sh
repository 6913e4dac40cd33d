#!/bin/bash
# Held-out comparison of the recorded study (README.md beside this file): the filters of the given trials scored on
# 3 simulated μ=200 events that no trial trained or was selected on (data/hpo200/heldout, ids 200-202, built with the
# study's module map into data/hpo200/heldout-shards, all in the val split).
#   bash studies/hpo/filter-mu200/heldout.sh RUN_FOLDER NAME [RUN_FOLDER NAME ...]
set -euo pipefail
cd "$(dirname "$0")/../../.."
[[ -d data/hpo200/heldout-shards ]] || nice -n 15 .venv/bin/trkx-build --config studies/hpo/filter-mu200/config.yaml \
    --input data/hpo200/heldout --out data/hpo200/heldout-shards --module-map data/hpo200/shards/module_map.npz \
    --set data.val_fraction=0.9 --workers 1 --no-progress
mkdir -p studies/hpo/filter-mu200/heldout
while [[ $# -ge 2 ]]; do
    run=$1 name=$2; shift 2
    echo "== $name ($run)"
    nice -n 15 .venv/bin/python benchmarks/infer_filter_thresholds.py --config "$run/config.yaml" \
        --shards data/hpo200/heldout-shards --filter-ckpt "$(realpath "$run")/checkpoints" --target 0.99 \
        --json "studies/hpo/filter-mu200/heldout/$name.json"
done
