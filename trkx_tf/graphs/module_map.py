"""The module map: which detector module pairs are connected, with windows on the doublet variables, learned from
the true edges of training events.

:class:`EdgeSample` holds one training event's true edges (and, with ``skip_layers``, the edges of particles that
missed a few layers, :func:`skip_edges`); :meth:`ModuleMap.fit` learns the map from samples, :meth:`ModuleMap.save`
/ :meth:`ModuleMap.load` keep it in an ``.npz`` file. The builder that uses it on new events is
:class:`trkx_tf.graphs.candidates.ModuleMapBuilder`. Module and layer uids and the window variables (``dphi``,
``z0``) are those of :mod:`trkx_tf.graphs.doublets`.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`; here also ``n_true`` true edges of an event, ``K`` connected
module pairs, ``L`` connected layer pairs and ``U`` modules with hits.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from trkx_tf.config import ModuleMapConfig, schema_default
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.files import load_npz, write_npz_atomic
from trkx_tf.graphs.doublets import PAIR_STRIDE, doublet_variables, module_uid, pair_code
from trkx_tf.graphs.features import cylindrical
from trkx_tf.graphs.truth import TruthGraph

MODULE_MAP_VERSION = 3  # 3: module centres (version 2 maps still load, without them)


@dataclasses.dataclass(frozen=True)
class EdgeSample:
    """The true edges of one training event, as the module map learns them.

    Attributes:
      module_a: [n_true] int64 module uid of the inner hit.
      module_b: [n_true] int64 module uid of the outer hit.
      dphi: [n_true] float64 window variable.
      z0: [n_true] float64 window variable.
      pt: [n_true] float64 particle pT (GeV).
      modules: [U] int64 sorted uids of the modules with hits (None: not recorded).
      xyz_sum: [U, 3] float64 summed x, y, z of their hits (mm).
      n_hits: [U] int64 their hits.
    """

    module_a: np.ndarray
    module_b: np.ndarray
    dphi: np.ndarray
    z0: np.ndarray
    pt: np.ndarray
    modules: Optional[np.ndarray] = None
    xyz_sum: Optional[np.ndarray] = None
    n_hits: Optional[np.ndarray] = None
    skip: Optional[np.ndarray] = None
    skip_layers: int = 0

    @classmethod
    def from_truth(cls, hits: pd.DataFrame, truth: TruthGraph, skip_layers: int = 0) -> "EdgeSample":
        """The sample of one event from its hits and truth graph.

        Args:
          hits: the event's hits.
          truth: its truth graph.
          skip_layers: also record the edges that would be true if up to this many consecutive layers of a
            particle had no hit (:func:`skip_edges`); ``skip`` then says how many layers each edge skips.

        Raises:
          ConfigError: skip_layers < 0.
        """
        if skip_layers < 0:
            raise ConfigError(f"module map: skip_layers must be >= 0, got {skip_layers}")
        uid = module_uid(hits)
        r, phi, z = cylindrical(hits)
        senders, receivers, pt = truth.senders, truth.receivers, truth.pt.astype(np.float64)
        skip = None
        if skip_layers > 0:
            ks, kr, kpt, kskip = skip_edges(senders, receivers, pt, uid // 100_000, skip_layers)
            skip = np.concatenate([np.zeros(len(senders), np.int8), kskip])
            senders, receivers = np.concatenate([senders, ks]), np.concatenate([receivers, kr])
            pt = np.concatenate([pt, kpt])
        dphi, z0 = doublet_variables(r, phi, z, senders, receivers)
        modules, inv = np.unique(uid, return_inverse=True)
        xyz = hits[["x", "y", "z"]].to_numpy(np.float64)
        xyz_sum = np.stack([np.bincount(inv, weights=xyz[:, c], minlength=len(modules)) for c in range(3)], 1)
        return cls(uid[senders], uid[receivers], dphi, z0, pt,
                   modules, xyz_sum, np.bincount(inv, minlength=len(modules)), skip, int(skip_layers))


def skip_edges(senders: np.ndarray, receivers: np.ndarray, pt: np.ndarray, layer: np.ndarray, skip_layers: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The edges a truth graph would gain if a particle missed the hits of up to ``skip_layers`` layers.

    The truth graph joins every hit of a particle's run of hits on one layer to every hit of its next run
    (:mod:`trkx_tf.graphs.truth`). If the particle left no hit in run g + 1 (detector inefficiency), runs g and
    g + 2 become consecutive and are joined all-to-all: these are the paths of two truth edges, a → b → c. With
    ``skip_layers`` = k, paths of up to k + 1 edges (runs g and g + 1 + s, s = 1 … k). A run that only loses
    some of its hits (a module overlap) keeps the chain unchanged, so nothing else is added. A path whose ends
    lie on the same layer (a particle going back and forth between two layers) is left out: without the hits
    between them the two ends would be one run, which the truth graph does not join. Vectorised: one join per
    skipped layer, no loop over hits.

    Args:
      senders, receivers: [n_true] int64 hit rows of the truth edges (inner, outer).
      pt: [n_true] float64 the edges' particle pT.
      layer: [n_node] int64 layer uid of every hit.
      skip_layers: k >= 0 layers skipped at most.

    Returns:
      ``(senders, receivers, pt, skip)``: [n_skip] int64, int64, float64 and int8 (layers skipped, 1 … k), every
      hit pair once, ordered by skip, then by (sender, receiver).
    """
    senders = np.asarray(senders, np.int64)
    receivers = np.asarray(receivers, np.int64)
    pt = np.asarray(pt, np.float64)
    out_s, out_r, out_pt, out_k = [], [], [], []
    order = np.argsort(senders, kind="stable")
    s_sorted = senders[order]
    n_node = int(max(senders.max(initial=-1), receivers.max(initial=-1))) + 1
    cur_s, cur_r, cur_pt = senders, receivers, pt
    for k in range(1, skip_layers + 1):  # one more truth edge per skipped layer
        left = np.searchsorted(s_sorted, cur_r, side="left")
        n = np.searchsorted(s_sorted, cur_r, side="right") - left
        rep = np.repeat(np.arange(len(cur_r)), n)
        nxt = order[np.repeat(left, n) + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)]
        new_s, new_r = cur_s[rep], receivers[nxt]
        # a run of several hits in between gives the same pair once per hit
        _, first = np.unique(new_s * np.int64(max(n_node, 1)) + new_r, return_index=True)
        cur_s, cur_r, cur_pt = new_s[first], new_r[first], cur_pt[rep][first]
        keep = layer[cur_s] != layer[cur_r]
        out_s.append(cur_s[keep])
        out_r.append(cur_r[keep])
        out_pt.append(cur_pt[keep])
        out_k.append(np.full(int(keep.sum()), k, np.int8))
    if not out_s:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8)
    return np.concatenate(out_s), np.concatenate(out_r), np.concatenate(out_pt), np.concatenate(out_k)


