#!/bin/bash
# Held-out comparison of the recorded study (README.md beside this file): the Interaction Networks of the given runs
# scored on the filter-kept edges of 3 simulated μ=200 events that no trial trained or was selected on
# (data/hpo200/heldout, ids 200-202, built like the study's graphs into data/hpo200/heldout-gnn-shards, all in the
# val split: whole events).
#   bash studies/hpo/gnn-mu200/heldout.sh RUN_FOLDER_OR_RELEASE NAME [RUN_FOLDER_OR_RELEASE NAME ...]
set -euo pipefail
cd "$(dirname "$0")/../../.."
cfg=studies/hpo/gnn-mu200/config.yaml
[[ -d data/hpo200/heldout-gnn-shards ]] || nice -n 15 .venv/bin/trkx-build --config $cfg \
    --input data/hpo200/heldout --out data/hpo200/heldout-gnn-shards --set data.val_fraction=0.9 --workers 1 \
    --no-progress
mkdir -p studies/hpo/gnn-mu200/heldout
while [[ $# -ge 2 ]]; do
    run=$1 name=$2; shift 2
    echo "== $name ($run)"
    ckpt=$(realpath "$run")/checkpoints run_cfg=$run/config.yaml
    [[ -f $run/release.json ]] && ckpt=$(realpath "$run") run_cfg=$cfg   # a release: its weights, the study's shapes
    nice -n 15 .venv/bin/python benchmarks/infer_filter_thresholds.py --config "$run_cfg" \
        --shards data/hpo200/heldout-gnn-shards --gnn-ckpt "$ckpt" --json "studies/hpo/gnn-mu200/heldout/$name.json"
done
