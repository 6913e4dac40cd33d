"""Training pairs of the metric-learning embedding, mined on the host with numpy (and a neighbour search).

Three kinds of pairs per batch, concatenated into fixed-size arrays (so the step function keeps one input
signature per bucket):

1. the batch's true edges (the positives, label 1, with their loss weights; neutral true edges weigh 0). The
   fake candidate edges of the shards weigh 0 unless ``candidate_negatives`` (they are ~30 per true edge in a
   module-map graph and would swamp the positives);
2. ``n_random`` random partners per real hit;
3. hard negatives: the at most ``n_knn`` nearest neighbours of each real hit within ``radius`` (the hinge
   margin) in the current embedding space (:func:`trkx_tf.graphs.neighbours.neighbours`). Farther pairs carry
   no hinge loss, so they are not mined.

A mined pair is labelled true when it is a true edge of the batch (either direction) and weighs that edge's
weight (0 for a neutral one); other mined pairs weigh 1. Mining runs over all real hits of the batch: with
several graphs per batch, cross-event pairs are legitimate negatives.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``E``); ``P = E + (n_random + n_knn) * N`` pairs.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from trkx_tf.errors import ConfigError
from trkx_tf.graphs.neighbours import neighbours

PAIR_KEYS = ("pair_i", "pair_j", "pair_labels", "pair_weights")


def num_pairs(n_nodes: int, n_edges: int, n_random: int, n_knn: int) -> int:
    """P, the fixed pair count of a bucket with N nodes and E edges."""
    return n_edges + (n_random + n_knn) * n_nodes


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return lo * n + hi


def hard_negatives(embeddings: np.ndarray, nodes: np.ndarray, k: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The hard-negative candidates: each node's at most ``k`` nearest other nodes within ``radius``.

    Args:
      embeddings: [N, D] embeddings.
      nodes: [n] int64 the rows to mine among (the real nodes).
      k: neighbours per node (>= 1).
      radius: the distance cut (the hinge margin).

    Returns:
      ``(i, j)``: [m] int64 rows of ``embeddings`` (both in ``nodes``, i != j).
    """
    i, j = neighbours(np.asarray(embeddings)[nodes], k, radius)
    return nodes[i], nodes[j]


def mine_pairs(batch: dict, embeddings: Optional[np.ndarray], n_random: int, n_knn: int,
               rng: np.random.Generator, radius: float = np.inf, candidate_negatives: bool = False) -> dict:
    """The training pairs of one padded batch.

    Args:
      batch: padded batch (numpy) with ``senders, receivers, edge_labels, edge_weights, edge_mask, node_mask``.
      embeddings: [N, D] current embeddings of the batch's nodes, or None: no hard negatives this time (their
        slots are padding; e.g. the random-pairs-only first epoch).
      n_random: random partners per real node (>= 0).
      n_knn: hard negatives per real node (>= 0).
      rng: numpy generator (seed it from the epoch and batch position for reproducible training).
      radius: hard negatives are the nearest neighbours within this distance (the hinge margin; > 0).
      candidate_negatives: also train on the batch's fake edges (label 0, their edge weights).

    Returns:
      ``{"pair_i", "pair_j"}`` [P] int32, ``{"pair_labels", "pair_weights"}`` [P] float32; padding pairs are
      ``(0, 0)`` with weight 0.

    Raises:
      ConfigError: ``n_random`` or ``n_knn`` is negative, or ``radius <= 0``.
    """
    if n_random < 0 or n_knn < 0 or not radius > 0:
        raise ConfigError(f"pair mining needs n_random, n_knn >= 0 and radius > 0 "
                          f"(got {n_random}, {n_knn}, {radius})")
    senders = np.asarray(batch["senders"], np.int64)
    receivers = np.asarray(batch["receivers"], np.int64)
    edge_valid = np.asarray(batch["edge_mask"]) > 0
    labels = np.asarray(batch["edge_labels"], np.float32) * edge_valid
    weights = np.asarray(batch["edge_weights"], np.float32) * edge_valid
    n = int(np.asarray(batch["node_mask"]).shape[0])
    real = np.flatnonzero(np.asarray(batch["node_mask"]) > 0)
    is_true = labels > 0.5
    true_keys = _pair_keys(senders[is_true], receivers[is_true], n)
    order = np.argsort(true_keys, kind="stable")
    true_keys, true_w = true_keys[order], weights[is_true][order]

    pi, pj = [senders], [receivers]
    pl = [labels]
    pw = [weights if candidate_negatives else weights * is_true]
    mi, mj = [], []
    if real.size >= 2:
        if n_random:
            a = np.repeat(real, n_random)
            mi.append(a)
            mj.append(real[rng.integers(0, real.size, a.size)])
        if n_knn and embeddings is not None and np.isfinite(radius):
            a, b = hard_negatives(embeddings, real, n_knn, radius)
            mi.append(a)
            mj.append(b)
    mi = np.concatenate(mi) if mi else np.zeros(0, np.int64)
    mj = np.concatenate(mj) if mj else np.zeros(0, np.int64)
    keep = mi != mj
    mi, mj = mi[keep], mj[keep]
    keys = _pair_keys(mi, mj, n)
    pos = np.minimum(np.searchsorted(true_keys, keys), max(len(true_keys) - 1, 0))
    hit = (true_keys[pos] == keys) if len(true_keys) else np.zeros(len(keys), bool)
    mined_labels = hit.astype(np.float32)
    mined_weights = np.where(hit, true_w[pos] if len(true_keys) else 0.0, 1.0).astype(np.float32)
    pad = (n_random + n_knn) * n - mi.size
    pi += [mi, np.zeros(pad, np.int64)]
    pj += [mj, np.zeros(pad, np.int64)]
    pl += [mined_labels, np.zeros(pad, np.float32)]
    pw += [mined_weights, np.zeros(pad, np.float32)]
    return {
        "pair_i": np.concatenate(pi).astype(np.int32),
        "pair_j": np.concatenate(pj).astype(np.int32),
        "pair_labels": np.concatenate(pl).astype(np.float32),
        "pair_weights": np.concatenate(pw).astype(np.float32),
    }
