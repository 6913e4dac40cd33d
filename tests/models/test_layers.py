"""MultiLinear, the fused LayerNorm+ReLU kernel and the MLP."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from trkx_tf.errors import ConfigError
from trkx_tf.models.layers import MLP, MultiLinear, as_compute_dtype, layer_norm, layer_norm_relu


def test_multilinear_is_linear_on_the_concatenation():
    rng = np.random.default_rng(0)
    a, b = tf.constant(rng.normal(size=(5, 3)), tf.float32), tf.constant(rng.normal(size=(5, 4)), tf.float32)
    layer = MultiLinear(6)
    out = layer([a, b])
    assert [w.shape.as_list() for w in layer.weights] == [[3, 6], [4, 6]]
    ref = snt.Linear(6)
    ref(tf.concat([a, b], -1))
    ref.w.assign(tf.concat(layer.weights, 0))
    ref.b.assign(layer.b + 0.5)
    layer.b.assign(layer.b + 0.5)
    np.testing.assert_allclose(layer([a, b]).numpy(), ref(tf.concat([a, b], -1)).numpy(), atol=1e-6)
    assert out.shape == (5, 6)
    with pytest.raises(ConfigError, match="2 input parts"):
        layer([a])


def test_fused_layer_norm_relu_matches_reference_values_and_gradients():
    rng = np.random.default_rng(1)
    x1 = tf.Variable(rng.normal(size=(40, 8)).astype(np.float32))
    x2 = tf.Variable(rng.normal(size=(40, 8)).astype(np.float32))
    bias = tf.Variable(rng.normal(size=(8,)).astype(np.float32))
    g = tf.Variable(rng.normal(size=(8,)).astype(np.float32))
    b = tf.Variable(rng.normal(size=(8,)).astype(np.float32))
    dy = tf.constant(rng.normal(size=(40, 8)).astype(np.float32))
    srcs = [x1, x2, bias, g, b]
    with tf.GradientTape(persistent=True) as tape:
        fused = layer_norm_relu([x1, x2, bias], g, b)
        ref = layer_norm(x1 + x2 + bias, g, b, relu=True)
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=1e-5)
    assert (fused.numpy() > 0).any() and (fused.numpy() == 0).any()  # the ReLU is active somewhere
    for gf, gr in zip(tape.gradient(fused, srcs, output_gradients=dy), tape.gradient(ref, srcs, output_gradients=dy)):
        np.testing.assert_allclose(gf.numpy(), gr.numpy(), rtol=1e-4, atol=1e-4)


def test_fused_layer_norm_relu_mixed_dtypes():
    rng = np.random.default_rng(2)
    x16 = tf.Variable(rng.normal(size=(10, 4)).astype(np.float32))
    x32 = tf.Variable(rng.normal(size=(10, 4)).astype(np.float32))
    g, b = tf.Variable(tf.ones([4])), tf.Variable(tf.zeros([4]))
    with tf.GradientTape() as tape:
        y = layer_norm_relu([tf.cast(x16, tf.bfloat16), x32], g, b)
        total = tf.reduce_sum(tf.cast(y, tf.float32))
    assert y.dtype == tf.bfloat16
    grads = tape.gradient(total, [x16, x32])
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), atol=2e-2)
    ref = layer_norm(tf.cast(tf.cast(x16, tf.bfloat16), tf.float32) + x32, g, b, relu=True)
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), ref.numpy(), atol=3e-2)


def test_mlp_structure_and_parts():
    mlp = MLP([7, 7, 2], layernorm=True)
    x = tf.ones([3, 5])
    out = mlp([x[:, :2], x[:, 2:]])
    assert out.shape == (3, 2)
    assert len(mlp.norms) == 2 and len(mlp.linears) == 3
    assert [w.shape.as_list() for w in mlp.first.weights] == [[2, 7], [3, 7]]
    np.testing.assert_allclose(mlp.last([mlp.hidden(mlp.first([x[:, :2], x[:, 2:]]))]).numpy(), out.numpy(),
                               atol=1e-6)


def test_bad_sizes_and_dtypes_are_rejected():
    with pytest.raises(ConfigError):
        MLP([])
    with pytest.raises(ConfigError):
        MultiLinear(0)
    with pytest.raises(ConfigError, match="int8"):
        as_compute_dtype("int8")
