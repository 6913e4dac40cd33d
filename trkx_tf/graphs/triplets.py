"""The doublet -> triplet graph for seeding: every doublet (scored edge) becomes a node, and two doublets that
continue each other through a shared hit are joined by a triplet edge.

Shape vocabulary: as in :mod:`trkx_tf.graphs.batch`, but on the triplet graph: its ``n_node`` are the doublets
(``n_doublet``, the hit graph's edges) and its ``n_edge`` the triplets (``n_triplet``). A triplet ``t`` joins
doublet ``first[t] = (a -> b)`` to doublet ``second[t] = (b -> c)``: hits ``a, b, c`` from the inside out.

Orientation: doublets point outwards (:func:`orient_outwards`, by the hits' distance from the origin, as the
``walk`` labelling orients edges), so ``(a -> b), (b -> c)`` is an inner, middle and outer hit, and every
three-hit path through the graph is exactly one triplet.

The conversion (:func:`doublets_to_triplets`) is vectorised: the doublets are sorted by their inner hit once;
for every doublet, ``np.searchsorted`` finds the run of doublets that start at its outer hit, and the runs are
expanded with ``np.repeat`` and a cumulative-sum offset. No Python loop runs over edges. Cost: one sort of the
doublets plus memory proportional to the triplets.

Features
--------
A triplet-graph node (a doublet) carries :data:`DOUBLET_FEATURES`: its score, the six doublet variables of
:func:`trkx_tf.graphs.features.edge_features`, and the ``r, phi, z`` node features of its two hits. A triplet edge
carries :data:`TRIPLET_FEATURES`, geometric quantities of the three hits (x, y the transverse coordinates)::

    curvature   signed curvature of the circle through a, b, c in (x, y): 2 (b-a) x (c-b) / (|b-a||c-b||c-a|),
                in 1/m (a 1 GeV track in the 2 T TrackML field: 0.6 / m)
    d0          distance of that circle from the beam line, mm / 10 (primary particles: ~0)
    angle       3D angle between the two doublets' directions, rad / 0.1
    dtheta      difference of the doublets' polar angles (in r-z), rad / 0.01
    z0          beam-line intercept of the straight line through a and c in (r, z), mm / 100
    dphi_dr     difference of the two doublets' dphi/dr (curvature proxies of each doublet), as edge_features / 1

Every value is finite and clipped to +-:data:`~trkx_tf.graphs.features.EDGE_CLIP`.

Labels: a triplet is true when both its doublets are true (each joins two hits of one particle, and they share
hit ``b``, so all three hits are one particle's).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from trkx_tf.errors import DataError
from trkx_tf.graphs.features import BASE_FEATURES, EDGE_CLIP, EDGE_FEATURES, edge_features

DOUBLET_FEATURES = ("score",) + EDGE_FEATURES + ("r_in", "phi_in", "z_in", "r_out", "phi_out", "z_out")
TRIPLET_FEATURES = ("curvature", "d0", "angle", "dtheta", "z0", "dphi_dr")
_EPS = 1e-9
_MIN_DR = 1e-3  # mm: as in features.edge_features, |dr| below this counts as this (sign kept)


@dataclasses.dataclass(frozen=True)
class TripletGraph:
    """Triplets of one event's doublets.

    Attributes:
      first: [n_triplet] int64 index of the inner doublet (a -> b).
      second: [n_triplet] int64 index of the outer doublet (b -> c).
      hits: [n_triplet, 3] int64 hit rows a, b, c (inner, middle, outer).
    """

    first: np.ndarray
    second: np.ndarray
    hits: np.ndarray

    @property
    def n_triplet(self) -> int:
        return int(len(self.first))


def _check_edges(senders: np.ndarray, receivers: np.ndarray, n_node: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    senders = np.asarray(senders)
    receivers = np.asarray(receivers)
    if senders.ndim != 1 or senders.shape != receivers.shape:
        raise DataError(f"doublets: senders and receivers must be 1-D of one length (got {list(senders.shape)} "
                        f"and {list(receivers.shape)})")
    if not (np.issubdtype(senders.dtype, np.integer) and np.issubdtype(receivers.dtype, np.integer)):
        raise DataError(f"doublets: hit indices must be integers (got {senders.dtype}, {receivers.dtype})")
    if len(senders) and (min(senders.min(), receivers.min()) < 0
                         or (n_node is not None and max(senders.max(), receivers.max()) >= n_node)):
        raise DataError(f"doublets: a hit index is outside [0, {n_node if n_node is not None else 'inf'})")
    return senders.astype(np.int64), receivers.astype(np.int64)


def orient_outwards(senders: np.ndarray, receivers: np.ndarray, nodes: np.ndarray, r_scale: float,
                    z_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Each doublet pointing away from the origin (the inner hit first), by the hits' distance ``sqrt(r^2+z^2)``.

    Args:
      senders: [n_doublet] int hit rows.
      receivers: [n_doublet] int hit rows.
      nodes: [n_node, F] node features whose first columns are ``r, phi, z`` (:func:`~trkx_tf.graphs.features.
        hit_features`).
      r_scale: the ``r`` column's scale (mm, ``graph.r_scale``).
      z_scale: the ``z`` column's scale (mm, ``graph.z_scale``).

    Returns:
      ``(inner, outer)``: [n_doublet] int64 each; ties keep the given direction.

    Raises:
      DataError: bad shapes or an index out of range.
    """
    nodes = _check_nodes(nodes)
    senders, receivers = _check_edges(senders, receivers, len(nodes))
    dist = np.hypot(nodes[:, 0].astype(np.float64) * r_scale, nodes[:, 2].astype(np.float64) * z_scale)
    flip = dist[senders] > dist[receivers]
    return np.where(flip, receivers, senders), np.where(flip, senders, receivers)


