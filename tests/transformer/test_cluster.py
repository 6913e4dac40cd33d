"""EncReg track building on hand-made regressed values, submissions scored by the TrackML score."""

import numpy as np
import pandas as pd
import pytest

from trkx_tf.config import TransformerConfig
from trkx_tf.errors import ConfigError
from trkx_tf.trackml.score import score_event
from trkx_tf.transformer.cluster import (class_tracks, cluster_points, double_majority_efficiency,
                                         paper_efficiencies, regressed_tracks, submission)


def _tracks(rng, n_tracks=6, hits=8, spread=0.003):
    """Regressed values of hits of well separated tracks: each track's parameters plus small noise."""
    phi = np.linspace(-3, 3, n_tracks)
    centre = np.stack([np.sin(phi), np.cos(phi), np.linspace(0.4, 2.7, n_tracks), np.tile([-0.8, 0.8], n_tracks)[
        :n_tracks]], 1)
    pid = np.repeat(np.arange(1, n_tracks + 1), hits)
    values = centre[pid - 1] + rng.normal(0, spread, (len(pid), 4))
    return values, pid


@pytest.mark.parametrize("method", ["hdbscan", "dbscan"])
def test_separated_tracks_are_found_exactly(method):
    rng = np.random.default_rng(0)
    values, pid = _tracks(rng)
    cfg = TransformerConfig(cluster=method, min_cluster_size=3, eps=0.05)
    tracks = regressed_tracks(values, cfg)
    # a one-to-one map between tracks and particles
    assert len(np.unique(tracks)) == len(np.unique(pid))
    assert all(len(np.unique(tracks[pid == p])) == 1 for p in np.unique(pid))
    eff = paper_efficiencies(pid, tracks)
    assert eff["perfect_efficiency"] == eff["lhc_efficiency"] == 1.0
    assert double_majority_efficiency(pid, tracks) == 1.0
    truth = pd.DataFrame({"hit_id": np.arange(1, len(pid) + 1), "particle_id": pid,
                          "weight": np.full(len(pid), 1.0 / len(pid))})
    assert score_event(truth, submission(7, truth["hit_id"], tracks)) == pytest.approx(1.0)


def test_noise_points_become_their_own_tracks_and_merged_tracks_score_less():
    rng = np.random.default_rng(1)
    values, pid = _tracks(rng, n_tracks=3)
    outliers = np.array([[5.0, 5.0, 5.0, 5.0], [-5.0, -5.0, -5.0, -5.0]])
    tracks = cluster_points(np.concatenate([values, outliers]), "dbscan", 3, 0.05)
    assert tracks[-1] != tracks[-2] and np.sum(tracks == tracks[-1]) == 1 and tracks.min() >= 0
    # two tracks regressed onto the same point: one cluster, neither particle perfectly found
    values[pid == 2] = values[pid == 1]
    merged = cluster_points(values, "hdbscan", 3, 0.05)
    eff = paper_efficiencies(pid, merged)
    assert eff["perfect_efficiency"] == pytest.approx(1 / 3)
    assert double_majority_efficiency(pid, merged) == pytest.approx(1 / 3)


def test_paper_efficiencies_lhc_versus_perfect():
    pid = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    tracks = np.array([0, 0, 0, 1, 1, 1, 1, 1])  # track 1 holds 4 of particle 2 and 1 of particle 1: purity 0.8
    eff = paper_efficiencies(pid, tracks)
    assert eff["lhc_efficiency"] == 1.0 and eff["perfect_efficiency"] == 0.0


def test_class_tracks_and_bad_settings():
    assert class_tracks(np.array([7, 3, 7, 9])).tolist() == [1, 0, 1, 2]
    with pytest.raises(ConfigError):
        cluster_points(np.zeros((5, 4)), "kmeans")
    with pytest.raises(ConfigError):
        cluster_points(np.zeros((5, 4)), "dbscan", min_cluster_size=1)
