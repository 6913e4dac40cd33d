"""Node (hit) features: scaled cylindrical coordinates, plus cell-shape features where cells exist.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch` (``n_node`` hits of one event, ``F`` features).

=====================  =========================================================================================
feature                definition
=====================  =========================================================================================
``r``                  sqrt(x² + y²) / r_scale              (r_scale = ``graph.r_scale``, 1000 mm by default)
``phi``                atan2(y, x) / π, in [-1, 1]
``z``                  z / z_scale                          (z_scale = ``graph.z_scale``, 1000 mm by default)
``cell_count``         log1p(number of cells of the hit)                           (only with cells)
``cell_value``         log1p(100 × summed charge ``value`` of the hit's cells)     (only with cells)
``cell_len0``          log1p(extent of the cluster in ``ch0``: max - min + 1)       (only with cells)
``cell_len1``          log1p(extent of the cluster in ``ch1``: max - min + 1)       (only with cells)
=====================  =========================================================================================

A hit without any cell row gets 0 for every cell feature. Whether cell features are used is one decision per
build (every graph of a set of shards has the same ``F``), see :func:`feature_names`.

Edge features (``A`` = 6 per edge, :func:`edge_features`), the doublet variables of a candidate edge from its
sender ``s`` to its receiver ``r``, computed here only and used by shard building (the ``edges`` dataset of every
shard) and by inference (filter and GNN inputs). Units are chosen so that prompt pT > 0.5 GeV doublets give values
of order 1; each feature is clipped to [-``EDGE_CLIP``, ``EDGE_CLIP``] (doublets within one endcap disk have
Δr ≈ 0, where the intercept and curvature terms diverge):

=====================  =========================================================================================
feature                definition
=====================  =========================================================================================
``dr``                 (r_r − r_s) / 100 mm
``dphi``               φ_r − φ_s wrapped into [−π, π), / 0.1 rad
``dz``                 (z_r − z_s) / 100 mm
``deta``               (η_r − η_s) / 0.1,  η = asinh(z / r)
``z0``                 (z_s − r_s · Δz / Δr) / 100 mm: the doublet's intercept with the beam line
``dphi_dr``            Δφ / Δr in rad per metre (≈ 1 / (2 R) of a prompt helix of radius R: 0.6 at 0.5 GeV, 2 T)
=====================  =========================================================================================

r, φ, z are recovered from the scaled node columns ``r, phi, z`` (the first three, :data:`BASE_FEATURES`).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.config import GraphConfig, schema_default
from trkx_tf.errors import DataError

BASE_FEATURES = ("r", "phi", "z")
CELL_FEATURES = ("cell_count", "cell_value", "cell_len0", "cell_len1")
EDGE_FEATURES = ("dr", "dphi", "dz", "deta", "z0", "dphi_dr")
EDGE_CLIP = 10.0
_MIN_DR = 1e-3  # mm: |Δr| below this counts as this (sign kept) in the intercept and curvature terms


def feature_names(with_cells: bool) -> tuple[str, ...]:
    """The names of the ``F`` node features, in column order.

    Args:
      with_cells: whether the cell-shape features are included.

    Returns:
      ``BASE_FEATURES`` (+ ``CELL_FEATURES``).
    """
    return BASE_FEATURES + (CELL_FEATURES if with_cells else ())


def uses_cells(input_dir: os.PathLike | str, event_ids: Sequence[int], use_cells: bool) -> bool:
    """Whether a set of events gets the cell features: ``graph.use_cells`` and every event has a cells file.

    The one rule of ``trkx-build`` and ``trkx-infer``: with ``use_cells`` the cell features are used when the
    events have cells files, and not at all when none has; some events with and some without is an error.

    Args:
      input_dir: the events folder.
      event_ids: the events of the set.
      use_cells: ``graph.use_cells``.

    Returns:
      True when the cell features are used (every event then has a cells file).

    Raises:
      DataError: some of the events have cells files and others do not.
    """
    if not use_cells:
        return False
    from trkx_tf.trackml.io import find_part

    have = [e for e in event_ids if find_part(input_dir, e, "cells") is not None]
    if have and len(have) != len(event_ids):
        missing = sorted(set(event_ids) - set(have))
        raise DataError(f"{input_dir}: {len(have)} events have cells files but {len(missing)} do not "
                        f"(first: event {missing[0]}); set graph.use_cells=false or complete the cells")
    return bool(have)


def cylindrical(hits: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """r, φ, z of every hit (unscaled: mm, rad, mm).

    Args:
      hits: TrackML hits with columns ``x, y, z``; ``n_node`` rows.

    Returns:
      Three float64 arrays of shape [n_node].
    """
    x = hits["x"].to_numpy(np.float64)
    y = hits["y"].to_numpy(np.float64)
    return np.hypot(x, y), np.arctan2(y, x), hits["z"].to_numpy(np.float64)


def hit_rows(hit_ids: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    """Row index of each wanted hit id in ``hit_ids``.

    Args:
      hit_ids: [n_node] int64, the event's hit ids (unique).
      wanted: [k] int64 hit ids to look up.
      what: the table being looked up, for the error message.

    Returns:
      [k] int64 row indices.

    Raises:
      DataError: ``hit_ids`` has duplicates, or a wanted id is not among them.
    """
    index = pd.Index(hit_ids)
    if not index.is_unique:
        raise DataError(f"{what}: hit ids of the event are not unique")
    row = index.get_indexer(wanted)
    if np.any(row < 0):
        raise DataError(f"{what}: hit_id {int(wanted[np.flatnonzero(row < 0)[0]])} is not a hit of the event")
    return row.astype(np.int64)


def cell_features(hits: pd.DataFrame, cells: pd.DataFrame) -> np.ndarray:
    """The four cell-shape features of every hit.

    Args:
      hits: TrackML hits (``hit_id`` column); ``n_node`` rows.
      cells: TrackML cells with columns ``hit_id, ch0, ch1, value`` (any number of rows per hit).

    Returns:
      float32 array [n_node, 4] in the order of ``CELL_FEATURES``.

    Raises:
      DataError: a column is missing or a cell names a hit that the event does not have.
    """
    missing = [c for c in ("hit_id", "ch0", "ch1", "value") if c not in cells.columns]
    if missing:
        raise DataError(f"cells: missing column(s) {', '.join(missing)}")
    hit_ids = hits["hit_id"].to_numpy(np.int64)
    cell_hit = cells["hit_id"].to_numpy(np.int64)
    row = hit_rows(hit_ids, cell_hit, "cells")
    n = len(hit_ids)
    out = np.zeros((n, 4), np.float64)
    if len(cell_hit) == 0:
        return out.astype(np.float32)
    ch0 = cells["ch0"].to_numpy(np.float64)
    ch1 = cells["ch1"].to_numpy(np.float64)
    value = cells["value"].to_numpy(np.float64)
    count = np.bincount(row, minlength=n)
    total = np.bincount(row, weights=value, minlength=n)
    lo0 = np.full(n, np.inf)
    hi0 = np.full(n, -np.inf)
    lo1 = np.full(n, np.inf)
    hi1 = np.full(n, -np.inf)
    np.minimum.at(lo0, row, ch0)
    np.maximum.at(hi0, row, ch0)
    np.minimum.at(lo1, row, ch1)
    np.maximum.at(hi1, row, ch1)
    has = count > 0
    out[:, 0] = np.log1p(count)
    out[:, 1] = np.log1p(100.0 * np.maximum(total, 0.0))
    out[has, 2] = np.log1p(hi0[has] - lo0[has] + 1.0)
    out[has, 3] = np.log1p(hi1[has] - lo1[has] + 1.0)
    return out.astype(np.float32)


def hit_features(
    hits: pd.DataFrame,
    cells: Optional[pd.DataFrame] = None,
    with_cells: bool = False,
    r_scale: float = schema_default(GraphConfig, "r_scale"),
    z_scale: float = schema_default(GraphConfig, "z_scale"),
) -> np.ndarray:
    """The node features of one event.

    Args:
      hits: TrackML hits (``hit_id, x, y, z``); ``n_node`` rows, in the node order of the graph.
      cells: the event's cells, or None.
      with_cells: add the cell-shape features (then ``cells`` is required).
      r_scale: r is divided by it (mm).
      z_scale: z is divided by it (mm).

    Returns:
      float32 array [n_node, F] with the columns of :func:`feature_names`.

    Raises:
      DataError: ``with_cells`` is set but the event has no cells, or the cells are malformed.
    """
    r, phi, z = cylindrical(hits)
    base = np.stack([r / r_scale, phi / np.pi, z / z_scale], axis=1).astype(np.float32)
    if not with_cells:
        return base
    if cells is None:
        raise DataError("cell features were requested (graph.use_cells) but the event has no cells file")
    return np.concatenate([base, cell_features(hits, cells)], axis=1)


def edge_features(
    nodes: np.ndarray,
    senders: np.ndarray,
    receivers: np.ndarray,
    r_scale: float = schema_default(GraphConfig, "r_scale"),
    z_scale: float = schema_default(GraphConfig, "z_scale"),
) -> np.ndarray:
    """The ``D`` doublet features of every edge (see the module docstring), from the node features.

    Args:
      nodes: [n_node, F] node features whose first three columns are ``r, phi, z`` as :func:`hit_features` scales
        them (F >= 3).
      senders: [n_edge] int index of each edge's source node.
      receivers: [n_edge] int index of each edge's target node.
      r_scale: the ``r`` column's scale (mm, ``graph.r_scale``).
      z_scale: the ``z`` column's scale (mm, ``graph.z_scale``).

    Returns:
      float32 array [n_edge, D] in the order of :data:`EDGE_FEATURES`, every value finite and within
      ±:data:`EDGE_CLIP`.

    Raises:
      DataError: fewer than 3 node features, or an edge index outside [0, n_node).
    """
    nodes = np.asarray(nodes)
    if nodes.ndim != 2 or nodes.shape[1] < len(BASE_FEATURES):
        raise DataError(f"edge features need the node columns {', '.join(BASE_FEATURES)} "
                        f"(got nodes of shape {list(nodes.shape)})")
    senders = np.asarray(senders, np.int64)
    receivers = np.asarray(receivers, np.int64)
    n = nodes.shape[0]
    if len(senders) and (min(senders.min(), receivers.min()) < 0 or max(senders.max(), receivers.max()) >= n):
        raise DataError(f"edge features: an edge index is outside [0, {n})")
    base = nodes[:, :3].astype(np.float64)
    r = base[:, 0] * r_scale
    phi = base[:, 1] * np.pi
    z = base[:, 2] * z_scale
    eta = np.arcsinh(z / np.maximum(r, 1e-6))
    r_s, r_r = r[senders], r[receivers]
    z_s = z[senders]
    dr = r_r - r_s
    dz = z[receivers] - z_s
    dphi = np.mod(phi[receivers] - phi[senders] + np.pi, 2.0 * np.pi) - np.pi
    dr_safe = np.where(dr < 0, np.minimum(dr, -_MIN_DR), np.maximum(dr, _MIN_DR))
    out = np.empty((len(senders), len(EDGE_FEATURES)), np.float64)
    out[:, 0] = dr / 100.0
    out[:, 1] = dphi / 0.1
    out[:, 2] = dz / 100.0
    out[:, 3] = (eta[receivers] - eta[senders]) / 0.1
    out[:, 4] = (z_s - r_s * dz / dr_safe) / 100.0
    out[:, 5] = dphi / dr_safe * 1000.0
    np.clip(out, -EDGE_CLIP, EDGE_CLIP, out=out)
    return out.astype(np.float32)
