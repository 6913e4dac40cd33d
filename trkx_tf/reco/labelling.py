"""Track labelling: from scored candidate edges to exactly one track id per hit.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`: ``n_node`` hits of one whole event (node i is row i of its
hits table), ``n_edge`` scored edges, each an index pair ``(senders[e], receivers[e])`` into the hits.

Two methods (``infer.labelling``):

``cc`` — connected components (the Exa.TrkX default)
    Keep the edges with ``score >= threshold``; the tracks are the connected components of the undirected graph
    they form (``scipy.sparse.csgraph.connected_components``). A hit with no kept edge (noise, or a hit the
    edge classifiers dropped) is a singleton track of its own. Two tracks joined by a single fake edge above the
    threshold merge into one component: that is the failure mode the ``walk`` variant addresses.

``walk`` — connected components with branches resolved by a walk-through
    Each kept edge is oriented outwards: from the hit with the smaller ``order_key`` (the pipeline passes the
    distance from the origin, ``sqrt(r² + z²)``, which grows along a track coming from the beam line) to the hit
    with the larger one (ties: the smaller hit index first), so the kept graph is a directed acyclic graph. Then:

    1. components of the ``cc`` graph that are simple paths (no hit with two kept edges in or two out) are
       tracks as they are;
    2. in the other components, tracks are walked one at a time. Seeds are taken in order of the longest outward
       path that starts at them (most hits first; ties: the smaller ``order_key``, then the smaller hit index),
       skipping hits already on a track; from the seed the walk repeatedly follows the highest-scoring outgoing
       edge to a hit not yet on a track (ties: the smaller hit index), and stops when there is none. Hits not
       yet on a track that have an edge from the path's hit ``k-1`` and an edge to its hit ``k+1`` are
       *siblings* of hit ``k`` (module overlaps: the truth graph and the module map put a second hit on the same
       layer *beside* its neighbour, not after it, so one path cannot hold both) and join the path's track;
    3. the hits of a track of fewer than ``FRAGMENT_HITS`` (3) hits (typically overlap hits next to a path's
       first or last hit, which the siblings rule cannot reach) join the track of their highest-scoring kept
       edge to a hit of a track of at least ``FRAGMENT_HITS`` hits (ties: the smaller hit index); hits without
       such an edge stay where they are. Such short tracks weigh nothing in the TrackML score and never count
       as tracks in the metrics (``eval.min_track_hits``), so nothing of value is lost.

    At a branch point the walk takes the best-scoring edge and the other branch becomes a track of its own (or,
    when shorter than ``FRAGMENT_HITS``, joins its neighbours). Because the seed with the longest path is walked
    first, a fake edge from a noise hit into a track cannot steal the track's outer hits. Loopers that curl back
    towards the beam line are split at their outermost hit. Steps 1 and 3 are vectorised; step 2 is a
    loop over the hits and edges of the branched components only, compiled by numba (:mod:`trkx_tf.reco.walk`).

Track ids are ``1 … n_tracks`` in the order of each track's first hit (row), so the output is deterministic.
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from trkx_tf.config import InferConfig, schema_default
from trkx_tf.errors import DataError

Method = Literal["cc", "walk"]
METHODS = ("cc", "walk")
FRAGMENT_HITS = 3  # walk: walked tracks shorter than this are dissolved into the neighbouring longer tracks


def _check_edges(n_node: int, senders: np.ndarray, receivers: np.ndarray, scores: Optional[np.ndarray]):
    """Validates and converts the edge arrays; returns (senders int64, receivers int64, scores float64 | None)."""
    if n_node < 0:
        raise DataError(f"labelling: n_node must be >= 0, got {n_node}")
    s = np.asarray(senders)
    r = np.asarray(receivers)
    if s.ndim != 1 or r.shape != s.shape:
        raise DataError(f"labelling: senders and receivers must be [n_edge] vectors of one length "
                        f"(got shapes {s.shape} and {r.shape})")
    if s.size and (s.dtype.kind not in "iu" or r.dtype.kind not in "iu"):
        raise DataError(f"labelling: senders/receivers must be integer hit indices (got {s.dtype}, {r.dtype})")
    s = s.astype(np.int64, copy=False)
    r = r.astype(np.int64, copy=False)
    if s.size and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= n_node):
        raise DataError(f"labelling: an edge index is outside [0, {n_node})")
    if scores is not None:
        scores = np.asarray(scores, np.float64)
        if scores.shape != s.shape:
            raise DataError(f"labelling: scores must have shape [n_edge] = {list(s.shape)}, got {list(scores.shape)}")
        if np.isnan(scores).any():
            raise DataError("labelling: scores contain NaN")
    return s, r, scores


def _components(n_node: int, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Track ids 1..K (first-hit order) of the undirected connected components of the edges (s, r)."""
    if n_node == 0:
        return np.zeros(0, np.int64)
    adj = coo_matrix((np.ones(len(s), np.int8), (s, r)), shape=(n_node, n_node)).tocsr()
    _, comp = connected_components(adj, directed=True, connection="weak", return_labels=True)
    # renumber by first appearance (scipy already does, but this makes it a documented guarantee)
    _, first = np.unique(comp, return_index=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[comp] + 1


def connected_components_labels(
    n_node: int,
    senders: np.ndarray,
    receivers: np.ndarray,
    scores: Optional[np.ndarray] = None,
    threshold: float = schema_default(InferConfig, "gnn_threshold"),
) -> np.ndarray:
    """Tracks as the connected components of the edges with ``score >= threshold`` (method ``cc``).

    Args:
      n_node: hits of the event.
      senders: [n_edge] int hit index of each edge's first end.
      receivers: [n_edge] int hit index of the other end (direction is ignored).
      scores: [n_edge] edge scores in [0, 1]; None keeps every edge.
      threshold: edges scoring at least this are kept (default: ``infer.gnn_threshold``'s).

    Returns:
      [n_node] int64 track id of every hit, in ``1 … n_tracks``; a hit without a kept edge is alone in its track.

    Raises:
      DataError: mismatched shapes, an index outside ``[0, n_node)``, or NaN scores.
    """
    s, r, sc = _check_edges(n_node, senders, receivers, scores)
    if sc is not None:
        keep = sc >= threshold
        s, r = s[keep], r[keep]
    return _components(n_node, s, r)


def _orient(n_node, senders, receivers, scores, threshold, order_key):
    """Kept edges (score >= threshold, no self-loops) oriented outwards: (inner, outer, score)."""
    s, r, sc = _check_edges(n_node, senders, receivers, scores)
    key = np.asarray(order_key, np.float64)
    if key.shape != (n_node,):
        raise DataError(f"labelling: order_key must have shape [n_node] = [{n_node}], got {list(key.shape)}")
    if not np.all(np.isfinite(key)):
        raise DataError("labelling: order_key has non-finite values")
    keep = (sc >= threshold) & (s != r)
    s, r, sc = s[keep], r[keep], sc[keep]
    flip = (key[s] > key[r]) | ((key[s] == key[r]) & (s > r))
    return np.where(flip, r, s), np.where(flip, s, r), sc, key


def _walk(n_node: int, inner: np.ndarray, outer: np.ndarray, sc: np.ndarray, key: np.ndarray,
          nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2 of ``walk`` on the given nodes (every edge has both ends among them): the edges of the walked paths
    (consecutive hits) and of their siblings (sibling → the path's first hit), as ``(senders, receivers)``."""
    from trkx_tf.reco.walk import longest_paths, walk_paths

    # outgoing edges per node, best score first (ties: smaller receiver); incoming ones for the siblings rule
    order = np.lexsort((outer, -sc, inner))
    succ = outer[order]
    start = np.searchsorted(inner[order], np.arange(n_node + 1))
    order = np.lexsort((inner, outer))
    pred = inner[order]
    p_start = np.searchsorted(outer[order], np.arange(n_node + 1))
    # longest outward path (in hits) from every node: nodes in reverse topological order (descending key, index)
    topo = nodes[np.lexsort((nodes, key[nodes]))][::-1]
    length = longest_paths(topo, start, succ, n_node)[nodes]
    seeds = nodes[np.lexsort((nodes, key[nodes], -length))]
    return walk_paths(seeds, start, succ, p_start, pred, n_node)


def walkthrough_labels(
    n_node: int,
    senders: np.ndarray,
    receivers: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    order_key: np.ndarray,
) -> np.ndarray:
    """Tracks as outward paths: connected components with branches resolved by a walk (method ``walk``).

    Args:
      n_node: hits of the event.
      senders, receivers: [n_edge] int hit indices (the input direction is ignored).
      scores: [n_edge] edge scores.
      threshold: edges scoring at least this are kept.
      order_key: [n_node] float that grows outwards along a track (the pipeline uses ``sqrt(r² + z²)``).

    Returns:
      [n_node] int64 track id of every hit, in ``1 … n_tracks``.

    Raises:
      DataError: mismatched shapes, an index outside ``[0, n_node)``, NaN scores or a non-finite order key.
    """
    inner, outer, sc, key = _orient(n_node, senders, receivers, scores, threshold, order_key)
    comp = _components(n_node, inner, outer)
    n_out = np.bincount(inner, minlength=n_node)
    n_in = np.bincount(outer, minlength=n_node)
    branched_node = (n_in > 1) | (n_out > 1)
    branched = np.zeros(int(comp.max()) + 1 if n_node else 1, bool)
    branched[comp[branched_node]] = True
    in_branched = branched[comp]
    # 1. simple components keep their edges; 2. branched ones are walked
    simple_edge = ~in_branched[inner]
    path_s, path_r = [inner[simple_edge]], [outer[simple_edge]]
    nodes = np.flatnonzero(in_branched)
    if len(nodes):
        e = ~simple_edge
        walked_s, walked_r = _walk(n_node, inner[e], outer[e], sc[e], key, nodes)
        path_s.append(walked_s)
        path_r.append(walked_r)
    labels = _components(n_node, np.concatenate(path_s), np.concatenate(path_r))
    # 3. hits of tracks shorter than FRAGMENT_HITS join the track of their best kept edge to a longer track
    size = np.bincount(labels)
    alone = size[labels] < FRAGMENT_HITS
    if alone.any() and len(inner):
        a = np.concatenate([inner, outer])
        b = np.concatenate([outer, inner])
        s2 = np.concatenate([sc, sc])
        ok = alone[a] & ~alone[b]
        a, b, s2 = a[ok], b[ok], s2[ok]
        if len(a):
            order = np.lexsort((b, -s2, a))
            first = np.ones(len(order), bool)
            first[1:] = a[order[1:]] != a[order[:-1]]
            best = order[first]
            labels = labels.copy()
            labels[a[best]] = labels[b[best]]
            labels = _components(n_node, np.arange(n_node), _first_of_label(labels))
    return labels


def _first_of_label(labels: np.ndarray) -> np.ndarray:
    """For every hit, the first hit (row) with the same label (to renumber labels through _components)."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    return first[inv].astype(np.int64)


def label_tracks(
    method: str,
    n_node: int,
    senders: np.ndarray,
    receivers: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    order_key: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Dispatches to the labelling ``method`` (``cc`` or ``walk``).

    Args:
      method: ``"cc"`` or ``"walk"``.
      n_node, senders, receivers, scores, threshold: see :func:`connected_components_labels`.
      order_key: [n_node], required by ``walk``.

    Returns:
      [n_node] int64 track ids in ``1 … n_tracks``.

    Raises:
      DataError: an unknown method, ``walk`` without an order key, or bad edge arrays.
    """
    if method == "cc":
        return connected_components_labels(n_node, senders, receivers, scores, threshold)
    if method == "walk":
        if order_key is None:
            raise DataError("labelling: method 'walk' needs an order_key (e.g. the hits' distance from the origin)")
        return walkthrough_labels(n_node, senders, receivers, scores, threshold, order_key)
    raise DataError(f"labelling: unknown method {method!r} (expected one of {', '.join(METHODS)})")


def submission_frame(event_id: int, hit_id: np.ndarray, track_id: np.ndarray) -> pd.DataFrame:
    """One event's TrackML submission: every hit exactly once with its track.

    Args:
      event_id: the event.
      hit_id: [n_node] int TrackML hit ids (unique).
      track_id: [n_node] int track id of each hit.

    Returns:
      ``[n_node]`` rows ``event_id`` int64, ``hit_id`` int32, ``track_id`` int64, in hit order.

    Raises:
      DataError: the shapes differ or a hit id repeats.
    """
    hit_id = np.asarray(hit_id)
    track_id = np.asarray(track_id)
    if hit_id.ndim != 1 or hit_id.shape != track_id.shape:
        raise DataError(f"submission: hit_id and track_id must be [n_node] vectors of one length "
                        f"(got {hit_id.shape} and {track_id.shape})")
    if len(np.unique(hit_id)) != len(hit_id):
        raise DataError(f"submission of event {event_id}: a hit_id appears more than once")
    return pd.DataFrame({
        "event_id": np.full(len(hit_id), int(event_id), np.int64),
        "hit_id": hit_id.astype(np.int32),
        "track_id": track_id.astype(np.int64),
    })
