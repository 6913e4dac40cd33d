"""Node features: scaled r, phi, z; optional cell-shape features."""

import numpy as np
import pandas as pd
import pytest

from trkx_tf.errors import DataError
from trkx_tf.graphs.features import CELL_FEATURES, feature_names, hit_features


def hits_frame():
    return pd.DataFrame({"hit_id": [1, 2, 3], "x": [100.0, 0.0, -30.0], "y": [0.0, 200.0, 0.0],
                         "z": [50.0, -1500.0, 0.0]})


def test_cylindrical_features_are_scaled():
    f = hit_features(hits_frame(), r_scale=1000.0, z_scale=1000.0)
    assert f.dtype == np.float32 and f.shape == (3, 3)
    np.testing.assert_allclose(f[:, 0], [0.1, 0.2, 0.03], rtol=1e-6)
    np.testing.assert_allclose(f[:, 1], [0.0, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(f[:, 2], [0.05, -1.5, 0.0], rtol=1e-6)
    assert feature_names(False) == ("r", "phi", "z")


def test_cell_features():
    cells = pd.DataFrame({"hit_id": [1, 1, 1, 3], "ch0": [10, 11, 12, 5], "ch1": [7, 7, 9, 5],
                          "value": [0.1, 0.2, 0.3, 0.05]})
    f = hit_features(hits_frame(), cells, with_cells=True)
    assert f.shape == (3, 3 + len(CELL_FEATURES))
    np.testing.assert_allclose(f[0, 3:], np.log1p([3, 100 * 0.6, 3, 3]), rtol=1e-5)
    np.testing.assert_array_equal(f[1, 3:], 0)  # no cells: zeros
    np.testing.assert_allclose(f[2, 3:], np.log1p([1, 5.0, 1, 1]), rtol=1e-5)


def test_cells_required_when_asked():
    with pytest.raises(DataError, match="no cells"):
        hit_features(hits_frame(), None, with_cells=True)


def test_cell_of_unknown_hit_is_an_error():
    cells = pd.DataFrame({"hit_id": [9], "ch0": [1], "ch1": [1], "value": [0.1]})
    with pytest.raises(DataError, match="hit_id 9"):
        hit_features(hits_frame(), cells, with_cells=True)


def test_edge_features_by_hand():
    from trkx_tf.graphs.features import EDGE_CLIP, EDGE_FEATURES, edge_features

    # hits (mm, rad): A r=100 phi=3.10 z=10; B r=200 phi=-3.10 z=30 (across the ±π seam); C r=200 phi=3.10 z=500
    r = np.array([100.0, 200.0, 200.0])
    phi = np.array([3.10, -3.10, 3.10])
    z = np.array([10.0, 30.0, 500.0])
    nodes = np.stack([r / 1000, phi / np.pi, z / 500], axis=1).astype(np.float32)  # z_scale 500 on purpose
    f = edge_features(nodes, np.array([0, 1, 2]), np.array([1, 2, 1]), r_scale=1000.0, z_scale=500.0)
    assert f.dtype == np.float32 and f.shape == (3, len(EDGE_FEATURES)) == (3, 6)
    dphi = 2 * np.pi - 6.20  # A -> B crosses the seam: +0.0832 rad, not -6.2
    np.testing.assert_allclose(f[0], [1.0, dphi / 0.1, 0.2, (np.arcsinh(0.15) - np.arcsinh(0.1)) / 0.1,
                                      (10 - 100 * 20 / 100) / 100, dphi / 100 * 1000], rtol=2e-4, atol=1e-5)
    # B -> C: same r (Δr = 0): the intercept and curvature saturate at the clip, every value stays finite
    assert f[1, 0] == 0 and abs(f[1, 4]) == EDGE_CLIP and abs(f[1, 5]) == EDGE_CLIP
    assert np.all(np.isfinite(f)) and np.all(np.abs(f) <= EDGE_CLIP)
    np.testing.assert_allclose(f[2, :3], -f[1, :3], atol=1e-6)  # reversed edge: differences change sign
    assert edge_features(nodes, np.zeros(0, int), np.zeros(0, int)).shape == (0, 6)


def test_edge_features_errors():
    from trkx_tf.graphs.features import edge_features

    with pytest.raises(DataError, match="node columns r, phi, z"):
        edge_features(np.zeros((3, 2), np.float32), np.array([0]), np.array([1]))
    with pytest.raises(DataError, match="outside"):
        edge_features(np.zeros((3, 3), np.float32), np.array([0]), np.array([3]))
