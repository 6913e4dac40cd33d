"""What a robustness study varies in the simulator and in real events: misaligned layers, a field error, and
extra noise hits.

* **Misalignment.** A layer shift ``(volume_id, layer_id, dx)`` says that the layer's modules were built ``dx`` mm
  along global x from their nominal place (``detectors.csv``). The simulator propagates the particles through the
  detector as built (:func:`misaligned`) and reports every hit in the nominal geometry, which is what reconstruction
  assumes: a hit's local (u, v) on its module is measured, the global position is the nominal module's. A crossing
  at true point ``t`` of a shifted module therefore comes out at ``t - (dx, 0, 0)`` (plus the digitisation's
  resolution), on the nominal module plane, while the truth keeps ``t``. In a real event (no simulation) the same
  shift moves the hits of the layer by ``-dx`` in x (:func:`shift_hits`), what the Exa.TrkX paper did; it agrees with
  the simulated shift up to the change of the crossing point along the track (second order in the crossing angle).
* **Field error.** The events are simulated in a solenoid field ``bz · (1 + error)`` while reconstruction's
  models and module map were made at the nominal ``bz`` (:func:`field_model`): the helix curvature κ ∝ Bz / pT
  changes by the same fraction.
* **Noise.** :func:`inject_noise` adds one-pixel noise hits to an event until they make a requested fraction of
  all its hits, spread over the layers in given proportions (e.g. those of the event's own noise hits,
  :func:`noise_layer_weights`) and uniformly over the modules of a layer and the area of a module.

Shape vocabulary: ``n_modules`` modules, ``n_hits`` hits of an event.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.trackml.geometry import _ROT_COLUMNS, Geometry
from trkx_tf.trackml.io import Event
from trkx_tf.trackml.simulate.physics import PhysicsModel

#: A layer shift: (volume_id, layer_id, dx in mm along global x).
LayerShift = tuple[int, int, float]


def _check_shifts(geometry: Geometry, shifts: Sequence[LayerShift]) -> list[tuple[int, int, float]]:
    out = []
    layers = {(lay.volume_id, lay.layer_id) for lay in geometry.layers}
    for item in shifts:
        if len(item) != 3:
            raise DataError(f"misalignment: a layer shift is (volume_id, layer_id, dx), got {item!r}")
        v, lay, dx = int(item[0]), int(item[1]), float(item[2])
        if (v, lay) not in layers:
            raise DataError(f"misalignment: volume {v} layer {lay} is not a layer of the detector")
        if not np.isfinite(dx):
            raise DataError(f"misalignment: the shift of volume {v} layer {lay} is not finite ({dx})")
        out.append((v, lay, dx))
    return out


def misaligned(geometry: Geometry, shifts: Sequence[LayerShift]) -> Geometry:
    """The detector as built: the modules of each shifted layer moved by dx along global x.

    Args:
      geometry: the nominal detector.
      shifts: ``(volume_id, layer_id, dx)`` per shifted layer (a layer named twice moves by the sum).

    Returns:
      A new :class:`Geometry` with the same modules in the same rows (only ``center`` differs, and the lookups of the
      shifted layers); ``geometry`` is unchanged.

    Raises:
      DataError: a layer that the detector does not have, or a shift that is not finite.
    """
    center = geometry.center.copy()
    for v, lay, dx in _check_shifts(geometry, shifts):
        rows = (geometry.volume_id == v) & (geometry.layer_id == lay)
        center[rows, 0] += dx
    rot = geometry.rotation.reshape(-1, 9)
    columns = {"volume_id": geometry.volume_id, "layer_id": geometry.layer_id, "module_id": geometry.module_id,
               "cx": center[:, 0], "cy": center[:, 1], "cz": center[:, 2],
               **{name: rot[:, i] for i, name in enumerate(_ROT_COLUMNS)},
               "module_t": geometry.thickness, "module_minhu": geometry.hu_min, "module_maxhu": geometry.hu_max,
               "module_hv": geometry.hv, "pitch_u": geometry.pitch_u, "pitch_v": geometry.pitch_v}
    return Geometry(pd.DataFrame(columns), name="misaligned detector")


def shift_hits(hits: pd.DataFrame, shifts: Sequence[LayerShift]) -> pd.DataFrame:
    """A real event's hits as a misaligned layer reports them: x of the shifted layers' hits moves by ``-dx``.

    Args:
      hits: ``[n_hits]`` TrackML hits (``x, volume_id, layer_id``).
      shifts: ``(volume_id, layer_id, dx)`` per layer, as in :func:`misaligned`.

    Returns:
      A copy of ``hits`` with the moved x (float32).

    Raises:
      DataError: a named layer has no hit in the event (likely a wrong layer), or a shift is not finite.
    """
    out = hits.copy()
    x = out["x"].to_numpy(np.float64).copy()
    for item in shifts:
        v, lay, dx = int(item[0]), int(item[1]), float(item[2])
        if not np.isfinite(dx):
            raise DataError(f"misalignment: the shift of volume {v} layer {lay} is not finite ({dx})")
        rows = (out["volume_id"].to_numpy() == v) & (out["layer_id"].to_numpy() == lay)
        if not rows.any():
            raise DataError(f"misalignment: the event has no hit on volume {v} layer {lay}")
        x[rows] -= dx
    out["x"] = x.astype(np.float32)
    return out


def field_model(model: PhysicsModel, error: float) -> PhysicsModel:
    """The physics with the solenoid field off by a fraction: ``bz · (1 + error)``.

    Raises:
      DataError: ``error`` is not in (-1, 1).
    """
    if not -1.0 < error < 1.0:
        raise DataError(f"simulate: field_error must be in (-1, 1), got {error}")
    return dataclasses.replace(model, bz=model.bz * (1.0 + error))


def noise_layer_weights(event: Event) -> pd.DataFrame:
    """How an event's noise hits (truth particle 0) spread over its layers.

    Args:
      event: an event with hits and truth.

    Returns:
      ``[n_layers]`` rows ``volume_id, layer_id, fraction`` (fractions sum to 1), layers with noise only.

    Raises:
      DataError: the event has no truth, or no noise hit.
    """
    if event.truth is None:
        raise DataError(f"event {event.event_id}: noise hits are known only with a truth file")
    noise = event.truth["particle_id"].to_numpy(np.int64) == 0
    ids = set(event.truth["hit_id"].to_numpy(np.int64)[noise].tolist())
    hits = event.hits[event.hits["hit_id"].isin(ids)]
    if hits.empty:
        raise DataError(f"event {event.event_id} has no noise hit to take the layer spread from")
    counts = hits.groupby(["volume_id", "layer_id"]).size()
    return pd.DataFrame({"volume_id": counts.index.get_level_values(0).astype(np.int32),
                         "layer_id": counts.index.get_level_values(1).astype(np.int32),
                         "fraction": (counts / counts.sum()).to_numpy(np.float64)})


def noise_to_add(n_hits: int, n_noise: int, fraction: float) -> int:
    """How many noise hits to add to an event of ``n_hits`` hits, ``n_noise`` of them noise, so that noise makes
    ``fraction`` of all hits: the nearest integer to (f·n − n_noise) / (1 − f).

    Raises:
      DataError: ``fraction`` is not in [0, 1), or below the event's own noise fraction (hits are only added).
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"noise: the fraction must be in [0, 1), got {fraction}")
    add = (fraction * n_hits - n_noise) / (1.0 - fraction)
    if add < -0.5:
        raise DataError(f"noise: the event already has {n_noise / max(n_hits, 1):.4f} noise hits; noise can be "
                        f"added, not removed, so {fraction} is not reachable")
    return max(int(round(add)), 0)


