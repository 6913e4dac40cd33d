"""The truth graph of an event, edge labels of candidate edges, and per-edge loss weights.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`; here ``n_true`` is the number of true edges of one event and
``n_edge`` the number of candidate edges. Nodes are hit *rows* of the event's hits table (0 … n_node-1).

The truth graph (as in Exa.TrkX): the hits of each particle are ordered by their distance from the particle's
production vertex (``vx, vy, vz`` of particles.csv) and grouped into runs of consecutive hits on the same layer,
a layer being ``(volume_id, layer_id)``. Every hit of a run is connected to every hit of the next run, so hits
that share a layer (module overlaps) are each linked to the neighbouring layers. Edges point away from the
vertex. Noise hits (``particle_id == 0``) have no true edges.

A candidate edge is true when its two hits are joined by a truth edge, in either direction.

Edge weights (``graph.edge_weight``) of true edges; fake edges always weigh 1:

* ``uniform``: 1.
* ``pt``: the TrackML pT weight of the particle: 0.2 below 0.5 GeV, rising linearly to 1 at 3 GeV, 1 above.
* ``hit``: the mean TrackML ``weight`` of the edge's two hits (truth.csv), scaled so that the event's true edges
  average 1.

With ``graph.pt_cut > 0`` the true edges of particles below the cut keep label 1 but get weight 0 (neutral:
neither rewarded nor punished).

Masked labels (events with a partial truth, :mod:`trkx_tf.trackml.partial`): only some pixel hits are labelled, so
only an edge between two labelled hits has a known truth. :func:`partial_truth_graph` joins consecutive labelled
hits of each group, ordered by distance from the origin (the vertex is not known), as
:func:`trkx_tf.reco.partial.labelled_truth_graph` does for the partial metrics; :func:`label_edges_partial` then
labels a candidate edge

* 1 (weight as above) when it is an edge of that graph;
* 0 (weight 1) when its two hits are labelled in different groups, or in one group but not consecutive (it skips a
  labelled layer of the particle: the full truth graph calls such an edge false too);
* 0 with **weight 0** (masked: in no loss and no metric, never counted false) when it touches an unlabelled hit.

An edge's pT is unknown there: ``edge_pt`` of a true edge is its group's ``pt_min`` (a lower bound), ``pt``
weights use it, a ``pt_cut`` above ``pt_min`` makes the edge neutral, and ``hit`` weights are refused.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.graphs.features import hit_rows
from trkx_tf.trackml.partial import partial_truth_from_full

WEIGHT_MODES = ("uniform", "pt", "hit")


@dataclasses.dataclass(frozen=True)
class TruthGraph:
    """The true edges of one event.

    Attributes:
      senders: [n_true] int64 hit row of the inner hit (closer to the production vertex).
      receivers: [n_true] int64 hit row of the outer hit.
      particle_id: [n_true] int64 particle of the edge.
      pt: [n_true] float64 transverse momentum of the particle (GeV).
      hit_weight: [n_true] float64 mean TrackML weight of the two hits (NaN where truth has no weight column).
      n_node: number of hits of the event.
    """

    senders: np.ndarray
    receivers: np.ndarray
    particle_id: np.ndarray
    pt: np.ndarray
    hit_weight: np.ndarray
    n_node: int

    @property
    def n_true(self) -> int:
        return int(len(self.senders))


def _require(df: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {', '.join(missing)}")


def hit_particle_ids(hits: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """The particle of every hit, in the hits' row order (0 for noise).

    Args:
      hits: TrackML hits (``hit_id``), ``n_node`` rows.
      truth: TrackML truth (``hit_id, particle_id``), one row per hit in any order.

    Returns:
      [n_node] int64 particle ids.

    Raises:
      DataError: truth does not have exactly one row per hit.
    """
    _require(truth, ("hit_id", "particle_id"), "truth")
    hit_ids = hits["hit_id"].to_numpy(np.int64)
    if len(truth) != len(hit_ids):
        raise DataError(f"truth: {len(truth)} rows for {len(hit_ids)} hits (need one row per hit)")
    rows = hit_rows(hit_ids, truth["hit_id"].to_numpy(np.int64), "truth")
    pid = np.zeros(len(hit_ids), np.int64)
    pid[rows] = truth["particle_id"].to_numpy(np.int64)
    if len(np.unique(rows)) != len(rows):
        raise DataError("truth: a hit_id appears more than once")
    return pid


def pt_weight(pt: np.ndarray) -> np.ndarray:
    """The TrackML pT weight: 0.2 below 0.5 GeV, linear up to 1 at 3 GeV, 1 above.

    Args:
      pt: [k] transverse momenta in GeV.

    Returns:
      [k] float64 weights in [0.2, 1].
    """
    pt = np.asarray(pt, np.float64)
    return np.clip(0.2 + 0.8 * (pt - 0.5) / 2.5, 0.2, 1.0)


def truth_graph(hits: pd.DataFrame, particles: pd.DataFrame, truth: pd.DataFrame) -> TruthGraph:
    """Builds the truth graph of one event.

    Args:
      hits: TrackML hits (``hit_id, x, y, z, volume_id, layer_id``), ``n_node`` rows.
      particles: TrackML particles (``particle_id, vx, vy, vz, px, py``).
      truth: TrackML truth (``hit_id, particle_id``, optionally ``weight``).

    Returns:
      The :class:`TruthGraph`, edges ordered by particle, then by distance from the vertex.

    Raises:
      DataError: a column is missing, truth does not cover the hits, or a hit's particle is not in particles.
    """
    _require(hits, ("hit_id", "x", "y", "z", "volume_id", "layer_id"), "hits")
    _require(particles, ("particle_id", "vx", "vy", "vz", "px", "py"), "particles")
    pid = hit_particle_ids(hits, truth)
    n = len(pid)
    hit_w = np.full(n, np.nan)
    if "weight" in truth.columns:
        rows = hit_rows(hits["hit_id"].to_numpy(np.int64), truth["hit_id"].to_numpy(np.int64), "truth")
        hit_w[rows] = truth["weight"].to_numpy(np.float64)

    real = np.flatnonzero(pid != 0)
    pindex = pd.Index(particles["particle_id"].to_numpy(np.int64))
    if not pindex.is_unique:
        raise DataError("particles: particle_id is not unique")
    prow = pindex.get_indexer(pid[real])
    if np.any(prow < 0):
        raise DataError(f"truth: particle {int(pid[real][np.flatnonzero(prow < 0)[0]])} is not in particles")
    vtx = particles[["vx", "vy", "vz"]].to_numpy(np.float64)[prow]
    pos = hits[["x", "y", "z"]].to_numpy(np.float64)[real]
    dist = np.linalg.norm(pos - vtx, axis=1)
    layer = (hits["volume_id"].to_numpy(np.int64) * 1000 + hits["layer_id"].to_numpy(np.int64))[real]
    ppt = np.hypot(particles["px"].to_numpy(np.float64), particles["py"].to_numpy(np.float64))

    order = np.lexsort((real, dist, pid[real]))  # by particle, then distance (ties: hit row, deterministic)
    rows_s = real[order]
    pid_s = pid[real][order]
    layer_s = layer[order]
    pt_s = ppt[prow][order]
    if len(rows_s) == 0:
        empty = np.zeros(0, np.int64)
        return TruthGraph(empty, empty, empty, np.zeros(0), np.zeros(0), n)

    # runs of consecutive hits of one particle on one layer
    new_run = np.ones(len(rows_s), bool)
    new_run[1:] = (pid_s[1:] != pid_s[:-1]) | (layer_s[1:] != layer_s[:-1])
    run_start = np.flatnonzero(new_run)
    run_size = np.diff(np.append(run_start, len(rows_s)))
    run_pid = pid_s[run_start]
    # consecutive runs of the same particle are connected all-to-all
    link = np.flatnonzero(run_pid[1:] == run_pid[:-1])  # run index g, linked to g + 1
    a = run_size[link]
    b = run_size[link + 1]
    count = a * b
    total = int(count.sum())
    pair = np.repeat(np.arange(len(link)), count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    i = offset // b[pair]
    j = offset % b[pair]
    src = rows_s[run_start[link][pair] + i]
    dst = rows_s[run_start[link + 1][pair] + j]
    epid = run_pid[link][pair]
    ept = pt_s[run_start[link][pair]]
    ew = 0.5 * (hit_w[src] + hit_w[dst])
    return TruthGraph(src.astype(np.int64), dst.astype(np.int64), epid, ept, ew, n)


def true_edge_weights(graph: TruthGraph, mode: str = "uniform", pt_cut: float = 0.0) -> np.ndarray:
    """The loss weight of every true edge.

    Args:
      graph: the event's truth graph.
      mode: ``uniform``, ``pt`` or ``hit`` (see the module docstring).
      pt_cut: GeV; true edges of particles below it get weight 0 (they stay labelled true).

    Returns:
      [n_true] float32 weights.

    Raises:
      DataError: ``mode`` is ``hit`` but the truth has no ``weight`` column.
      ValueError: ``mode`` is unknown (the config schema prevents it).
    """
    if mode == "uniform":
        w = np.ones(graph.n_true)
    elif mode == "pt":
        w = pt_weight(graph.pt)
    elif mode == "hit":
        w = graph.hit_weight.copy()
        if np.any(np.isnan(w)):
            raise DataError("graph.edge_weight=hit needs the TrackML 'weight' column in truth")
        mean = w.mean() if len(w) else 1.0
        w = w / mean if mean > 0 else np.ones_like(w)
    else:
        raise ValueError(f"edge weight mode {mode!r}: expected one of {WEIGHT_MODES}")
    if pt_cut > 0:
        w = np.where(graph.pt < pt_cut, 0.0, w)
    return w.astype(np.float32)


def pair_keys(senders: np.ndarray, receivers: np.ndarray, n_node: int) -> np.ndarray:
    """An int64 key per edge that ignores its direction: min(s, r) * n_node + max(s, r)."""
    s = np.asarray(senders, np.int64)
    r = np.asarray(receivers, np.int64)
    return np.minimum(s, r) * np.int64(max(n_node, 1)) + np.maximum(s, r)


def match_truth(senders: np.ndarray, receivers: np.ndarray, graph: TruthGraph) -> np.ndarray:
    """For every candidate edge, the index of the truth edge joining the same two hits (either direction).

    Args:
      senders: [n_edge] hit rows.
      receivers: [n_edge] hit rows.
      graph: the event's truth graph.

    Returns:
      [n_edge] int64: index into the truth edges, or -1 for a fake edge.
    """
    ckeys = pair_keys(senders, receivers, graph.n_node)
    if graph.n_true == 0:
        return np.full(len(ckeys), -1, np.int64)
    tkeys = pair_keys(graph.senders, graph.receivers, graph.n_node)
    order = np.argsort(tkeys, kind="stable")
    sorted_keys = tkeys[order]
    pos = np.minimum(np.searchsorted(sorted_keys, ckeys), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == ckeys, order[pos], -1).astype(np.int64)


def label_edges(
    senders: np.ndarray,
    receivers: np.ndarray,
    graph: Optional[TruthGraph],
    mode: str = "uniform",
    pt_cut: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, loss weights and particle pT of candidate edges.

    Args:
      senders: [n_edge] hit rows.
      receivers: [n_edge] hit rows.
      graph: the event's truth graph, or None for an event without truth (every label and weight is then 0).
      mode: weight of true edges (``uniform``, ``pt``, ``hit``); fake edges weigh 1.
      pt_cut: GeV; true edges of particles below it get weight 0.

    Returns:
      ``(edge_labels [n_edge] uint8, edge_weights [n_edge] float32, edge_pt [n_edge] float32)``; ``edge_pt`` is
      the pT of the edge's particle for true edges and 0 for fake ones.
    """
    n = len(senders)
    if graph is None:
        return np.zeros(n, np.uint8), np.zeros(n, np.float32), np.zeros(n, np.float32)
    idx = match_truth(senders, receivers, graph)
    true = idx >= 0
    tw = true_edge_weights(graph, mode, pt_cut)
    weights = np.ones(n, np.float32)
    weights[true] = tw[idx[true]]
    pt = np.zeros(n, np.float32)
    pt[true] = graph.pt[idx[true]]
    return true.astype(np.uint8), weights, pt


