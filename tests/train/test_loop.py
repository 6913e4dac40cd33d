"""The loop: exact resume, TensorBoard scalars, metrics.jsonl, the config entry point, early stopping, hooks."""

import json

import numpy as np
import pytest
import tensorflow as tf
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trkx_tf.config import load_config
from trkx_tf.errors import CheckpointError, ConfigError
from trkx_tf.graphs.candidates import radius_graph
from trkx_tf.models.embedding import embed_hits
from trkx_tf.models.interaction import InteractionNetwork
from trkx_tf.rundir import RunDir
from trkx_tf.train.backend import SingleBackend
from trkx_tf.train.checkpoints import load_embedding_model
from trkx_tf.train.loop import InMemorySource, fit, train
from trkx_tf.train.optim import Adam, WarmupSchedule
from trkx_tf.train.tasks import EdgeTask


def new_run(run_dir, source, val, **kw):
    tf.random.set_seed(0)
    model = InteractionNetwork(hidden=8, layers=2, steps=2)
    return fit(model, EdgeTask(), Adam(WarmupSchedule(3e-3, 2)), source, val_source=val, epochs=2,
               run_dir=RunDir(run_dir), **kw)


@pytest.mark.slow
def test_resume_continues_exactly_where_training_stopped(tmp_path, toy_source, val_source):
    full = new_run(tmp_path / "a", toy_source, val_source)
    assert len(full.step_losses) == 6 and full.epoch == 2
    part = new_run(tmp_path / "b", toy_source, val_source, stop_after_steps=4)  # stops inside epoch 1
    assert part.interrupted and part.epoch == 1 and part.steps == 4
    rest = new_run(tmp_path / "b", toy_source, val_source)  # fresh objects, restored from the checkpoint
    assert rest.restored_from is not None and rest.steps == 6
    np.testing.assert_allclose(part.step_losses + rest.step_losses, full.step_losses, rtol=1e-5)
    np.testing.assert_allclose(rest.history[-1]["val_loss"], full.history[-1]["val_loss"], rtol=1e-5)
    # the record of the resumed epoch says so
    records = RunDir(tmp_path / "b").read_metrics()
    assert [r["epoch"] for r in records] == [0, 1] and records[1]["resumed_at_batch"] == 1


def test_resume_after_the_last_step_of_an_epoch(tmp_path, toy_source, val_source):
    """A preemption checkpoint written after an epoch's last step (position = steps of the epoch): the resumed run
    finishes that epoch with no step (its training loss is unknown, not a failure) and trains the next."""
    part = new_run(tmp_path, toy_source, val_source, stop_after_steps=3)  # the 3 steps of epoch 0
    assert part.interrupted and part.epoch == 0 and part.steps == 3
    rest = new_run(tmp_path, toy_source, val_source)
    assert rest.restored_from is not None and rest.steps == 6
    records = RunDir(tmp_path).read_metrics()
    assert [r["epoch"] for r in records] == [0, 1] and records[0]["steps"] == 0 and records[0]["resumed_at_batch"] == 3
    assert np.isnan(records[0]["loss"]) and np.isfinite(records[0]["val_loss"]) and np.isfinite(records[1]["loss"])


def test_tensorboard_and_metrics_files(tmp_path, toy_source, val_source):
    result = new_run(tmp_path, toy_source, val_source, hparams={"hidden": 8, "model": "gnn"}, log_every=1)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == result.history and len(records) == 2
    for key in ("loss", "efficiency", "purity", "val_loss", "val_efficiency", "graphs_per_s", "edges_per_s",
                "imbalance", "learning_rate", "val_purity_at_efficiency", "val_threshold_at_efficiency"):
        assert np.isfinite(records[-1][key]), key
    assert 0.0 <= records[-1]["val_efficiency_at_purity"] <= 1.0  # 0 where no threshold reaches the purity
    assert "efficiency_at_purity" not in records[-1]  # working points are validation figures only
    assert records[-1]["graphs"] == 3
    assert records[-1]["step_time_s_max"] == pytest.approx(records[-1]["step_time_s"])  # one rank: max == mean
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    for tag in ("epoch/loss", "epoch/efficiency", "epoch/purity", "epoch/learning_rate", "epoch/graphs_per_s",
                "epoch/edges_per_s", "epoch/val_loss", "step/loss"):
        assert tag in tags, tag
    losses = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("epoch/loss")]
    np.testing.assert_allclose(losses, [r["loss"] for r in records], rtol=1e-6)
    assert len(acc.Tensors("step/loss")) == 6
    assert any("hparams" in t for t in tags)


