"""Charged particles on helices in a solenoid field along z, and fast helix–module intersection with the
detector's modules (:mod:`trkx_tf.trackml.geometry`).

A helix is parametrised by its transverse arc length ``s`` (mm) from the production point::

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

from dataclasses import dataclass
from typing import Optional

import numpy as np

from trkx_tf.errors import DataError
from trkx_tf.trackml.geometry import Geometry, Layer

C_LIGHT = 0.299792458  # GeV / (T · m)


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
