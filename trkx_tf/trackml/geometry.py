"""The TrackML detector geometry: modules, layers, and the per-layer lookup of modules.

A module is a thin planar sensor: centre ``c``, rotation ``R`` (global = c + R @ local, local axes u, v, w with w
the normal), thickness ``t`` along w, a trapezoid in (u, v) with half-width ``hu(v)`` rising linearly from
``module_minhu`` at v = -hv to ``module_maxhu`` at v = +hv, and pixel pitches along u and v. A layer is a
(volume_id, layer_id): barrel layers are cylinders of modules around the z axis, end-cap layers are disks of
modules at fixed z. Helices and their crossings with the modules are :mod:`trkx_tf.trackml.helix`.

Shape vocabulary: ``n_modules`` modules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.trackml.io import read_detectors

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