def doublets_to_triplets(senders: np.ndarray, receivers: np.ndarray, n_node: Optional[int] = None) -> TripletGraph:
    """Every pair of doublets ``(a -> b), (b -> c)`` that share the middle hit ``b`` (see the module docstring).

    Args:
      senders: [n_doublet] int inner hit of each doublet (orient them first: :func:`orient_outwards`).
      receivers: [n_doublet] int outer hit of each doublet.
      n_node: number of hits, to check the indices against (optional).

    Returns:
      The :class:`TripletGraph`, triplets ordered by their first doublet, then by the second doublet's position in
      a stable sort of the doublets by inner hit.

    Raises:
      DataError: bad shapes, non-integer indices or an index out of range.
    """
    senders, receivers = _check_edges(senders, receivers, n_node)
    order = np.argsort(senders, kind="stable")  # doublets by inner hit
    inner_sorted = senders[order]
    start = np.searchsorted(inner_sorted, receivers, side="left")  # the doublets that start at my outer hit
    count = np.searchsorted(inner_sorted, receivers, side="right") - start
    total = int(count.sum())
    first = np.repeat(np.arange(len(senders), dtype=np.int64), count)
    # position inside each run: 0 .. count-1, from a running index minus the run's offset
    offsets = np.cumsum(count) - count
    within = np.arange(total, dtype=np.int64) - np.repeat(offsets, count)
    second = order[np.repeat(start, count) + within]
    hits = np.stack([senders[first], receivers[first], receivers[second]], axis=1)
    return TripletGraph(first, second, hits)


def _check_nodes(nodes: np.ndarray) -> np.ndarray:
    nodes = np.asarray(nodes)
    if nodes.ndim != 2 or nodes.shape[1] < len(BASE_FEATURES):
        raise DataError(f"triplet features need the node columns {', '.join(BASE_FEATURES)} "
                        f"(got nodes of shape {list(nodes.shape)})")
    return nodes


def doublet_features(nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray, scores: np.ndarray,
                     r_scale: float, z_scale: float) -> np.ndarray:
    """The triplet graph's node features: one row per doublet, columns :data:`DOUBLET_FEATURES`.

    Args:
      nodes: [n_node, F] hit features (``r, phi, z`` first).
      senders: [n_doublet] int inner hits.
      receivers: [n_doublet] int outer hits.
      scores: [n_doublet] doublet scores in [0, 1] (the GNN's).
      r_scale: the ``r`` column's scale (mm).
      z_scale: the ``z`` column's scale (mm).

    Returns:
      [n_doublet, len(DOUBLET_FEATURES)] float32.

    Raises:
      DataError: bad shapes or indices.
    """
    nodes = _check_nodes(nodes)
    senders, receivers = _check_edges(senders, receivers, len(nodes))
    scores = np.asarray(scores, np.float32)
    if scores.shape != senders.shape:
        raise DataError(f"doublet scores have shape {list(scores.shape)}, expected [{len(senders)}]")
    base = nodes[:, :3].astype(np.float32)
    return np.concatenate([scores[:, None], edge_features(nodes, senders, receivers, r_scale, z_scale),
                           base[senders], base[receivers]], axis=1).astype(np.float32)


