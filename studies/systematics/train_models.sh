#!/usr/bin/env bash
# The two small model sets of the recorded systematics study (studies/systematics/README.md): the demo recipe
# (configs/demo.yaml: 16 simulated mu=20 events, small filter + IN, thresholds chosen on its validation events),
# trained once with the simulator's standard noise (simulate.noise_fraction 0.146) and once without noise hits.
# Nothing here reads event 1000. Run from the repository root.
set -euo pipefail
common=(--set pipeline.launcher=one --set pipeline.np=1 --set "pipeline.test=[]" --no-progress)
nice -n 10 trkx-pipeline run --config configs/demo.yaml "${common[@]}" --set run.name=sys-std \
  --set data.events_dir=data/sys/std/events --set data.shards_dir=data/sys/std/shards \
  --set pipeline.validation.dir=data/sys/std/events
nice -n 10 trkx-pipeline run --config configs/demo.yaml "${common[@]}" --set run.name=sys-nonoise \
  --set simulate.noise_fraction=0 \
  --set data.events_dir=data/sys/nonoise/events --set data.shards_dir=data/sys/nonoise/shards \
  --set pipeline.validation.dir=data/sys/nonoise/events
