"""Padding budgets: size buckets chosen from the distribution of graph sizes.

A *bucket* is a budget ``(node_budget, edge_budget)``; every graph of a bucket is padded to exactly that many
nodes and edges, so a step function compiled once per bucket sees one static shape. A graph *fits* a bucket when
``n_node <= node_budget`` and ``n_edge <= edge_budget``; it goes to the smallest bucket (by node + edge budget)
it fits.

*Elements* are node rows plus edge rows. The padding overhead of a set of graphs is
``Σ (node_budget + edge_budget) / Σ (n_node + n_edge)`` over the graphs, each with its bucket's budget; the
target (``graph.bucket_overhead``) is at most 1.10.

Choosing buckets (:func:`choose_buckets`): graphs are sorted by (n_edge, n_node) and cut into K contiguous groups
by dynamic programming that minimises the padded elements; each group's budget is its largest n_node and
n_edge rounded up to a multiple of ``quantum``. The smallest K (up to ``max_buckets``) that meets the target is
taken.

The oversize rule (:func:`assign_buckets`): with given budgets (``graph.buckets``), graphs that fit none get
buckets of their own, chosen for them alone by :func:`choose_buckets` (same target); they are never dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from trkx_tf.config import GraphConfig, schema_default
from trkx_tf.errors import ConfigError

_MAX_BLOCKS = 384  # the DP works on at most this many blocks of size-sorted graphs


def round_up(x: np.ndarray | int, quantum: int) -> np.ndarray:
    """x rounded up to a multiple of quantum (at least quantum)."""
    x = np.asarray(x, np.int64)
    return np.maximum(-(-x // quantum) * quantum, quantum)


@dataclasses.dataclass(frozen=True)
class Assignment:
    """Graphs assigned to buckets.

    Attributes:
      buckets: [B, 2] int64 budgets (node_budget, edge_budget), sorted by node + edge budget.
      bucket: [n_graphs] int64 bucket index of each graph.
      oversize: indices of graphs that fitted no given bucket and got one of their own.
    """

    buckets: np.ndarray
    bucket: np.ndarray
    oversize: np.ndarray

    def overhead(self, sizes: np.ndarray) -> dict:
        """Padding overhead of these graphs (see :func:`padding_overhead`)."""
        return padding_overhead(sizes, self.buckets, self.bucket)


def padding_overhead(sizes: np.ndarray, buckets: np.ndarray, bucket: np.ndarray) -> dict:
    """Padded over real elements.

    Args:
      sizes: [n_graphs, 2] (n_node, n_edge) of each graph.
      buckets: [B, 2] budgets.
      bucket: [n_graphs] bucket of each graph.

    Returns:
      ``{"elements": ratio, "nodes": ratio, "edges": ratio, "real_elements": int, "padded_elements": int}``
      (ratios are 1.0 when there is nothing).
    """
    sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
    padded = np.asarray(buckets, np.int64).reshape(-1, 2)[np.asarray(bucket, np.int64)] if len(sizes) else sizes
    real_n, real_e = sizes.sum(0) if len(sizes) else (0, 0)
    pad_n, pad_e = padded.sum(0) if len(sizes) else (0, 0)

    def ratio(a, b):
        return float(a) / float(b) if b else 1.0

    return {
        "elements": ratio(pad_n + pad_e, real_n + real_e), "nodes": ratio(pad_n, real_n),
        "edges": ratio(pad_e, real_e), "real_elements": int(real_n + real_e), "padded_elements": int(pad_n + pad_e),
    }


def _validate_sizes(sizes: np.ndarray) -> np.ndarray:
    sizes = np.asarray(sizes, np.int64)
    if sizes.ndim != 2 or sizes.shape[1] != 2 or (len(sizes) and sizes.min() < 0):
        raise ConfigError(f"graph sizes: expected [n_graphs, 2] non-negative (n_node, n_edge), got {sizes.shape}")
    return sizes


def choose_buckets(sizes: np.ndarray, target: float = schema_default(GraphConfig, "bucket_overhead"),
                   max_buckets: int = schema_default(GraphConfig, "max_buckets"), quantum: int = 8) -> np.ndarray:
    """Budgets for a set of graphs: the fewest buckets whose padding overhead is within target.

    Args:
      sizes: [n_graphs, 2] (n_node, n_edge).
      target: wanted padded/real elements (>= 1).
      max_buckets: at most this many buckets (the best K <= max_buckets is taken when none meets the target).
      quantum: budgets are multiples of it.

    Returns:
      [B, 2] int64 budgets, sorted by node + edge budget; every graph fits the last... or an earlier one.

    Raises:
      ConfigError: sizes are malformed, or target < 1, max_buckets < 1, quantum < 1.
    """
    sizes = _validate_sizes(sizes)
    if target < 1 or max_buckets < 1 or quantum < 1:
        raise ConfigError(f"buckets: need target >= 1, max_buckets >= 1, quantum >= 1 "
                          f"(got {target}, {max_buckets}, {quantum})")
    if len(sizes) == 0:
        return np.zeros((0, 2), np.int64)
    order = np.lexsort((sizes[:, 0], sizes[:, 1]))
    s = sizes[order]
    n = len(s)
    # block boundaries (the DP may only cut between blocks)
    if n > _MAX_BLOCKS:
        ends = np.unique(np.ceil(np.linspace(0, n, _MAX_BLOCKS + 1)[1:]).astype(np.int64))
    else:
        ends = np.arange(1, n + 1)
    starts = np.concatenate([[0], ends[:-1]])
    m = len(ends)
    # cost[i, j]: graphs of blocks i..j (inclusive) padded to their rounded maxima
    node_max = np.zeros((m, m), np.int64)
    edge_max = np.zeros((m, m), np.int64)
    blk_n = np.maximum.reduceat(s[:, 0], starts)
    blk_e = np.maximum.reduceat(s[:, 1], starts)
    for i in range(m):
        node_max[i, i:] = np.maximum.accumulate(blk_n[i:])
        edge_max[i, i:] = np.maximum.accumulate(blk_e[i:])
    count = ends[None, :] - starts[:, None]
    cost = np.where(count > 0, count * (round_up(node_max, quantum) + round_up(edge_max, quantum)), np.inf)
    cost = np.triu(cost) + np.tril(np.full((m, m), np.inf), -1)
    real = float(s.sum())
    best = cost[0].copy()  # best[j]: least padded elements of blocks 0..j cut into `chosen` groups
    back = [np.full(m, -1)]  # back[k - 1][j]: the last of k groups starts at block back[k - 1][j] + 1
    chosen = 1
    while (best[-1] / real if real else 1.0) > target and chosen < min(max_buckets, m):
        cand = best[:-1, None] + cost[1:, :]  # [i, j]: blocks 0..i in `chosen` groups, then i+1..j in one more
        arg = np.argmin(cand, axis=0)
        best = cand[arg, np.arange(m)]
        back.append(arg)
        chosen += 1
    # trace back the cuts for `chosen` groups
    cuts = []
    j = m - 1
    for k in range(chosen, 0, -1):
        i = 0 if k == 1 else int(back[k - 1][j]) + 1
        cuts.append((i, j))
        j = i - 1
    budgets = [(int(round_up(node_max[i, j], quantum)), int(round_up(edge_max[i, j], quantum))) for i, j in cuts]
    return _sorted_unique(np.array(budgets, np.int64))


def _sorted_unique(buckets: np.ndarray) -> np.ndarray:
    buckets = np.unique(np.asarray(buckets, np.int64).reshape(-1, 2), axis=0)
    return buckets[np.lexsort((buckets[:, 0], buckets.sum(1)))]


def assign_buckets(sizes: np.ndarray, buckets: Sequence[Sequence[int]] | np.ndarray, quantum: int = 8,
                   target: float = schema_default(GraphConfig, "bucket_overhead"),
                   max_buckets: int = schema_default(GraphConfig, "max_buckets")) -> Assignment:
    """Puts every graph in the smallest bucket it fits; graphs that fit none get buckets of their own.

    Args:
      sizes: [n_graphs, 2] (n_node, n_edge).
      buckets: [B, 2] budgets (B may be 0: then every graph is oversize).
      quantum, target, max_buckets: how the oversize graphs' own buckets are chosen (:func:`choose_buckets`).

    Returns:
      The :class:`Assignment` (buckets sorted; own buckets added after the given ones are merged in order).

    Raises:
      ConfigError: sizes or budgets are malformed.
    """
    sizes = _validate_sizes(sizes)
    given = np.asarray(buckets, np.int64).reshape(-1, 2) if len(buckets) else np.zeros((0, 2), np.int64)
    if len(given) and given.min() < 1:
        raise ConfigError(f"graph.buckets: budgets must be positive, got {given.tolist()}")
    fits = (sizes[:, None, 0] <= given[None, :, 0]) & (sizes[:, None, 1] <= given[None, :, 1])
    oversize = np.flatnonzero(~fits.any(1)) if len(given) else np.arange(len(sizes))
    own = choose_buckets(sizes[oversize], target, max_buckets, quantum)
    all_buckets = _sorted_unique(np.concatenate([given, own]))
    fits = (sizes[:, None, 0] <= all_buckets[None, :, 0]) & (sizes[:, None, 1] <= all_buckets[None, :, 1])
    # buckets are sorted by total budget: the first fitting one is the smallest
    bucket = np.argmax(fits, axis=1) if len(sizes) else np.zeros(0, np.int64)
    return Assignment(all_buckets, bucket.astype(np.int64), oversize.astype(np.int64))
