"""The attention GNN: the module docstring's equations, padding-blind, attention sums, training, registry,
checkpoints."""

import numpy as np
import pytest
import tensorflow as tf

from tests.models.conftest import as_tensors
from tests.models.test_interaction import assert_same, plain_mlp, randomize, values_and_grads
from tests.train.conftest import toy_batch
from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.models.attention import AttentionGNN, attention_aggregate
from trkx_tf.models.interaction import InteractionNetwork
from trkx_tf.models.registry import build_model
from trkx_tf.train.backend import SingleBackend
from trkx_tf.train.optim import Adam
from trkx_tf.train.steps import StepFunctions
from trkx_tf.train.tasks import EdgeTask


def literal_agnn(model, batch, all_steps=False):
    """The module docstring's equations, literally: concatenations, padding masked by multiplication."""
    x, s, r = batch["nodes"], batch["senders"], batch["receivers"]
    mask = batch["edge_mask"]
    n = tf.shape(x)[0]
    edges = [batch["edges"]] if model.edge_features else []

    def edge_logits(v):
        return plain_mlp(model.edge_net, [tf.gather(v, r), tf.gather(v, s)] + edges)[:, 0]

    v = plain_mlp(model.node_encoder, [x])
    out, atts = [], []
    logits = edge_logits(v)
    for _ in range(model.steps):
        a = tf.sigmoid(logits) * mask
        aggs = [tf.math.unsorted_segment_sum(a[:, None] * tf.gather(v, s), r, n)]
        if model.aggregation == "both":
            aggs.append(tf.math.unsorted_segment_sum(a[:, None] * tf.gather(v, r), s, n))
        v = v + plain_mlp(model.node_net, aggs + [v])
        logits = edge_logits(v)
        out.append(logits)
        atts.append(a)
    return (tf.stack(out) if all_steps else out[-1]), tf.stack(atts)


@pytest.mark.parametrize("aggregation,layers,layernorm", [("both", 3, True), ("receivers", 2, True),
                                                          ("both", 2, False)])
