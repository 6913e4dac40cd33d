"""Candidate-edge builders behind one interface, chosen by ``graph.builder``.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`; nodes are the hit rows of one event (0 … n_node-1), and a
builder returns ``n_edge`` directed candidate edges as two int64 arrays ``(senders, receivers)``, each of shape
[n_edge], without self-loops and without the same hit pair twice (in either direction), sorted by
(sender, receiver).

* :class:`ModuleMapBuilder` (``module_map``, the default): a :class:`~trkx_tf.graphs.module_map.ModuleMap`
  learned from the truth graphs of training events says which module pairs are connected and, for each, a window
  on the two doublet variables ``dphi`` and ``z0`` (:mod:`trkx_tf.graphs.doublets`). On a new event the hits are
  grouped by module and sorted by φ inside each; for every hit of a connected module pair's inner module a binary
  search finds the outer module's hits inside the pair's dphi window, and a pair is kept when both variables are
  inside the window (a numba kernel over the module pairs, :mod:`trkx_tf.graphs.window_search`).
* :class:`EmbeddingBuilder` (``embedding``): a radius graph (:func:`trkx_tf.graphs.neighbours.radius_graph`,
  chunked, scipy cKDTree / faiss / hnswlib), at most ``max_neighbours`` per hit, in the space of a learned
  embedding. The builder receives the embedding as a plain ``embed`` function
  (``[n_node, F] -> [n_node, D]``); :mod:`trkx_tf.reco.build` makes it from a trained model, so ``graphs/`` never
  imports the models. Edges point from the hit nearer the origin to the farther one.
"""

from __future__ import annotations

import abc
from typing import Callable, Optional

import numpy as np
import pandas as pd

from trkx_tf.config import EmbeddingGraphConfig, ModuleMapConfig, schema_default
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.graphs.doublets import doublet_variables, find_rows, module_uid, unique_edges, wrap_angle
from trkx_tf.graphs.window_search import window_pairs
from trkx_tf.graphs.features import cylindrical
from trkx_tf.graphs.module_map import ModuleMap
from trkx_tf.graphs.neighbours import radius_graph  # the embedding builder's query (re-exported for callers)

_PHI_SLACK = 1e-9  # rad: the binary search window is this much wider than the dphi window (rounding)


