"""Step functions: compiled once per bucket shape, and able to fit a tiny graph."""

import numpy as np
import pytest
import tensorflow as tf

from tests.train.conftest import toy_batch
from trkx_tf.models.filter import EdgeFilter
from trkx_tf.models.interaction import InteractionNetwork
from trkx_tf.train.backend import SingleBackend
from trkx_tf.train.optim import Adam
from trkx_tf.train.steps import StepFunctions
from trkx_tf.train.tasks import EdgeTask


def test_one_trace_per_bucket_shape():
    small = [toy_batch(s, n_particles=8, bucket=(100, 300)) for s in range(3)]
    large = [toy_batch(s, n_particles=12, bucket=(140, 420)) for s in range(3)]
    steps = StepFunctions(EdgeFilter(hidden=8, layers=1), EdgeTask(), Adam(1e-3), SingleBackend())
    steps.build(small[0])
    for a, b in zip(small, large):  # alternate buckets: A B A B A B
        steps.train(a)
        steps.train(b)
        steps.evaluate(b)
    assert steps.trace_counts["train"] == 2 and steps.trace_counts["evaluate"] == 1
    for fn in steps._functions.values():
        assert fn.experimental_get_tracing_count() == 1
    # a third bucket compiles once more, and only once
    other = [toy_batch(s, n_particles=8, bucket=(120, 300)) for s in range(2)]
    steps.train(other[0])
    steps.train(other[1])
    assert steps.trace_counts["train"] == 3 and steps.compiled_buckets == 4


def test_interaction_network_overfits_a_tiny_graph():
    tf.random.set_seed(0)
    batch = toy_batch(0)
    steps = StepFunctions(InteractionNetwork(hidden=16, layers=2, steps=3), EdgeTask(), Adam(3e-3),
                          SingleBackend())
    steps.build(batch)
    first = steps.train(batch)
    for _ in range(250):
        out = steps.train(batch)
    assert first["loss"] > 0.3
    assert out["loss"] < 0.02
    tp, true, pred, total = out["counts"]
    assert tp == true == pred and total == batch["edge_mask"].sum()
    assert steps.trace_counts["train"] == 1


def test_reduce_sum_hook_normalises_the_loss():
    class TwoEqualRanks(SingleBackend):
        """Pretends another rank holds the same weight sum: the global sum doubles."""

        def reduce_sum(self, x):
            return 2.0 * x

    batch = toy_batch(1)
    losses = []
    for backend in (SingleBackend(), TwoEqualRanks()):
        tf.random.set_seed(3)
        steps = StepFunctions(EdgeFilter(hidden=8, layers=1), EdgeTask(), Adam(1e-3), backend)
        steps.build(batch)
        losses.append(steps.evaluate(batch)["loss"])
    np.testing.assert_allclose(losses[1], losses[0] / 2, rtol=1e-6)


def test_float16_training_uses_a_dynamic_loss_scale():
    from trkx_tf.train.steps import DynamicLossScale

    batch = toy_batch(2)
    scale = DynamicLossScale(initial=2.0 ** 10, growth_interval=2)
    steps = StepFunctions(EdgeFilter(hidden=8, layers=1, compute_dtype="float16"), EdgeTask(), Adam(1e-3),
                          SingleBackend(), loss_scale=scale)
    steps.build(batch)
    for _ in range(2):
        out = steps.train(batch)
    assert np.isfinite(out["loss"]) and float(scale.scale) == 2.0 ** 11  # grew after 2 finite steps
    assert int(steps.optimizer.iterations) == 2
    # a non-finite gradient: the update is skipped and the scale halves
    scale.scale.assign(1e30)
    before = [v.numpy() for v in steps.model.trainable_variables]
    steps.train(batch)
    assert float(scale.scale) == pytest.approx(5e29, rel=1e-6) and int(steps.optimizer.iterations) == 2
    for a, b in zip(before, steps.model.trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())


def test_dynamic_shapes_trace_once_and_equal_the_padded_loss():
    """Unpadded graphs at their own sizes go through one relaxed-shape function; padding changes no loss."""
    from trkx_tf.graphs import synthetic

    graphs = [synthetic.toy_tracking_graph(n, n_layers=5, seed=n, phi_window=0.25) for n in (8, 10, 12)]
    assert len({g["nodes"].shape for g in graphs}) == 3
    tf.random.set_seed(0)
    dynamic = StepFunctions(EdgeFilter(hidden=8, layers=1), EdgeTask(), Adam(1e-3), SingleBackend(),
                            dynamic_shapes=True)
    dynamic.build(graphs[0])
    tf.random.set_seed(0)
    padded = StepFunctions(EdgeFilter(hidden=8, layers=1), EdgeTask(), Adam(1e-3), SingleBackend())
    padded.build(graphs[0])
    for g in graphs:
        a = dynamic.train(g)
        b = padded.train(synthetic.pad_batch(g, 160, 480))
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_array_equal(a["counts"], b["counts"])
    assert dynamic.trace_counts["train"] == 1 and dynamic.compiled_buckets == 1
