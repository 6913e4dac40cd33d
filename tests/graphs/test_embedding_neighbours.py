"""The embedding builder's neighbour search and radius graph on tiny hand-made points (every backend installed)."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from trkx_tf.errors import ConfigError
from trkx_tf.graphs.candidates import EmbeddingBuilder
from trkx_tf.graphs.neighbours import SEARCHES, neighbours, radius_graph

MODULES = {"kdtree": "scipy", "faiss": "faiss", "hnswlib": "hnswlib"}
INSTALLED = [s for s in SEARCHES if importlib.util.find_spec(MODULES[s]) is not None]

# a line of points 0.1 apart, and one far away
LINE = np.array([[0.0, 0], [0.1, 0], [0.2, 0], [0.3, 0], [5, 5]], np.float32)


def _brute(points, radius, k):
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    pairs = set()
    for a in range(len(points)):
        near = [b for b in np.argsort(d[a], kind="stable")[:k] if d[a, b] <= radius]
        pairs |= {(min(a, b), max(a, b)) for b in near}
    return pairs


@pytest.mark.parametrize("search", INSTALLED)
def test_radius_graph_by_hand(search):
    i, j = radius_graph(LINE, 0.15, 8, search)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 2), (2, 3)]
    i, j = radius_graph(LINE, 0.25, 8, search)
    assert set(zip(i.tolist(), j.tolist())) == {(0, 1), (1, 2), (2, 3), (0, 2), (1, 3)}
    # one neighbour each: the union of the nearest-neighbour choices (ties broken either way)
    i, j = radius_graph(LINE, 0.25, 1, search)
    assert len(i) >= 2 and set(zip(i.tolist(), j.tolist())) <= {(0, 1), (1, 2), (2, 3)}


@pytest.mark.parametrize("search", [s for s in INSTALLED if s != "hnswlib"])  # hnswlib is approximate
def test_exact_searches_match_brute_force_in_chunks(search):
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 1, (300, 3)).astype(np.float32)
    for k in (3, 50):
        i, j = radius_graph(pts, 0.12, k, search, chunk=37)
        assert set(zip(i.tolist(), j.tolist())) == _brute(pts, 0.12, k)
        assert (i < j).all() and np.all(np.diff(i * 300 + j) > 0)


def test_neighbours_directed_capped_and_grouped():
    i, j = neighbours(LINE, 2, 0.25, chunk=2)
    assert np.all(np.diff(i) >= 0) and (i != j).all()
    assert np.bincount(i, minlength=5).tolist() == [2, 2, 2, 2, 0]
    assert radius_graph(LINE[:1], 1.0, 4)[0].size == 0


def test_bad_arguments():
    with pytest.raises(ConfigError):
        neighbours(LINE, 0, 1.0)
    with pytest.raises(ConfigError):
        neighbours(LINE, 2, 0.0)
    with pytest.raises(ConfigError):
        neighbours(LINE, 2, 1.0, search="annoy")


def test_embedding_builder_orients_outwards():
    hits = pd.DataFrame({"hit_id": np.arange(1, 5), "x": [90.0, 60, 30, 500], "y": 0.0, "z": 0.0})
    # in the embedding, hit 3 is near nobody; hits 0-1 and 1-2 are within the radius, 0-2 is not
    builder = EmbeddingBuilder(lambda nodes: np.array([[0.2], [0.1], [0.0], [9.0]], np.float32), 0.15, 4)
    s, r = builder.build(hits, np.zeros((4, 3), np.float32))
    # edges point from the hit nearer the origin to the farther one
    assert sorted(zip(s.tolist(), r.tolist())) == [(1, 0), (2, 1)]
