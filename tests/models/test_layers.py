"""MultiLinear, the fused LayerNorm+ReLU kernel and the MLP."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from trkx_tf.errors import ConfigError
from trkx_tf.models.kernels import column_sum, edge_step
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


def test_fused_layer_norm_relu_matches_reference_values_and_gradients(kernel_backend):
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


def test_fused_layer_norm_relu_mixed_dtypes(kernel_backend):
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


def _edge_step_reference(z, bias, tables, g, b, acc, m, ids, n):
    """The unfused edge step: gathers, LayerNorm+ReLU, residual update, running sum, segment sum."""
    pre = z + tf.add_n([tf.gather(t, r) for t, r in tables]) + bias
    h = layer_norm(pre, g, b, relu=True)
    return z + h @ m, acc + h, [tf.math.unsorted_segment_sum(h, ids, n)]


def test_edge_step_with_gathered_tables_matches_reference_values_and_gradients(kernel_backend):
    rng = np.random.default_rng(3)
    e, n, h = 60, 9, 8
    var = lambda *shape: tf.Variable(rng.normal(size=shape).astype(np.float32))  # noqa: E731
    z, bias, acc, m = var(e, h), var(h), var(e, h), var(h, h)
    t_r, t_s, g, b = var(n + 1, h), var(n + 1, h), var(h), var(h)
    rows_r = tf.constant(np.sort(rng.integers(0, n, e)), tf.int32)
    rows_s = tf.constant(rng.integers(0, n, e), tf.int32)
    ids = tf.where(tf.range(e) < e - 5, rows_r, n)  # the last 5 edges are padding: segment n
    w = [tf.constant(rng.normal(size=s).astype(np.float32)) for s in ((e, h), (e, h), (n + 1, h))]
    srcs = [z, bias, t_r, t_s, g, b, acc, m]
    with tf.GradientTape(persistent=True) as tape:
        z_next, acc_next, sums = edge_step([z, bias], g, b, acc, m, [(ids, None)], n + 1, residual=True,
                                           tables=[(t_r, rows_r), (t_s, rows_s)])
        ref = _edge_step_reference(z, bias, [(t_r, rows_r), (t_s, rows_s)], g, b, acc, m, ids, n + 1)
        loss = sum(tf.reduce_sum(wi * o) for wi, o in zip(w, [z_next, acc_next, sums[0]]))
        loss_ref = sum(tf.reduce_sum(wi * o) for wi, o in zip(w, [ref[0], ref[1], ref[2][0]]))
    for got, want in zip([z_next, acc_next, sums[0]], [ref[0], ref[1], ref[2][0]]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    for gf, gr in zip(tape.gradient(loss, srcs), tape.gradient(loss_ref, srcs)):
        np.testing.assert_allclose(tf.convert_to_tensor(gf).numpy(), tf.convert_to_tensor(gr).numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_edge_step_bfloat16_tables_are_gathered_in_bfloat16_and_scattered_in_float32(kernel_backend):
    rng = np.random.default_rng(4)
    e, n, h = 400, 5, 8
    z = tf.Variable(rng.normal(size=(e, h)).astype(np.float32))
    table = tf.Variable(rng.normal(size=(n, h)).astype(np.float32))
    rows = tf.constant(rng.integers(0, n, e), tf.int32)
    g, b, m = tf.Variable(tf.ones([h])), tf.Variable(tf.zeros([h])), tf.Variable(tf.eye(h))
    with tf.GradientTape() as tape:
        z16, t16 = tf.cast(z, tf.bfloat16), tf.cast(table, tf.bfloat16)
        z_next, _, _ = edge_step([z16], g, b, None, tf.cast(m, tf.bfloat16), [], n, residual=True,
                                 tables=[(t16, rows)])
        grad_t16 = tape.gradient(z_next, t16)
    assert z_next.dtype == tf.bfloat16 and grad_t16.dtype == tf.bfloat16
    # the same step in float32 on the same (bfloat16-rounded) inputs: the table gradient sums ~80 edges per row
    z32, t32 = tf.Variable(tf.cast(z16, tf.float32)), tf.Variable(tf.cast(t16, tf.float32))
    with tf.GradientTape() as tape:
        ref = _edge_step_reference(z32, tf.zeros([h]), [(t32, rows)], g, b, tf.zeros([e, h]), m,
                                   tf.zeros([e], tf.int32), 1)[0]
    want = tf.convert_to_tensor(tape.gradient(ref, t32)).numpy()
    np.testing.assert_allclose(tf.cast(grad_t16, tf.float32).numpy(), want, rtol=2e-2, atol=2e-2 * np.abs(want).max())


def test_column_sum_of_bfloat16_accumulates_in_float32():
    x = tf.ones([50000, 3], tf.bfloat16) * tf.constant([1.0, 0.5, -0.25], tf.bfloat16)
    out = column_sum(x)
    assert out.dtype == tf.float32
    # a bfloat16 running sum would stall at 256 (1 + 256 rounds back to 256); the product accumulates in float32
    np.testing.assert_allclose(out.numpy(), [50000, 25000, -12500], rtol=1e-2)
    np.testing.assert_allclose(column_sum(tf.ones([7, 2])).numpy(), [7, 7])
