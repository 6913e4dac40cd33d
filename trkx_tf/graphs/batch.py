"""The padded graph batch: the one in-memory contract between the shard reader and the models.

Shape vocabulary, used in every docstring of the toolkit; each letter means one thing:

=============  ===========================================================================================
``n_node``     real nodes (hits) of one graph or event
``n_edge``     real edges of one graph or event
``N``          padded nodes of a batch (its bucket's node budget × graphs)
``E``          padded edges of a batch (its bucket's edge budget × graphs)
``Nb``, ``Eb`` one graph's node and edge budget in its bucket (the shards' per-graph rows)
``G``          graphs in a batch (or in a shard)
``F``          node features (:func:`trkx_tf.graphs.features.feature_names`)
``A``          edge features (``A`` = 6, :data:`trkx_tf.graphs.features.EDGE_FEATURES`)
``H``          hidden width of a model's layers
``T``          message-passing steps of the Interaction Network
``B``          rows of a dense layer's input (``N`` or ``E``: whatever a layer is applied to)
``D``          the embedding's dimension (:mod:`trkx_tf.models.embedding`)
``P``          training pairs of the embedding (:mod:`trkx_tf.train.pairs`)
``R``          replicas per process (a stacked batch is ``[R] + shape``)
``K``, ``L``   connected module pairs and layer pairs of a module map (:mod:`trkx_tf.graphs.module_map`)
``U``          detector modules with hits (:mod:`trkx_tf.graphs.module_map`)
=============  ===========================================================================================

Counts that are not dimensions of tensors keep their names (``n_buckets``, ``n_true``).

A batch is a dict of tensors (or numpy arrays) with static shapes fixed by its bucket:

=================  ==============  =========================================================================
key                shape / dtype   meaning
=================  ==============  =========================================================================
``nodes``          [N, F] float32  node (hit) features; padded rows are 0
``senders``        [E] int32       source node of each edge, an index into ``nodes``; padded edges point at a
                                   padded node (or 0 when there is none), never outside [0, N)
``receivers``      [E] int32       target node of each edge, same rules
``node_mask``      [N] float32     1 for real nodes, 0 for padding
``edge_mask``      [E] float32     1 for real edges, 0 for padding
``edge_labels``    [E] float32     1 for true edges, 0 for fake edges and padding
``edge_weights``   [E] float32     per-edge loss weight (0 for padding and for neutral edges)
``n_node``         [G] int32       real node count of each graph
``n_edge``         [G] int32       real edge count of each graph
``edges``          [E, A] float32  edge features (the shards' ``edges``; 0 for padding); added by the reader
                                   and the scorers for models that use them, not in :data:`BATCH_KEYS`
=================  ==============  =========================================================================

Graphs of one bucket are concatenated along the node and edge axes; a graph's edges index the batch's nodes.
"""

from __future__ import annotations

BATCH_KEYS = (
    "nodes", "senders", "receivers", "node_mask", "edge_mask", "edge_labels", "edge_weights", "n_node", "n_edge",
)


def batch_signature(n_nodes: int, n_edges: int, n_features: int, n_graphs: int = 1) -> dict:
    """The ``tf.TensorSpec`` of every key of a padded batch of one bucket.

    Args:
      n_nodes: N, padded nodes of the batch.
      n_edges: E, padded edges of the batch.
      n_features: F, node features.
      n_graphs: G, graphs in the batch.

    Returns:
      A dict with the keys of :data:`BATCH_KEYS`, suitable as a ``tf.function`` input signature.
    """
    import tensorflow as tf  # lazy: the numpy side of the toolkit (shard writing) never needs TensorFlow

    f32, i32 = tf.float32, tf.int32
    return {
        "nodes": tf.TensorSpec([n_nodes, n_features], f32, name="nodes"),
        "senders": tf.TensorSpec([n_edges], i32, name="senders"),
        "receivers": tf.TensorSpec([n_edges], i32, name="receivers"),
        "node_mask": tf.TensorSpec([n_nodes], f32, name="node_mask"),
        "edge_mask": tf.TensorSpec([n_edges], f32, name="edge_mask"),
        "edge_labels": tf.TensorSpec([n_edges], f32, name="edge_labels"),
        "edge_weights": tf.TensorSpec([n_edges], f32, name="edge_weights"),
        "n_node": tf.TensorSpec([n_graphs], i32, name="n_node"),
        "n_edge": tf.TensorSpec([n_graphs], i32, name="n_edge"),
    }