class EdgeBuilder(abc.ABC):
    """Makes the candidate edges of one event."""

    name: str = ""

    def warm_up(self) -> None:
        """Loads what the first event would otherwise wait for (compiled kernels); nothing by default."""

    @abc.abstractmethod
    def build(self, hits: pd.DataFrame, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate edges of one event.

        Args:
          hits: the event's TrackML hits, ``n_node`` rows (node i is row i).
          nodes: [n_node, F] float32 node features of the same hits.

        Returns:
          ``(senders, receivers)``: [n_edge] int64 hit rows each, no self-loops, no repeated hit pair, sorted.
        """


class ModuleMapBuilder(EdgeBuilder):
    """Candidate edges from a learned :class:`ModuleMap`.

    Args:
      module_map: the learned map.
      margin, rare_margin, min_count: how windows are made from the map's ranges (:meth:`ModuleMap.windows`;
        defaults: ``graph.module_map``'s).
      neighbours: module pairs never seen in training borrow the windows of the pairs of the ``neighbours``
        nearest modules of the same layer (:meth:`ModuleMap.borrowed_windows`); 0: unseen pairs stay unconnected.

    Attributes:
      pair_a, pair_b: [K'] int64 module uids of the pairs in use (seen and borrowed), sorted.
      lo, hi: [K', 2] float64 their windows over (dphi, z0).
      n_borrowed: how many of them borrowed their window.

    Raises:
      ConfigError: a negative margin or neighbours, or min_count < 1.
    """

    name = "module_map"

    def __init__(self, module_map: ModuleMap, margin: float = schema_default(ModuleMapConfig, "margin"),
                 rare_margin: float = schema_default(ModuleMapConfig, "rare_margin"),
                 min_count: int = schema_default(ModuleMapConfig, "min_count"),
                 neighbours: int = schema_default(ModuleMapConfig, "neighbours")):
        if margin < 0 or rare_margin < 0 or min_count < 1 or neighbours < 0:
            raise ConfigError(f"module map builder: need margin, rare_margin, neighbours >= 0 and min_count >= 1 "
                              f"(got {margin}, {rare_margin}, {neighbours}, {min_count})")
        self.module_map = module_map
        lo, hi, use = module_map.windows(margin, rare_margin, min_count)
        ba, bb, blo, bhi = module_map.borrowed_windows(lo, hi, use, neighbours)
        a = np.concatenate([module_map.module_a[use], ba])
        b = np.concatenate([module_map.module_b[use], bb])
        order = np.lexsort((b, a))
        self.pair_a, self.pair_b = a[order], b[order]
        self.lo = np.concatenate([lo[use], blo])[order]
        self.hi = np.concatenate([hi[use], bhi])[order]
        self.n_borrowed = int(len(ba))

    def build(self, hits: pd.DataFrame, nodes: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        n_node = len(hits)
        uid = module_uid(hits)
        if n_node == 0 or len(self.pair_a) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        r, phi, z = cylindrical(hits)
        # The hits sorted by module, and inside a module by φ about the module's centre (``local``): the outer hits
        # that can fall into a pair's dphi window are then one run of its outer module, found by binary search on
        # ``local`` instead of forming every hit pair of the two modules.
        modules, inv = np.unique(uid, return_inverse=True)
        centre = np.arctan2(np.bincount(inv, np.sin(phi), len(modules)), np.bincount(inv, np.cos(phi), len(modules)))
        local = wrap_angle(phi - centre[inv])
        order = np.lexsort((local, inv))
        count = np.bincount(inv, minlength=len(modules))
        start = np.cumsum(count) - count
        r_s, phi_s, z_s, local_s = r[order], phi[order], z[order], local[order]
        spread = np.maximum.reduceat(np.abs(local_s), start)
        pa = np.minimum(np.searchsorted(modules, self.pair_a), len(modules) - 1)
        pb = np.minimum(np.searchsorted(modules, self.pair_b), len(modules) - 1)
        live = np.flatnonzero((modules[pa] == self.pair_a) & (modules[pb] == self.pair_b))
        pa, pb = pa[live], pb[live]
        # dphi = φ_b − φ_a equals local_b + wrap(centre_b − φ_a) when the window and the outer module stay within
        # ±π/2 (no second wrap); other pairs search their whole outer module. The exact cut follows either way.
        lo, hi = self.lo[live, 0], self.hi[live, 0]
        narrow = (spread[pb] < np.pi / 2) & (lo > -np.pi / 2) & (hi < np.pi / 2)
        window = np.concatenate([self.lo[live], self.hi[live]], 1)[:, [0, 2, 1, 3]]  # dphi lo, hi, z0 lo, hi
        qa, qb = window_pairs(start[pa], count[pa], start[pb], count[pb], centre[pb], narrow, lo - _PHI_SLACK,
                              hi + _PHI_SLACK, np.ascontiguousarray(window), local_s, r_s, phi_s, z_s)
        return unique_edges(order[qa], order[qb], n_node)

    def warm_up(self) -> None:
        """Loads the compiled window search (numba's cache) with one call on no module pairs."""
        none_i, none_f = np.zeros(0, np.int64), np.zeros(0)
        window_pairs(none_i, none_i, none_i, none_i, none_f, np.zeros(0, bool), none_f, none_f, np.zeros((0, 4)),
                     none_f, none_f, none_f, none_f)

    def explain(self, hits: pd.DataFrame, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
        """Why the builder keeps or drops given hit pairs (e.g. the true edges it misses).

        Args:
          hits: the event's hits, ``n_node`` rows.
          senders, receivers: [k] int64 hit rows of the pairs (inner hit first, as in a truth graph).

        Returns:
          [k] int8: 0 kept, 1 module pair not connected, 2 outside the dphi window, 3 outside the z0 window.
        """
        uid = module_uid(hits)
        r, phi, z = cylindrical(hits)
        pos = find_rows(np.stack([uid[senders], uid[receivers]], 1), np.stack([self.pair_a, self.pair_b], 1))
        dphi, z0 = doublet_variables(r, phi, z, senders, receivers)
        w = np.maximum(pos, 0)
        out = np.zeros(len(pos), np.int8)
        if len(self.pair_a):
            out[(dphi < self.lo[w, 0]) | (dphi > self.hi[w, 0])] = 2
            out[(out == 0) & ((z0 < self.lo[w, 1]) | (z0 > self.hi[w, 1]))] = 3
        out[pos < 0] = 1
        return out


class EmbeddingBuilder(EdgeBuilder):
    """Candidate edges from a radius graph in a learned embedding space.

    Args:
      embed: ``embed(nodes [n_node, F] float32) -> [n_node, D]`` the hits' coordinates in the embedding space
        (e.g. a trained :class:`~trkx_tf.models.embedding.EmbeddingMLP`, see :mod:`trkx_tf.reco.build`).
      radius: neighbourhood radius in the embedding space (> 0).
      max_neighbours: at most this many neighbours per hit (>= 1).
      search: the neighbour search (:data:`trkx_tf.graphs.neighbours.SEARCHES`).

    Raises:
      ConfigError: ``radius <= 0`` or ``max_neighbours < 1``.
    """

    name = "embedding"

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray], radius: float, max_neighbours: int,
                 search: str = schema_default(EmbeddingGraphConfig, "search")):
        if radius <= 0 or max_neighbours < 1:
            raise ConfigError(f"embedding builder: need radius > 0 and max_neighbours >= 1 "
                              f"(got {radius}, {max_neighbours})")
        self.embed = embed
        self.radius = float(radius)
        self.max_neighbours = int(max_neighbours)
        self.search = search

    def build(self, hits: pd.DataFrame, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`EdgeBuilder.build`.

        Raises:
          DataError: ``embed`` did not return one row per hit.
        """
        n_node = len(hits)
        points = np.asarray(self.embed(np.asarray(nodes, np.float32)))
        if points.ndim != 2 or points.shape[0] != n_node:
            raise DataError(f"embedding graph: embed returned shape {points.shape}, expected [{n_node}, D]")
        i, j = radius_graph(points, self.radius, self.max_neighbours, self.search)
        r, _, z = cylindrical(hits)
        dist = np.hypot(r, z)
        flip = (dist[i] > dist[j]) | ((dist[i] == dist[j]) & (i > j))
        return unique_edges(np.where(flip, j, i), np.where(flip, i, j), n_node)


def make_builder(graph_cfg, module_map: Optional[ModuleMap] = None,
                 embed: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> EdgeBuilder:
    """The builder named by ``graph_cfg.builder`` (the one place that reads the builder's config).

    Args:
      graph_cfg: the ``graph`` section (:class:`trkx_tf.config.GraphConfig`).
      module_map: the learned map (``module_map`` builder).
      embed: the trained embedding as a function of node features (``embedding`` builder, see
        :class:`EmbeddingBuilder`).

    Returns:
      An :class:`EdgeBuilder`.

    Raises:
      ConfigError: the builder's input is missing.
    """
    if graph_cfg.builder == "module_map":
        if module_map is None:
            raise ConfigError("graph.builder=module_map needs a module map (learned or graph.module_map.path)")
        c = graph_cfg.module_map
        return ModuleMapBuilder(module_map, c.margin, c.rare_margin, c.min_count, c.neighbours)
    if graph_cfg.builder == "embedding":
        if embed is None:
            raise ConfigError("graph.builder=embedding needs a trained model (graph.embedding.model)")
        c = graph_cfg.embedding
        return EmbeddingBuilder(embed, c.radius, c.max_neighbours, c.search)
    raise ConfigError(f"graph.builder: unknown builder {graph_cfg.builder!r}")
