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
