"""Adam (pure maths and the stateful wrapper) and the learning-rate schedule."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trkx_tf.errors import ConfigError
from trkx_tf.train.optim import Adam, WarmupSchedule, adam_update, scaled_lr


def numpy_adam(p, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


def test_adam_update_is_algorithm_1():
    rng = np.random.default_rng(0)
    p0, grads = rng.normal(size=5), [rng.normal(size=5) for _ in range(4)]
    p, m, v = tf.constant(p0), tf.zeros(5, tf.float64), tf.zeros(5, tf.float64)
    for t, g in enumerate(grads, 1):
        p, m, v = adam_update(p, tf.constant(g), m, v, t, 0.01)
    np.testing.assert_allclose(p.numpy(), numpy_adam(p0, grads, 0.01), rtol=1e-12)


def test_stateful_adam_matches_and_skips_missing_gradients():
    w, frozen = tf.Variable([1.0, -2.0]), tf.Variable([3.0])
    opt = Adam(0.1)
    opt.build([w, frozen])
    grads = [np.array([0.5, -1.0], np.float32), np.array([0.2, 0.3], np.float32)]
    for g in grads:
        lr = opt.apply([tf.constant(g), None], [w, frozen])
    assert float(lr) == pytest.approx(0.1) and int(opt.iterations) == 2
    np.testing.assert_allclose(w.numpy(), numpy_adam(np.array([1.0, -2.0]), grads, 0.1), rtol=1e-5)
    assert frozen.numpy()[0] == 3.0
    with pytest.raises(ConfigError):
        opt.build([frozen])


def test_adam_minimises_a_quadratic_in_a_tf_function():
    w = tf.Variable([5.0, -3.0])
    opt = Adam(WarmupSchedule(0.2, 5))
    opt.build([w])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(w - [1.0, 2.0]))
        return opt.apply(tape.gradient(loss, [w]), [w])

    for _ in range(300):
        step()
    np.testing.assert_allclose(w.numpy(), [1.0, 2.0], atol=1e-2)


def test_schedule_and_scaling():
    s = WarmupSchedule(1.0, 4)
    assert [s(t) for t in (1, 2, 4, 10)] == [0.25, 0.5, 1.0, 1.0]
    assert float(s(tf.constant(2, tf.int64))) == 0.5
    assert WarmupSchedule(0.3, 0)(1) == 0.3


def test_cosine_decay_after_warmup():
    s = WarmupSchedule(1.0, 4, decay_steps=14, final_ratio=0.1)
    assert s(2) == 0.5 and s(4) == 1.0  # the warm-up is unchanged
    assert s(9) == pytest.approx(0.55)  # half-way through the decay: final + (1 - final) / 2
    assert s(14) == pytest.approx(0.1) and s(100) == pytest.approx(0.1)
    eager = [s(t) for t in range(1, 20)]
    graph = [float(s(tf.constant(t, tf.int64))) for t in range(1, 20)]
    np.testing.assert_allclose(graph, eager, rtol=1e-6)
    assert all(a >= b for a, b in zip(eager[3:], eager[4:]))  # never rises after the peak
    with pytest.raises(ConfigError):
        WarmupSchedule(1.0, 4, decay_steps=4)
    with pytest.raises(ConfigError):
        WarmupSchedule(1.0, 0, decay_steps=10, final_ratio=1.5)
    assert scaled_lr(1e-3, 4, "linear") == pytest.approx(4e-3)
    assert scaled_lr(1e-3, 4, "sqrt") == pytest.approx(2e-3)
    assert scaled_lr(1e-3, 4, "none") == 1e-3
    with pytest.raises(ConfigError):
        scaled_lr(1e-3, 2, "cubic")
    with pytest.raises(ConfigError):
        WarmupSchedule(0.0)
    assert math.isclose(Adam(0.01).lr().numpy(), 0.01, rel_tol=1e-6)