def triplet_features(nodes: np.ndarray, triplets: TripletGraph, r_scale: float, z_scale: float) -> np.ndarray:
    """The triplet edges' geometric features, columns :data:`TRIPLET_FEATURES` (see the module docstring).

    Args:
      nodes: [n_node, F] hit features (``r, phi, z`` first, scaled as :func:`~trkx_tf.graphs.features.hit_features`).
      triplets: the triplets of these hits.
      r_scale: the ``r`` column's scale (mm).
      z_scale: the ``z`` column's scale (mm).

    Returns:
      [n_triplet, len(TRIPLET_FEATURES)] float32, finite, within +-EDGE_CLIP.

    Raises:
      DataError: bad node features or a hit index out of range.
    """
    nodes = _check_nodes(nodes)
    hits = np.asarray(triplets.hits, np.int64)
    if hits.size and (hits.min() < 0 or hits.max() >= len(nodes)):
        raise DataError(f"triplets: a hit index is outside [0, {len(nodes)})")
    r = nodes[:, 0].astype(np.float64) * r_scale
    phi = nodes[:, 1].astype(np.float64) * np.pi
    z = nodes[:, 2].astype(np.float64) * z_scale
    a, b, c = hits[:, 0], hits[:, 1], hits[:, 2]
    x, y = r * np.cos(phi), r * np.sin(phi)
    p = [np.stack([x[h], y[h], z[h]], 1) for h in (a, b, c)]
    u, w = p[1] - p[0], p[2] - p[1]  # the two doublets' directions
    ac = p[2] - p[0]
    # circle through a, b, c in the transverse plane
    cross = u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0]
    lu, lw, lac = (np.hypot(v[:, 0], v[:, 1]) for v in (u, w, ac))
    curvature = 2.0 * cross / np.maximum(lu * lw * lac, _EPS)  # 1/mm, signed
    d0 = _circle_d0(p[0][:, :2], p[1][:, :2], p[2][:, :2], cross)
    cos = np.sum(u * w, 1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1), _EPS)
    angle = np.arccos(np.clip(cos, -1.0, 1.0))
    theta_u = np.arctan2(lu, u[:, 2])
    theta_w = np.arctan2(lw, w[:, 2])
    dr_ac = r[c] - r[a]
    dr_ac = np.where(dr_ac < 0, np.minimum(dr_ac, -1e-3), np.maximum(dr_ac, 1e-3))
    z0 = z[a] - r[a] * (z[c] - z[a]) / dr_ac
    out = np.stack([curvature * 1000.0, d0 / 10.0, angle / 0.1, (theta_w - theta_u) / 0.01, z0 / 100.0,
                    _dphi_dr(phi, r, b, c) - _dphi_dr(phi, r, a, b)], 1)
    out = np.nan_to_num(out, nan=0.0, posinf=EDGE_CLIP, neginf=-EDGE_CLIP)
    np.clip(out, -EDGE_CLIP, EDGE_CLIP, out=out)
    return out.astype(np.float32)


