"""Seed extraction and seed metrics on hand-made events."""

import numpy as np
import pandas as pd
import pytest

from trkx_tf.errors import DataError
from trkx_tf.graphs.triplets import TripletGraph
from trkx_tf.reco.seeds import (Seeds, extract_seeds, read_seeds, seed_metrics, seed_particles, seed_ratios,
                                seeds_path, write_seeds)

# hits 0..11: particle 1 (pT 2 GeV) on hits 0-3, particle 2 (pT 1.5) on 4-6, particle 3 (pT 0.5) on 7-9,
# particle 4 (pT 3, only two hits) on 10-11; then a noise hit 12
HIT_PARTICLE = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 0])
PARTICLES = pd.DataFrame({"particle_id": [1, 2, 3, 4, 5], "px": [2.0, 0.0, 0.3, 3.0, 5.0],
                          "py": [0.0, 1.5, 0.4, 0.0, 0.0], "pz": [1.0, 1.0, 1.0, 1.0, 1.0]})


def test_metrics_by_hand():
    seeds = np.array([[0, 1, 2],    # particle 1: true
                      [1, 2, 3],    # particle 1 again: true
                      [4, 5, 0],    # mixes particles 2 and 1: fake
                      [7, 8, 9],    # particle 3 (below the cut): true, counts for purity only
                      [10, 11, 12]])  # noise: fake
    m = seed_metrics(seeds, HIT_PARTICLE, PARTICLES, pt_min=1.0)
    # selected: particles 1 and 2 (pT > 1, >= 3 hits); 4 has two hits; 5 left no hit; 3 is below the cut
    assert (m["particles"], m["seeded"], m["seeds"], m["true_seeds"]) == (2, 1, 5, 3)
    assert m["efficiency"] == pytest.approx(0.5) and m["purity"] == pytest.approx(0.6)
    np.testing.assert_array_equal(seed_particles(seeds, HIT_PARTICLE), [1, 1, 0, 3, 0])
    # every particle of the cut seeded once: efficiency 1
    m = seed_metrics(np.array([[0, 1, 2], [4, 5, 6]]), HIT_PARTICLE, PARTICLES, pt_min=1.0)
    assert m["efficiency"] == 1.0 and m["purity"] == 1.0
    # a lower cut brings particle 3 in
    m = seed_metrics(np.array([[0, 1, 2], [4, 5, 6]]), HIT_PARTICLE, PARTICLES, pt_min=0.4)
    assert (m["particles"], m["seeded"]) == (3, 2)


def test_no_seeds_and_ratios_of_summed_counts():
    m = seed_metrics(np.zeros((0, 3), np.int64), HIT_PARTICLE, PARTICLES, pt_min=1.0)
    assert m["seeds"] == 0 and m["purity"] is None and m["efficiency"] == 0.0
    total = {"seeds": 10, "true_seeds": 9, "particles": 4, "seeded": 4}
    assert seed_ratios(total) == {"efficiency": 1.0, "purity": 0.9}


def test_extract_seeds_and_round_trip(tmp_path):
    triplets = TripletGraph(np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([[0, 1, 2], [1, 2, 3], [4, 5, 0]]))
    hit_id = np.arange(13) + 1000
    seeds = extract_seeds(triplets, np.array([0.9, 0.4, 0.6]), hit_id, threshold=0.5)
    assert seeds.n_seed == 2
    np.testing.assert_array_equal(seeds.hit_id, [[1000, 1001, 1002], [1004, 1005, 1000]])
    path = write_seeds(seeds_path(tmp_path, 7), seeds)
    assert path.name == "event000000007-seeds.csv"
    back = read_seeds(path)
    np.testing.assert_array_equal(back.hit_id, seeds.hit_id)  # best score first: already in that order
    np.testing.assert_allclose(back.score, seeds.score)
    with pytest.raises(DataError, match="shape"):
        extract_seeds(triplets, np.array([0.9]), hit_id, 0.5)
    with pytest.raises(DataError, match="threshold"):
        extract_seeds(triplets, np.zeros(3), hit_id, 1.5)


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="outside"):
        seed_metrics(np.array([[0, 1, 99]]), HIT_PARTICLE, PARTICLES, 1.0)
    (tmp_path / "bad.csv").write_text("hit_id_1,score\n1,0.5\n")
    with pytest.raises(DataError, match="hit_id_2"):
        read_seeds(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="cannot read"):
        read_seeds(tmp_path / "missing.csv")
    assert list(Seeds(np.zeros((0, 3), np.int64), np.zeros(0, np.float32)).frame().columns) == [
        "hit_id_1", "hit_id_2", "hit_id_3", "score"]
