"""Tiny bucketed toy-tracking batches and sources for the training tests."""

import pytest

from trkx_tf.graphs import synthetic
from trkx_tf.train.loop import InMemorySource

BUCKET = (140, 420)  # padded nodes, padded edges of the test bucket


def toy_batch(seed, n_particles=12, bucket=BUCKET):
    g = synthetic.toy_tracking_graph(n_particles, n_layers=5, seed=seed, phi_window=0.25)
    return synthetic.pad_batch(g, *bucket)


@pytest.fixture
def toy_batches():
    return [toy_batch(seed) for seed in range(4)]


@pytest.fixture
def toy_source(toy_batches):
    return InMemorySource(toy_batches[:3], shuffle=True, seed=1)


@pytest.fixture
def val_source(toy_batches):
    return InMemorySource(toy_batches[3:], shuffle=False)
