"""Detector response of the simulator (steps 6 and 7 of :mod:`trkx_tf.trackml.simulate`): hit efficiency, the
digitisation of a crossing into cells and a measured position, and noise hits.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from trkx_tf.errors import DataError
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.simulate.physics import PhysicsModel

MIP_DEDX = 0.388  # MeV/mm in silicon


def digitise(geometry: Geometry, module: np.ndarray, local: np.ndarray, direction: np.ndarray,
              rng: np.random.Generator):
    """Cells of each hit and the measured local position.

    Args:
      module, local, direction: ``[n]`` module rows, true local (u, v) ``[n, 3]``, global unit direction ``[n, 3]``.

    Returns:
      (measured_local ``[n, 3]``, cell_hit ``[n_cells]`` (row of the hit), ch0, ch1, value ``[n_cells]``).
    """
    n = len(module)
    rot = geometry.rotation[module]
    d = np.einsum("nij,ni->nj", rot, direction)
    dw = np.where(np.abs(d[:, 2]) < 1e-3, np.copysign(1e-3, d[:, 2] + 1e-30), d[:, 2])
    t = geometry.thickness[module]
    hu, hv = geometry.hu_max[module], geometry.hv[module]
    pu, pv = geometry.pitch_u[module], geometry.pitch_v[module]
    eu = np.clip(t * d[:, 0] / dw, -2 * hu, 2 * hu)
    ev = np.clip(t * d[:, 1] / dw, -2 * hv, 2 * hv)
    path = np.sqrt(t * t + eu * eu + ev * ev)
    m = np.clip(np.ceil(2.0 * (np.abs(eu) / pu + np.abs(ev) / pv)).astype(np.int64) + 1, 1, 64)
    row = np.repeat(np.arange(n), m)
    first = np.concatenate([[0], np.cumsum(m)[:-1]])
    frac = (np.arange(len(row)) - first[row] + 0.5) / m[row] - 0.5
    u = local[row, 0] + frac * eu[row]
    v = local[row, 1] + frac * ev[row]
    n_u = np.maximum(np.round(2 * hu / pu).astype(np.int64), 1)
    n_v = np.maximum(np.round(2 * hv / pv).astype(np.int64), 1)
    ch0 = np.clip(np.floor((u + hu[row]) / pu[row]).astype(np.int64), 0, n_u[row] - 1)
    ch1 = np.clip(np.floor((v + hv[row]) / pv[row]).astype(np.int64), 0, n_v[row] - 1)
    charge = MIP_DEDX * path * rng.lognormal(0.0, 0.25, n)  # MeV, Landau-like spread per hit
    sample_q = charge[row] / m[row]
    new = np.ones(len(row), bool)
    new[1:] = (row[1:] != row[:-1]) | (ch0[1:] != ch0[:-1]) | (ch1[1:] != ch1[:-1])
    cell = np.cumsum(new) - 1
    value = np.bincount(cell, weights=sample_q)
    c_row, c0, c1 = row[new], ch0[new], ch1[new]
    # charge-weighted centroid of the lit pixels
    tot = np.bincount(c_row, weights=value, minlength=n)
    cu = np.bincount(c_row, weights=value * ((c0 + 0.5) * pu[c_row] - hu[c_row]), minlength=n) / tot
    cv = np.bincount(c_row, weights=value * ((c1 + 0.5) * pv[c_row] - hv[c_row]), minlength=n) / tot
    cv = np.clip(cv, -hv, hv)
    half = geometry.half_width(module, cv)
    measured = np.stack([np.clip(cu, -half, half), cv, np.zeros(n)], axis=1)
    return measured, c_row, c0, c1, value


def noise(geometry: Geometry, n: int, rng: np.random.Generator, model: PhysicsModel):
    """``n`` noise hits: (module rows, local positions at pixel centres, cell ch0, ch1, value)."""
    if model.noise_per_area:
        area = (geometry.hu_min + geometry.hu_max) * geometry.hv
        module = rng.choice(geometry.n_modules, n, p=area / area.sum())
    else:
        module = rng.integers(0, geometry.n_modules, n)
    return (module, *noise_pixels(geometry, module, rng))


def noise_pixels(geometry: Geometry, module: np.ndarray, rng: np.random.Generator):
    """One lit pixel per noise hit on modules ``module [n]``, uniform over each module's area.

    Returns:
      (local position of the pixel centre ``[n, 3]``, ch0 ``[n]``, ch1 ``[n]``, value ``[n]``).
    """
    n = len(module)
    hv, pu, pv = geometry.hv[module], geometry.pitch_u[module], geometry.pitch_v[module]
    hu_max = geometry.hu_max[module]
    v = rng.uniform(-1, 1, n) * hv
    u = rng.uniform(-1, 1, n) * geometry.half_width(module, v)
    ch0 = np.clip(np.floor((u + hu_max) / pu), 0, np.round(2 * hu_max / pu) - 1).astype(np.int64)
    ch1 = np.clip(np.floor((v + hv) / pv), 0, np.round(2 * hv / pv) - 1).astype(np.int64)
    cv = (ch1 + 0.5) * pv - hv
    half = geometry.half_width(module, cv)
    cu = np.clip((ch0 + 0.5) * pu - hu_max, -half, half)
    value = MIP_DEDX * geometry.thickness[module] * rng.lognormal(-0.5, 0.5, n)
    return np.stack([cu, cv, np.zeros(n)], axis=1), ch0, ch1, value


EFFICIENCY_STREAM = 0x68697465  # spawn-key word of the hit-efficiency child stream ("hite")


def efficiency_rng(rng: np.random.Generator) -> np.random.Generator:
    """The child stream of ``rng`` that the hit efficiency draws from.

    It is ``SeedSequence(entropy, spawn_key + (EFFICIENCY_STREAM,))`` of the event's seed sequence: deterministic
    given (seed, event_id), and drawing from it leaves the event's own stream untouched: the particles and their
    crossings (true points, momenta) are those of the fully efficient event, the surviving hits a subset of them
    (the numbers drawn after this step, for the digitisation, the noise and the hit order, shift with the number of
    hits). A generator without a seed sequence falls back to its own stream.
    """
    ss = getattr(rng.bit_generator, "seed_seq", None)
    if not isinstance(ss, np.random.SeedSequence):
        return rng
    child = np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (EFFICIENCY_STREAM,),
                                   pool_size=ss.pool_size)
    return np.random.default_rng(child)


def check_model(model: PhysicsModel) -> None:
    """Raises DataError when ``model.hit_efficiency`` is outside (0, 1]."""
    if not 0.0 < model.hit_efficiency <= 1.0:
        raise DataError(f"simulate: hit_efficiency must be in (0, 1], got {model.hit_efficiency}")


def shallow_rows(geometry: Geometry, module: np.ndarray, mom: np.ndarray, model: PhysicsModel) -> Optional[np.ndarray]:
    """Rows of the crossings that are not too shallow along the module's v axis: ``|d_v / d_w|`` of the direction in
    the module's frame at most ``model.max_v_slope`` (None: all of them; 0 turns the limit off, nothing is computed).

    Args:
      module: ``[n]`` module rows of the crossings.
      mom: ``[n, 3]`` their momenta.
    """
    if model.max_v_slope <= 0 or len(module) == 0:
        return None
    d = np.einsum("nij,ni->nj", geometry.rotation[module], mom)
    return np.flatnonzero(np.abs(d[:, 1]) <= model.max_v_slope * np.abs(d[:, 2]))


def detected_rows(n: int, rng: np.random.Generator, model: PhysicsModel) -> Optional[np.ndarray]:
    """Rows of the ``n`` crossings that leave a hit (None: all of them; no random numbers drawn)."""
    if model.hit_efficiency >= 1.0 or n == 0:
        return None
    return np.flatnonzero(efficiency_rng(rng).random(n) < model.hit_efficiency)
