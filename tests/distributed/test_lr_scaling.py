"""The learning rate applied on real ranks is the stated one: ``train.lr · f(replicas) · min(1, step / W)``.

``f`` is ``replicas`` (``linear``), ``sqrt(replicas)`` (``sqrt``) or 1 (``none``) and ``W = round(warmup_epochs ·
steps_per_epoch)`` (:func:`trkx_tf.train.optim.scaled_lr`, :class:`~trkx_tf.train.optim.WarmupSchedule`). The real
``trkx-train`` runs on 2 Horovod ranks (Gloo, MPI) and on one process with 2 tf.distribute replicas; the rate
that each update used is read back from TensorBoard (``step/learning_rate``, every step) and from
``metrics.jsonl`` (the next update's rate at the end of every epoch). The 2-replica run is then resumed from its
checkpoint for one more epoch.
"""

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

LR = 1e-3
WARMUP_EPOCHS = 1.5
EPOCHS = 3


def _stated_lr(step, replicas, rule, warmup_steps):
    factor = {"linear": replicas, "sqrt": math.sqrt(replicas), "none": 1.0}[rule]
    return LR * factor * min(1.0, step / warmup_steps)


def _train(venv_bin, shards, out, launch, rule, epochs=EPOCHS):
    sets = [f"data.shards_dir={shards}", f"run.out_dir={out}", "run.name=lr", "train.model=filter",
            "model.filter.hidden=8", "model.filter.layers=1", f"train.epochs={epochs}", f"train.lr={LR}",
            f"train.lr_scaling={rule}", f"train.warmup_epochs={WARMUP_EPOCHS}", "train.log_every=1",
            "backend.threads=1"]
    if launch == "mirrored":
        sets += ["backend.name=tfdist", "backend.local_replicas=2"]
        cmd = [str(venv_bin / "trkx-train")]
    else:
        cmd = [str(venv_bin / "horovodrun"), "-np", "2", "-H", "localhost:2", f"--{launch}",
               str(venv_bin / "trkx-train")]
    config = Path(out) / "lr.yaml"
    config.write_text("run: {name: lr}\n")
    cmd += ["--config", str(config)] + [arg for s in sets for arg in ("--set", s)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return Path(out) / "lr"


@pytest.mark.parametrize("launch, rule", [("gloo", "linear"), ("mpi", "sqrt"), ("mirrored", "linear")])
def test_applied_learning_rate_follows_the_stated_formula(launch, rule, tiny_shards, venv_bin, tmp_path):
    run = _train(venv_bin, tiny_shards, tmp_path, launch, rule)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == EPOCHS
    assert records[0]["replicas"] == 2 and records[0]["ranks"] == (1 if launch == "mirrored" else 2)
    steps_per_epoch = records[0]["steps"]
    warmup_steps = round(WARMUP_EPOCHS * steps_per_epoch)
    assert warmup_steps >= 2  # the warm-up spans several updates, so the ramp is really checked

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    applied = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("step/learning_rate")}
    total = EPOCHS * steps_per_epoch
    assert sorted(applied) == list(range(1, total + 1))  # one value per update, written by rank 0 only
    stated = [_stated_lr(s, 2, rule, warmup_steps) for s in range(1, total + 1)]
    np.testing.assert_allclose([applied[s] for s in range(1, total + 1)], stated, rtol=1e-6)
    # ramp then plateau: the stated formula is not trivially flat here
    assert stated[0] < stated[warmup_steps - 1] == stated[-1]

    # metrics.jsonl: at the end of epoch e, the rate of the next update
    for r in records:
        assert r["step"] == (r["epoch"] + 1) * steps_per_epoch
        assert r["learning_rate"] == pytest.approx(_stated_lr(r["step"] + 1, 2, rule, warmup_steps), rel=1e-6)

    if launch == "mirrored":  # the replicas' checkpoint resumes: one more epoch continues the step count
        _train(venv_bin, tiny_shards, tmp_path, launch, rule, epochs=EPOCHS + 1)
        more = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in more] == list(range(EPOCHS + 1))
        assert more[-1]["step"] == (EPOCHS + 1) * steps_per_epoch and np.isfinite(more[-1]["loss"])
