"""The edge-filter MLP."""

import numpy as np
import pytest
import tensorflow as tf

from tests.models.conftest import as_tensors
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.models.filter import EdgeFilter
from trkx_tf.models.layers import layer_norm


def test_scores_each_edge_from_its_two_ends(two_graphs):
    batch = as_tensors(two_graphs)
    model = EdgeFilter(hidden=16, layers=2)
    out = model(batch)
    assert out.shape == (110,) and out.dtype == tf.float32
    mlp = model._block._edge_model
    assert len(mlp.linears) == 3 and len(mlp.norms) == 2  # 2 hidden layers + Linear(1), LayerNorm in each
    # the same as the MLP applied by hand to [x_receiver, x_sender]
    x = tf.concat([tf.gather(batch["nodes"], batch["receivers"]), tf.gather(batch["nodes"], batch["senders"])], -1)
    h = x
    for k, lin in enumerate(mlp.linears):
        h = tf.matmul(h, tf.concat(lin.weights, 0)) + lin.b
        if k < 2:
            h = layer_norm(h, mlp.norms[k].scale, mlp.norms[k].offset, relu=True)
    np.testing.assert_allclose(out.numpy(), h[:, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_padding_changes_nothing_on_real_edges(padded_variants):
    plain, with_nodes, no_nodes = (as_tensors(b) for b in padded_variants)
    model = EdgeFilter(hidden=8, layers=2)
    e = int(plain["senders"].shape[0])
    with tf.GradientTape() as tape:
        ref = model(plain)
        ref_loss = tf.reduce_sum(ref * plain["edge_mask"])
    ref_grads = tape.gradient(ref_loss, model.trainable_variables)
    for padded in (with_nodes, no_nodes):
        with tf.GradientTape() as tape:
            out = model(padded)
            loss = tf.reduce_sum(out * padded["edge_mask"])
        np.testing.assert_allclose(out[:e].numpy(), ref.numpy(), atol=1e-6)
        for a, b in zip(tape.gradient(loss, model.trainable_variables), ref_grads):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_optional_edge_features(two_graphs):
    batch = as_tensors(two_graphs)
    batch["edges"] = tf.ones([110, 2])
    model = EdgeFilter(hidden=8, layers=1, use_edge_features=True)
    assert model(batch).shape == (110,)
    assert [w.shape[0] for w in model._block._edge_model.first.weights] == [2 + 3 + 3]  # [edges, x_r, x_s]
    del batch["edges"]
    with pytest.raises(DataError, match="edges"):
        model(batch)


def test_bad_sizes():
    with pytest.raises(ConfigError):
        EdgeFilter(hidden=0)
