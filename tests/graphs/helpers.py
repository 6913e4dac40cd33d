"""Small random graphs for the shard and reader tests."""

import numpy as np

from trkx_tf.graphs.graph import EventGraph


def random_graph(n_node: int, n_edge: int, event_id: int = 1, sector: int = -1, n_features: int = 3,
                 seed: int = 0) -> EventGraph:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_edge).astype(np.uint8)
    return EventGraph(
        nodes=rng.normal(size=(n_node, n_features)).astype(np.float32),
        senders=rng.integers(0, n_node, n_edge).astype(np.int32),
        receivers=rng.integers(0, n_node, n_edge).astype(np.int32),
        edge_labels=labels,
        edge_weights=rng.uniform(0.1, 1.0, n_edge).astype(np.float32),
        edge_pt=(labels * rng.uniform(0.1, 5.0, n_edge)).astype(np.float32),
        hit_id=rng.permutation(np.arange(1, n_node + 1)).astype(np.int64),
        event_id=event_id, sector=sector,
    ).validate()
