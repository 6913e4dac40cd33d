"""Resolving checkpoints: a folder given as a relative or an absolute path names the same latest prefix."""

import os

import pytest
import tensorflow as tf

from trkx_tf.errors import CheckpointError
from trkx_tf.train.checkpoints import resolve_checkpoint


def test_a_relative_and_an_absolute_folder_resolve_to_the_latest_prefix(tmp_path, monkeypatch):
    folder = tmp_path / "run" / "checkpoints"
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), str(folder), max_to_keep=2)
    manager.save(checkpoint_number=3)
    latest = manager.save(checkpoint_number=7)
    monkeypatch.chdir(tmp_path)
    relative = resolve_checkpoint(os.path.join("run", "checkpoints"))
    assert relative == os.path.join("run", "checkpoints", "ckpt-7")
    assert os.path.abspath(relative) == os.path.abspath(latest) == os.path.abspath(resolve_checkpoint(str(folder)))
    os.remove(latest + ".index")
    with pytest.raises(CheckpointError, match=r"ckpt-7\.index: missing"):
        resolve_checkpoint("run/checkpoints")
