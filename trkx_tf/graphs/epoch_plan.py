"""An epoch's plan: which graphs every rank reads at every step, and how one step's padded graphs become a batch
(:func:`assemble_batch`). Pure and deterministic; the readers that follow the plan are
:class:`trkx_tf.graphs.reader.ShardReader` and :class:`trkx_tf.graphs.mixed.MixedReader`.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`. A batch of bucket b with budget (Nb, Eb) holds
G = ``graphs_per_step`` graphs, so N = G·Nb nodes and E = G·Eb edges; a :class:`BucketShape` per bucket lets a
step function be compiled per bucket.

How an epoch is dealt (:func:`plan_epoch`), identically on every rank and without communication (everything
comes from the manifest, the seed and the epoch number):

1. The graphs of each bucket are shuffled (``numpy.random.default_rng([seed, epoch])``; in manifest order when
   ``shuffle`` is off) and cut into *global steps* of ``size × G`` graphs.
2. The remainder: the last global step of a bucket is filled up with *empty filler graphs* (every mask, label,
   weight and count 0, so they add nothing to a loss, gradient or metric; they only cost the padded compute).
   So every real graph is read exactly once per epoch, and a bucket with n graphs takes ceil(n / (size·G))
   steps on every rank.
3. Within a global step the real graphs, sorted by edge count, are dealt round-robin to the ranks, so each rank
   gets a similar amount of real work and the fillers spread out; all ranks run the same bucket at the same step.
4. The global steps of all buckets are shuffled together (kept in bucket order without ``shuffle``).

Every rank therefore runs ``steps_per_epoch = Σ_b ceil(n_b / (size·G))`` steps.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from trkx_tf.errors import ShardError
from trkx_tf.graphs.batch import batch_signature
from trkx_tf.graphs.features import EDGE_FEATURES

#: the graph index of an empty filler graph in a :class:`Step`
FILLER = -1


@dataclasses.dataclass(frozen=True)
class BucketShape:
    """The static shape of the batches of one bucket.

    Attributes:
      bucket: bucket index.
      n_nodes: N = G · node budget.
      n_edges: E = G · edge budget.
      n_features: F.
      n_graphs: G.
    """

    bucket: int
    n_nodes: int
    n_edges: int
    n_features: int
    n_graphs: int

    def signature(self) -> dict:
        """The ``tf.TensorSpec`` dict of this bucket's batches, ``edges`` included (imports TensorFlow)."""
        return batch_spec(self.n_nodes, self.n_edges, self.n_features, self.n_graphs)


@dataclasses.dataclass(frozen=True)
class Step:
    """One global step: a bucket and the graphs of every rank.

    Attributes:
      bucket: bucket index.
      graphs: [size, G] int64 graph indices (into the reader's graph list), ``FILLER`` (-1) for an empty filler.
    """

    bucket: int
    graphs: np.ndarray


