"""The TrackML detector geometry and fast helix–module intersection.

A module is a thin planar sensor: centre ``c``, rotation ``R`` (global = c + R @ local, local axes u, v, w with w
the normal), thickness ``t`` along w, a trapezoid in (u, v) with half-width ``hu(v)`` rising linearly from
``module_minhu`` at v = -hv to ``module_maxhu`` at v = +hv, and pixel pitches along u and v. A layer is a
(volume_id, layer_id): barrel layers are cylinders of modules around the z axis, end-cap layers are disks of
modules at fixed z.

Charged particles move on helices in a solenoid field along z. A helix is parametrised by its transverse arc
length ``s`` (mm) from the production point::

    x(s) = x0 + s·sinc(κs/2)·cos(φ0 + κs/2)      κ = -q·0.2998·Bz / pT   (1/mm, Bz in T, pT in GeV)
    y(s) = y0 + s·sinc(κs/2)·sin(φ0 + κs/2)
    z(s) = z0 + s·cot(θ)

which stays exact for straight lines (κ → 0). :func:`intersect` finds every module a helix crosses: for each layer
it solves the crossings of the layer's envelope (cylinders r = const for barrel layers, planes z = const for
end-caps) in closed form, looks the candidate modules up in a per-layer (φ, z) or (φ, r) bin table, and solves
the helix–plane intersection with each candidate by Newton's method, keeping those inside the module's bounds.

Shape vocabulary: ``n_modules`` modules, ``n_tracks`` helices, ``n_crossings`` (track, module) intersections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.trackml.io import read_detectors

C_LIGHT = 0.299792458  # GeV / (T · m)
_ROT_COLUMNS = ["rot_xu", "rot_xv", "rot_xw", "rot_yu", "rot_yv", "rot_yw", "rot_zu", "rot_zv", "rot_zw"]


#: The TrackML detector (the challenge's detectors.csv): modules per (volume_id, layer_id), 48 layers, 18728 modules.
TRACKML_LAYERS = {
    **{(v, lay): 108 for v in (7, 9) for lay in range(2, 15, 2)},
    (8, 2): 224, (8, 4): 448, (8, 6): 728, (8, 8): 1092,
    **{(v, lay): 170 for v in (12, 14) for lay in range(2, 13, 2)},
    (13, 2): 840, (13, 4): 1176, (13, 6): 1638, (13, 8): 2142,
    **{(v, lay): 98 for v in (16, 18) for lay in range(2, 13, 2)},
    (17, 2): 2520, (17, 4): 3192,
}


def check_trackml_layout(detectors: pd.DataFrame, name: str) -> None:
    """Refuses a detector file whose layers are TrackML layers but which lacks modules or layers of the TrackML
    detector: a ``detectors.csv`` cut at a line end still parses, and would simulate part of the detector.

    A detector with a layer that TrackML does not have is another detector and is not compared.

    Args:
      detectors: ``[n_modules]`` rows of :func:`~trkx_tf.trackml.io.read_detectors`.
      name: the file, for the message.

    Raises:
      DataError: layers missing or a layer with another number of modules than in TrackML.
    """
    counts = detectors.groupby(["volume_id", "layer_id"]).size()
    present = {(int(v), int(lay)): int(n) for (v, lay), n in counts.items()}
    if not set(present) <= set(TRACKML_LAYERS) or present == TRACKML_LAYERS:
        return
    missing = [k for k in TRACKML_LAYERS if k not in present]
    short = [(k, n) for k, n in present.items() if n != TRACKML_LAYERS[k]]
    what = []
    if short:
        (v, lay), n = short[0]
        what.append(f"volume {v} layer {lay} has {n} of its {TRACKML_LAYERS[(v, lay)]} modules")
    if missing:
        what.append(f"{len(missing)} of the 48 layers are missing (first: volume {missing[0][0]} layer "
                    f"{missing[0][1]})")
    raise DataError(f"{name}: {len(detectors)} modules where the TrackML detector has "
                    f"{sum(TRACKML_LAYERS.values())}: {'; '.join(what)}; the file looks truncated: restore the "
                    f"complete detectors.csv")


# ------------------------------------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class Layer:
    """Lookup of the modules of one layer near a point.

    Attributes:
      volume_id, layer_id: the layer.
      barrel: True for a barrel layer (cylinder), False for an end-cap disk.
      envelope: (lo, mid, hi) radius (barrel) or z (end-cap) range that holds every module surface.
      a_min, a_bin, n_a: binning of the second coordinate: z (barrel) or r (end-cap).
      n_phi: number of φ bins over [-π, π).
      table: ``[n_phi * n_a, k]`` int32 module rows per bin, -1 padded; bin index = i_phi * n_a + i_a.
    """

    volume_id: int
    layer_id: int
    barrel: bool
    envelope: tuple[float, float, float]
    a_min: float
    a_bin: float
    n_a: int
    n_phi: int
    table: np.ndarray

    def candidates(self, xyz: np.ndarray) -> np.ndarray:
        """Module rows near points ``[n, 3]`` -> ``[n, k]`` (-1 padded; all -1 outside the layer)."""
        phi = np.arctan2(xyz[:, 1], xyz[:, 0])
        a = xyz[:, 2] if self.barrel else np.hypot(xyz[:, 0], xyz[:, 1])
        i_phi = np.floor((phi + np.pi) * (self.n_phi / (2 * np.pi))).astype(np.int64) % self.n_phi
        i_a_f = np.floor((a - self.a_min) / self.a_bin)
        inside = (i_a_f >= 0) & (i_a_f < self.n_a) & np.isfinite(a)
        i_a = np.where(inside, i_a_f, 0).astype(np.int64)
        out = self.table[i_phi * self.n_a + i_a]
        out[~inside] = -1
        return out


def _module_points(center, rot, hu_min, hu_max, hv, margin: float, n: int) -> np.ndarray:
    """``[n_modules, n*n, 3]`` points covering each module's trapezoid grown by ``margin``."""
    f = np.linspace(-1.0, 1.0, n)
    fu, fv = np.meshgrid(f, f, indexing="ij")
    fu, fv = fu.ravel(), fv.ravel()
    v = fv[None, :] * (hv[:, None] + margin)
    half = hu_min[:, None] + (hu_max - hu_min)[:, None] * (np.clip(v, -hv[:, None], hv[:, None]) + hv[:, None]) \
        / (2 * hv[:, None])
    u = fu[None, :] * (half + margin)
    local = np.stack([u, v, np.zeros_like(u)], axis=-1)
    return center[:, None, :] + np.einsum("mij,mpj->mpi", rot, local)


