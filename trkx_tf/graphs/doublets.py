"""Hit doublets: the module a hit is on, the window variables of a hit pair, and the edge-list helpers that the
module map (:mod:`trkx_tf.graphs.module_map`) and the candidate-edge builders (:mod:`trkx_tf.graphs.candidates`)
share.

A module is identified by ``module_uid = volume_id·10⁸ + layer_id·10⁵ + module_id`` and a layer by
``layer_uid = volume_id·10³ + layer_id`` (= module_uid // 10⁵). The window variables of a pair (inner, outer):

- ``dphi``: φ(outer) − φ(inner), wrapped into [-π, π) (bends with 1/pT);
- ``z0``: the z where the straight line through the two hits in the (r, z) plane reaches r = 0
  ((z_a r_b − z_b r_a) / (r_b − r_a), clipped to ±10 m; the vertex position along the beam).

Shape vocabulary as in :mod:`trkx_tf.graphs.batch` (``n_node``, ``n_edge``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.graphs.truth import pair_keys

Z0_CLIP = 1.0e4  # mm
PAIR_STRIDE = np.int64(1 << 31)  # pair_code: a · stride + b


def module_uid(hits: pd.DataFrame) -> np.ndarray:
    """[n_node] int64 module uid of every hit (volume_id·10⁸ + layer_id·10⁵ + module_id).

    Raises:
      DataError: a column is missing or an id is out of range.
    """
    missing = [c for c in ("volume_id", "layer_id", "module_id") if c not in hits.columns]
    if missing:
        raise DataError(f"hits: missing column(s) {', '.join(missing)}")
    v = hits["volume_id"].to_numpy(np.int64)
    lay = hits["layer_id"].to_numpy(np.int64)
    m = hits["module_id"].to_numpy(np.int64)
    if len(v) and (v.min() < 0 or lay.min() < 0 or lay.max() >= 1000 or m.min() < 0 or m.max() >= 100_000):
        raise DataError("hits: volume_id/layer_id/module_id out of range (need 0 <= layer < 1000, module < 100000)")
    return v * 100_000_000 + lay * 100_000 + m


def wrap_angle(d: np.ndarray) -> np.ndarray:
    """Angle differences in (-2π, 2π) wrapped into [-π, π) (unchanged, bit for bit, when already inside)."""
    return np.where(d >= np.pi, d - 2 * np.pi, np.where(d < -np.pi, d + 2 * np.pi, d))


def doublet_variables(
    r: np.ndarray, phi: np.ndarray, z: np.ndarray, inner: np.ndarray, outer: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The two window variables of hit pairs.

    Args:
      r, phi, z: [n_node] cylindrical coordinates of the hits (mm, rad, mm).
      inner: [k] row of the first hit of each pair.
      outer: [k] row of the second hit.

    Returns:
      ``(dphi, z0)``, each [k] float64: φ difference wrapped into [-π, π), and the r = 0 intercept of the line
      through the two hits in (r, z), clipped to ±``Z0_CLIP`` (mm).
    """
    dphi = wrap_angle(phi[outer] - phi[inner])
    ra, rb, za, zb = r[inner], r[outer], z[inner], z[outer]
    dr = rb - ra
    num = za * rb - zb * ra
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = np.where(dr != 0, num / np.where(dr != 0, dr, 1.0), np.sign(num) * Z0_CLIP)
    return dphi, np.clip(z0, -Z0_CLIP, Z0_CLIP)


def group_by_module(uid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hits sorted by module: ``(order, modules, start, count)``, the hit rows in module order and, per module
    present, its uid, first position in that order and hit count."""
    order = np.argsort(uid, kind="stable")
    modules, start, count = np.unique(uid[order], return_index=True, return_counts=True)
    return order, modules, start, count


def unique_edges(senders: np.ndarray, receivers: np.ndarray, n_node: int) -> tuple[np.ndarray, np.ndarray]:
    """Drops self-loops and repeated hit pairs (either direction, first kept), sorted by (sender, receiver)."""
    keep = senders != receivers
    senders, receivers = np.asarray(senders, np.int64)[keep], np.asarray(receivers, np.int64)[keep]
    canonical = pair_keys(senders, receivers, n_node)
    ordered = np.sort(canonical)
    if (ordered[1:] == ordered[:-1]).any():  # a hit pair twice: its first edge stays (the slower, stable path)
        _, first = np.unique(canonical, return_index=True)
        senders, receivers = senders[first], receivers[first]
    order = np.argsort(senders * np.int64(max(n_node, 1)) + receivers)  # the pairs are unique: one key each
    return senders[order], receivers[order]


def _pair_view(a: np.ndarray) -> np.ndarray:
    """Rows of an int64 [n, 2] array as one structured value each, ordered like the tuples (a, b)."""
    return np.ascontiguousarray(a, np.int64).view([("a", np.int64), ("b", np.int64)]).ravel()


def find_rows(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """[n] int64 index of each row of ``rows`` [n, 2] in ``table`` [m, 2] (sorted by (a, b), unique); -1: absent."""
    if len(table) == 0:
        return np.full(len(rows), -1, np.int64)
    tv, rv = _pair_view(table), _pair_view(rows)
    pos = np.minimum(np.searchsorted(tv, rv), len(tv) - 1)
    return np.where(tv[pos] == rv, pos, -1)


def pair_code(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n] int64 code of each module pair ``(a[i], b[i])`` (uids below 2³¹), ordered like the tuples: a sort or
    ``np.unique`` of the codes is one of the pairs (much faster than ``np.unique(..., axis=0)``).

    Raises:
      DataError: a uid outside [0, 2³¹).
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= PAIR_STRIDE):
        raise DataError("module uids must lie in [0, 2^31) to be paired")
    return a * PAIR_STRIDE + b
