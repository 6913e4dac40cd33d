"""Doublet -> triplet conversion on tiny hand-made graphs: counts, orientation, features, labels, batches."""

import itertools

import numpy as np
import pytest

from trkx_tf.errors import DataError
from trkx_tf.graphs.features import EDGE_CLIP, edge_features
from trkx_tf.graphs.triplets import (DOUBLET_FEATURES, TRIPLET_FEATURES, TripletGraph, doublet_features,
                                     doublets_to_triplets, orient_outwards, triplet_batch, triplet_features,
                                     triplet_labels)

R_SCALE, Z_SCALE = 1000.0, 1000.0


def nodes_of(r, phi, z):
    """Node features as hit_features scales them: r / 1000, phi / pi, z / 1000."""
    return np.stack([np.asarray(r, float) / R_SCALE, np.asarray(phi, float) / np.pi,
                     np.asarray(z, float) / Z_SCALE], 1).astype(np.float32)


def brute_force(senders, receivers):
    return sorted((i, j) for i, j in itertools.product(range(len(senders)), repeat=2) if receivers[i] == senders[j])


def test_counts_on_a_hand_made_graph():
    # 0 -> 1 -> {2, 3} -> 4 -> 5, and a doublet 6 -> 7 that continues nothing
    senders = np.array([0, 1, 1, 2, 3, 4, 6])
    receivers = np.array([1, 2, 3, 4, 4, 5, 7])
    t = doublets_to_triplets(senders, receivers, 8)
    # (0-1,1-2) (0-1,1-3) (1-2,2-4) (1-3,3-4) (2-4,4-5) (3-4,4-5)
    assert t.n_triplet == 6
    assert sorted(zip(t.first.tolist(), t.second.tolist())) == [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 5)]
    assert sorted(map(tuple, t.hits.tolist())) == [(0, 1, 2), (0, 1, 3), (1, 2, 4), (1, 3, 4), (2, 4, 5),
                                                   (3, 4, 5)]
    np.testing.assert_array_equal(t.hits[:, 1], receivers[t.first])
    np.testing.assert_array_equal(t.hits[:, 1], senders[t.second])


def test_matches_brute_force_on_random_graphs():
    rng = np.random.default_rng(0)
    for n_node, n_edge in [(5, 0), (5, 1), (10, 30), (30, 200)]:
        s, r = rng.integers(0, n_node, n_edge), rng.integers(0, n_node, n_edge)
        t = doublets_to_triplets(s, r, n_node)
        assert sorted(zip(t.first.tolist(), t.second.tolist())) == brute_force(s, r)
        # the count is sum over hits of (doublets ending there) x (doublets starting there)
        assert t.n_triplet == int(np.sum(np.bincount(r, minlength=n_node) * np.bincount(s, minlength=n_node)))


def test_orientation_makes_paths_inside_out():
    nodes = nodes_of([30, 70, 120], [0.1, 0.1, 0.1], [5, 10, 20])
    inner, outer = orient_outwards([1, 2], [0, 1], nodes, R_SCALE, Z_SCALE)  # both given outside-in
    np.testing.assert_array_equal(inner, [0, 1])
    np.testing.assert_array_equal(outer, [1, 2])
    assert doublets_to_triplets(inner, outer).hits.tolist() == [[0, 1, 2]]
    assert doublets_to_triplets([1, 2], [0, 1]).hits.tolist() == [[2, 1, 0]]  # unoriented: the reverse path


def test_features_of_a_straight_track_and_of_a_circle():
    # a straight track from the origin: no curvature, d0 0, no kink, z0 0
    r = np.array([30.0, 70.0, 120.0])
    nodes = nodes_of(r, [0.3] * 3, 0.5 * r)
    t = doublets_to_triplets([0, 1], [1, 2], 3)
    f = triplet_features(nodes, t, R_SCALE, Z_SCALE)
    assert f.shape == (1, len(TRIPLET_FEATURES)) and f.dtype == np.float32
    np.testing.assert_allclose(f[0], 0.0, atol=2e-3)
    # three points on a circle of radius R = 1000 mm through the origin (centre (0, 1000)), z = 0
    radius = 1000.0
    angles = np.array([0.03, 0.07, 0.12])  # angle along the circle from the origin
    x, y = radius * np.sin(angles), radius * (1 - np.cos(angles))
    f = triplet_features(nodes_of(np.hypot(x, y), np.arctan2(y, x), [0.0] * 3), t, R_SCALE, Z_SCALE)[0]
    curvature, d0, angle = f[0], f[1], f[2]
    np.testing.assert_allclose(abs(curvature), 1000.0 / radius, rtol=1e-3)  # 1/m
    assert curvature > 0  # turning left (counter-clockwise)
    np.testing.assert_allclose(d0, 0.0, atol=1e-3)
    # the turn between the chords equals half the arc between their midpoints: (0.12 - 0.03) / 2
    np.testing.assert_allclose(angle, (0.12 - 0.03) / 2 / 0.1, rtol=1e-3)
    # the same circle shifted away from the beam line by 5 mm: d0 = 5 mm -> 0.5
    x2, y2 = x, y - 5.0
    f = triplet_features(nodes_of(np.hypot(x2, y2), np.arctan2(y2, x2), [0.0] * 3), t, R_SCALE, Z_SCALE)[0]
    np.testing.assert_allclose(f[1], 0.5, atol=5e-3)


