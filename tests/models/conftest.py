"""Tiny hand-made padded batches for the model tests (numpy, see trkx_tf.graphs.synthetic)."""

import numpy as np
import pytest

from trkx_tf.graphs import synthetic


def as_tensors(batch):
    import tensorflow as tf

    return {k: tf.constant(v) for k, v in batch.items()}


@pytest.fixture
def two_graphs():
    """Two small graphs in one unpadded batch (25 + 18 nodes, 70 + 40 edges, F = 3)."""
    return synthetic.concat_batches([synthetic.random_graph(25, 70, 3, seed=1),
                                     synthetic.random_graph(18, 40, 3, seed=2)])


@pytest.fixture
def padded_variants(two_graphs):
    """The same batch unpadded, padded with padded nodes, and padded without (padded edges -> node 0)."""
    n, e = two_graphs["nodes"].shape[0], two_graphs["senders"].shape[0]
    with_nodes = synthetic.pad_batch(two_graphs, n + 6, e + 9)
    rng = np.random.default_rng(5)
    with_nodes["nodes"][n:] = rng.normal(size=(6, 3))  # padding need not be zero to be ignored
    no_nodes = synthetic.pad_batch(two_graphs, n, e + 9)
    assert (no_nodes["senders"][e:] == 0).all()
    return two_graphs, with_nodes, no_nodes


@pytest.fixture(params=["native", "xla"])
def kernel_backend(request, monkeypatch):
    """Runs a test with the native CPU kernels (trkx_tf.models.native) and again with the XLA kernels."""
    monkeypatch.setenv("TRKX_NATIVE_OPS", "1" if request.param == "native" else "0")
    if request.param == "native":
        from trkx_tf.models import native

        assert native.ops() is not None, "the native kernels did not build (see the warning above)"
    return request.param
