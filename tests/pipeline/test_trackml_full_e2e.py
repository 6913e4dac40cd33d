"""configs/trackml_full.yaml end to end on a small folder in the TrackML challenge's layout, made by the simulator.

``train_1/`` holds events 1000-1004 and ``train_2/`` events 21000-21001 (event<ID>-{hits,cells,particles,truth}.csv,
μ=5 on the real geometry); the shipped config runs on them with tiny sizes given as ``--set`` overrides, through
the real console scripts, from linking the events to the evaluation of event 1000.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trkx_tf.trackml.simulate.events import simulate_events

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

STAGES = ["events", "module_map", "build", "train_filter", "build_filtered", "train_gnn", "thresholds", "infer_test",
          "eval_test"]
#: the challenge's folders and held-out events; the sizes of a test
TINY = [
    "pipeline.events.dirs=[train_1, train_2]",
    "pipeline.validation={name: val, dir: train_1, ids: [1001]}",
    "pipeline.test=[{name: test, dir: train_1, ids: [1000]}]",
    "pipeline.launcher=one",
    "pipeline.np=1",
    "pipeline.set={build: [graph.sectors.overlap=0.0], train_filter: [train.epochs=1]}",
    "pipeline.thresholds={filter_grid: [0.05, 0.2], gnn_grid: [0.5], labelling: [cc]}",
    "data.val_fraction=0.25",
    "model.filter={hidden: 8, layers: 2, edge_features: true}",
    "model.gnn={hidden: 8, layers: 2, steps: 2}",
    "train={epochs: 1, max_steps_per_epoch: 2, mixed_precision: none, warmup_epochs: 0.0}",
    "graph.max_buckets=1",
    "graph.workers=1",
    "backend.threads=1",
    "infer.threads=1",
]


def pipeline(root: Path, *args) -> str:
    """``trkx-pipeline run --config configs/trackml_full.yaml --set …TINY ARGS`` in ``root``; its stdout."""
    config = Path(__file__).resolve().parents[2] / "configs" / "trackml_full.yaml"
    sets = [a for s in TINY for a in ("--set", s)]
    argv = [str(Path(sys.executable).parent / "trkx-pipeline"), "run", "--config", str(config), *sets, *args]
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


def stage_lines(out: str) -> dict:
    first = {}
    for line in out.splitlines():
        name, _, rest = line.partition(": ")
        if name in STAGES and name not in first:
            first[name] = rest
    return first


@pytest.fixture(scope="module")
def root(tmp_path_factory, shared_trackml) -> Path:
    root = tmp_path_factory.mktemp("trackml_full")
    detector = shared_trackml / "detectors.csv.gz"
    simulate_events(root / "train_1", detector, 5, pileup=5, seed=3, workers=1, first_event=1000, progress=False)
    simulate_events(root / "train_2", detector, 2, pileup=5, seed=3, workers=1, first_event=21000, progress=False)
    return root


def test_trackml_full_pipeline_on_challenge_folders(root):
    lines = stage_lines(pipeline(root, "--no-progress"))
    assert list(lines) == STAGES and all(v.startswith("running (") for v in lines.values()), lines
    linked = root / "data" / "trackml_full" / "events"
    names = sorted(os.listdir(linked))
    assert sorted({n.split("-")[0] for n in names}) == [f"event{e:09d}" for e in (1002, 1003, 1004, 21000, 21001)]
    assert len(names) == 20 and all((linked / n).is_symlink() for n in names)  # hits, cells, particles, truth
    manifest = json.loads((root / "data/trackml_full/shards/manifest.json").read_text())
    assert manifest["splits"] == {"train": [1002, 1003, 1004, 21000], "val": [21001]}
    assert "cell_count" in manifest["feature_names"]  # the cells files are used
    run = root / "runs" / "trackml_full"
    assert json.loads((run / "thresholds/thresholds.json").read_text())["events"] == [1001]
    metrics = json.loads((run / "eval/test/metrics.json").read_text())
    assert metrics["events"] == [1000] and 0.0 <= metrics["tracks"]["pt>0.5"]["technical_efficiency"] <= 1.0
    rec = json.loads((run / "pipeline.json").read_text())["stages"]
    assert all(rec[s]["status"] == "done" for s in STAGES)
    assert rec["events"]["command"]["shell"] == ("trkx-pipeline link-events --input train_1 train_2 --out "
                                                 "data/trackml_full/events --exclude 1000 1001")


def test_rerun_skips_every_stage_and_a_new_event_reruns_everything(root, shared_trackml):
    lines = stage_lines(pipeline(root, "--no-progress"))
    assert lines == {name: "skipped (up to date)" for name in STAGES}
    simulate_events(root / "train_2", shared_trackml / "detectors.csv.gz", 1, pileup=5, seed=3, workers=1,
                    first_event=21002, progress=False)
    plan = pipeline(root, "--dry-run").splitlines()
    table = {line.split()[0]: line.split(None, 2)[1:] for line in plan[1:len(STAGES) + 1]}
    assert table["events"] == ["run", "input changed: train_2"]
    assert all(table[s] == ["run", f"upstream {u} reruns"] for s, u in [("module_map", "events"),
                                                                         ("train_filter", "build")])
