"""Bucket choice (padding target), assignment, and the oversize rule."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trkx_tf.errors import ConfigError
from trkx_tf.graphs.buckets import assign_buckets, choose_buckets, padding_overhead


def realistic_sizes(n=50, seed=0):
    rng = np.random.default_rng(seed)
    nodes = rng.normal(100_000, 12_000, n).astype(np.int64)
    edges = (nodes * rng.normal(9.0, 0.6, n)).astype(np.int64)
    return np.stack([nodes, edges], 1)


def test_chosen_buckets_meet_the_target():
    sizes = realistic_sizes()
    buckets = choose_buckets(sizes, target=1.10, max_buckets=8)
    a = assign_buckets(sizes, buckets)
    assert len(a.oversize) == 0
    ratio = a.overhead(sizes)["elements"]
    assert ratio <= 1.10
    # one global maximum would not do it
    one = choose_buckets(sizes, target=1.0, max_buckets=1)
    assert len(one) == 1 and assign_buckets(sizes, one).overhead(sizes)["elements"] > 1.10
    # the fewest buckets that meet the target: one fewer does not
    if len(buckets) > 1:
        fewer = choose_buckets(sizes, target=1.0, max_buckets=len(buckets) - 1)
        assert assign_buckets(sizes, fewer).overhead(sizes)["elements"] > 1.10


def test_each_graph_goes_to_the_smallest_bucket_it_fits():
    sizes = np.array([[10, 100], [20, 150], [15, 300]])
    a = assign_buckets(sizes, [[16, 160], [24, 320], [32, 640]])
    assert a.bucket.tolist() == [0, 1, 1]
    assert a.oversize.size == 0


def test_oversize_graph_gets_a_bucket_of_its_own():
    sizes = np.array([[10, 100], [50, 90], [40, 2000], [41, 2001]])
    a = assign_buckets(sizes, [[16, 160]], quantum=8)
    assert a.oversize.tolist() == [1, 2, 3]  # never dropped
    # sorted by node + edge budget; the two similar ones share one bucket chosen for the oversize graphs
    assert a.buckets.tolist() == [[56, 96], [16, 160], [48, 2008]]
    assert a.bucket.tolist() == [1, 0, 2, 2]
    for (n, e), b in zip(sizes, a.bucket):
        assert n <= a.buckets[b][0] and e <= a.buckets[b][1]


def test_padding_overhead_counts():
    p = padding_overhead(np.array([[10, 90], [5, 45]]), np.array([[10, 90]]), np.array([0, 0]))
    assert p["real_elements"] == 150 and p["padded_elements"] == 200
    assert p["elements"] == pytest.approx(200 / 150) and p["nodes"] == pytest.approx(20 / 15)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        choose_buckets(np.array([[1, 2]]), target=0.5)
    with pytest.raises(ConfigError):
        assign_buckets(np.array([[1, 2, 3]]), [[4, 4]])
    with pytest.raises(ConfigError, match="positive"):
        assign_buckets(np.array([[1, 2]]), [[0, 4]])
    assert choose_buckets(np.zeros((0, 2), np.int64)).shape == (0, 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 50000)), min_size=1, max_size=700),
       st.integers(1, 6))
def test_every_graph_fits_its_bucket(sizes, max_buckets):
    sizes = np.array(sizes, np.int64)
    buckets = choose_buckets(sizes, target=1.05, max_buckets=max_buckets, quantum=8)
    assert 1 <= len(buckets) <= max_buckets
    a = assign_buckets(sizes, buckets)
    assert a.oversize.size == 0
    budget = a.buckets[a.bucket]
    assert np.all(sizes <= budget)
    assert np.all(budget % 8 == 0)


def test_dynamic_programme_finds_the_best_contiguous_cut():
    sizes = realistic_sizes(n=40, seed=3)
    got = assign_buckets(sizes, choose_buckets(sizes, target=1.0, max_buckets=2, quantum=1)).overhead(sizes)
    order = np.lexsort((sizes[:, 0], sizes[:, 1]))
    s = sizes[order]
    best = min(
        (cut * (s[:cut, 0].max() + s[:cut, 1].max()) + (len(s) - cut) * (s[cut:, 0].max() + s[cut:, 1].max()))
        for cut in range(1, len(s))
    )
    assert got["padded_elements"] <= best