def plan_epoch(
    bucket: np.ndarray,
    n_edge: np.ndarray,
    *,
    size: int,
    graphs_per_step: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
) -> list[Step]:
    """Deals one epoch's graphs to ranks and steps (see the module docstring).

    Args:
      bucket: [n_graphs] bucket of each graph.
      n_edge: [n_graphs] real edges of each graph (for balancing).
      size: number of ranks.
      graphs_per_step: G, graphs per rank and step.
      seed: the run's seed.
      epoch: the epoch number (a new shuffle each epoch).
      shuffle: shuffle graphs and steps; off: manifest order, buckets in order.

    Returns:
      The global steps, the same list on every rank.

    Raises:
      ShardError: size or graphs_per_step < 1.
    """
    if size < 1 or graphs_per_step < 1:
        raise ShardError(f"reader: need size >= 1 and graphs_per_step >= 1 (got {size}, {graphs_per_step})")
    bucket = np.asarray(bucket, np.int64)
    n_edge = np.asarray(n_edge, np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)])
    per_step = size * graphs_per_step
    steps = []
    for b in np.unique(bucket):
        members = np.flatnonzero(bucket == b)
        if shuffle:
            members = rng.permutation(members)
        n_steps = -(-len(members) // per_step)
        slots = np.full(n_steps * per_step, FILLER, np.int64)
        slots[: len(members)] = members
        for s in range(n_steps):
            chunk = slots[s * per_step:(s + 1) * per_step]
            real = chunk[chunk != FILLER]
            real = real[np.argsort(-n_edge[real], kind="stable")]
            chunk = np.concatenate([real, np.full(per_step - len(real), FILLER, np.int64)])
            # slot k goes to rank k % size: rank r gets slots r, r + size, ...
            steps.append(Step(int(b), chunk.reshape(graphs_per_step, size).T.copy()))
    if shuffle:
        steps = [steps[i] for i in rng.permutation(len(steps))]
    return steps


def assemble_batch(graphs: Sequence[Optional[dict]], node_budget: int, edge_budget: int, n_features: int,
                   extras: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Concatenates padded graphs of one bucket into a batch dict of :mod:`trkx_tf.graphs.batch`.

    Args:
      graphs: G per-graph dicts as :meth:`Shard.graph` returns them, or None for an empty filler.
      node_budget: Nb.
      edge_budget: Eb.
      n_features: F.
      extras: more per-graph datasets to pass through, concatenated (``hit_id``, ``edge_pt``: [N] / [E];
        ``event_id``, ``sector``: [G]).

    Returns:
      The batch: every key of ``BATCH_KEYS``, ``edges`` [E, D] float32 (the edge features of the shards; 0 for
      padding), + extras; N = G·Nb, E = G·Eb.
    """
    g = len(graphs)
    n_tot, e_tot = g * node_budget, g * edge_budget
    nodes = np.zeros((n_tot, n_features), np.float32)
    senders = np.zeros(e_tot, np.int32)
    receivers = np.zeros(e_tot, np.int32)
    labels = np.zeros(e_tot, np.float32)
    weights = np.zeros(e_tot, np.float32)
    edges = np.zeros((e_tot, len(EDGE_FEATURES)), np.float32)
    node_mask = np.zeros(n_tot, np.float32)
    edge_mask = np.zeros(e_tot, np.float32)
    n_node = np.zeros(g, np.int32)
    n_edge = np.zeros(g, np.int32)
    out_extra = {k: [] for k in extras}
    for i, d in enumerate(graphs):
        if d is None:
            for k in extras:
                out_extra[k].append(empty_extra(k, node_budget, edge_budget))
            continue
        n, e = int(d["n_node"]), int(d["n_edge"])
        n_node[i], n_edge[i] = n, e
        n0, e0 = i * node_budget, i * edge_budget
        nodes[n0:n0 + n] = d["nodes"][:n]
        np.add(d["senders"][:e], n0, out=senders[e0:e0 + e])
        np.add(d["receivers"][:e], n0, out=receivers[e0:e0 + e])
        labels[e0:e0 + e] = d["edge_labels"][:e]
        weights[e0:e0 + e] = d["edge_weights"][:e]
        edges[e0:e0 + e] = d["edges"][:e]
        node_mask[n0:n0 + n] = 1.0
        edge_mask[e0:e0 + e] = 1.0
        for k in extras:
            out_extra[k].append(np.atleast_1d(d[k]))
    # padded edges point at the batch's first padded node (0 when there is none)
    pad_node = next((i * node_budget + int(n_node[i]) for i in range(g) if n_node[i] < node_budget), 0)
    for i in range(g):
        e0 = i * edge_budget
        senders[e0 + n_edge[i]:e0 + edge_budget] = pad_node
        receivers[e0 + n_edge[i]:e0 + edge_budget] = pad_node
    batch = {
        "nodes": nodes, "senders": senders, "receivers": receivers, "node_mask": node_mask, "edge_mask": edge_mask,
        "edge_labels": labels, "edge_weights": weights, "n_node": n_node, "n_edge": n_edge, "edges": edges,
    }
    for k in extras:
        batch[k] = np.concatenate(out_extra[k]) if out_extra[k] else np.zeros(0)
    return batch


def batch_spec(n_nodes, n_edges, n_features: int, n_graphs: int) -> dict:
    """:func:`~trkx_tf.graphs.batch.batch_signature` plus the ``edges`` [E, D] features the reader adds."""
    import tensorflow as tf

    spec = batch_signature(n_nodes, n_edges, n_features, n_graphs)
    spec["edges"] = tf.TensorSpec([n_edges, len(EDGE_FEATURES)], tf.float32, name="edges")
    return spec


def empty_extra(name: str, node_budget: int, edge_budget: int) -> np.ndarray:
    """An empty filler graph's value of a per-graph extra dataset (:func:`assemble_batch`'s ``extras``).

    Raises:
      ShardError: an unknown extra dataset.
    """
    if name == "hit_id":
        return np.zeros(node_budget, np.int64)
    if name == "edge_pt":
        return np.zeros(edge_budget, np.float32)
    if name == "event_id":
        return np.full(1, -1, np.int64)
    if name == "sector":
        return np.full(1, -1, np.int32)
    raise ShardError(f"reader: unknown extra dataset {name!r} (hit_id, edge_pt, event_id, sector)")
