#!/bin/bash
# The recorded study (README.md beside this file), from the repository root, after the data commands in config.yaml.
set -euo pipefail
cd "$(dirname "$0")/../../.."
time nice -n 15 .venv/bin/trkx-hpo run --space studies/hpo/filter-mu200/space.yaml \
    --config studies/hpo/filter-mu200/config.yaml --study filter-mu200 \
    --storage studies/hpo/filter-mu200/study.journal --out runs/hpo200-filter-trials --trials 12 --workers 2
nice -n 15 .venv/bin/trkx-hpo report --study filter-mu200 --storage studies/hpo/filter-mu200/study.journal \
    --out studies/hpo/filter-mu200/report