@dataclasses.dataclass(frozen=True)
class ModuleMap:
    """Which module pairs are connected, with the ranges of the window variables.

    Learning (:meth:`fit`) from the true edges of training events:

    * connectivity: every module pair that carries a true edge of a particle with pT >= ``pt_min``;
    * layer-pair range: the ``quantile`` and 1 - ``quantile`` quantiles of (dphi, z0) over the layer pair's edges
      with pT >= ``pt_min`` (a few edges of decays and secondaries far off the beam line would otherwise set
      ranges many times wider than what the bulk of the tracks need);
    * module-pair range: min and max over the pair's edges (pT >= ``pt_min``) inside its layer-pair range;
    * with ``skip_layers`` = k > 0, the edges a particle would have if it missed the hits of up to k consecutive
      layers (A → C for a chain of layers A → B → C, :func:`skip_edges`) count as true edges: the map then also
      connects the module pairs a real detector's missing hits make.

    Attributes (``K`` connected module pairs, ``L`` connected layer pairs):
      module_a, module_b: [K] int64 module uids (inner, outer), sorted by (module_a, module_b).
      count: [K] int64 edges (pT >= ``pt_min``) seen on the pair.
      count_fit: [K] int64 of them inside the layer-pair range (they set the pair's range).
      lo, hi: [K, 2] float64 the pair's range of (dphi, z0) (NaN where ``count_fit`` is 0).
      layer_a, layer_b: [L] int64 layer uids, sorted.
      layer_lo, layer_hi: [L, 2] float64 the layer pairs' ranges.
      pt_min: GeV.
      quantile: the tail fraction cut on each side of a layer pair's range.
      n_events: training events the map was learned from.
      modules: [U] int64 sorted uids of the modules seen with hits in the training events (empty in maps of
        version 2, which did not record them).
      centre: [U, 3] float64 the mean position of their hits (mm): where each module is, for
        :meth:`neighbours`.
      skip_layers: the map also learned the edges of particles that missed up to this many layers
        (:func:`skip_edges`; 0 in maps saved before it was recorded).
    """

    module_a: np.ndarray
    module_b: np.ndarray
    count: np.ndarray
    count_fit: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    layer_a: np.ndarray
    layer_b: np.ndarray
    layer_lo: np.ndarray
    layer_hi: np.ndarray
    pt_min: float
    quantile: float
    n_events: int
    modules: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    centre: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 3)))
    skip_layers: int = 0

    @property
    def n_pairs(self) -> int:
        return int(len(self.module_a))

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` modules of the same layer nearest to each module (by the distance of their centres).

        Args:
          k: neighbours per module (fewer where the layer has fewer modules).

        Returns:
          ``(module, neighbour)``: [N] int64 uids each, every module with each of its neighbours.

        Raises:
          ConfigError: the map has no module centres (a version-2 map: learn it again).
        """
        from scipy.spatial import cKDTree

        if len(self.modules) == 0:
            raise ConfigError("module map: this map has no module centres (made by an older version): learn it "
                              "again to use graph.module_map.neighbours")
        layer = self.modules // 100_000
        out_m, out_n = [], []
        bounds = np.flatnonzero(np.diff(np.concatenate([[-1], layer, [-1]])))  # modules are sorted by layer
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            kk = min(k, hi - lo - 1)
            if kk < 1:
                continue
            _, idx = cKDTree(self.centre[lo:hi]).query(self.centre[lo:hi], k=kk + 1)
            out_m.append(np.repeat(self.modules[lo:hi], kk))
            out_n.append(self.modules[lo:hi][idx[:, 1:]].ravel())  # column 0 is the module itself
        if not out_m:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(out_m), np.concatenate(out_n)

    @classmethod
    def fit(cls, samples: Iterable[EdgeSample], pt_min: float = 0.0, quantile: float = 0.0,
            connect_pt_min: Optional[float] = None, skip_layers: int = 0) -> "ModuleMap":
        """Learns a module map from the true edges of training events.

        Args:
          samples: one :class:`EdgeSample` per training event.
          pt_min: GeV; edges of particles at or above it set the window ranges.
          quantile: tail fraction cut on each side of each layer pair's range, in [0, 0.5).
          connect_pt_min: GeV; edges of particles at or above it make module pairs connected (None: ``pt_min``).
            Pairs connected only by edges below ``pt_min`` get their layer pair's window.
          skip_layers: also learn from the edges of particles that missed the hits of up to this many
            consecutive layers (the samples' skip edges, :func:`skip_edges`), exactly like true edges: they
            connect their module pairs (A → C for a chain A → B → C) and widen the ranges they fall in.

        Returns:
          The map.

        Raises:
          DataError: there are no true edges (above ``pt_min``) to learn from.
          ConfigError: quantile is outside [0, 0.5), skip_layers < 0, or a sample recorded fewer skipped
            layers than ``skip_layers`` (make it with ``EdgeSample.from_truth(..., skip_layers)``).
        """
        if not 0.0 <= quantile < 0.5:
            raise ConfigError(f"module map: quantile must be in [0, 0.5), got {quantile}")
        if skip_layers < 0:
            raise ConfigError(f"module map: skip_layers must be >= 0, got {skip_layers}")
        connect_pt_min = pt_min if connect_pt_min is None else connect_pt_min
        samples = list(samples)
        short = [s.skip_layers for s in samples if s.skip_layers < skip_layers]
        if short:
            raise ConfigError(f"module map: skip_layers={skip_layers} but {len(short)} training sample(s) recorded "
                              f"only {min(short)} skipped layer(s) (EdgeSample.from_truth(..., skip_layers))")
        lowest = min(pt_min, connect_pt_min)
        keep = [(s.pt >= lowest) if s.skip is None else (s.pt >= lowest) & (s.skip <= skip_layers)
                for s in samples]
        ma = np.concatenate([s.module_a[k] for s, k in zip(samples, keep)]) if samples else np.zeros(0, np.int64)
        pt = np.concatenate([s.pt[k] for s, k in zip(samples, keep)]) if samples else np.zeros(0)
        if not np.any(pt >= pt_min):
            raise DataError(f"module map: no true edges with pT >= {pt_min} GeV to learn from "
                            f"(need training events with truth)")
        mb = np.concatenate([s.module_b[k] for s, k in zip(samples, keep)])
        var = np.stack([np.concatenate([s.dphi[k] for s, k in zip(samples, keep)]),
                        np.concatenate([s.z0[k] for s, k in zip(samples, keep)])], 1)
        ranged = pt >= pt_min
        connect = pt >= connect_pt_min

        la, lb = ma // 100_000, mb // 100_000
        lpairs, linv = np.unique(np.stack([la, lb], 1)[connect | ranged], axis=0, return_inverse=True)
        l_keys = lpairs[:, 0] * 10**7 + lpairs[:, 1]
        linv = np.searchsorted(l_keys, la * 10**7 + lb)  # every edge kept belongs to a listed layer pair
        l_lo, l_hi = _group_quantiles(linv[ranged], var[ranged], len(lpairs), quantile)
        # a layer pair with no edge above pt_min (only connectivity): its range from all its edges
        empty = np.isnan(l_lo[:, 0])
        if np.any(empty):
            a_lo, a_hi = _group_quantiles(linv, var, len(lpairs), quantile)
            l_lo[empty], l_hi[empty] = a_lo[empty], a_hi[empty]
        inlier = ranged & np.all((var >= l_lo[linv]) & (var <= l_hi[linv]), axis=1)

        modules, dense = np.unique(np.concatenate([ma, mb]), return_inverse=True)
        e_keys = dense[: len(ma)] * np.int64(len(modules)) + dense[len(ma):]  # pair keys, no overflow
        p_keys = np.unique(e_keys[connect])
        pairs = np.stack([modules[p_keys // len(modules)], modules[p_keys % len(modules)]], 1)
        pos = np.minimum(np.searchsorted(p_keys, e_keys), len(p_keys) - 1)
        listed = p_keys[pos] == e_keys
        n_pairs = len(pairs)
        count = np.bincount(pos[listed & ranged], minlength=n_pairs)
        sel = listed & inlier
        count_fit = np.bincount(pos[sel], minlength=n_pairs)
        lo, hi = _group_quantiles(pos[sel], var[sel], n_pairs, 0.0)
        seen = [s for s in samples if s.modules is not None]
        if seen:
            all_modules, minv = np.unique(np.concatenate([s.modules for s in seen]), return_inverse=True)
            n_hits = np.bincount(minv, weights=np.concatenate([s.n_hits for s in seen]), minlength=len(all_modules))
            xyz = np.concatenate([s.xyz_sum for s in seen])
            centre = np.stack([np.bincount(minv, weights=xyz[:, c], minlength=len(all_modules)) for c in range(3)],
                              1) / np.maximum(n_hits, 1)[:, None]
        else:
            all_modules, centre = np.zeros(0, np.int64), np.zeros((0, 3))
        return cls(
            pairs[:, 0].copy(), pairs[:, 1].copy(), count, count_fit, lo, hi,
            lpairs[:, 0].copy(), lpairs[:, 1].copy(), l_lo, l_hi, float(pt_min), float(quantile), len(samples),
            all_modules.astype(np.int64), centre, int(skip_layers),
        )

    def windows(self, margin: float = schema_default(ModuleMapConfig, "margin"),
                rare_margin: float = schema_default(ModuleMapConfig, "rare_margin"),
                min_count: int = schema_default(ModuleMapConfig, "min_count")
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The final window of every module pair.

        A pair's window is its own range (``n`` = ``count_fit`` edges) widened on each side by
        ``W · (margin + rare_margin / (n + 1))``, W being the width of its layer pair's range: the fewer edges
        a range rests on, the more it is widened (n samples cover about (n - 1)/(n + 1) of a distribution).
        It never exceeds the layer pair's range widened by ``W · margin``.

        Args:
          margin: widening of every window, as a fraction of the layer pair's range.
          rare_margin: extra widening of a range resting on n edges, divided by n + 1.
          min_count: pairs with fewer edges (``count``, pT >= ``pt_min``) are not used; neither is a pair none
            of whose edges lies inside its layer pair's range (``count_fit`` = 0).

        Returns:
          ``(lo, hi, use)``: [K, 2] float64 window bounds over (dphi, z0) and [K] bool pairs in use.
        """
        keys = self.layer_a * 10**7 + self.layer_b
        pos = np.searchsorted(keys, (self.module_a // 100_000) * 10**7 + self.module_b // 100_000)
        l_lo, l_hi = self.layer_lo[pos], self.layer_hi[pos]
        width = l_hi - l_lo
        n = self.count_fit[:, None].astype(np.float64)
        pad = width * (margin + rare_margin / (n + 1.0))
        use = (self.count >= min_count) & (self.count_fit > 0)
        with np.errstate(invalid="ignore"):
            lo = np.maximum(self.lo - pad, l_lo - margin * width)
            hi = np.minimum(self.hi + pad, l_hi + margin * width)
        lo[~use] = np.inf
        hi[~use] = -np.inf
        return lo, hi, use

    def borrowed_windows(self, lo: np.ndarray, hi: np.ndarray, use: np.ndarray, k: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Windows for module pairs never seen in training, lent by the seen pairs of neighbouring modules.

        A module pair (A, B) in use lends its window to (A, B') and (A', B) for each of the ``k`` modules B' of
        B's layer nearest to B, and A' of A's layer nearest to A (:meth:`neighbours`): a true edge on a pair never
        seen in the training events (thin statistics, or a track pushed one module over by a scatter) has nearly
        the same doublet variables as the edges of the pair next to it. A pair lent several windows gets their
        union; pairs in use keep their own.

        Args:
          lo, hi, use: the pairs' windows (:meth:`windows`).
          k: neighbours per module (0: none lent).

        Returns:
          ``(module_a, module_b, lo, hi)``: [Q] int64 uids and [Q, 2] float64 windows of the Q new pairs, sorted.
        """
        if k <= 0 or not use.any():
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros((0, 2))
        src, nbr = self.neighbours(k)
        order = np.argsort(src, kind="stable")
        src, nbr = src[order], nbr[order]
        idx = np.flatnonzero(use)

        def moved(modules):  # (lending pair, neighbour of its module) for every neighbour
            left = np.searchsorted(src, modules[idx], side="left")
            n = np.searchsorted(src, modules[idx], side="right") - left
            return np.repeat(idx, n), nbr[np.repeat(left, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]

        rep_b, nbr_b = moved(self.module_b)  # (A, B')
        rep_a, nbr_a = moved(self.module_a)  # (A', B)
        a = np.concatenate([self.module_a[rep_b], nbr_a])
        b = np.concatenate([nbr_b, self.module_b[rep_a]])
        lender = np.concatenate([rep_b, rep_a])
        keys, inv = np.unique(pair_code(a, b), return_inverse=True)
        new_lo = np.full((len(keys), 2), np.inf)
        new_hi = np.full((len(keys), 2), -np.inf)
        for c in range(2):
            np.minimum.at(new_lo[:, c], inv, lo[lender, c])
            np.maximum.at(new_hi[:, c], inv, hi[lender, c])
        # pairs of the map in use keep their own window
        fresh = ~np.isin(keys, pair_code(self.module_a[use], self.module_b[use]))
        new_a, new_b = np.divmod(keys[fresh], PAIR_STRIDE)
        return new_a, new_b, new_lo[fresh], new_hi[fresh]

    # ------------------------------------------------------------------------------------------ persistence
    def save(self, path: os.PathLike | str) -> None:
        """Writes the map as ``.npz`` atomically (temporary name, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}
        write_npz_atomic(path, version=np.int64(MODULE_MAP_VERSION), **arrays)

    @classmethod
    def load(cls, path: os.PathLike | str) -> "ModuleMap":
        """Reads a map written by :meth:`save`.

        Raises:
          DataError: the file is missing, empty, truncated, damaged (a CRC-32 mismatch), of another version or
            incomplete; the message names the file.
        """
        data = load_npz(path, "module map")
        try:
            version = int(data["version"]) if "version" in data and data["version"].shape == () else -1
        except (TypeError, ValueError):
            version = -1
        if version not in (2, MODULE_MAP_VERSION):
            raise DataError(f"module map {path}: version {version}, expected {MODULE_MAP_VERSION}")
        try:
            values = {f.name: data[f.name] for f in dataclasses.fields(cls)
                      if (version == MODULE_MAP_VERSION or f.name not in ("modules", "centre"))
                      and (f.name != "skip_layers" or f.name in data)}  # absent: saved before skip_layers
        except KeyError as exc:
            raise DataError(f"module map {path}: missing array {exc}") from None
        try:
            values["pt_min"] = float(values["pt_min"])
            values["quantile"] = float(values["quantile"])
            values["n_events"] = int(values["n_events"])
            values["skip_layers"] = int(values.get("skip_layers", 0))
        except (TypeError, ValueError) as exc:
            raise DataError(f"module map {path}: unexpected content ({exc}); write it again (trkx-build)") from None
        return cls(**values)


def _group_quantiles(group: np.ndarray, values: np.ndarray, n_groups: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-group q and 1 - q quantiles (lower and upper order statistics) of each column of values [k, C].

    Returns (lo, hi), each [n_groups, C]; NaN for empty groups. q = 0 gives min and max.
    """
    n_cols = values.shape[1]
    lo = np.full((n_groups, n_cols), np.nan)
    hi = np.full((n_groups, n_cols), np.nan)
    count = np.bincount(group, minlength=n_groups)
    has = np.flatnonzero(count > 0)
    if len(has) == 0:
        return lo, hi
    start = (np.cumsum(count) - count)[has]
    last = count[has] - 1
    i_lo = start + np.floor(q * last).astype(np.int64)
    i_hi = start + np.ceil((1.0 - q) * last).astype(np.int64)
    for c in range(n_cols):
        order = np.lexsort((values[:, c], group))
        v = values[order, c]
        lo[has, c] = v[i_lo]
        hi[has, c] = v[i_hi]
    return lo, hi
