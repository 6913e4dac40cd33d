"""Training pairs of the metric-learning embedding, mined on the host with numpy and scipy.

Three kinds of pairs per batch, concatenated into fixed-size arrays (so the step function keeps one input
signature per bucket):

1. the batch's edges (true-neighbour pairs with label 1, and the fake candidate edges with label 0), with their
   loss weights;
2. ``n_random`` random partners per real hit;
3. ``n_knn`` nearest neighbours per real hit in the current embedding space (scipy ``cKDTree``): the hard
   negatives (and the true neighbours the model already places close).

Mined pairs are labelled true when they are a true edge of the batch (in either direction). Mining runs over
all real hits of the batch: with several graphs per batch, cross-event pairs are legitimate negatives.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``E``); ``P = E + (n_random + n_knn) * N`` pairs.
"""

from __future__ import annotations

import numpy as np

from trkx_tf.errors import ConfigError

PAIR_KEYS = ("pair_i", "pair_j", "pair_labels", "pair_weights")


def num_pairs(n_nodes: int, n_edges: int, n_random: int, n_knn: int) -> int:
    """P, the fixed pair count of a bucket with N nodes and E edges."""
    return n_edges + (n_random + n_knn) * n_nodes


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return lo * n + hi


def mine_pairs(batch: dict, embeddings: np.ndarray, n_random: int, n_knn: int,
               rng: np.random.Generator) -> dict:
    """The training pairs of one padded batch.

    Args:
      batch: padded batch (numpy) with ``senders, receivers, edge_labels, edge_weights, edge_mask, node_mask``.
      embeddings: [N, D] current embeddings of the batch's nodes (for the k-NN pairs).
      n_random: random partners per real node (>= 0).
      n_knn: nearest neighbours per real node (>= 0).
      rng: numpy generator (seed it from the epoch and batch position for reproducible training).

    Returns:
      ``{"pair_i", "pair_j"}`` [P] int32, ``{"pair_labels", "pair_weights"}`` [P] float32; padding pairs are
      ``(0, 0)`` with weight 0.

    Raises:
      ConfigError: ``n_random`` or ``n_knn`` is negative.
    """
    if n_random < 0 or n_knn < 0:
        raise ConfigError(f"pair counts must be >= 0 (got n_random={n_random}, n_knn={n_knn})")
    senders = np.asarray(batch["senders"], np.int64)
    receivers = np.asarray(batch["receivers"], np.int64)
    edge_valid = np.asarray(batch["edge_mask"]) > 0
    labels = np.asarray(batch["edge_labels"], np.float32)
    n = int(np.asarray(batch["node_mask"]).shape[0])
    real = np.flatnonzero(np.asarray(batch["node_mask"]) > 0)
    true_keys = np.unique(_pair_keys(senders[edge_valid & (labels > 0.5)], receivers[edge_valid & (labels > 0.5)], n))

    pi = [senders]
    pj = [receivers]
    pl = [labels * edge_valid]
    pw = [np.asarray(batch["edge_weights"], np.float32) * edge_valid]
    slots = (n_random + n_knn) * n
    mi, mj = [], []
    if real.size >= 2:
        if n_random:
            a = np.repeat(real, n_random)
            b = real[rng.integers(0, real.size, a.size)]
            mi.append(a)
            mj.append(b)
        if n_knn:
            from scipy.spatial import cKDTree  # lazy: only the embedding needs scipy

            k = min(n_knn + 1, real.size)
            _, idx = cKDTree(np.asarray(embeddings)[real]).query(np.asarray(embeddings)[real], k=k)
            idx = np.asarray(idx).reshape(real.size, k)[:, 1:]  # drop the hit itself
            mi.append(np.repeat(real, idx.shape[1]))
            mj.append(real[idx.reshape(-1)])
    mi = np.concatenate(mi) if mi else np.zeros(0, np.int64)
    mj = np.concatenate(mj) if mj else np.zeros(0, np.int64)
    keep = mi != mj
    mi, mj = mi[keep], mj[keep]
    mined_labels = np.isin(_pair_keys(mi, mj, n), true_keys).astype(np.float32)
    pad = slots - mi.size
    pi += [mi, np.zeros(pad, np.int64)]
    pj += [mj, np.zeros(pad, np.int64)]
    pl += [mined_labels, np.zeros(pad, np.float32)]
    pw += [np.ones(mi.size, np.float32), np.zeros(pad, np.float32)]
    return {
        "pair_i": np.concatenate(pi).astype(np.int32),
        "pair_j": np.concatenate(pj).astype(np.int32),
        "pair_labels": np.concatenate(pl).astype(np.float32),
        "pair_weights": np.concatenate(pw).astype(np.float32),
    }
