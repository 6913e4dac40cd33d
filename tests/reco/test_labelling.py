"""Track labelling on hand-made graphs: connected components and the walk-through."""

import numpy as np
import pytest

from trkx_tf.errors import DataError
from trkx_tf.reco.labelling import (connected_components_labels, label_tracks, submission_frame,
                                    walkthrough_labels)


def same_partition(a, b):
    """True when two labellings group the hits identically (ids may differ)."""
    a, b = np.asarray(a), np.asarray(b)
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


def test_cc_two_tracks_noise_and_threshold():
    # hits 0-1-2 (a track), 3-4 (a track), 5 (noise), 6 joined to 4 by a low-score edge
    s = np.array([0, 1, 3, 4])
    r = np.array([1, 2, 4, 6])
    sc = np.array([0.9, 0.8, 0.7, 0.2])
    lab = connected_components_labels(7, s, r, sc, threshold=0.5)
    assert lab.tolist() == [1, 1, 1, 2, 2, 3, 4]  # ids 1..K in first-hit order, singletons for 5 and 6
    # threshold is inclusive
    assert connected_components_labels(7, s, r, sc, threshold=0.2).tolist() == [1, 1, 1, 2, 2, 3, 2]
    # no scores: every edge kept; direction ignored
    assert connected_components_labels(3, np.array([2]), np.array([0])).tolist() == [1, 2, 1]


def test_cc_every_hit_one_track_and_no_edges():
    lab = connected_components_labels(5, np.zeros(0, int), np.zeros(0, int), np.zeros(0), 0.5)
    assert lab.tolist() == [1, 2, 3, 4, 5]
    assert connected_components_labels(0, np.zeros(0, int), np.zeros(0, int)).shape == (0,)


def test_cc_merges_through_a_fake_edge_and_walk_splits_it():
    # two parallel tracks 0->1->2->3 and 4->5->6->7 (key = position along the track), one fake edge 1->6
    key = np.array([0, 1, 2, 3, 0, 1, 2, 3], float)
    s = np.array([0, 1, 2, 4, 5, 6, 1])
    r = np.array([1, 2, 3, 5, 6, 7, 6])
    sc = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.6])
    assert len(set(connected_components_labels(8, s, r, sc, 0.5))) == 1
    lab = walkthrough_labels(8, s, r, sc, 0.5, key)
    assert same_partition(lab, [0, 0, 0, 0, 1, 1, 1, 1])


def test_walk_picks_best_continuation_and_orients_edges():
    # 0 -> 1 -> {2 (0.9), 3 (0.7) -> 4 -> 5}: the walk from 0 follows the best edge to 2 (although the other
    # branch is longer); 3 -> 4 -> 5 is a track of its own. Edges are given inwards: the order key orients them.
    key = np.array([1.0, 2.0, 3.0, 3.0, 4.0, 5.0])
    s = np.array([1, 2, 3, 4, 5])
    r = np.array([0, 1, 1, 3, 4])
    sc = np.array([0.95, 0.9, 0.7, 0.9, 0.9])
    assert same_partition(walkthrough_labels(6, s, r, sc, 0.5, key), [0, 0, 0, 1, 1, 1])
    # a branch of fewer than FRAGMENT_HITS hits is dissolved: its hits join the track they have edges to
    assert same_partition(walkthrough_labels(5, s[:4], r[:4], sc[:4], 0.5, key[:5]), [0, 0, 0, 0, 1])


def test_walk_siblings_follow_their_path():
    # three hits per layer on two middle layers, all-to-all between consecutive layers (the truth graph of overlaps)
    layers = [[0], [1, 2, 3], [4, 5, 6], [7], [8]]
    key = np.array([0, 1, 1, 1, 2, 2, 2, 3, 4], float)
    s, r = zip(*[(a, b) for la, lb in zip(layers[:-1], layers[1:]) for a in la for b in lb])
    lab = walkthrough_labels(9, np.array(s), np.array(r), np.ones(len(s)), 0.5, key)
    assert len(set(lab)) == 1