def test_dphi_dr_difference_is_that_of_the_doublet_features():
    rng = np.random.default_rng(3)
    nodes = nodes_of(rng.uniform(30, 1000, 40), rng.uniform(-np.pi, np.pi, 40), rng.uniform(-1000, 1000, 40))
    t = doublets_to_triplets(rng.integers(0, 40, 120), rng.integers(0, 40, 120), 40)
    a, b, c = t.hits.T
    per_doublet = [edge_features(nodes, s, r, R_SCALE, Z_SCALE)[:, 5] for s, r in ((a, b), (b, c))]
    expected = np.clip(per_doublet[1] - per_doublet[0], -EDGE_CLIP, EDGE_CLIP)  # every feature is clipped
    assert 0 < np.count_nonzero(np.abs(expected) < EDGE_CLIP) < len(expected)
    np.testing.assert_allclose(triplet_features(nodes, t, R_SCALE, Z_SCALE)[:, 5], expected, rtol=1e-5, atol=1e-5)


def test_features_stay_finite_and_clipped():
    # a degenerate triplet: all three hits in one place, and a track that doubles back
    nodes = nodes_of([50, 50, 50, 60], [0.0, 0.0, 0.0, 3.0], [0, 0, 0, -400])
    t = TripletGraph(np.array([0, 1]), np.array([1, 2]), np.array([[0, 1, 2], [0, 1, 3]]))
    f = triplet_features(nodes, t, R_SCALE, Z_SCALE)
    assert np.isfinite(f).all() and np.abs(f).max() <= EDGE_CLIP


def test_doublet_features_and_labels():
    nodes = nodes_of([30, 70, 120, 70], [0.1, 0.1, 0.1, -2.0], [5, 10, 20, 0])
    s, r = np.array([0, 1, 0]), np.array([1, 2, 3])
    x = doublet_features(nodes, s, r, np.array([0.9, 0.8, 0.1]), R_SCALE, Z_SCALE)
    assert x.shape == (3, len(DOUBLET_FEATURES))
    np.testing.assert_allclose(x[:, 0], [0.9, 0.8, 0.1])
    np.testing.assert_allclose(x[1, -6:], np.concatenate([nodes[1], nodes[2]]))
    t = doublets_to_triplets(s, r, 4)
    assert t.hits.tolist() == [[0, 1, 2]]
    np.testing.assert_array_equal(triplet_labels([1, 1, 0], t), [1])
    np.testing.assert_array_equal(triplet_labels([1, 0, 1], t), [0])
    with pytest.raises(DataError, match="doublet labels"):
        triplet_labels([1], t)


def test_triplet_batch_is_an_edge_classifier_batch():
    nodes = nodes_of([30, 70, 120, 170], [0.1] * 4, [5, 10, 20, 30])
    # given in mixed directions; oriented inside-out in the batch
    batch, t = triplet_batch(nodes, [1, 1, 3], [0, 2, 2], np.array([0.9, 0.8, 0.7], np.float32), R_SCALE,
                             Z_SCALE, doublet_labels=np.array([1, 1, 0]))
    assert t.hits.tolist() == [[0, 1, 2], [1, 2, 3]]
    assert batch["nodes"].shape == (3, len(DOUBLET_FEATURES)) and batch["edges"].shape == (2, len(TRIPLET_FEATURES))
    np.testing.assert_array_equal(batch["edge_labels"], [1, 0])
    np.testing.assert_array_equal(batch["n_node"], [3])
    np.testing.assert_array_equal(batch["n_edge"], [2])
    assert batch["senders"].dtype == np.int32 and (batch["edge_mask"] == 1).all()


def test_bad_inputs_are_rejected():
    with pytest.raises(DataError, match="one length"):
        doublets_to_triplets([0, 1], [1])
    with pytest.raises(DataError, match="outside"):
        doublets_to_triplets([0, 5], [1, 2], 3)
    with pytest.raises(DataError, match="integers"):
        doublets_to_triplets(np.array([0.0]), np.array([1.0]))
    with pytest.raises(DataError, match="node columns"):
        orient_outwards([0], [1], np.zeros((2, 2)), R_SCALE, Z_SCALE)
    with pytest.raises(DataError, match="scores"):
        doublet_features(nodes_of([1, 2], [0, 0], [0, 0]), [0], [1], np.zeros(2), R_SCALE, Z_SCALE)
