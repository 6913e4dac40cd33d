"""trkx-pipeline end to end on a tiny config: the real console scripts as subprocesses, real files.

The tests share one pipeline folder (module scope) and run in file order: the first builds everything; later
ones change one thing each and check what reruns. Each starts from whatever the one before left, which is
enough for what it checks.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

STAGES = ["simulate", "simulate_sim", "module_map", "build", "train_filter", "build_filtered", "train_gnn",
          "thresholds", "infer_sim", "eval_sim", "release"]
TINY = """
run: {{out_dir: runs, name: tiny, seed: 0}}
data: {{detector: {detector}, events_dir: data/events, shards_dir: data/shards, val_fraction: 0.25}}
simulate: {{events: 4, pileup: 5, seed: 3, cells: false, workers: 1}}
graph: {{use_cells: false, max_buckets: 1, workers: 1}}
model:
  filter: {{hidden: 16, layers: 2, edge_features: true}}
  gnn: {{hidden: 16, layers: 2, steps: 2, edge_features: true}}
train: {{epochs: 2, lr: 2.0e-3, warmup_epochs: 0.0}}
backend: {{threads: 1}}
infer: {{threads: 1}}
pipeline:
  validation: {{name: val, dir: data/events, ids: [3]}}
  thresholds: {{filter_grid: [0.01, 0.05, 0.2], gnn_grid: [0.3, 0.5], labelling: [cc, walk]}}
  test: [{{name: sim, dir: data/test, simulate: 1, first_event: 100}}]
  release: {{name: tiny, out: models, data: 4 simulated mu=5 events}}
"""


def _cmd(*args):
    return [str(Path(sys.executable).parent / "trkx-pipeline"), *map(str, args)]


def pipeline(root: Path, *args, check=True) -> subprocess.CompletedProcess:
    """``trkx-pipeline ARGS`` in ``root`` (one line per stage, no bar)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.run(_cmd(*args), cwd=root, capture_output=True, text=True, env=env, timeout=1200)
    if check:
        assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def run(root: Path, *sets, stdout=None) -> dict:
    """Runs the pipeline; returns ``stage -> the line it printed`` (``skipped (…)`` or ``running (…)``); appends
    the whole output to the list ``stdout`` when given."""
    out = pipeline(root, "run", "--config", "tiny.yaml", "--no-progress", *sets).stdout
    if stdout is not None:
        stdout.append(out)
    first = {}
    for line in out.splitlines():
        name, _, rest = line.partition(": ")
        if name in STAGES and name not in first:
            first[name] = rest
    return first


def records(root: Path) -> dict:
    return json.loads((root / "runs" / "tiny" / "pipeline.json").read_text())["stages"]


@pytest.fixture(scope="module")
def root(tmp_path_factory, shared_trackml) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    (root / "tiny.yaml").write_text(TINY.format(detector=shared_trackml / "detectors.csv.gz"))
    return root


GNN3 = "pipeline.set={train_gnn: [train.epochs=3]}"


def test_end_to_end(root):
    out = []
    lines = run(root, stdout=out)
    assert list(lines) == STAGES
    assert all(line.startswith("running (") for line in lines.values()), lines
    rec = records(root)
    for name in STAGES:
        r = rec[name]
        assert r["status"] == "done" and r["exit"] == 0 and r["wall_s"] > 0, (name, r)
        assert r["outputs"] and all(len(o["sha256"]) == 64 and o["files"] > 0 for o in r["outputs"].values())
        assert r["command"]["shell"].split()[0] in ("trkx-simulate", "trkx-pipeline", "trkx-build", "trkx-train",
                                                   "trkx-infer", "trkx-eval", "trkx-release")
    chosen = (root / "runs/tiny/thresholds/thresholds.yaml").read_text()
    assert {"infer.filter_threshold", "infer.gnn_threshold", "infer.labelling"} <= {
        line.split(":")[0] for line in chosen.splitlines() if not line.startswith("#")}
    table = json.loads((root / "runs/tiny/thresholds/thresholds.json").read_text())
    assert table["events"] == [3] and len(table["filter"]["table"]) == 3 and len(table["labelling"]["table"]) == 4
    infer_argv = rec["infer_sim"]["command"]["argv"]
    assert f"infer.labelling=\"{table['chosen']['infer.labelling']}\"" in infer_argv
    metrics = json.loads((root / "runs/tiny/eval/sim/metrics.json").read_text())
    assert metrics["events"] == [100] and 0.0 <= metrics["tracks"]["pt>0.5"]["technical_efficiency"] <= 1.0
    eff = 100 * metrics["tracks"]["pt>0.5"]["technical_efficiency"]
    assert f"sim: technical efficiency (pt>0.5) {eff:.1f} %, purity" in out[0]  # the summary after the stages
    assert (root / "runs/tiny-gnn/checkpoints/checkpoint").exists()
    card = json.loads((root / "models/tiny/release.json").read_text())  # the release stage: chosen settings, metrics
    assert card["name"] == "tiny" and set(card["models"]) == {"filter", "gnn"}
    assert card["inference"]["gnn_threshold"] == table["chosen"]["infer.gnn_threshold"], card["inference"]
    assert card["metrics"]["sim"]["events"] == [100]
    assert any(c.startswith("trkx-train ") and "run.name=tiny-gnn" in c for c in card["training"]["commands"])
    stage_seconds = card["training"]["stage_seconds"]  # each stage's wall time, as pipeline.json recorded it
    assert stage_seconds["train_gnn"] == records(root)["train_gnn"]["wall_s"] > 0 and "release" not in stage_seconds


