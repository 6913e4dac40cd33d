"""Metrics are counts, divided only at the end; padding and neutral edges are not counted."""

import numpy as np

from trkx_tf.train.metrics import Counts, edge_counts, pair_counts


def test_edge_counts():
    logits = np.array([2.0, -2.0, 1.0, -1.0, 5.0, 5.0, 5.0], np.float32)
    labels = np.array([1, 1, 0, 0, 1, 1, 0], np.float32)
    weights = np.array([1, 1, 1, 1, 0, 1, 1], np.float32)  # edge 4: neutral
    mask = np.array([1, 1, 1, 1, 1, 0, 0], np.float32)  # edges 5, 6: padding
    tp, true, pred, total = edge_counts(logits, labels, weights, mask, 0.5).numpy()
    assert (tp, true, pred, total) == (1, 2, 2, 4)
    # threshold moves the cut: sigmoid(1.0) = 0.73
    assert edge_counts(logits, labels, weights, mask, 0.8).numpy()[2] == 1
    # all-steps logits: the last step counts
    both = np.stack([-logits, logits])
    np.testing.assert_array_equal(edge_counts(both, labels, weights, mask).numpy(), [1, 2, 2, 4])


def test_ratios_come_from_summed_counts_not_averaged_ratios():
    a = Counts().add([9, 10, 9, 100])     # efficiency 0.9
    b = Counts().add([1, 10, 2, 100])     # efficiency 0.1
    total = Counts(a.values + b.values).ratios()
    assert total["efficiency"] == 10 / 20 and total["purity"] == 10 / 11
    assert np.isnan(Counts().ratios()["efficiency"])


def test_pair_counts():
    d2 = np.array([0.1, 2.0, 0.5, 0.1], np.float32)
    labels = np.array([1, 1, 0, 0], np.float32)
    w = np.array([1, 1, 1, 0], np.float32)
    np.testing.assert_array_equal(pair_counts(d2, labels, w, 1.0).numpy(), [1, 2, 2, 3])