@dataclasses.dataclass(frozen=True)
class PartialTruthGraph:
    """The labelled truth of one event with a partial truth (module docstring: masked labels).

    Attributes:
      group: [n_node] int64 group of each hit (0: unlabelled).
      pt_min: [n_node] float64 ``pt_min`` of each hit's group (0 where unlabelled).
      senders: [n_true] int64 hit row of the inner hit of each labelled true edge.
      receivers: [n_true] int64 hit row of the outer hit.
    """

    group: np.ndarray
    pt_min: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray

    @property
    def n_node(self) -> int:
        return int(len(self.group))

    @property
    def n_true(self) -> int:
        return int(len(self.senders))

    @property
    def pt(self) -> np.ndarray:
        """[n_true] float64 ``pt_min`` of each true edge's group (a lower bound of its pT)."""
        return self.pt_min[self.senders]


def partial_truth_graph(hits: pd.DataFrame, partial_truth: pd.DataFrame) -> PartialTruthGraph:
    """The labelled truth graph of an event with a partial truth.

    Args:
      hits: TrackML hits (``hit_id, x, y, z``), ``n_node`` rows.
      partial_truth: ``[n_labelled]`` rows ``hit_id, group, pt_min`` (as :func:`~trkx_tf.trackml.io.read_event`
        reads it).

    Returns:
      The :class:`PartialTruthGraph`; edges ordered by group, then by distance from the origin.

    Raises:
      DataError: a column is missing, or a partial-truth hit_id is not a hit of the event or appears twice.
    """
    _require(hits, ("hit_id", "x", "y", "z"), "hits")
    _require(partial_truth, ("hit_id", "group", "pt_min"), "partial truth")
    rows = hit_rows(hits["hit_id"].to_numpy(np.int64), partial_truth["hit_id"].to_numpy(np.int64), "partial truth")
    if len(np.unique(rows)) != len(rows):
        raise DataError("partial truth: a hit_id appears more than once")
    n = len(hits)
    group = np.zeros(n, np.int64)
    group[rows] = partial_truth["group"].to_numpy(np.int64)
    pt_min = np.zeros(n, np.float64)
    pt_min[rows] = partial_truth["pt_min"].to_numpy(np.float64)
    dist = np.linalg.norm(hits[["x", "y", "z"]].to_numpy(np.float64), axis=1)
    lab = rows[np.lexsort((rows, dist[rows], group[rows]))]  # by group, then distance (ties: hit row)
    same = group[lab[1:]] == group[lab[:-1]]
    return PartialTruthGraph(group, pt_min, lab[:-1][same].astype(np.int64), lab[1:][same].astype(np.int64))