def test_early_stopping(tmp_path, toy_source):
    tf.random.set_seed(0)
    # a threshold no edge reaches: efficiency stays 0 and never improves after the first epoch
    result = fit(InteractionNetwork(hidden=8, layers=2, steps=1), EdgeTask(threshold=0.999999), Adam(1e-5),
                 toy_source, epochs=6, early_stopping_patience=2, early_stopping_metric="efficiency")
    assert result.stopped_early and len(result.history) == 3
    with pytest.raises(ConfigError, match="validation"):
        fit(InteractionNetwork(hidden=8, steps=1), EdgeTask(), Adam(), toy_source, early_stopping_patience=1)


def test_backend_hooks_are_used(toy_source, val_source):
    class Recording(SingleBackend):
        def __init__(self):
            self.calls = []

        def broadcast(self, variables):
            self.calls.append(("broadcast", len(variables)))

        def agree_steps(self, n):
            self.calls.append(("agree_steps", n))
            return min(n, 2)  # another rank has only 2 batches

        def tape(self, tape):
            self.calls.append(("tape",))
            return tape

    backend = Recording()
    tf.random.set_seed(0)
    result = fit(InteractionNetwork(hidden=8, steps=1), EdgeTask(), Adam(), toy_source, val_source=val_source,
                 backend=backend, epochs=2)
    assert len(result.step_losses) == 4  # the agreed 2 steps per epoch, not 3
    names = [c[0] for c in backend.calls]
    assert names[0] == "broadcast" and names.count("broadcast") == 1 and backend.calls[0][1] > 10
    assert names.count("agree_steps") == 4 and names.count("tape") == 1  # traced once


@pytest.mark.slow
def test_train_from_config_for_each_model(tmp_path, toy_batches):
    source, val = InMemorySource(toy_batches[:2]), InMemorySource(toy_batches[2:])
    base = [f"run.out_dir={tmp_path}", "train.epochs=1", "model.gnn.hidden=8", "model.gnn.steps=2",
            "model.filter.hidden=8", "model.filter.layers=1", "model.embedding.hidden=8",
            "model.embedding.layers=1", "model.embedding.dim=3", "model.embedding.margin=0.5"]
    runs = {"gnn": ["model.gnn.all_steps_loss=true", "train.checkpoint_steps=true",
                    "train.mixed_precision=bf16", "model.gnn.aggregation=both"],
            "filter": [], "embedding": ["train.epochs=2"]}
    for kind, extra in runs.items():
        cfg = load_config(None, base + [f"run.name={kind}", f"train.model={kind}"] + extra)
        result = train(cfg, source, val)
        run = tmp_path / kind
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["model"] == kind
        assert len(RunDir(run).read_metrics()) == cfg.train.epochs == len(result.history)
        assert tf.train.latest_checkpoint(str(run / "checkpoints"))
        assert all(np.isfinite(result.step_losses))
    # the embedding run's checkpoint builds candidate edges
    model = load_embedding_model(tmp_path / "embedding" / "checkpoints", cfg)
    nodes = toy_batches[0]["nodes"][toy_batches[0]["node_mask"] > 0]
    senders, receivers = radius_graph(embed_hits(model, nodes), 0.5, 8)
    assert len(senders) > 0 and (senders < receivers).all()


def test_fine_tuning_starts_from_the_given_weights(tmp_path, toy_source):
    def weights(model):
        return {v.name: v.numpy() for v in model.trainable_variables}

    tf.random.set_seed(0)
    trained = InteractionNetwork(hidden=8, layers=2, steps=2)
    fit(trained, EdgeTask(), Adam(WarmupSchedule(3e-3, 2)), toy_source, epochs=2, run_dir=RunDir(tmp_path / "base"))
    init = str(tmp_path / "base" / "checkpoints")
    tf.random.set_seed(1)
    tuned = InteractionNetwork(hidden=8, layers=2, steps=2)
    # a learning rate of 1e-12: after one epoch the weights are still the ones it started from
    fit(tuned, EdgeTask(), Adam(WarmupSchedule(1e-12, 0)), toy_source, epochs=1, run_dir=RunDir(tmp_path / "ft"),
        init_checkpoint=init)
    want, got = weights(trained), weights(tuned)
    assert got.keys() == want.keys()
    for name in got:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
    # the run's own checkpoint wins over init_checkpoint when it resumes
    again = fit(tuned, EdgeTask(), Adam(WarmupSchedule(1e-12, 0)), toy_source, epochs=2,
                run_dir=RunDir(tmp_path / "ft"), init_checkpoint=init)
    assert again.restored_from is not None
    # weights of another shape: one clear error
    with pytest.raises(CheckpointError):
        fit(InteractionNetwork(hidden=4, layers=2, steps=2), EdgeTask(), Adam(WarmupSchedule(1e-3, 0)), toy_source,
            epochs=1, init_checkpoint=init)
