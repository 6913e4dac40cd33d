"""trkx-pipeline with real labelled events (data.real) end to end on toy events: the real events' masked-label
shards are built by their own stages (every candidate edge for the filter, the filter-kept edges for the GNN), both
trainings read them and validate on the real validation event, and a changed mixing fraction retrains without
rebuilding."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "graphs"))  # the toy events (tests/graphs/toy.py)

from tests.graphs.test_mixed import write_toy_sets  # noqa: E402

pytestmark = pytest.mark.slow

CONFIG = """
run: {out_dir: runs, name: mixed, seed: 0}
data:
  events_dir: sim
  shards_dir: shards/sim
  val_fraction: 0.25
  real: {events_dir: real, shards_dir: shards/real, train_events: 4, val_events: 1, fraction: 0.5}
graph: {graphs_per_shard: 2, max_buckets: 2, workers: 1, sectors: {phi: 2}, filter_threshold: 0.3}
model:
  filter: {hidden: 8, layers: 2}
  gnn: {hidden: 8, steps: 2}
train: {epochs: 2, warmup_epochs: 0.0}
backend: {threads: 1}
pipeline: {simulate: false}
"""
STAGES = ["module_map", "build", "build_real", "train_filter", "build_filtered", "build_real_filtered",
          "train_gnn"]


def pipeline(root: Path, *args) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "trkx-pipeline"), *args], cwd=root, capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_real_events_through_the_pipeline(tmp_path):
    write_toy_sets(tmp_path)
    (tmp_path / "mixed.yaml").write_text(CONFIG)
    out = pipeline(tmp_path, "run", "--config", "mixed.yaml", "--no-progress")
    ran = [line.split(":")[0] for line in out.splitlines() if line.endswith("(never run)")
           or "reruns)" in line]
    assert ran == STAGES, out
    records = json.loads((tmp_path / "runs/mixed/pipeline.json").read_text())["stages"]
    assert all(records[name]["status"] == "done" for name in STAGES)

    real, real_kept = manifest(tmp_path / "shards/real"), manifest(tmp_path / "shards/real-filtered")
    assert real["splits"] == real_kept["splits"] == {"train": [1001, 1002, 1003, 1004], "val": [1005]}
    assert real["filter"] is None  # every candidate edge, for the filter
    assert real_kept["filter"]["checkpoint"] == "runs/mixed-filter/checkpoints"  # the edges it keeps, for the GNN
    assert real_kept["filter"]["threshold"] == 0.3
    # both trainings read the real shards: the GNN the filter-kept ones, named by its stage's override
    assert "data.real.shards_dir=shards/real-filtered" in records["train_gnn"]["command"]["argv"]
    assert set(records["train_gnn"]["inputs"]) >= {"shards/sim-filtered", "shards/real-filtered"}
    assert set(records["train_filter"]["inputs"]) >= {"shards/sim", "shards/real"}
    for name in ("mixed-filter", "mixed-gnn"):
        epochs = [json.loads(x) for x in (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()
                  if '"val_loss"' in x]
        assert len(epochs) == 2 and all(e["val_loss"] == e["val_loss"] for e in epochs)  # validated, not NaN
    config = yaml.safe_load((tmp_path / "runs/mixed-gnn/config.yaml").read_text())
    assert config["data"]["real"]["shards_dir"] == "shards/real-filtered"

    # a new mixing fraction retrains both models; the real shards are not rebuilt
    plan = pipeline(tmp_path, "run", "--config", "mixed.yaml", "--set", "data.real.fraction=0.25", "--dry-run")
    action = {line.split()[0]: line.split()[1] for line in plan.splitlines()[1:len(STAGES) + 1]}
    assert action["build_real"] == action["build"] == "skip"
    assert action["train_filter"] == action["train_gnn"] == "run"
    assert "config changed: data.real.fraction 0.5 -> 0.25" in plan
