"""Pair mining of the embedding."""

import numpy as np

from trkx_tf.graphs import synthetic
from trkx_tf.train.pairs import mine_pairs, num_pairs


def test_pairs_fixed_size_labels_and_padding():
    g = synthetic.graph_batch(np.zeros((6, 2)), [0, 1, 2, 3], [1, 2, 3, 4], [1, 1, 0, 1])
    b = synthetic.pad_batch(g, 8, 6)  # two padded nodes, two padded edges
    emb = np.array([[0, 0], [0.1, 0], [5, 5], [5, 5.1], [9, 9], [0, 0.2], [0, 0], [0, 0]], np.float32)
    out = mine_pairs(b, emb, n_random=2, n_knn=1, rng=np.random.default_rng(0))
    P = num_pairs(8, 6, 2, 1)
    assert all(v.shape == (P,) for v in out.values())
    w, lab, i, j = out["pair_weights"], out["pair_labels"], out["pair_i"], out["pair_j"]
    # the edges come first with their labels; padded edges weigh 0
    np.testing.assert_array_equal(lab[:4], [1, 1, 0, 1])
    np.testing.assert_array_equal(w[:6], [1, 1, 1, 1, 0, 0])
    mined = slice(6, None)
    real = w[mined] > 0
    # mined pairs only join real nodes, never a node with itself
    assert (i[mined][real] < 6).all() and (j[mined][real] < 6).all() and (i[mined][real] != j[mined][real]).all()
    # a mined pair is true exactly when it is a true edge in either direction
    truth = {(0, 1), (1, 2), (3, 4)}
    for a, c, y in zip(i[mined][real], j[mined][real], lab[mined][real]):
        assert y == float((min(a, c), max(a, c)) in truth)
    # k-NN: node 0's nearest neighbour in embedding space is node 1, node 2's is node 3
    knn = list(zip(i[mined][real][-6:], j[mined][real][-6:]))
    assert (0, 1) in knn and (2, 3) in knn
