#!/bin/bash
# The recorded study (README.md beside this file), from the repository root, after the data commands in config.yaml.
# It was run with --trials 12 first, then resumed with --trials 20 (the same command): 8 more trials in the same journal.
set -euo pipefail
cd "$(dirname "$0")/../../.."
time nice -n 15 .venv/bin/trkx-hpo run --space studies/hpo/gnn-mu200/space.yaml \
    --config studies/hpo/gnn-mu200/config.yaml --study gnn-mu200 \
    --storage studies/hpo/gnn-mu200/study.journal --out runs/hpo200-gnn-trials --trials 20 --workers 2
nice -n 15 .venv/bin/trkx-hpo report --study gnn-mu200 --storage studies/hpo/gnn-mu200/study.journal \
    --out studies/hpo/gnn-mu200/report
