"""The embedding's training objective on a hand-made batch: hinge loss over the mined pairs, by hand."""

import numpy as np
import tensorflow as tf

from trkx_tf.graphs import synthetic
from trkx_tf.train.loop import _prepare
from trkx_tf.train.tasks import EmbeddingTask

# nodes 0-1 a true edge (distance 0.3), 1-2 a fake candidate edge (distance 0.4), node 3 far away
EMB = np.array([[0.0, 0.0], [0.3, 0.0], [0.3, 0.4], [5.0, 5.0]], np.float32)


def _batch():
    return synthetic.graph_batch(np.zeros((4, 3)), [0, 1], [1, 2], [1, 0])


def test_hinge_loss_by_hand():
    task = EmbeddingTask(margin=1.0, n_random=0, n_knn=2, true_weight=2.0, knn_start_epoch=1)
    batch = task.prepare(_batch(), forward=lambda b: EMB, rng=np.random.default_rng(0))
    # the fake candidate edge 1-2 weighs 0; hard negatives within the margin: 0-2 (0.5) and 1-2 (0.4) each way
    # (0-1 is true: mined, it is a positive); node 3 has nobody within the margin
    loss, loss_sum, weight_sum, counts = task.forward(lambda b: tf.constant(EMB), batch)
    w, lab = batch["pair_weights"], batch["pair_labels"]
    d2 = np.sum((EMB[batch["pair_i"]] - EMB[batch["pair_j"]]) ** 2, -1)
    terms = np.where(lab > 0, d2, np.maximum(0.0, 1.0 - d2))
    cw = w * np.where(lab > 0, 2.0, 1.0)
    np.testing.assert_allclose(loss.numpy(), (cw * terms).sum() / cw.sum(), rtol=1e-6)
    # by hand: positives 0-1 (edge + 2 mined) 3 x 2 x 0.09; negatives 0-2 x2: 0.75, 1-2 x2: 0.84
    np.testing.assert_allclose(loss_sum.numpy(), 3 * 2 * 0.09 + 2 * 0.75 + 2 * 0.84, rtol=1e-5)
    np.testing.assert_allclose(weight_sum.numpy(), 3 * 2 + 4, rtol=1e-6)
    # counts at the margin: the positives are within 1.0 (true positives), the 4 negatives too (false positives)
    assert counts.numpy()[:2].sum() > 0


def test_random_pairs_before_the_hard_negatives():
    task = EmbeddingTask(margin=1.0, n_random=1, n_knn=2, knn_start_epoch=1)
    calls = []

    def forward(b):
        calls.append(1)
        return EMB

    def mined(b):
        m = b["pair_weights"][2:] > 0
        return list(zip(b["pair_i"][2:][m].tolist(), b["pair_j"][2:][m].tolist()))

    first = _prepare(task, _batch(), forward, [0, 0, 0], 1, epoch=0)
    assert not calls and len(mined(first)) <= 4  # epoch 0: one random partner per node, no embedding asked
    later = _prepare(task, _batch(), forward, [0, 0, 0], 1, epoch=1)
    # epoch 1: the same random pairs (same generator key), then the 6 neighbour pairs within the margin
    assert calls and mined(later)[:len(mined(first))] == mined(first)
    assert set(mined(later)[len(mined(first)):]) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)}