def _dphi_dr(phi: np.ndarray, r: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """The ``dphi_dr`` doublet variable of :func:`~trkx_tf.graphs.features.edge_features` (clipped the same way)."""
    dr = r[outer] - r[inner]
    dr = np.where(dr < 0, np.minimum(dr, -_MIN_DR), np.maximum(dr, _MIN_DR))
    dphi = np.mod(phi[outer] - phi[inner] + np.pi, 2.0 * np.pi) - np.pi
    return np.clip(dphi / dr * 1000.0, -EDGE_CLIP, EDGE_CLIP)


def _circle_d0(pa: np.ndarray, pb: np.ndarray, pc: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """|distance from the origin to the circle through three points| [n] (mm); straight lines: the line's."""
    # circumcentre from the perpendicular bisectors (relative to a, for precision)
    bx, by = pb[:, 0] - pa[:, 0], pb[:, 1] - pa[:, 1]
    cx, cy = pc[:, 0] - pa[:, 0], pc[:, 1] - pa[:, 1]
    det = 2.0 * (bx * cy - by * cx)
    b2, c2 = bx * bx + by * by, cx * cx + cy * cy
    straight = np.abs(det) < 1e-6 * np.maximum(b2 + c2, _EPS)
    safe = np.where(straight, 1.0, det)
    ux = (cy * b2 - by * c2) / safe
    uy = (bx * c2 - cx * b2) / safe
    radius = np.hypot(ux, uy)
    centre = np.hypot(ux + pa[:, 0], uy + pa[:, 1])
    d0_circle = np.abs(centre - radius)
    # straight line through a and c: distance |a x c| / |c - a|
    d0_line = np.abs(pa[:, 0] * pc[:, 1] - pa[:, 1] * pc[:, 0]) / np.maximum(np.hypot(cx, cy), _EPS)
    return np.where(straight, d0_line, d0_circle)


def triplet_labels(doublet_labels: np.ndarray, triplets: TripletGraph) -> np.ndarray:
    """True triplets: both doublets true.

    Args:
      doublet_labels: [n_doublet] 0/1 (or bool) labels of the doublets.
      triplets: the triplets.

    Returns:
      [n_triplet] uint8.

    Raises:
      DataError: the labels do not have one entry per doublet the triplets index.
    """
    labels = np.asarray(doublet_labels).astype(bool)
    if triplets.n_triplet and max(triplets.first.max(), triplets.second.max()) >= len(labels):
        raise DataError(f"triplet labels: {len(labels)} doublet labels, but a triplet indexes doublet "
                        f"{int(max(triplets.first.max(), triplets.second.max()))}")
    return (labels[triplets.first] & labels[triplets.second]).astype(np.uint8)


def triplet_batch(nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray, scores: np.ndarray,
                  r_scale: float, z_scale: float, doublet_labels: Optional[np.ndarray] = None
                  ) -> tuple[dict, TripletGraph]:
    """The triplet graph of one event as an unpadded batch (:mod:`trkx_tf.graphs.batch`) that an edge classifier
    (the edge-filter MLP with edge features, or a GNN) trains on and scores.

    Args:
      nodes: [n_node, F] hit features (``r, phi, z`` first).
      senders: [n_doublet] int hit rows of the doublets (any direction: they are oriented outwards here).
      receivers: [n_doublet] int hit rows.
      scores: [n_doublet] doublet scores.
      r_scale: the ``r`` column's scale (mm).
      z_scale: the ``z`` column's scale (mm).
      doublet_labels: [n_doublet] 0/1 truth of the doublets, or None (labels 0).

    Returns:
      ``(batch, triplets)``: the batch has ``nodes`` [n_doublet, len(DOUBLET_FEATURES)], ``senders`` = the triplets'
      first doublets, ``receivers`` = their second doublets, ``edges`` [n_triplet, len(TRIPLET_FEATURES)], labels,
      unit weights and masks, ``n_node``/``n_edge`` of one graph; ``triplets`` gives each triplet's three hits
      (in the doublets' outward orientation).

    Raises:
      DataError: bad shapes or indices.
    """
    inner, outer = orient_outwards(senders, receivers, nodes, r_scale, z_scale)
    triplets = doublets_to_triplets(inner, outer, len(nodes))
    x = doublet_features(nodes, inner, outer, scores, r_scale, z_scale)
    n_d, n_t = len(inner), triplets.n_triplet
    labels = (triplet_labels(doublet_labels, triplets) if doublet_labels is not None
              else np.zeros(n_t, np.uint8))
    batch = {
        "nodes": x,
        "senders": triplets.first.astype(np.int32),
        "receivers": triplets.second.astype(np.int32),
        "edges": triplet_features(nodes, triplets, r_scale, z_scale),
        "node_mask": np.ones(n_d, np.float32),
        "edge_mask": np.ones(n_t, np.float32),
        "edge_labels": labels.astype(np.float32),
        "edge_weights": np.ones(n_t, np.float32),
        "n_node": np.array([n_d], np.int32),
        "n_edge": np.array([n_t], np.int32),
    }
    return batch, triplets
