"""Checkpoint choice by an epoch metric (trkx_tf/train/selection.py) on a run folder with kept checkpoints."""

import json

import pytest

from trkx_tf.errors import CheckpointError, ConfigError
from trkx_tf.train.selection import best_checkpoint


def make_run(tmp_path, val_loss, kept):
    (tmp_path / "checkpoints").mkdir()
    lines = [{"kind": "epoch", "epoch": i, "step": 10 * (i + 1), "val_loss": v, "val_f1": 1 - v}
             for i, v in enumerate(val_loss)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    for step in kept:
        (tmp_path / "checkpoints" / f"ckpt-{step}.index").write_text("")
    return tmp_path


def test_best_kept_checkpoint(tmp_path):
    run = make_run(tmp_path, [0.5, 0.2, 0.4, 0.3, 0.35], kept=[30, 40, 50])  # epoch 1 (step 20) is not kept
    prefix, rec = best_checkpoint(run)
    assert prefix == str(run / "checkpoints" / "ckpt-40") and rec["epoch"] == 3
    assert best_checkpoint(run, "val_f1")[1]["epoch"] == 3
    assert best_checkpoint(run, "val_loss", higher_is_better=True)[1]["epoch"] == 2
    with pytest.raises(ConfigError, match="val_purity"):
        best_checkpoint(run, "val_purity")


def test_no_usable_checkpoint(tmp_path):
    run = make_run(tmp_path, [0.5, float("nan")], kept=[20])
    with pytest.raises(CheckpointError, match="no kept checkpoint"):
        best_checkpoint(run)
    with pytest.raises(CheckpointError, match="cannot read"):
        best_checkpoint(tmp_path / "absent")