def event_partial_truth(event) -> Optional[pd.DataFrame]:
    """The partial truth masked labels are made from: the event's own, else the labelled events' rules applied to
    its full truth (:func:`~trkx_tf.trackml.partial.partial_truth_from_full`), else None.

    Args:
      event: a :class:`trkx_tf.trackml.io.Event` (``hits, particles, truth, partial_truth``).

    Raises:
      DataError: see :func:`~trkx_tf.trackml.partial.partial_truth_from_full`.
    """
    if event.partial_truth is not None:
        return event.partial_truth
    if event.truth is not None and event.particles is not None:
        return partial_truth_from_full(event.hits, event.particles, event.truth)
    return None


def label_edges_partial(
    senders: np.ndarray,
    receivers: np.ndarray,
    graph: PartialTruthGraph,
    mode: str = "uniform",
    pt_cut: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masked labels, loss weights and ``pt_min`` of candidate edges (module docstring: masked labels).

    Args:
      senders: [n_edge] hit rows.
      receivers: [n_edge] hit rows.
      graph: the event's :class:`PartialTruthGraph`.
      mode: weight of true edges: ``uniform`` (1) or ``pt`` (the pT weight of the group's ``pt_min``).
      pt_cut: GeV; true edges whose ``pt_min`` is below it get weight 0 (their pT may be below the cut).

    Returns:
      ``(edge_labels [n_edge] uint8, edge_weights [n_edge] float32, edge_pt [n_edge] float32)``: an edge touching
      an unlabelled hit has label 0 and weight 0; ``edge_pt`` is ``pt_min`` for true edges and 0 otherwise.

    Raises:
      DataError: ``mode`` is ``hit`` (a partial truth has no TrackML hit weights).
      ValueError: ``mode`` is unknown (the config schema prevents it).
    """
    if mode == "hit":
        raise DataError("graph.edge_weight=hit needs the TrackML 'weight' column of a full truth; an event with a "
                        "partial truth has none (use uniform or pt)")
    if mode not in WEIGHT_MODES:
        raise ValueError(f"edge weight mode {mode!r}: expected one of {WEIGHT_MODES}")
    s = np.asarray(senders, np.int64)
    r = np.asarray(receivers, np.int64)
    n = graph.n_node
    known = (graph.group[s] > 0) & (graph.group[r] > 0)
    true = np.zeros(len(s), bool)
    if graph.n_true:
        tkeys = np.sort(pair_keys(graph.senders, graph.receivers, n))
        ckeys = pair_keys(s, r, n)
        pos = np.minimum(np.searchsorted(tkeys, ckeys), len(tkeys) - 1)
        true = known & (tkeys[pos] == ckeys)
    pt = np.where(true, graph.pt_min[s], 0.0)
    weights = known.astype(np.float32)
    tw = pt_weight(pt[true]) if mode == "pt" else np.ones(int(true.sum()))
    if pt_cut > 0:
        tw = np.where(pt[true] < pt_cut, 0.0, tw)
    weights[true] = tw
    return true.astype(np.uint8), weights.astype(np.float32), pt.astype(np.float32)