def test_second_run_skips_every_stage(root):
    before = records(root)
    lines = run(root)
    assert lines == {name: "skipped (up to date)" for name in STAGES}
    assert records(root) == before


def test_dry_run_says_what_would_run_and_why(root):
    out = pipeline(root, "run", "--config", "tiny.yaml", "--set", GNN3, "--dry-run").stdout
    table = {line.split()[0]: line.split(None, 2)[1:] for line in out.splitlines()[1:len(STAGES) + 1]}
    assert table["simulate"] == ["skip", "up to date"]
    assert table["train_filter"] == ["skip", "up to date"]
    assert table["train_gnn"] == ["run", "config changed: train.epochs 2 -> 3"]
    assert table["thresholds"] == ["run", "upstream train_gnn reruns"]
    assert table["eval_sim"] == ["run", "upstream infer_sim reruns"]
    assert "  train_gnn: trkx-train --config runs/tiny/config.yaml --set train.model=gnn" in out
    assert "--set @runs/tiny/thresholds/thresholds.yaml" in out  # infer's thresholds come from that stage
    assert records(root)["train_gnn"]["config"]["train"]["epochs"] == 2  # nothing ran


def test_changed_training_key_reruns_that_stage_and_downstream(root):
    lines = run(root, "--set", GNN3)
    ran = [name for name, line in lines.items() if line.startswith("running")]
    assert ran == ["train_gnn", "thresholds", "infer_sim", "eval_sim", "release"], lines
    epochs = [json.loads(x)["epoch"] for x in (root / "runs/tiny-gnn/metrics.jsonl").read_text().splitlines()
              if '"epoch"' in x]
    assert epochs == [0, 1, 2]  # a fresh run: the old run folder was removed


def test_kill_mid_stage_then_rerun_resumes_training(root):
    sets = ("--set", "pipeline.set={train_gnn: [train.epochs=8]}", "--to", "train_gnn")  # downstream: tested above
    log = open(root / "killed.out", "w")
    proc = subprocess.Popen(_cmd("run", "--config", "tiny.yaml", "--no-progress", *sets), cwd=root, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    ckpt = root / "runs/tiny-gnn/checkpoints/checkpoint"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                running = records(root)["train_gnn"]["status"] == "running"
            except (OSError, ValueError, KeyError):
                running = False
            if running and ckpt.exists():  # the new run's first epoch is checkpointed
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the pipeline ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and the trkx-train it started
    finally:
        proc.wait(timeout=60)
        log.close()
    assert records(root)["train_gnn"]["status"] == "running"
    out = pipeline(root, "run", "--config", "tiny.yaml", *sets, "--dry-run").stdout
    assert "train_gnn       resume  running run: resumes from its checkpoints" in out
    assert "thresholds      off     not selected" in out
    lines = run(root, *sets)
    assert lines["train_filter"] == "skipped (up to date)"
    assert lines["train_gnn"] == "resuming (running run: resumes from its checkpoints)"
    assert "thresholds" not in lines
    train_log = (root / "runs/tiny/logs/train_gnn.log").read_text()
    assert "resumed from" in train_log.split("=== ")[-1]  # the last attempt restored the checkpoint
    epochs = [json.loads(x)["epoch"] for x in (root / "runs/tiny-gnn/metrics.jsonl").read_text().splitlines()
              if '"epoch"' in x]
    assert epochs[-1] == 7 and sorted(set(epochs)) == list(range(8))
    assert records(root)["train_gnn"]["status"] == "done"
