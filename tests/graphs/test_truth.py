"""Truth graph on a hand-made event, edge labels and weights."""

import numpy as np
import pandas as pd
import pytest

from trkx_tf.errors import DataError
from trkx_tf.graphs.truth import label_edges, pt_weight, true_edge_weights, truth_graph


def hand_made_event():
    """Particle 11 (pT 2): layers A, B (two overlapping hits), C. Particle 22 (pT 0.3), a looper from a displaced
    vertex: C, then B, then C again. Particle 33: one hit. Hit 9: noise. Rows are shuffled on purpose."""
    # hit_id: (x, y, z, volume, layer, particle)
    table = {
        5: (100.0, 0.0, 0.0, 8, 6, 11),    # 11, layer C
        1: (30.0, 0.0, 0.0, 8, 2, 11),     # 11, layer A
        3: (60.0, 1.0, 0.0, 8, 4, 11),     # 11, layer B (overlap 1)
        4: (61.0, -1.0, 0.0, 8, 4, 11),    # 11, layer B (overlap 2)
        6: (0.0, 100.0, 0.0, 8, 6, 22),    # 22 from vertex (0, 95, 0): first C (distance 5)
        7: (0.0, 60.0, 0.0, 8, 4, 22),     # 22: then B (distance 35)
        8: (0.0, -100.0, 0.0, 8, 6, 22),   # 22: C again, far (distance 195)
        2: (0.0, -30.0, 0.0, 8, 2, 33),    # 33: a single hit
        9: (0.0, 0.0, 500.0, 9, 2, 0),     # noise
    }
    ids = list(table)
    hits = pd.DataFrame({"hit_id": ids, "x": [table[i][0] for i in ids], "y": [table[i][1] for i in ids],
                         "z": [table[i][2] for i in ids], "volume_id": [table[i][3] for i in ids],
                         "layer_id": [table[i][4] for i in ids], "module_id": 1})
    truth = pd.DataFrame({"hit_id": ids[::-1], "particle_id": [table[i][5] for i in ids[::-1]],
                          "weight": [0.0 if table[i][5] == 0 else 0.1 for i in ids[::-1]]})
    particles = pd.DataFrame({"particle_id": [11, 22, 33], "vx": [0.0, 0.0, 0.0], "vy": [0.0, 95.0, 0.0],
                              "vz": [0.0, 0.0, 0.0], "px": [2.0, 0.3, 1.0], "py": [0.0, 0.0, 0.0]})
    return hits, particles, truth


def edges_by_hit_id(hits, graph):
    ids = hits["hit_id"].to_numpy()
    return sorted(zip(ids[graph.senders].tolist(), ids[graph.receivers].tolist()))


def test_truth_graph_edges_of_a_hand_made_event():
    hits, particles, truth = hand_made_event()
    g = truth_graph(hits, particles, truth)
    assert edges_by_hit_id(hits, g) == sorted([
        (1, 3), (1, 4), (3, 5), (4, 5),  # particle 11: overlaps on B each linked to A and C
        (6, 7), (7, 8),                  # particle 22: ordered by distance from ITS vertex, C visited twice
    ])
    ids = hits["hit_id"].to_numpy()
    pid_of = dict(zip(ids[g.senders].tolist(), g.particle_id.tolist()))
    assert pid_of[1] == 11 and pid_of[6] == 22
    np.testing.assert_allclose(sorted(set(g.pt.tolist())), [0.3, 2.0])


def test_noise_and_single_hits_have_no_edges():
    hits, particles, truth = hand_made_event()
    g = truth_graph(hits, particles, truth)
    ids = hits["hit_id"].to_numpy()
    touched = set(ids[g.senders].tolist()) | set(ids[g.receivers].tolist())
    assert 9 not in touched and 2 not in touched


def test_missing_particle_is_a_data_error():
    hits, particles, truth = hand_made_event()
    with pytest.raises(DataError, match="particle 22"):
        truth_graph(hits, particles[particles.particle_id != 22], truth)


def test_truth_must_cover_every_hit():
    hits, particles, truth = hand_made_event()
    with pytest.raises(DataError, match="rows for"):
        truth_graph(hits, particles, truth.iloc[1:])


def test_weights_modes_and_pt_cut():
    hits, particles, truth = hand_made_event()
    g = truth_graph(hits, particles, truth)
    np.testing.assert_array_equal(true_edge_weights(g, "uniform"), 1)
    np.testing.assert_allclose(true_edge_weights(g, "pt"), pt_weight(g.pt))
    assert pt_weight(np.array([0.1, 0.5, 1.75, 3.0, 10.0])).tolist() == pytest.approx([0.2, 0.2, 0.6, 1.0, 1.0])
    np.testing.assert_allclose(true_edge_weights(g, "hit").mean(), 1.0)
    w = true_edge_weights(g, "uniform", pt_cut=0.5)
    np.testing.assert_array_equal(w, np.where(g.pt < 0.5, 0.0, 1.0))


def test_label_edges_either_direction_and_neutral_low_pt():
    hits, particles, truth = hand_made_event()
    g = truth_graph(hits, particles, truth)
    row = {h: i for i, h in enumerate(hits["hit_id"])}
    cand = [(1, 3), (5, 4), (1, 5), (7, 6), (9, 1)]  # true, true reversed, fake (skips B), true low pT, noise
    s = np.array([row[a] for a, _ in cand])
    r = np.array([row[b] for _, b in cand])
    labels, weights, pt = label_edges(s, r, g, "uniform", pt_cut=0.5)
    assert labels.tolist() == [1, 1, 0, 1, 0]
    assert weights.tolist() == [1, 1, 1, 0, 1]  # the low-pT true edge is neutral, fake edges weigh 1
    np.testing.assert_allclose(pt, [2.0, 2.0, 0.0, 0.3, 0.0], rtol=1e-6)
    labels0, weights0, _ = label_edges(s, r, None)
    assert labels0.sum() == 0 and weights0.sum() == 0


@pytest.mark.shared_data
def test_truth_graph_of_real_event_1000(event1000):
    h, p, t = event1000["hits"], event1000["particles"], event1000["truth"]
    g = truth_graph(h, p, t)
    pid = t.set_index("hit_id").loc[h["hit_id"], "particle_id"].to_numpy()
    # every edge joins two hits of the same particle on different layers; noise is untouched
    assert np.all(pid[g.senders] == pid[g.receivers]) and np.all(pid[g.senders] != 0)
    layer = h["volume_id"].to_numpy() * 1000 + h["layer_id"].to_numpy()
    assert np.all(layer[g.senders] != layer[g.receivers])
    # a particle with k hits on k distinct layers has k - 1 edges: at least (hits - particles) edges overall
    n_real = int(np.sum(pid != 0))
    assert g.n_true >= n_real - len(np.unique(pid[pid != 0]))
