"""The fused Interaction Network: the same function as the plain formulation, padding-blind, all options."""

import numpy as np
import pytest
import tensorflow as tf

from tests.models.conftest import as_tensors
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.models.interaction import InteractionNetwork
from trkx_tf.models.layers import layer_norm
from trkx_tf.models.reference import GraphNetsInteractionNetwork
from trkx_tf.train.losses import weighted_bce


def plain_mlp(mlp, parts):
    """The textbook MLP on the concatenation of ``parts``, with the weights of a trkx MLP."""
    h = tf.matmul(tf.concat(parts, -1), tf.concat(mlp.first.weights, 0)) + mlp.first.b
    for k in range(len(mlp.linears) - 1):
        h = layer_norm(h, mlp.norms[k].scale, mlp.norms[k].offset, relu=True) if mlp.layernorm else tf.nn.relu(h)
        h = tf.matmul(h, mlp.linears[k + 1].weights[0]) + mlp.linears[k + 1].b
    return h


def literal_in(model, batch, all_steps=False):
    """The module docstring's equations, literally: messages materialised, padding masked by multiplication."""
    x, s, r = batch["nodes"], batch["senders"], batch["receivers"]
    mask = batch["edge_mask"][:, None]
    n = tf.shape(x)[0]
    latent0 = model.skip == "latent0"
    v0 = plain_mlp(model.node_encoder, [x])
    e0 = plain_mlp(model.edge_encoder, [tf.gather(x, r), tf.gather(x, s)])
    v, e, out = v0, e0, []
    for _ in range(model.steps):
        m = plain_mlp(model.edge_core, [e] + ([e0] if latent0 else []) + [tf.gather(v, r), tf.gather(v, s)])
        aggs = [tf.math.unsorted_segment_sum(m * mask, r, n)]
        if model.aggregation == "both":
            aggs.append(tf.math.unsorted_segment_sum(m * mask, s, n))
        dv = plain_mlp(model.node_core, aggs + [v] + ([v0] if latent0 else []))
        e, v = (m, dv) if latent0 else (e + m, v + dv)
        out.append(plain_mlp(model.decoder, [e])[:, 0])
    return tf.stack(out) if all_steps else out[-1]