def inject_noise(event: Event, fraction: float, geometry: Geometry, rng: np.random.Generator,
                 layer_weights: Optional[pd.DataFrame] = None) -> Event:
    """Adds noise hits to an event so that noise hits (truth particle 0) make ``fraction`` of all its hits.

    Each new hit picks a layer in proportion to ``layer_weights`` (default: the event's own noise,
    :func:`noise_layer_weights`), a module of that layer uniformly, and a pixel centre uniformly over the module's
    area (a one-pixel cluster, like the simulator's noise); its position is the nominal module's. The new hits get
    the next hit ids; their truth has particle 0, weight 0 and the hit position as the true one. Cells, where the
    event has them, get the new hits' pixels.

    Args:
      event: the event (hits and truth; hit ids need not be contiguous).
      fraction: the noise fraction to reach, in [0, 1), at least the event's own.
      geometry: the detector the hits are placed on.
      rng: the random stream.
      layer_weights: ``volume_id, layer_id, fraction`` rows, as :func:`noise_layer_weights` returns.

    Returns:
      A new :class:`Event` (hits sorted by hit id; particles unchanged).

    Raises:
      DataError: no truth, an unreachable fraction, or a weighted layer that the detector does not have.
    """
    if event.truth is None:
        raise DataError(f"event {event.event_id}: adding noise needs the truth (to count the noise hits)")
    weights = noise_layer_weights(event) if layer_weights is None else layer_weights
    n_hits = len(event.hits)
    n_noise = int((event.truth["particle_id"].to_numpy(np.int64) == 0).sum())
    n_add = noise_to_add(n_hits, n_noise, fraction)
    p = weights["fraction"].to_numpy(np.float64)
    if len(p) == 0 or not np.all(p >= 0) or p.sum() <= 0:
        raise DataError("noise: the layer weights must be non-negative and not all zero")
    layer_pick = rng.choice(len(p), n_add, p=p / p.sum())
    module = np.empty(n_add, np.int64)
    for i in np.unique(layer_pick):
        v, lay = int(weights["volume_id"].iloc[i]), int(weights["layer_id"].iloc[i])
        rows = np.flatnonzero((geometry.volume_id == v) & (geometry.layer_id == lay))
        if len(rows) == 0:
            raise DataError(f"noise: volume {v} layer {lay} is not a layer of the detector")
        sel = layer_pick == i
        module[sel] = rows[rng.integers(0, len(rows), int(sel.sum()))]
    from trkx_tf.trackml.simulate.response import noise_pixels

    local, ch0, ch1, value = noise_pixels(geometry, module, rng)
    xyz = geometry.to_global(module, local)
    first = int(event.hits["hit_id"].max()) + 1 if n_hits else 1
    hit_id = np.arange(first, first + n_add, dtype=np.int64)
    new_hits = pd.DataFrame({
        "hit_id": hit_id, "x": xyz[:, 0].astype(np.float32), "y": xyz[:, 1].astype(np.float32),
        "z": xyz[:, 2].astype(np.float32), "volume_id": geometry.volume_id[module],
        "layer_id": geometry.layer_id[module], "module_id": geometry.module_id[module]})
    zero = np.zeros(n_add, np.float32)
    new_truth = pd.DataFrame({
        "hit_id": hit_id, "particle_id": np.zeros(n_add, np.int64), "tx": new_hits["x"], "ty": new_hits["y"],
        "tz": new_hits["z"], "tpx": zero, "tpy": zero, "tpz": zero, "weight": zero})
    hits = pd.concat([event.hits, new_hits.astype(event.hits.dtypes.to_dict())], ignore_index=True)
    truth = pd.concat([event.truth, new_truth.astype(event.truth.dtypes.to_dict())], ignore_index=True)
    cells = event.cells
    if cells is not None:
        new_cells = pd.DataFrame({"hit_id": hit_id, "ch0": ch0, "ch1": ch1, "value": value})
        cells = pd.concat([cells, new_cells.astype(cells.dtypes.to_dict())], ignore_index=True)
    return dataclasses.replace(event, hits=hits, truth=truth, cells=cells)