def _build_layer(volume_id, layer_id, rows, center, rot, hu_min, hu_max, hv, thickness, margin=2.0) -> Layer:
    normal = rot[rows][:, :, 2]
    barrel = bool(np.mean(np.abs(normal[:, 2])) < 0.5)
    pts = _module_points(center[rows], rot[rows], hu_min[rows], hu_max[rows], hv[rows], margin, 9)
    # envelope from the module surfaces on both faces (±t/2 along the normal)
    faces = np.concatenate([pts + s * 0.5 * thickness[rows][:, None, None] * normal[:, None, :] for s in (-1, 1)], 1)
    coord = np.hypot(faces[..., 0], faces[..., 1]) if barrel else faces[..., 2]
    lo, hi = float(coord.min()), float(coord.max())
    r_c = np.hypot(center[rows, 0], center[rows, 1])
    if barrel:
        a = pts[..., 2]
        a_bin = float(hv[rows].min())
        width = float(np.min(2 * hu_min[rows] / r_c))
    else:
        a = np.hypot(pts[..., 0], pts[..., 1])
        a_bin = float(hv[rows].min())
        r_outer = r_c + hv[rows]
        width = float(np.min(2 * hu_min[rows] / r_outer))
    n_phi = max(1, int(np.ceil(2 * np.pi / (0.5 * width))))
    a_min = float(a.min()) - a_bin
    n_a = int(np.ceil((float(a.max()) + a_bin - a_min) / a_bin))
    phi = np.arctan2(pts[..., 1], pts[..., 0])
    i_phi = np.floor((phi + np.pi) * (n_phi / (2 * np.pi))).astype(np.int64) % n_phi
    i_a = np.clip(np.floor((a - a_min) / a_bin).astype(np.int64), 0, n_a - 1)
    bins = i_phi * n_a + i_a
    module = np.broadcast_to(rows[:, None], bins.shape)
    pairs = np.unique(np.stack([bins.ravel(), module.ravel()], 1), axis=0)
    counts = np.bincount(pairs[:, 0], minlength=n_phi * n_a)
    k = int(counts.max())
    table = np.full((n_phi * n_a, k), -1, np.int32)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(pairs)) - start[pairs[:, 0]]
    table[pairs[:, 0], slot] = pairs[:, 1]
    return Layer(int(volume_id), int(layer_id), barrel, (lo, 0.5 * (lo + hi), hi), a_min, a_bin, n_a, n_phi, table)