def randomize(model, seed=0):
    """Random values in every variable (zero-initialised biases would hide a dropped bias)."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(v + rng.normal(0, 0.2, v.shape).astype(np.float32))


def loss_of(logits, batch):
    return weighted_bce(logits, batch["edge_labels"], batch["edge_weights"], batch["edge_mask"])[0]


def values_and_grads(fn, model, batch):
    with tf.GradientTape() as tape:
        logits = fn(batch)
        loss = loss_of(logits, batch)
    # padded edges' logits are meaningless (the contract): compared as zeros
    real = np.asarray(batch["edge_mask"], bool)
    return np.where(real, logits.numpy(), 0.0), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def assert_same(a, b, rtol=2e-4, atol=2e-5):
    (la, ga), (lb, gb) = a, b
    np.testing.assert_allclose(la, lb, rtol=rtol, atol=atol)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol * max(1.0, float(np.abs(y).max())))


def test_is_the_graph_nets_interaction_network(two_graphs):
    batch = as_tensors(two_graphs)
    ours = InteractionNetwork(hidden=8, layers=2, steps=3)
    ref = GraphNetsInteractionNetwork(hidden=8, layers=2, steps=3)
    ours(batch)
    randomize(ours)
    ref.copy_from(ours, batch)
    with tf.GradientTape(persistent=True) as tape:
        lo, lr = ours(batch), ref(batch)
        loss_o, loss_r = loss_of(lo, batch), loss_of(lr, batch)
    np.testing.assert_allclose(lo.numpy(), lr.numpy(), rtol=1e-4, atol=1e-5)
    # same gradients: compare the graph_nets edge-core weight with our concatenated blocks
    g_ours = tf.concat(tape.gradient(loss_o, ours.edge_core.first.weights), 0)
    g_ref = tape.gradient(loss_r, ref.edge_core.linears[0].w)
    np.testing.assert_allclose(g_ours.numpy(), g_ref.numpy(), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("skip,aggregation,layers,layernorm", [
    ("residual", "receivers", 3, True), ("residual", "both", 2, False), ("residual", "both", 2, True),
    ("latent0", "receivers", 2, True), ("latent0", "both", 3, True)])
def test_fused_equals_literal_equations(padded_variants, skip, aggregation, layers, layernorm, kernel_backend):
    batch = as_tensors(padded_variants[1])  # with padding: the literal version masks by multiplication
    model = InteractionNetwork(hidden=8, layers=layers, steps=3, skip=skip, aggregation=aggregation,
                               layernorm=layernorm)
    model(batch)
    randomize(model)
    assert_same(values_and_grads(model, model, batch),
                values_and_grads(lambda b: literal_in(model, b), model, batch))
    real = np.asarray(batch["edge_mask"], bool)
    np.testing.assert_allclose(model(batch, all_steps=True).numpy()[:, real],
                               literal_in(model, batch, True).numpy()[:, real], rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("skip,aggregation", [("residual", "receivers"), ("latent0", "both")])
def test_padding_changes_no_output_and_no_gradient(padded_variants, skip, aggregation, kernel_backend):
    plain, with_nodes, no_nodes = (as_tensors(b) for b in padded_variants)
    e = int(plain["senders"].shape[0])
    model = InteractionNetwork(hidden=8, layers=2, steps=3, skip=skip, aggregation=aggregation)
    model(plain)
    randomize(model)
    ref_logits, ref_grads = values_and_grads(model, model, plain)
    for padded in (with_nodes, no_nodes):
        logits, grads = values_and_grads(model, model, padded)
        assert logits.shape[0] > e and np.isfinite(logits).all()
        assert_same((logits[:e], grads), (ref_logits, ref_grads), rtol=1e-4, atol=1e-6)


def test_options_compute_the_same_function(padded_variants):
    batch = as_tensors(padded_variants[2])
    base = InteractionNetwork(hidden=8, layers=2, steps=3, aggregation="both")
    base(batch)
    randomize(base)
    for kwargs in ({"recompute": True}, {"sort_edges": False}):
        other = InteractionNetwork(hidden=8, layers=2, steps=3, aggregation="both", **kwargs)
        other(batch)
        for a, b in zip(other.trainable_variables, base.trainable_variables):
            a.assign(b)
        assert_same(values_and_grads(other, other, batch), values_and_grads(base, base, batch), rtol=1e-5,
                    atol=1e-6)


def test_all_steps_and_shapes(two_graphs):
    batch = as_tensors(two_graphs)
    model = InteractionNetwork(hidden=8, layers=2, steps=4)
    out, every = model(batch), model(batch, all_steps=True)
    assert out.shape == (110,) and out.dtype == tf.float32
    assert every.shape == (4, 110)
    np.testing.assert_allclose(every[-1].numpy(), out.numpy(), atol=1e-6)


def test_bfloat16_is_close_to_float32(two_graphs, kernel_backend):
    batch = as_tensors(two_graphs)
    f32 = InteractionNetwork(hidden=8, layers=2, steps=3)
    b16 = InteractionNetwork(hidden=8, layers=2, steps=3, compute_dtype="bfloat16")
    f32(batch), b16(batch)
    for a, b in zip(b16.trainable_variables, f32.trainable_variables):
        a.assign(b)
        assert a.dtype == tf.float32  # variables stay float32
    out16, grads16 = values_and_grads(b16, b16, batch)
    out32, _ = values_and_grads(f32, f32, batch)
    assert out16.dtype == np.float32
    assert np.abs(out16 - out32).max() < 0.1 * max(1.0, np.abs(out32).max())
    assert all(np.isfinite(g).all() for g in grads16)


def test_bad_arguments_and_batches_are_rejected(two_graphs):
    with pytest.raises(ConfigError, match="layers >= 2"):
        InteractionNetwork(layers=1)
    with pytest.raises(ConfigError, match="skip"):
        InteractionNetwork(skip="dense")
    with pytest.raises(ConfigError, match="aggregation"):
        InteractionNetwork(aggregation="mean")
    batch = as_tensors(two_graphs)
    del batch["edge_mask"]
    with pytest.raises(DataError, match="edge_mask"):
        InteractionNetwork(hidden=4, steps=1)(batch)
