"""Metrics are counts, divided only at the end; padding and neutral edges are not counted."""

import numpy as np

from trkx_tf.train.metrics import (LOGIT_RANGE, SCORE_BINS, Counts, edge_counts, pair_counts, score_histogram,
                                   working_points)


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


def test_working_points_match_a_brute_force_threshold_scan():
    """Efficiency at a purity and purity at an efficiency, from summed score histograms, equal a direct scan over
    the bin-edge thresholds; padding and neutral edges are left out as in the counts."""
    rng = np.random.default_rng(0)
    n = 4000
    labels = (rng.random(n) < 0.3).astype(np.float32)
    logits = (rng.normal(0, 1.5, n) + 3.0 * labels - 1.0).astype(np.float32)
    weights = (rng.random(n) > 0.1).astype(np.float32)
    mask = np.ones(n, np.float32)
    mask[-50:] = 0
    # two batches summed, as steps and ranks sum them; labels as the shards store them (uint8) or as batches (float)
    hist = score_histogram(logits[:1500], labels[:1500], weights[:1500], mask[:1500]).numpy() + \
        score_histogram(logits[1500:], labels[1500:].astype(np.uint8), weights[1500:], mask[1500:]).numpy()
    assert hist.shape == (2 * SCORE_BINS,)
    valid = (weights > 0) & (mask > 0)
    assert hist.sum() == valid.sum() and hist[:SCORE_BINS].sum() == (valid & (labels > 0)).sum()

    got = working_points(hist, 0.9, 0.95)
    width = 2 * LOGIT_RANGE / SCORE_BINS
    best_eff, best_pur = 0.0, 0.0
    for k in range(1, SCORE_BINS):  # threshold at the lower edge of bin k
        keep = valid & (logits >= -LOGIT_RANGE + k * width - 1e-6)
        tp = (keep & (labels > 0)).sum()
        eff, pur = tp / (valid & (labels > 0)).sum(), tp / max(keep.sum(), 1)
        if keep.sum() and pur >= 0.9:
            best_eff = max(best_eff, eff)
        if eff >= 0.95:
            best_pur = max(best_pur, pur)
    assert abs(got["efficiency_at_purity"] - best_eff) < 1e-3
    assert abs(got["purity_at_efficiency"] - best_pur) < 1e-3
    assert 0.0 < got["threshold_at_efficiency"] < got["threshold_at_purity"] < 1.0


def test_working_points_with_nothing_counted_or_an_unreachable_purity():
    assert np.isnan(working_points(np.zeros(2 * SCORE_BINS), 0.9, 0.99)["efficiency_at_purity"])
    hist = np.zeros(2 * SCORE_BINS)
    hist[SCORE_BINS - 1] = 10  # every true edge in the top bin, with as many fakes: purity 0.5 at best
    hist[-1] = 10
    out = working_points(hist, 0.9, 0.99)
    assert out["efficiency_at_purity"] == 0.0 and np.isnan(out["threshold_at_purity"])
    assert out["purity_at_efficiency"] == 0.5
    # Counts: the histogram follows the 4 counts; ratios read it at the targets
    counts = Counts(targets=(0.4, 0.99)).add(np.concatenate([[10, 10, 20, 20], hist]))
    assert counts.ratios()["efficiency_at_purity"] == 1.0
    assert np.isnan(Counts(targets=(0.4, 0.99)).ratios()["efficiency_at_purity"])
