"""Loss normalisation: weighted mean over valid weights, global through the hook, padding-blind."""

import numpy as np
import tensorflow as tf

from trkx_tf.train.losses import edge_weights, pair_hinge_loss, pair_hinge_terms, weighted_bce


def bce(logit, label):
    p = 1 / (1 + np.exp(-logit))
    return -(label * np.log(p) + (1 - label) * np.log(1 - p))


def test_weighted_mean_with_class_weights():
    logits = np.array([0.3, -1.2, 2.0, 0.5], np.float32)
    labels = np.array([1, 0, 1, 0], np.float32)
    w = np.array([1.0, 2.0, 0.5, 0.0], np.float32)  # the last edge is neutral
    mask = np.ones(4, np.float32)
    loss, loss_sum, wsum = weighted_bce(logits, labels, w, mask, true_weight=3.0, fake_weight=1.0)
    eff = w * np.where(labels > 0, 3.0, 1.0)
    want = (eff * bce(logits, labels)).sum() / eff.sum()
    np.testing.assert_allclose(float(loss), want, rtol=1e-6)
    np.testing.assert_allclose(float(wsum), eff.sum())
    np.testing.assert_allclose(float(loss_sum), want * eff.sum(), rtol=1e-6)


def test_padding_is_ignored():
    logits = np.array([0.3, -1.2, 50.0, -7.0], np.float32)
    labels = np.array([1, 0, 0, 1], np.float32)
    w = np.array([1, 1, 1, 1], np.float32)
    mask = np.array([1, 1, 0, 0], np.float32)
    padded = weighted_bce(logits, labels, w, mask)[0]
    real = weighted_bce(logits[:2], labels[:2], w[:2], mask[:2])[0]
    np.testing.assert_allclose(float(padded), float(real), rtol=1e-6)


def test_global_normalisation_hook_makes_rank_losses_add_up():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=30).astype(np.float32), (rng.random(30) < 0.4).astype(np.float32)
    w, mask = rng.uniform(0.2, 2, 30).astype(np.float32), np.ones(30, np.float32)
    full = float(weighted_bce(logits, labels, w, mask)[0])
    # two "ranks" with different graph sizes: each divides by the global weight sum
    total = float(edge_weights(labels, w, mask).numpy().sum())
    parts = [float(weighted_bce(logits[a:b], labels[a:b], w[a:b], mask[a:b],
                                weight_sum_fn=lambda x: tf.constant(total))[0]) for a, b in ((0, 7), (7, 30))]
    np.testing.assert_allclose(sum(parts), full, rtol=1e-5)
    # whereas averaging per-rank means is biased
    means = [float(weighted_bce(logits[a:b], labels[a:b], w[a:b], mask[a:b])[0]) for a, b in ((0, 7), (7, 30))]
    assert abs(np.mean(means) - full) > 1e-3


def test_all_steps_loss_is_the_mean_over_steps():
    logits = np.array([[0.1, -0.2], [1.0, 2.0], [-3.0, 0.5]], np.float32)
    labels, w, mask = np.array([1, 0], np.float32), np.ones(2, np.float32), np.ones(2, np.float32)
    per_step = [float(weighted_bce(row, labels, w, mask)[0]) for row in logits]
    np.testing.assert_allclose(float(weighted_bce(logits, labels, w, mask)[0]), np.mean(per_step), rtol=1e-6)


def test_empty_batch_gives_zero_not_nan():
    loss = weighted_bce(np.zeros(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32),
                        np.zeros(3, np.float32))[0]
    assert float(loss) == 0.0


def test_pair_hinge():
    d2 = np.array([0.25, 0.25, 4.0], np.float32)
    labels = np.array([1, 0, 0], np.float32)
    np.testing.assert_allclose(pair_hinge_terms(d2, labels, 1.0).numpy(), [0.25, 0.75, 0.0])
    emb = tf.constant([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]])
    loss, loss_sum, wsum = pair_hinge_loss(emb, [0, 0, 0, 1], [1, 1, 2, 1], [1, 0, 0, 1], [1, 1, 1, 0], 1.0)
    np.testing.assert_allclose([float(loss), float(loss_sum), float(wsum)], [1.0 / 3, 1.0, 3.0], rtol=1e-6)
