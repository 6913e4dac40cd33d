"""η/φ sectors of an event graph, for training on smaller graphs (inference always uses whole events).

The event is cut into ``n_phi × n_eta`` sectors: equal φ slices, and η slices with equal numbers of hits
(η = asinh(z / r) seen from the origin). Sector ``k = i_phi · n_eta + i_eta`` has a *core* (its slice) and a
*halo* (``overlap`` rad in φ and ``overlap`` in η beyond each side).

An edge belongs to the sector whose core holds its sender; there it keeps its weight. The sector's graph holds
the edges it owns plus every other edge with both ends in core ∪ halo, with weight 0 (context only: they are
labelled but neither rewarded nor punished), and the nodes those edges touch plus all nodes of core ∪ halo.
So, summed over the sectors of an event, every edge is weighted exactly once, as in the whole event.
"""

from __future__ import annotations

import numpy as np

from trkx_tf.errors import ConfigError
from trkx_tf.graphs.graph import EventGraph


def sector_index(phi: np.ndarray, eta: np.ndarray, n_phi: int, n_eta: int, eta_edges: np.ndarray) -> np.ndarray:
    """The core sector of points: i_phi · n_eta + i_eta.

    Args:
      phi: [k] angles in [-π, π].
      eta: [k] pseudorapidities.
      n_phi, n_eta: sector counts.
      eta_edges: [n_eta + 1] increasing η boundaries (outer ones may be ±inf).

    Returns:
      [k] int64 sector indices.
    """
    i_phi = np.clip(np.floor((phi + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), 0, n_phi - 1)
    i_eta = np.clip(np.searchsorted(eta_edges, eta, side="right") - 1, 0, n_eta - 1)
    return i_phi * n_eta + i_eta


def split_sectors(graph: EventGraph, phi: np.ndarray, eta: np.ndarray, n_phi: int, n_eta: int,
                  overlap: float) -> list[EventGraph]:
    """Cuts a graph into sectors (see the module docstring).

    Args:
      graph: the whole-event graph.
      phi: [n_node] φ of each node (rad).
      eta: [n_node] η of each node.
      n_phi, n_eta: sector counts (1 × 1 returns the graph unchanged).
      overlap: halo width, rad in φ and units in η.

    Returns:
      The sector graphs, in sector order; empty sectors are left out.

    Raises:
      ConfigError: counts < 1 or overlap < 0.
    """
    if n_phi < 1 or n_eta < 1 or overlap < 0:
        raise ConfigError(f"graph.sectors: need phi >= 1, eta >= 1, overlap >= 0 (got {n_phi}, {n_eta}, {overlap})")
    if n_phi == 1 and n_eta == 1:
        return [graph]
    eta_edges = np.concatenate([[-np.inf], np.quantile(eta, np.arange(1, n_eta) / n_eta) if len(eta) else
                                np.zeros(n_eta - 1), [np.inf]])
    core = sector_index(phi, eta, n_phi, n_eta, eta_edges)
    owner = core[graph.senders]
    width = 2 * np.pi / n_phi
    out = []
    for k in range(n_phi * n_eta):
        i_phi, i_eta = divmod(k, n_eta)
        if n_phi > 1:
            centre = -np.pi + (i_phi + 0.5) * width
            d = np.abs(np.mod(phi - centre + np.pi, 2 * np.pi) - np.pi)
            in_phi = d <= width / 2 + overlap
        else:
            in_phi = np.ones(graph.n_node, bool)
        in_eta = (eta >= eta_edges[i_eta] - overlap) & (eta <= eta_edges[i_eta + 1] + overlap)
        region = in_phi & in_eta
        own = owner == k
        context = region[graph.senders] & region[graph.receivers] & ~own
        edges = np.flatnonzero(own | context)
        keep = region.copy()
        keep[graph.senders[edges]] = True
        keep[graph.receivers[edges]] = True
        nodes = np.flatnonzero(keep)
        if len(nodes) == 0:
            continue
        weights = np.where(own[edges], graph.edge_weights[edges], np.float32(0)).astype(np.float32)
        out.append(graph.subgraph(nodes, edges, weights, sector=k))
    return out
