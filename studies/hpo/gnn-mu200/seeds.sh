#!/bin/bash
# Training noise of the comparison (README.md beside this file): the default config (trial 0) and the best trial's
# config retrained with run.seed 1 and 2 (model initialisation and data order), two trainings at a time, then every
# model, and the released sim200 IN (long-trained, for scale), scored on the held-out events by heldout.sh.
set -euo pipefail
cd "$(dirname "$0")/../../.."
default=runs/hpo200-gnn-trials/trial-0000/config.yaml
best=studies/hpo/gnn-mu200/report/best_config.yaml
besttrial=${1:?usage: seeds.sh BEST_TRIAL_FOLDER (runs/hpo200-gnn-trials/trial-NNNN)}
for seed in 1 2; do
    for which in default best; do
        cfg=$default; [[ $which == best ]] && cfg=$best
        nice -n 15 .venv/bin/trkx-train --config "$cfg" --set run.seed=$seed --set run.out_dir=runs/hpo200-gnn-seeds \
            --set run.name=$which-s$seed > /dev/null 2>&1 &
    done
    wait
done
bash studies/hpo/gnn-mu200/heldout.sh runs/hpo200-gnn-trials/trial-0000 default-s0 "$besttrial" best-s0 \
    runs/hpo200-gnn-seeds/default-s1 default-s1 runs/hpo200-gnn-seeds/best-s1 best-s1 \
    runs/hpo200-gnn-seeds/default-s2 default-s2 runs/hpo200-gnn-seeds/best-s2 best-s2 models/sim200 release-sim200