# ----------------------------------------------------------------------------------------------------- geometry
class Geometry:
    """Modules of a TrackML detector, as numpy arrays, with a per-layer lookup.

    Args:
      detectors: ``[n_modules]`` rows as returned by :func:`~trkx_tf.trackml.io.read_detectors`.

    Attributes:
      volume_id, layer_id, module_id: ``[n_modules]`` int32.
      center: ``[n_modules, 3]`` module centres (mm).
      rotation: ``[n_modules, 3, 3]`` local (u, v, w) -> global (x, y, z); ``rotation[:, :, 2]`` is the normal.
      thickness, hu_min, hu_max, hv, pitch_u, pitch_v: ``[n_modules]`` (mm).
      layers: the layers, sorted by (volume_id, layer_id).
      r_max, z_max: half-sizes of a cylinder that holds every module.

    Raises:
      DataError: a module has a non-positive size or pitch, or a rotation that is not orthonormal.
    """

    def __init__(self, detectors: pd.DataFrame, name: str = "detectors"):
        d = detectors
        self.volume_id = d["volume_id"].to_numpy(np.int32)
        self.layer_id = d["layer_id"].to_numpy(np.int32)
        self.module_id = d["module_id"].to_numpy(np.int32)
        self.center = d[["cx", "cy", "cz"]].to_numpy(np.float64)
        self.rotation = d[_ROT_COLUMNS].to_numpy(np.float64).reshape(-1, 3, 3)
        self.thickness = d["module_t"].to_numpy(np.float64)
        self.hu_min = d["module_minhu"].to_numpy(np.float64)
        self.hu_max = d["module_maxhu"].to_numpy(np.float64)
        self.hv = d["module_hv"].to_numpy(np.float64)
        self.pitch_u = d["pitch_u"].to_numpy(np.float64)
        self.pitch_v = d["pitch_v"].to_numpy(np.float64)
        for col, arr in (("module_t", self.thickness), ("module_minhu", self.hu_min), ("module_maxhu", self.hu_max),
                         ("module_hv", self.hv), ("pitch_u", self.pitch_u), ("pitch_v", self.pitch_v)):
            bad = ~(arr > 0)
            if bad.any():
                raise DataError(f"{name}: column {col!r} is not positive in rows {np.flatnonzero(bad)[:3].tolist()}")
        ortho = np.abs(np.einsum("mki,mkj->mij", self.rotation, self.rotation) - np.eye(3)).max(axis=(1, 2))
        bad = ortho > 1e-3
        if bad.any():
            raise DataError(f"{name}: rotation (rot_xu … rot_zw) is not orthonormal in rows "
                            f"{np.flatnonzero(bad)[:3].tolist()}")
        self.n_modules = len(d)
        key = np.stack([self.volume_id, self.layer_id], 1)
        uniq, self.layer_index = np.unique(key, axis=0, return_inverse=True)
        self.layer_index = self.layer_index.ravel()
        self.layers = tuple(
            _build_layer(v, l, np.flatnonzero(self.layer_index == i), self.center, self.rotation, self.hu_min,
                         self.hu_max, self.hv, self.thickness)
            for i, (v, l) in enumerate(uniq)
        )
        corners = _module_points(self.center, self.rotation, self.hu_min, self.hu_max, self.hv, 0.0, 2)
        self.r_max = float(np.hypot(corners[..., 0], corners[..., 1]).max())
        self.z_max = float(np.abs(corners[..., 2]).max() + self.thickness.max())
        self._key = self._pack(self.volume_id, self.layer_id, self.module_id)
        self._key_order = np.argsort(self._key, kind="stable")

    @classmethod
    def load(cls, path: os.PathLike | str) -> "Geometry":
        """Reads ``detectors.csv[.gz]`` (see :func:`~trkx_tf.trackml.io.read_detectors`).

        Raises:
          DataError: see :func:`~trkx_tf.trackml.io.read_detectors`, :func:`check_trackml_layout` and the class.
        """
        detectors = read_detectors(path)
        check_trackml_layout(detectors, str(path))
        return cls(detectors, name=os.path.basename(str(path)))

    @staticmethod
    def _pack(volume, layer, module) -> np.ndarray:
        return (np.asarray(volume, np.int64) << 40) | (np.asarray(layer, np.int64) << 20) | np.asarray(module, np.int64)

    def rows(self, volume_id, layer_id, module_id) -> np.ndarray:
        """Module rows ``[n]`` of (volume_id, layer_id, module_id) triples ``[n]``.

        Raises:
          DataError: a triple is not a module of this detector.
        """
        key = self._pack(volume_id, layer_id, module_id)
        sorted_key = self._key[self._key_order]
        pos = np.minimum(np.searchsorted(sorted_key, key), len(sorted_key) - 1)
        bad = sorted_key[pos] != key
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"module (volume_id, layer_id, module_id) = ({np.ravel(volume_id)[i]}, "
                            f"{np.ravel(layer_id)[i]}, {np.ravel(module_id)[i]}) is not in the detector "
                            f"({int(bad.sum())} unknown)")
        return self._key_order[pos]

    def half_width(self, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Half-width in u of modules ``rows [n]`` at local ``v [n]``."""
        hv = self.hv[rows]
        return self.hu_min[rows] + (self.hu_max[rows] - self.hu_min[rows]) * (np.clip(v, -hv, hv) + hv) / (2 * hv)

    def to_local(self, rows: np.ndarray, xyz: np.ndarray) -> np.ndarray:
        """Global points ``[n, 3]`` -> local (u, v, w) ``[n, 3]`` in modules ``rows [n]``."""
        return np.einsum("nij,ni->nj", self.rotation[rows], xyz - self.center[rows])

    def to_global(self, rows: np.ndarray, uvw: np.ndarray) -> np.ndarray:
        """Local (u, v, w) ``[n, 3]`` in modules ``rows [n]`` -> global points ``[n, 3]``."""
        return self.center[rows] + np.einsum("nij,nj->ni", self.rotation[rows], uvw)

    def contains(self, rows: np.ndarray, uvw: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        """Whether local points ``[n, 3]`` lie inside modules ``rows [n]`` (bounds and thickness), ``[n]`` bool."""
        u, v, w = uvw[:, 0], uvw[:, 1], uvw[:, 2]
        return ((np.abs(v) <= self.hv[rows] + tol) & (np.abs(u) <= self.half_width(rows, v) + tol)
                & (np.abs(w) <= 0.5 * self.thickness[rows] + tol))


# ------------------------------------------------------------------------------------------------------- helices
@dataclass(frozen=True)
class Helix:
    """Helices in a solenoid field along z, all arrays ``[n_tracks]`` (see the module docstring).

    Attributes:
      x0, y0, z0: production point (mm).
      phi0: azimuth of the momentum at the production point.
      kappa: signed curvature (1/mm); positive turns counter-clockwise seen from +z.
      cot: pz / pT.
    """

    x0: np.ndarray
    y0: np.ndarray
    z0: np.ndarray
    phi0: np.ndarray
    kappa: np.ndarray
    cot: np.ndarray

    @classmethod
    def from_momentum(cls, vertex: np.ndarray, momentum: np.ndarray, q: np.ndarray, bz: float = 2.0) -> "Helix":
        """Helices from production points ``[n, 3]`` (mm), momenta ``[n, 3]`` (GeV), charges ``[n]``, Bz (T)."""
        vertex = np.asarray(vertex, np.float64)
        momentum = np.asarray(momentum, np.float64)
        pt = np.hypot(momentum[:, 0], momentum[:, 1])
        if not (pt > 0).all():
            raise DataError("helix: every particle needs pT > 0")
        kappa = -np.asarray(q, np.float64) * C_LIGHT * bz / pt * 1e-3
        return cls(vertex[:, 0], vertex[:, 1], vertex[:, 2], np.arctan2(momentum[:, 1], momentum[:, 0]), kappa,
                   momentum[:, 2] / pt)

    def __len__(self) -> int:
        return len(self.x0)

    def position(self, s: np.ndarray, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """Points ``[m, 3]`` at arc lengths ``s [m]`` of helices ``idx [m]`` (default: all, m = n_tracks)."""
        sel = (lambda a: a) if idx is None else (lambda a: a[idx])
        half = 0.5 * sel(self.kappa) * s
        chord = s * np.sinc(half / np.pi)
        ang = sel(self.phi0) + half
        return np.stack([sel(self.x0) + chord * np.cos(ang), sel(self.y0) + chord * np.sin(ang),
                         sel(self.z0) + sel(self.cot) * s], axis=1)

    def tangent(self, s: np.ndarray, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """d(position)/ds ``[m, 3]`` (transverse part is a unit vector, z part is cot)."""
        sel = (lambda a: a) if idx is None else (lambda a: a[idx])
        ang = sel(self.phi0) + sel(self.kappa) * s
        return np.stack([np.cos(ang), np.sin(ang), sel(self.cot) + 0.0 * s], axis=1)

    def period(self, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """Transverse arc length of one full turn (inf for straight lines)."""
        k = np.abs(self.kappa if idx is None else self.kappa[idx])
        with np.errstate(divide="ignore"):
            return np.where(k > 0, 2 * np.pi / np.maximum(k, 1e-300), np.inf)

    def radius_crossings(self, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Arc lengths where each helix crosses the cylinder r = radius, within its first turn.

        Returns:
          (s_a, s_b): ``[n_tracks]`` each, s_a <= s_b in [0, period); NaN where the helix never reaches the radius,
          and s_b NaN where only one crossing lies ahead (a straight line starting inside the cylinder).
        """
        c, sn = np.cos(self.phi0), np.sin(self.phi0)
        p_par = self.x0 * c + self.y0 * sn
        p_perp = -self.x0 * sn + self.y0 * c
        d = radius * radius - (self.x0 ** 2 + self.y0 ** 2)
        k = self.kappa
        alpha = k * p_par
        beta = 1.0 + k * p_perp
        delta = 0.5 * k * k * d
        # tan(θ/2) = T solves (2β - δ) T² + 2α T - δ = 0, θ = κ s the turning angle
        disc = alpha * alpha + 2 * beta * delta - delta * delta
        ok = disc >= 0
        root = np.sqrt(np.where(ok, disc, 0.0))
        q = -(alpha + np.where(alpha >= 0, root, -root))
        a2 = 2 * beta - delta
        straight = np.abs(k) < 1e-12
        k_safe = np.where(straight, 1.0, k)
        reach = np.where(straight, p_par * p_par + d >= 0, ok)
        period = self.period()
        out = []
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = np.where(q != 0, q / a2, np.where(delta == 0, 0.0, np.inf))
            t2 = np.where(q != 0, -delta / q, 0.0)
            for t, first in ((t1, True), (t2, False)):
                s = np.where(straight, _line_root(p_par, d, first), 2 * np.arctan(t) / k_safe)
                s = np.where((s < 0) & np.isfinite(period), s + period, s)
                out.append(np.where(reach & (s >= 0), s, np.nan))
        s_a = np.fmin(out[0], out[1])
        s_b = np.where(np.isnan(out[0]) | np.isnan(out[1]), np.nan, np.fmax(out[0], out[1]))
        return s_a, s_b

    def z_crossing(self, z: float) -> np.ndarray:
        """Arc length ``[n_tracks]`` where each helix crosses the plane z = const (NaN if never, going forward)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (z - self.z0) / self.cot
        return np.where(np.isfinite(s) & (s >= 0), s, np.nan)

    def exit_length(self, r_max: float, z_max: float) -> np.ndarray:
        """Arc length ``[n_tracks]`` where each helix leaves the cylinder r < r_max, |z| < z_max."""
        with np.errstate(divide="ignore", invalid="ignore"):
            s_z = np.where(self.cot > 0, (z_max - self.z0) / self.cot,
                           np.where(self.cot < 0, (-z_max - self.z0) / self.cot, np.inf))
        s_a, s_b = self.radius_crossings(r_max)
        s_r = np.where(np.isnan(s_a), np.inf, np.where((s_a > 0) | np.isnan(s_b), s_a, s_b))
        return np.fmin(np.maximum(s_z, 0.0), np.where(np.isnan(s_r), np.inf, s_r))


def _line_root(p_par: np.ndarray, d: np.ndarray, first: bool) -> np.ndarray:
    """Straight-line crossing of r = R: s = -p_par ± sqrt(p_par² + R² - r0²)."""
    disc = np.sqrt(np.maximum(p_par * p_par + d, 0.0))
    return -p_par + disc if first else -p_par - disc


# -------------------------------------------------------------------------------------------------- intersection
@dataclass(frozen=True)
class Crossings:
    """Helix–module intersections, sorted by (track, s).

    Attributes:
      track: ``[n_crossings]`` int64 helix index.
      module: ``[n_crossings]`` int64 module row.
      s: ``[n_crossings]`` transverse arc length (mm).
      xyz: ``[n_crossings, 3]`` the intersection with the module's mid-plane.
      local: ``[n_crossings, 3]`` the same point in the module's (u, v, w) frame (w = 0).
    """

    track: np.ndarray
    module: np.ndarray
    s: np.ndarray
    xyz: np.ndarray
    local: np.ndarray


def _layer_starts(layer: Layer, helix: Helix, s_min, s_max, max_turns: int):
    """Newton starting points on one layer: (track, s_start, s_lo, s_hi) ``[n_branches]`` each."""
    lo, mid, hi = layer.envelope
    if layer.barrel:
        roots = [helix.radius_crossings(r) for r in (lo, mid, hi)]
        period = helix.period()
        tracks, starts, ends_a, ends_b = [], [], [], []
        for which in (0, 1):
            s_lo, s_mid, s_hi = (roots[0][which], roots[1][which], roots[2][which])
            start = np.where(np.isnan(s_mid), np.where(np.isnan(s_lo), s_hi, s_lo), s_mid)
            a = np.where(np.isnan(s_lo), start, s_lo)
            b = np.where(np.isnan(s_hi), start, s_hi)
            for turn in range(max_turns):
                shift = np.where(np.isfinite(period), period * turn, np.where(turn == 0, 0.0, np.inf))
                st = start + shift
                keep = np.isfinite(st) & (np.maximum(a, b) + shift >= s_min) & (np.minimum(a, b) + shift <= s_max)
                if not keep.any():
                    break
                idx = np.flatnonzero(keep)
                tracks.append(idx)
                starts.append(st[idx])
                ends_a.append(a[idx] + shift[idx])
                ends_b.append(b[idx] + shift[idx])
        if not tracks:
            return (np.zeros(0, np.int64),) + (np.zeros(0),) * 3
        return tuple(np.concatenate(x) for x in (tracks, starts, ends_a, ends_b))
    s_lo, s_mid, s_hi = (helix.z_crossing(z) for z in (lo, mid, hi))
    start = np.where(np.isnan(s_mid), np.where(np.isnan(s_lo), s_hi, s_lo), s_mid)
    a = np.where(np.isnan(s_lo), start, s_lo)
    b = np.where(np.isnan(s_hi), start, s_hi)
    keep = np.isfinite(start) & (np.maximum(a, b) >= s_min) & (np.minimum(a, b) <= s_max)
    idx = np.flatnonzero(keep)
    return idx, start[idx], a[idx], b[idx]


def intersect(
    geometry: Geometry,
    helix: Helix,
    s_min: np.ndarray | float = 0.0,
    s_max: np.ndarray | float = np.inf,
    max_turns: int = 2,
    newton_steps: int = 4,
) -> Crossings:
    """Every (helix, module) intersection with s_min < s <= s_max, inside the module's bounds.

    Args:
      geometry: the detector.
      helix: ``[n_tracks]`` helices.
      s_min, s_max: scalar or ``[n_tracks]`` arc-length window of each helix (e.g. from the production point to
        where it leaves the detector or has turned too often).
      max_turns: how many full turns of a barrel layer's crossings to follow (loopers).
      newton_steps: Newton iterations of the helix–plane solve.

    Returns:
      The :class:`Crossings`, sorted by (track, s); a module crossed twice (a looper coming back) appears twice.
    """
    n = len(helix)
    s_min = np.broadcast_to(np.asarray(s_min, np.float64), (n,))
    s_max = np.broadcast_to(np.asarray(s_max, np.float64), (n,))
    pair_track, pair_module, pair_s = [], [], []
    for layer in geometry.layers:
        track, start, a, b = _layer_starts(layer, helix, s_min, s_max, max_turns)
        if len(track) == 0:
            continue
        pts = [helix.position(s, track) for s in (a, start, b)]
        cand = np.concatenate([layer.candidates(p) for p in pts], axis=1)
        cand.sort(axis=1)
        cand[:, 1:][cand[:, 1:] == cand[:, :-1]] = -1
        rows, cols = np.nonzero(cand >= 0)
        pair_track.append(track[rows])
        pair_module.append(cand[rows, cols].astype(np.int64))
        pair_s.append(start[rows])
    if not pair_track:
        empty = np.zeros(0, np.int64)
        return Crossings(empty, empty, np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)))
    track = np.concatenate(pair_track)
    module = np.concatenate(pair_module)
    s = np.concatenate(pair_s)
    normal = geometry.rotation[module][:, :, 2]
    center = geometry.center[module]
    ok = np.ones(len(s), bool)
    for _ in range(newton_steps):
        f = np.einsum("ij,ij->i", normal, helix.position(s, track) - center)
        df = np.einsum("ij,ij->i", normal, helix.tangent(s, track))
        ok = np.abs(df) > 1e-9
        step = np.where(ok, f / np.where(ok, df, 1.0), 0.0)
        s = s - np.clip(step, -500.0, 500.0)
    xyz = helix.position(s, track)
    local = geometry.to_local(module, xyz)
    good = (ok & (np.abs(local[:, 2]) < 1e-5) & (s > s_min[track]) & (s <= s_max[track])
            & (np.abs(local[:, 1]) <= geometry.hv[module])
            & (np.abs(local[:, 0]) <= geometry.half_width(module, local[:, 1])))
    track, module, s, xyz, local = track[good], module[good], s[good], xyz[good], local[good]
    order = np.lexsort((s, module, track))
    track, module, s, xyz, local = track[order], module[order], s[order], xyz[order], local[order]
    same = np.zeros(len(s), bool)
    same[1:] = (track[1:] == track[:-1]) & (module[1:] == module[:-1]) & (np.abs(s[1:] - s[:-1]) < 1e-3)
    keep = ~same
    track, module, s, xyz, local = track[keep], module[keep], s[keep], xyz[keep], local[keep]
    order = np.lexsort((s, track))
    local = local[order]
    local[:, 2] = 0.0
    return Crossings(track[order], module[order], s[order], xyz[order], local)
