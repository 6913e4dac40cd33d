"""Preemption: SIGUSR1 or SIGTERM mid-training checkpoints and exits 99; the rerun resumes and finishes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trkx_tf.train.session import EXIT_REQUEUE

pytestmark = [pytest.mark.slow]
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def _train_cmd(shards, out, epochs):
    return [str(Path(sys.executable).parent / "trkx-train"), "--config", str(CONFIG), "--set", f"data.shards_dir={shards}",
            "--set", f"run.out_dir={out}", "--set", "run.name=pre", "--set", "train.model=filter",
            "--set", "model.filter.hidden=8", "--set", f"train.epochs={epochs}", "--set", "train.graphs_per_step=1"]


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_checkpoints_exits_99_and_rerun_resumes(sig, tiny_shards, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    metrics = tmp_path / "pre" / "metrics.jsonl"
    proc = subprocess.Popen(_train_cmd(tiny_shards, tmp_path, 10_000), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (metrics.exists() and metrics.read_text().strip()) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
    assert metrics.exists(), "no epoch finished within 240 s"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_REQUEUE, err[-2000:]
    assert "checkpoint written" in err
    ckpts = list((tmp_path / "pre" / "checkpoints").glob("ckpt-*.index"))
    assert ckpts
    done = len(metrics.read_text().splitlines())

    # the rerun (as a requeued job would) resumes from the checkpoint and finishes the requested epochs
    rerun = subprocess.run(_train_cmd(tiny_shards, tmp_path, done + 1), env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resumed from" in rerun.stderr
    epochs = [line for line in metrics.read_text().splitlines() if line.strip()]
    assert len(epochs) == done + 1