def test_walk_lone_hits_join_their_best_track():
    # a module overlap: 0 -> {1, 2} -> 3 -> 4 (1 and 2 on one layer); the path takes 1, hit 2 joins afterwards
    key = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    s = np.array([0, 0, 1, 2, 3])
    r = np.array([1, 2, 3, 3, 4])
    sc = np.array([0.9, 0.8, 0.9, 0.8, 0.9])
    assert same_partition(walkthrough_labels(5, s, r, sc, 0.5, key), [0, 0, 0, 0, 0])
    # a noise hit 5 with a fake edge into the track's third hit cannot steal the track's outer hits
    key2 = np.append(key, 2.5)
    s2, r2, sc2 = np.append(s, 5), np.append(r, 3), np.append(sc, 0.99)
    lab = walkthrough_labels(6, s2, r2, sc2, 0.5, key2)
    assert len(set(lab[[0, 1, 3, 4]])) == 1


def test_walk_leaves_simple_paths_alone():
    rng = np.random.default_rng(0)
    n = 30
    key = rng.permutation(n).astype(float)
    order = np.argsort(key)
    chains = np.split(order, [7, 15, 22])  # four tracks, hits ordered by key
    s = np.concatenate([c[:-1] for c in chains])
    r = np.concatenate([c[1:] for c in chains])
    sc = rng.uniform(0.5, 1.0, len(s))
    flip = rng.random(len(s)) < 0.5
    s, r = np.where(flip, r, s), np.where(flip, s, r)
    assert same_partition(walkthrough_labels(n, s, r, sc, 0.5, key), connected_components_labels(n, s, r, sc, 0.5))


def test_walk_refines_connected_components():
    rng = np.random.default_rng(1)
    n = 300
    s, r = rng.integers(0, n, 900), rng.integers(0, n, 900)
    sc = rng.random(900)
    key = rng.random(n)
    walk = walkthrough_labels(n, s, r, sc, 0.3, key)
    cc = connected_components_labels(n, s, r, sc, 0.3)
    assert walk.shape == (n,) and walk.min() == 1 and set(walk) == set(range(1, walk.max() + 1))
    assert len(set(zip(walk, cc))) == len(set(walk))  # every walked track lies inside one cc component
    assert walk.max() > cc.max()  # and random graphs branch, so there are more of them
    np.testing.assert_array_equal(walk, walkthrough_labels(n, s, r, sc, 0.3, key))  # deterministic


def test_label_tracks_dispatch_and_errors():
    s, r, sc = np.array([0]), np.array([1]), np.array([0.9])
    assert label_tracks("cc", 2, s, r, sc, 0.5).tolist() == [1, 1]
    assert label_tracks("walk", 2, s, r, sc, 0.5, np.array([0.0, 1.0])).tolist() == [1, 1]
    with pytest.raises(DataError, match="unknown method 'x'"):
        label_tracks("x", 2, s, r, sc, 0.5)
    with pytest.raises(DataError, match="order_key"):
        label_tracks("walk", 2, s, r, sc, 0.5)
    with pytest.raises(DataError, match=r"outside \[0, 2\)"):
        connected_components_labels(2, np.array([0]), np.array([2]), sc)
    with pytest.raises(DataError, match="NaN"):
        connected_components_labels(2, s, r, np.array([np.nan]))
    with pytest.raises(DataError, match="shape"):
        connected_components_labels(2, s, r, np.array([0.1, 0.2]))


def test_submission_frame():
    sub = submission_frame(7, np.array([10, 11, 12]), np.array([1, 1, 2]))
    assert list(sub.columns) == ["event_id", "hit_id", "track_id"]
    assert sub["event_id"].tolist() == [7, 7, 7] and sub["track_id"].tolist() == [1, 1, 2]
    with pytest.raises(DataError, match="more than once"):
        submission_frame(7, np.array([10, 10]), np.array([1, 2]))
