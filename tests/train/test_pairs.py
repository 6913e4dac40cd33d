"""Pair mining of the embedding: positives from the true edges, random pairs, hard negatives within the margin."""

import numpy as np
import pytest

from trkx_tf.errors import ConfigError
from trkx_tf.graphs import synthetic
from trkx_tf.train.pairs import hard_negatives, mine_pairs, num_pairs

# six real nodes, two padded; edges 0-1, 1-2 true, 2-3 fake, 3-4 true but neutral (weight 0); two padded edges
EMB = np.array([[0, 0], [0.1, 0], [5, 5], [5, 5.1], [9, 9], [0, 0.2], [0, 0], [0, 0]], np.float32)


def _batch():
    g = synthetic.graph_batch(np.zeros((6, 2)), [0, 1, 2, 3], [1, 2, 3, 4], [1, 1, 0, 1], [1, 2, 1, 0])
    return synthetic.pad_batch(g, 8, 6)


def test_pairs_fixed_size_labels_and_padding():
    out = mine_pairs(_batch(), EMB, n_random=2, n_knn=1, rng=np.random.default_rng(0), radius=1.0)
    P = num_pairs(8, 6, 2, 1)
    assert all(v.shape == (P,) for v in out.values())
    w, lab, i, j = out["pair_weights"], out["pair_labels"], out["pair_i"], out["pair_j"]
    # the edges come first: positives keep their weights; the fake, the neutral and the padded edges weigh 0
    np.testing.assert_array_equal(lab[:4], [1, 1, 0, 1])
    np.testing.assert_array_equal(w[:6], [1, 2, 0, 0, 0, 0])
    mined = slice(6, None)
    real = w[mined] > 0
    # mined pairs only join real nodes, never a node with itself
    assert (i[mined][real] < 6).all() and (j[mined][real] < 6).all() and (i[mined][real] != j[mined][real]).all()
    # a mined pair is true exactly when it is a true edge in either direction, and weighs that edge's weight
    weight = {(0, 1): 1.0, (1, 2): 2.0}
    for a, c, y, ww in zip(i[mined], j[mined], lab[mined], w[mined]):
        key = (min(a, c), max(a, c))
        if key == (3, 4):  # a neutral true edge: weight 0
            assert ww == 0
        elif ww > 0:
            assert y == float(key in weight) and ww == weight.get(key, 1.0)


def test_candidate_negatives_keep_the_fake_edges():
    out = mine_pairs(_batch(), None, 0, 0, np.random.default_rng(0), candidate_negatives=True)
    np.testing.assert_array_equal(out["pair_weights"], [1, 2, 1, 0, 0, 0])
    np.testing.assert_array_equal(out["pair_labels"], [1, 1, 0, 1, 0, 0])


def test_hard_negatives_are_the_neighbours_within_the_margin():
    real = np.arange(6)
    i, j = hard_negatives(EMB, real, k=2, radius=0.25)
    got = set(zip(i.tolist(), j.tolist()))
    # 0-1 (0.1), 0-5 (0.2), 1-5 (0.22), 2-3 (0.1); node 4 has nobody within 0.25
    assert got == {(0, 1), (0, 5), (1, 0), (1, 5), (5, 0), (5, 1), (2, 3), (3, 2)}
    # at most k per node, the nearest
    i, j = hard_negatives(EMB, real, k=1, radius=0.25)
    assert dict(zip(i.tolist(), j.tolist())) == {0: 1, 1: 0, 5: 0, 2: 3, 3: 2}


def test_no_embeddings_no_hard_negatives():
    out = mine_pairs(_batch(), None, n_random=0, n_knn=3, rng=np.random.default_rng(0), radius=1.0)
    assert not out["pair_weights"][6:].any()
    out = mine_pairs(_batch(), EMB, n_random=0, n_knn=3, rng=np.random.default_rng(0), radius=1.0)
    mined = out["pair_weights"][6:] > 0
    pairs = set(zip(out["pair_i"][6:][mined].tolist(), out["pair_j"][6:][mined].tolist()))
    assert (2, 3) in pairs and (0, 5) in pairs and not any(4 in p for p in pairs)  # node 4 is alone


def test_bad_counts():
    with pytest.raises(ConfigError):
        mine_pairs(_batch(), EMB, -1, 1, np.random.default_rng(0))
    with pytest.raises(ConfigError):
        mine_pairs(_batch(), EMB, 1, 1, np.random.default_rng(0), radius=0.0)
