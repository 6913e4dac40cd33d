"""The padded batch seen from the models: validation, graph_nets view, and padding-safe aggregation.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``E``, ``F``, ``G``); ``H`` is a feature width.

Padding rule used by every model: a padded edge may point at any node (the batch contract lets it point at
node 0 when a bucket has no padded node), so aggregation never trusts the index of a padded edge. Padded edges
are sent to an extra, discarded segment ``N`` (:func:`masked_segment_ids`), which costs one integer ``where`` per
forward pass instead of a multiplication of every ``[E, H]`` message by the mask.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import graph_nets as gn
import tensorflow as tf

from trkx_tf.errors import DataError

_RANKS = {"nodes": 2, "senders": 1, "receivers": 1, "node_mask": 1, "edge_mask": 1, "edge_labels": 1,
          "edge_weights": 1, "n_node": 1, "n_edge": 1, "edges": 2}


def check_batch(batch: Mapping[str, tf.Tensor], keys: Sequence[str]) -> None:
    """Rejects a batch that lacks a key or has a tensor of the wrong rank, naming the field.

    Runs at trace time (static shapes), so it costs nothing per step.

    Args:
      batch: a padded batch (see :mod:`trkx_tf.graphs.batch`).
      keys: the keys the caller needs.

    Raises:
      DataError: a key is missing, a tensor has the wrong rank, or senders/receivers/masks disagree on E.
    """
    for key in keys:
        if key not in batch:
            raise DataError(f"batch is missing {key!r} (has {sorted(batch)})")
        rank = _RANKS.get(key)
        shape = batch[key].shape
        if rank is not None and shape.rank is not None and shape.rank != rank:
            raise DataError(f"batch[{key!r}] must have rank {rank}, got shape {shape}")
    edge_keys = [k for k in ("senders", "receivers", "edge_mask", "edge_labels", "edge_weights") if k in keys]
    sizes = {k: batch[k].shape[0] for k in edge_keys if batch[k].shape.rank}
    known = {v for v in sizes.values() if v is not None}
    if len(known) > 1:
        raise DataError(f"batch edge fields disagree on E: {sizes}")


def masked_segment_ids(indices: tf.Tensor, edge_mask: tf.Tensor, num_nodes: tf.Tensor) -> tf.Tensor:
    """Segment ids that send padded edges to the extra segment ``num_nodes``.

    Args:
      indices: [E] int32, senders or receivers.
      edge_mask: [E] float, 1 for real edges.
      num_nodes: scalar int32, N.

    Returns:
      [E] int32 ids in ``[0, N]``; aggregate with ``num_segments=N + 1`` and drop the last row.
    """
    return tf.where(edge_mask > 0, indices, tf.fill(tf.shape(indices), tf.cast(num_nodes, indices.dtype)))


def segment_sum(data: tf.Tensor, segment_ids: tf.Tensor, num_nodes: tf.Tensor,
                order: Optional[tf.Tensor] = None, keep_padding_row: bool = False) -> tf.Tensor:
    """Sums ``data`` rows per node, ignoring rows whose id is the padding segment ``num_nodes``.

    The gradient is a plain gather: every id is valid by construction, so TensorFlow's generic gradient
    (a gather plus a select that zeroes negative ids, one more pass over [E, H]) is not needed.

    Args:
      data: [E, H] (or [E]).
      segment_ids: [E] int32 from :func:`masked_segment_ids`, all in ``[0, N]``.
      num_nodes: scalar int32, N.
      order: optional [E] permutation sorting ``segment_ids``: the rows are permuted first and summed in order
        (faster on CPUs than adding at random rows).
      keep_padding_row: also return the padding segment's row (for callers that carry an extra node row).

    Returns:
      [N, H] (or [N]), or [N + 1, ...] with ``keep_padding_row``; same dtype as ``data``.
    """
    if order is not None:
        data, segment_ids = tf.gather(data, order), tf.gather(segment_ids, order)
    out = _segment_sum(data, segment_ids, num_nodes + 1)
    return out if keep_padding_row else out[:-1]


@tf.custom_gradient
def _segment_sum(data, segment_ids, num_segments):
    def grad(dy):
        return tf.gather(dy, segment_ids), None, None

    return tf.math.unsorted_segment_sum(data, segment_ids, num_segments), grad


def gather_rows(values: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """``values[indices]`` in float32, whatever the dtype of ``values``.

    Gathering in float32 keeps the gradient (a scatter-add onto the rows) in float32, where CPUs have a fast
    kernel and the sums of many edges keep their precision; the fused kernels read mixed dtypes for free.

    Args:
      values: [N, H] (per-node projections).
      indices: [E] int32, in ``[0, N)``.

    Returns:
      [E, H] float32.
    """
    return tf.gather(tf.cast(values, tf.float32), indices)


def to_graphs_tuple(batch: Mapping[str, tf.Tensor], nodes: Optional[tf.Tensor] = None,
                    edges: Optional[tf.Tensor] = None) -> gn.graphs.GraphsTuple:
    """A ``graph_nets`` GraphsTuple of a padded batch, padding gathered into one extra graph.

    graph_nets counts nodes with ``sum(n_node)``; a padded batch has ``N >= sum(n_node)`` rows, so the padding
    becomes one more graph (``n_node`` gains ``N - sum(n_node)``, ``n_edge`` gains ``E - sum(n_edge)``).

    Args:
      batch: padded batch with ``nodes, senders, receivers, n_node, n_edge``.
      nodes: [N, H] node features to use instead of ``batch["nodes"]``.
      edges: [E, H] edge features, or None.

    Returns:
      A GraphsTuple with ``G + 1`` graphs and no globals.
    """
    nodes = batch["nodes"] if nodes is None else nodes
    n_nodes = tf.shape(nodes)[0]
    n_edges = tf.shape(batch["senders"])[0]
    n_node = tf.concat([batch["n_node"], [n_nodes - tf.reduce_sum(batch["n_node"])]], 0)
    n_edge = tf.concat([batch["n_edge"], [n_edges - tf.reduce_sum(batch["n_edge"])]], 0)
    return gn.graphs.GraphsTuple(nodes=nodes, edges=edges, senders=batch["senders"], receivers=batch["receivers"],
                                 globals=None, n_node=n_node, n_edge=n_edge)