def test_equals_literal_equations(padded_variants, aggregation, layers, layernorm):
    batch = as_tensors(padded_variants[1])  # with padded nodes and edges
    model = AttentionGNN(hidden=8, layers=layers, steps=3, aggregation=aggregation, layernorm=layernorm)
    model(batch)
    randomize(model)
    assert_same(values_and_grads(model, model, batch),
                values_and_grads(lambda b: literal_agnn(model, b)[0], model, batch))
    real = np.asarray(batch["edge_mask"], bool)
    every, ref_att = model(batch, all_steps=True), literal_agnn(model, batch, True)
    np.testing.assert_allclose(every.numpy()[:, real], ref_att[0].numpy()[:, real], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(model.attention(batch).numpy(), ref_att[1].numpy(), rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("aggregation", ["receivers", "both"])
def test_padding_changes_no_output_and_no_gradient(padded_variants, aggregation):
    plain, with_nodes, no_nodes = (as_tensors(b) for b in padded_variants)
    e = int(plain["senders"].shape[0])
    model = AttentionGNN(hidden=8, layers=3, steps=3, aggregation=aggregation)
    model(plain)
    randomize(model)
    ref_logits, ref_grads = values_and_grads(model, model, plain)
    ref_att = model.attention(plain).numpy()
    for padded in (with_nodes, no_nodes):
        logits, grads = values_and_grads(model, model, padded)
        assert logits.shape[0] > e and np.isfinite(logits).all()
        assert_same((logits[:e], grads), (ref_logits, ref_grads), rtol=1e-4, atol=1e-6)
        att = model.attention(padded).numpy()
        np.testing.assert_allclose(att[:, :e], ref_att, rtol=1e-5, atol=1e-7)
        assert (att[:, e:] == 0).all()  # padded edges are masked out of the attention


def test_attention_aggregate_by_hand():
    """Three real nodes, one padding row; a padded edge pointing at real node 0 adds nothing."""
    v = tf.constant([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [100.0, 100.0]])  # row 3 = the padding row N
    senders = tf.constant([0, 1, 2, 2], tf.int32)
    receivers = tf.constant([1, 2, 1, 3], tf.int32)  # edge 3 is padding: its segment id is already N = 3
    att = tf.constant([0.5, 0.25, 1.0, 0.0])
    out = attention_aggregate(v, att, senders, receivers, tf.constant(3)).numpy()
    expected = np.array([[0.0, 0.0],                       # node 0 receives nothing
                         [0.5 * 1 + 1.0 * 3, 1.0 * 3],     # node 1 <- 0 (0.5), 2 (1.0)
                         [0.0, 0.25 * 2],                  # node 2 <- 1 (0.25)
                         [0.0, 0.0]])                      # padding row: attention 0
    np.testing.assert_allclose(out, expected)
    # unit attention: the plain neighbour sum
    ones = attention_aggregate(v, tf.ones([4]), senders, receivers, tf.constant(3)).numpy()
    np.testing.assert_allclose(ones[:3], [[0, 0], [4, 3], [0, 2]])


def test_shapes_attention_range_and_all_steps(padded_variants):
    batch = as_tensors(padded_variants[2])
    e = int(batch["senders"].shape[0])
    model = AttentionGNN(hidden=8, layers=2, steps=4)
    out, every, att = model(batch), model(batch, all_steps=True), model.attention(batch)
    assert out.shape == (e,) and out.dtype == tf.float32
    assert every.shape == (4, e) and att.shape == (4, e)
    np.testing.assert_allclose(every[-1].numpy(), out.numpy(), atol=1e-6)
    real = np.asarray(batch["edge_mask"], bool)
    assert (att.numpy()[:, real] > 0).all() and (att.numpy()[:, real] < 1).all() and (att.numpy()[:, ~real] == 0).all()
    # the attention of step t + 1 is the sigmoid of the logits after step t
    np.testing.assert_allclose(att.numpy()[1:, real], tf.sigmoid(every[:-1]).numpy()[:, real], atol=1e-6)


def test_options_compute_the_same_function(padded_variants):
    batch = as_tensors(padded_variants[1])
    base = AttentionGNN(hidden=8, layers=3, steps=3)
    base(batch)
    randomize(base)
    for kwargs in ({"recompute": True}, {"sort_edges": False}):
        other = AttentionGNN(hidden=8, layers=3, steps=3, **kwargs)
        other(batch)
        for a, b in zip(other.trainable_variables, base.trainable_variables):
            a.assign(b)
        assert_same(values_and_grads(other, other, batch), values_and_grads(base, base, batch), rtol=1e-5,
                    atol=1e-6)


def test_edge_features_and_bfloat16(two_graphs):
    rng = np.random.default_rng(0)
    batch = as_tensors({**two_graphs, "edges": rng.normal(size=(len(two_graphs["senders"]), 6)).astype(np.float32)})
    f32 = AttentionGNN(hidden=8, layers=2, steps=2, edge_features=True)
    b16 = AttentionGNN(hidden=8, layers=2, steps=2, edge_features=True, compute_dtype="bfloat16")
    f32(batch), b16(batch)
    randomize(f32)
    assert_same(values_and_grads(f32, f32, batch), values_and_grads(lambda b: literal_agnn(f32, b)[0], f32, batch))
    for a, b in zip(b16.trainable_variables, f32.trainable_variables):
        a.assign(b)
        assert a.dtype == tf.float32
    out16, grads16 = values_and_grads(b16, b16, batch)
    out32, _ = values_and_grads(f32, f32, batch)
    assert np.abs(out16 - out32).max() < 0.1 * max(1.0, np.abs(out32).max())
    assert all(np.isfinite(g).all() for g in grads16)
    del batch["edges"]
    with pytest.raises(DataError, match="edges"):
        f32(batch)


def test_training_steps_reduce_the_loss():
    tf.random.set_seed(0)
    batch = toy_batch(0)
    steps = StepFunctions(AttentionGNN(hidden=16, layers=2, steps=3), EdgeTask(), Adam(3e-3), SingleBackend())
    steps.build(batch)
    first = steps.train(batch)
    for _ in range(30):
        out = steps.train(batch)
    assert first["loss"] > 0.3
    assert out["loss"] < 0.6 * first["loss"]
    assert steps.trace_counts["train"] == 1


def test_registry_selects_the_kind():
    cfg = load_config(None)
    assert isinstance(build_model(cfg.model, "gnn"), InteractionNetwork)  # the default stays the IN
    cfg = load_config(None, ["model.gnn.kind=attention", "model.gnn.steps=5", "model.gnn.aggregation=both",
                             "model.gnn.edge_features=true"])
    model = build_model(cfg.model, "gnn", compute_dtype="bfloat16", recompute=True)
    assert isinstance(model, AttentionGNN)
    assert (model.hidden, model.layers, model.steps) == (64, 3, 5)  # the paper's [64, 64, 64]
    assert (model.aggregation, model.recompute, model.edge_features) == ("both", True, True)
    assert model.compute_dtype == tf.bfloat16
    with pytest.raises(ConfigError, match="kind"):
        load_config(None, ["model.gnn.kind=transformer"])
    with pytest.raises(ConfigError, match="residual"):
        build_model(load_config(None, ["model.gnn.kind=attention", "model.gnn.skip=latent0"]).model, "gnn")


def test_checkpoint_round_trip(tmp_path, two_graphs):
    batch = as_tensors(two_graphs)
    model = AttentionGNN(hidden=8, layers=3, steps=2)
    model(batch)
    randomize(model)
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    other = AttentionGNN(hidden=8, layers=3, steps=2)
    other(batch)  # Sonnet builds lazily: build before restoring
    assert not np.allclose(other(batch).numpy(), model(batch).numpy())
    tf.train.Checkpoint(model=other).restore(prefix).assert_existing_objects_matched()
    np.testing.assert_array_equal(other(batch).numpy(), model(batch).numpy())
    wrong = AttentionGNN(hidden=4, layers=3, steps=2)
    wrong(batch)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        tf.train.Checkpoint(model=wrong).restore(prefix).assert_existing_objects_matched()


def test_bad_arguments_and_batches_are_rejected(two_graphs):
    with pytest.raises(ConfigError, match="layers >= 2"):
        AttentionGNN(layers=1)
    with pytest.raises(ConfigError, match="aggregation"):
        AttentionGNN(aggregation="mean")
    batch = as_tensors(two_graphs)
    del batch["edge_mask"]
    with pytest.raises(DataError, match="edge_mask"):
        AttentionGNN(hidden=4, steps=1)(batch)
