"""configs/trackml_full.yaml and what it needs: training events linked from the challenge's train_* folders
(pipeline.events), the linked files hashed once, and SIGUSR1 stopping a run with exit 99 for a SLURM requeue.

The end-to-end run on simulated folders in the challenge's layout: test_trackml_full_e2e.py; under SLURM:
tests/slurm/test_pipeline_template.py.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.pipeline.hashing import PathSpec, hash_spec
from trkx_tf.pipeline.runner import Pipeline, PipelineStopped
from trkx_tf.pipeline.stages import Stage, pipeline_stages
from trkx_tf.pipeline.tasks import link_events

STAGES = ["events", "module_map", "build", "train_filter", "build_filtered", "train_gnn", "thresholds", "infer_test",
          "eval_test"]


def _events(folder: Path, ids, parts=("hits", "cells", "particles", "truth")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for e in ids:
        for part in parts:
            (folder / f"event{e:09d}-{part}.csv").write_text(f"{e},{part}\n")
    return folder


def test_shipped_config_links_the_challenge_folders_and_holds_out_its_validation_and_test_events(repo):
    cfg = load_config(repo / "configs" / "trackml_full.yaml")
    s = {x.name: x for x in pipeline_stages(cfg)}
    assert list(s) == STAGES  # no simulate stage: the training events exist
    argv = s["events"].argv
    assert argv[:3] == ("trkx-pipeline", "link-events", "--input")
    assert argv[3:8] == tuple(f"data/trackml/train_{i}" for i in range(1, 6))
    assert argv[argv.index("--out") + 1] == "data/trackml_full/events"
    held = [int(x) for x in argv[argv.index("--exclude") + 1:]]
    assert held == list(range(1000, 1020))  # the test events 1000-1009 and the validation events 1010-1019
    assert [p.path for p in s["events"].inputs] == [f"data/trackml/train_{i}" for i in range(1, 6)]
    assert s["module_map"].after == ("events",) and "events" in s["build"].after
    assert s["thresholds"].inputs[0].patterns == tuple(f"event{e:09d}-*" for e in range(1010, 1020))
    assert s["infer_test"].inputs[0].path == "data/trackml/train_1"
    assert cfg.graph.use_cells and cfg.pipeline.launcher == "srun"
    assert s["train_gnn"].argv[0] in ("srun", "mpirun") and "trkx-train" in s["train_gnn"].argv


def test_an_event_set_taking_a_whole_training_folder_is_refused(repo):
    cfg = load_config(repo / "configs" / "trackml_full.yaml",
                      ["pipeline.validation={name: val, dir: data/trackml/train_5}"])
    with pytest.raises(ConfigError, match="'val' takes every event of data/trackml/train_5, a pipeline.events folder"):
        pipeline_stages(cfg)


def test_the_events_stage_reruns_when_the_folders_or_exclusions_change(repo):
    base = {x.name: x for x in pipeline_stages(load_config(repo / "configs" / "trackml_full.yaml"))}["events"]
    cfg = load_config(repo / "configs" / "trackml_full.yaml", ["pipeline.events.exclude=[2000]",
                                                              "pipeline.events.first=100"])
    changed = {x.name: x for x in pipeline_stages(cfg)}["events"]
    assert changed.argv != base.argv
    assert changed.argv[changed.argv.index("--first") + 1] == "100"
    assert "2000" in changed.argv[changed.argv.index("--exclude"):]


def test_link_events_from_several_folders_less_the_excluded_ones(tmp_path):
    a = _events(tmp_path / "train_1", [1000, 1001, 1002])
    b = _events(tmp_path / "train_2", [21000, 21001], parts=("hits", "particles", "truth"))  # no cells here
    out = tmp_path / "linked"
    line = link_events([a, b], out, exclude=[1000, 21001])
    assert line.startswith("linked 11 files of 3 events 1001..21000 of 2 folders")
    names = sorted(os.listdir(out))
    assert [n.split("-")[0] for n in names[::4]] == ["event000001001", "event000001002", "event000021000"]
    assert all((out / n).is_symlink() for n in names)
    assert (out / "event000021000-truth.csv").read_text() == "21000,truth\n"
    link_events([a, b], out, first=2)  # replaces the folder
    assert sorted({n.split("-")[0] for n in os.listdir(out)}) == ["event000001000", "event000001001"]


def test_link_events_cli_refuses_a_duplicate_id_with_one_line_and_writes_nothing(tmp_path):
    a = _events(tmp_path / "train_1", [1000, 1001])
    b = _events(tmp_path / "train_2", [1001])
    out = tmp_path / "linked"
    exe = Path(sys.executable).parent / "trkx-pipeline"
    proc = subprocess.run([exe, "link-events", "--input", a, b, "--out", out], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"trkx-pipeline: error: event 1001 is in both {a} and {b}: event ids must be unique"]
    assert not out.exists() and not list(tmp_path.glob(".linked*"))
    with pytest.raises(DataError, match="0 events after 2 excluded"):
        link_events([a], out, exclude=[1000, 1001])


def test_a_linked_file_is_hashed_once_under_its_real_path(tmp_path):
    a = _events(tmp_path / "train_1", [1000])
    link_events([a], tmp_path / "linked")
    cache = {}
    original = hash_spec(PathSpec(str(a)), cache)
    assert len(cache) == 4
    linked = hash_spec(PathSpec(str(tmp_path / "linked")), cache)
    assert len(cache) == 4 and linked.sha256 == original.sha256  # same names, same contents, nothing read again
    assert set(cache) == {os.path.realpath(p) for p in a.iterdir()}


# a training stand-in: on SIGUSR1 it "checkpoints" and exits 99; started again with a checkpoint, it finishes
TRAINER = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1]); out.mkdir(exist_ok=True)
if (out / "ckpt").exists():
    (out / "model").write_text("resumed"); sys.exit(0)
def stop(*_):
    (out / "ckpt").write_text("1"); sys.exit(99)
signal.signal(signal.SIGUSR1, stop)
(out / "started").write_text("1")
time.sleep(60); sys.exit(1)
"""


def test_sigusr1_stops_the_run_with_exit_99_and_the_rerun_resumes_the_training(tmp_path):
    out = tmp_path / "train"
    stage = Stage("train", (sys.executable, "-c", TRAINER, str(out)), (), ("train.epochs",), (),
                  (PathSpec(str(out)),), (str(out),), resumable=True)
    pipe = Pipeline(load_config(None, [f"pipeline.dir={tmp_path / 'run'}"]), [stage])

    def signal_when_started():
        deadline = time.monotonic() + 60
        while not (out / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=signal_when_started, daemon=True).start()
    with pytest.raises(PipelineStopped, match=r"stage train stopped by SIGUSR1 \(exit 99\); run again: it resumes "
                                              r"from its checkpoint") as err:
        pipe.run(progress=False)
    assert err.value.exit_status == 99
    rec = pipe.records.stages["train"]
    assert rec["status"] == "interrupted" and rec["exit"] == 99 and (out / "ckpt").exists()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the run's handler is gone
    again = Pipeline(pipe.cfg, [stage])
    assert [(d.action, d.reason) for d in again.plan()] == [("resume", "interrupted run: resumes from its checkpoints")]
    again.run(progress=False)
    assert (out / "model").read_text() == "resumed" and again.records.stages["train"]["status"] == "done"
