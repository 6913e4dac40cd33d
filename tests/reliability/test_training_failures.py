"""No silent training on nothing (issue 19 item 2): a non-finite loss (training or validation), or an epoch whose
training or validation edges all weigh 0 (shards built from events without labels), stops training with one clear
line naming the step or epoch, writes no checkpoint and no metrics record, keeps the last good checkpoint, and
``trkx-train`` exits 3.
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from rel_tools import listing, one_error_line, run_cli
from trkx_tf.errors import TrainingError
from trkx_tf.graphs import synthetic
from trkx_tf.models.interaction import InteractionNetwork
from trkx_tf.rundir import RunDir
from trkx_tf.train.loop import InMemorySource, fit
from trkx_tf.train.optim import Adam
from trkx_tf.train.tasks import EdgeTask

BUCKET = (140, 420)


def batches(nan_nodes=False, zero_weights=False):
    out = []
    for seed in range(3):
        b = synthetic.pad_batch(synthetic.toy_tracking_graph(12, n_layers=5, seed=seed, phi_window=0.25), *BUCKET)
        if nan_nodes:
            b["nodes"] = b["nodes"].copy()
            b["nodes"][2, 0] = np.nan
        if zero_weights:
            b["edge_weights"] = np.zeros_like(b["edge_weights"])
        out.append(b)
    return out


def run(run_dir, source, epochs, val_source=None):
    tf.random.set_seed(0)
    return fit(InteractionNetwork(hidden=8, layers=2, steps=1), EdgeTask(), Adam(1e-3), source, epochs=epochs,
               run_dir=RunDir(run_dir), val_source=val_source)


def test_non_finite_loss_stops_before_saving_and_keeps_the_last_checkpoint(tmp_path):
    good = run(tmp_path, InMemorySource(batches(), shuffle=False), epochs=1)
    assert good.epoch == 1
    ckpts = tmp_path / "checkpoints"
    before, metrics = listing(ckpts), (tmp_path / "metrics.jsonl").read_text()
    kept = tf.train.latest_checkpoint(str(ckpts))
    with pytest.raises(TrainingError) as info:  # resumes from epoch 1, whose first step sees a NaN feature
        run(tmp_path, InMemorySource(batches(nan_nodes=True), shuffle=False), epochs=2)
    msg = str(info.value)
    assert "step 4 (epoch 1, batch 0): the loss is nan" in msg and f"the last checkpoint {kept} is kept" in msg, msg
    assert info.value.exit_status == 3
    assert listing(ckpts) == before and (tmp_path / "metrics.jsonl").read_text() == metrics


def test_epoch_with_zero_weight_stops_without_a_checkpoint(tmp_path):
    with pytest.raises(TrainingError) as info:
        run(tmp_path, InMemorySource(batches(zero_weights=True), shuffle=False), epochs=2)
    msg = str(info.value)
    assert "epoch 0: no training edge has a non-zero weight" in msg and "no checkpoint written" in msg, msg
    assert not list((tmp_path / "checkpoints").glob("*")) and not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("nan_nodes, zero_weights, expected", [
    (False, True, "epoch 0: no validation edge has a non-zero weight (the validation shards carry no labels)"),
    (True, False, "epoch 0: the validation loss is nan"),
])
def test_a_validation_loss_of_nothing_or_nan_stops_without_a_checkpoint(tmp_path, nan_nodes, zero_weights, expected):
    """Validation graphs without labels (val_loss 0/0) or with a non-finite feature: early stopping and model choice
    would read nan; the first epoch stops instead, before its checkpoint and its metrics record."""
    val = InMemorySource(batches(nan_nodes=nan_nodes, zero_weights=zero_weights), shuffle=False)
    with pytest.raises(TrainingError) as info:
        run(tmp_path, InMemorySource(batches(), shuffle=False), epochs=2, val_source=val)
    msg = str(info.value)
    assert expected in msg and "no checkpoint written" in msg and info.value.exit_status == 3, msg
    assert not list((tmp_path / "checkpoints").glob("*")) and not (tmp_path / "metrics.jsonl").exists()


def test_labelled_validation_still_trains(tmp_path):
    result = run(tmp_path, InMemorySource(batches(), shuffle=False), epochs=1,
                 val_source=InMemorySource(batches(), shuffle=False))
    assert result.epoch == 1 and np.isfinite(result.history[-1]["val_loss"])
    assert "val_weight_sum" not in result.history[-1]


def _rewritten(source, folder, change):
    """The shards of ``source`` copied to ``folder`` with every graph passed through ``change`` (checksums and
    manifest rewritten, so only the content is wrong)."""
    from trkx_tf.graphs.shard_writer import write_shard
    from trkx_tf.graphs.shards import Shard

    shutil.copytree(source, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["shards"]:
        path = folder / entry["file"]
        with Shard(path) as shard:
            graphs = [change(shard.unpadded(i)) for i in range(shard.n_graphs)]
        path.unlink()
        info = write_shard(path, graphs, entry["node_budget"], entry["edge_budget"], split=entry["split"],
                           bucket=entry["bucket"], feature_names=manifest["feature_names"],
                           builder=manifest.get("builder", ""), compression=manifest.get("compression", "lzf"))
        entry["checksum"] = info.checksum
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


@pytest.fixture(scope="module")
def unlabelled_shards(one_bucket_shards, tmp_path_factory):
    """The one-bucket shards rewritten with every edge weight 0: what trkx-build made from events without truth
    before it refused them (the issue's case); checksums and manifest valid."""
    return _rewritten(one_bucket_shards, tmp_path_factory.mktemp("unlabelled") / "shards",
                      lambda g: dataclasses.replace(g, edge_weights=np.zeros_like(g.edge_weights)))


def test_trkx_train_on_unlabelled_shards_exits_3(unlabelled_shards, train_config, tmp_path):
    runs = tmp_path / "runs"
    proc = run_cli("trkx-train", "--config", train_config, "--set", f"data.shards_dir={unlabelled_shards}",
                   "--set", f"run.out_dir={runs}", "--set", "run.name=r", "--set", "train.epochs=2")
    msg = one_error_line(proc, "trkx-train", status=3)
    assert "epoch 0: no training edge has a non-zero weight" in msg and "trkx-build" in msg, msg
    assert not list((runs / "r" / "checkpoints").glob("*")) and not (runs / "r" / "metrics.jsonl").exists()


def test_trkx_train_on_a_nan_feature_exits_3_naming_the_step(one_bucket_shards, train_config, tmp_path):
    def nan_node(g):
        nodes = g.nodes.copy()
        nodes[:, 0] = np.nan  # every node: the first step sees it whatever graph it draws
        return dataclasses.replace(g, nodes=nodes)

    shards = _rewritten(one_bucket_shards, tmp_path / "shards", nan_node)
    runs = tmp_path / "runs"
    proc = run_cli("trkx-train", "--config", train_config, "--set", f"data.shards_dir={shards}",
                   "--set", f"run.out_dir={runs}", "--set", "run.name=r", "--set", "train.epochs=2")
    msg = one_error_line(proc, "trkx-train", status=3)
    assert "step 1 (epoch 0, batch 0): the loss is nan" in msg and "no checkpoint written" in msg, msg
    assert not list((runs / "r" / "checkpoints").glob("*")) and not (runs / "r" / "metrics.jsonl").exists()


def test_disk_full_during_a_checkpoint_save(tmp_path, monkeypatch):
    """The save itself hits ENOSPC (simulated: TensorFlow's error after its temporary folder was made; the real
    full disk is in test_faults_round2.py): an OSError(ENOSPC) naming the checkpoint, the temporary folder gone,
    the state file still naming the previous checkpoint."""
    import errno

    from trkx_tf.train.backend import SingleBackend
    from trkx_tf.train.checkpoints import TrainingCheckpoint

    ckpt = TrainingCheckpoint({"v": tf.Variable(tf.ones([4]))}, tmp_path, keep=3, backend=SingleBackend())
    ckpt.save(1)
    state = (tmp_path / "checkpoint").read_text()

    def full(checkpoint_number):
        (tmp_path / f"ckpt-{checkpoint_number}_temp").mkdir()
        (tmp_path / f"ckpt-{checkpoint_number}_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt: No space left on device")

    monkeypatch.setattr(ckpt.manager, "save", full)
    with pytest.raises(OSError) as info:
        ckpt.save(2)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "ckpt-2")
    assert (tmp_path / "checkpoint").read_text() == state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
