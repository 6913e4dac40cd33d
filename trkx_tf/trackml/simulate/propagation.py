"""Propagation of the simulator (steps 3 to 5 of :mod:`trkx_tf.trackml.simulate`): helices through the module
planes, multiple scattering that displaces the later crossings, nuclear interactions that end a track, and the
soft secondaries started at barrel crossings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.helix import Helix, intersect
from trkx_tf.trackml.simulate.physics import Particles, PhysicsModel, momenta
from trkx_tf.trackml.simulate.scattering import large_angle_kicks

PION_MASS = 0.13957  # GeV


@dataclass
class Hits:
    """True module crossings, sorted by (particle, arc length); arrays ``[n]`` (xyz, mom ``[n, 3]``)."""

    particle: np.ndarray
    module: np.ndarray
    xyz: np.ndarray
    local: np.ndarray
    mom: np.ndarray


def _group_exclusive_cumsum(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Σ_{j<k, same group} x_j for rows sorted by group; ``start[k]`` is the first row of k's group."""
    c = np.cumsum(x) - x
    return c - c[start]


def propagate(geometry: Geometry, parts: Particles, s_min: float, rng: np.random.Generator,
              model: PhysicsModel, stop_probability: float) -> Hits:
    """The module crossings of particles: helices from arc length ``s_min`` on, scattered, stopped with
    ``stop_probability`` per crossing, each displaced crossing re-bound to the modules it then crosses.

    Returns:
      The crossings as :class:`Hits`, sorted by (particle, arc length).
    """
    helix = Helix.from_momentum(parts.vertex, parts.momentum, parts.q, model.bz)
    with np.errstate(divide="ignore"):
        s_turns = model.max_half_turns * np.pi / np.abs(helix.kappa)
    s_max = np.minimum(helix.exit_length(geometry.r_max + 1.0, geometry.z_max + 1.0), s_turns)
    s_max[np.hypot(parts.momentum[:, 0], parts.momentum[:, 1]) < model.hit_pt_min] = 0.0
    turns = int(np.ceil(model.max_half_turns / 2.0)) + 1
    c = intersect(geometry, helix, s_min, s_max, max_turns=turns)
    n = len(c.s)
    if n == 0:
        return Hits(c.track, c.module, c.xyz, c.local, np.zeros((0, 3)))
    tan = helix.tangent(c.s, c.track)
    norm3 = np.sqrt(1.0 + helix.cot[c.track] ** 2)
    t3 = tan / norm3[:, None]
    p = np.linalg.norm(parts.momentum[c.track], axis=1)
    beta = p / np.sqrt(p * p + PION_MASS ** 2)
    normal = geometry.rotation[c.module][:, :, 2]
    cos_in = np.maximum(np.abs(np.einsum("ij,ij->i", normal, t3)), 0.05)
    x0 = model.material_x0 * geometry.thickness[c.module] / 0.15 / cos_in
    theta0 = 0.0136 / (beta * p) * np.sqrt(x0) * (1.0 + 0.038 * np.log(x0 / beta ** 2))
    theta0 = np.maximum(theta0, 0.0)
    length = c.s * norm3
    start = np.searchsorted(c.track, c.track)
    kick = large_angle_kicks(rng, theta0, x0, beta, p, model)
    disp = []
    for axis in range(2):
        a = rng.normal(0.0, 1.0, n) * theta0 + kick[:, axis]
        disp.append(length * _group_exclusive_cumsum(a, start) - _group_exclusive_cumsum(a * length, start))
    e1 = np.stack([-t3[:, 1], t3[:, 0], np.zeros(n)], axis=1)
    e1 /= np.maximum(np.linalg.norm(e1, axis=1), 1e-12)[:, None]
    e2 = np.cross(t3, e1)
    moved = c.xyz + disp[0][:, None] * e1 + disp[1][:, None] * e2
    # a nuclear interaction ends the track after the module where it happens
    stop = (rng.random(n) < stop_probability).astype(np.int64)
    alive = np.flatnonzero(_group_exclusive_cumsum(stop, start) == 0)
    # the scattered track crosses the modules of each layer around its displaced point
    src, module, xyz, local = _rebind(geometry, c.module[alive], moved[alive], t3[alive])
    src = alive[src]
    track = c.track[src]
    s = c.s[src] + np.einsum("ij,ij->i", xyz - moved[src], t3[src]) / norm3[src]
    order = np.lexsort((s, module, track))
    track, module, s, src, xyz, local = (a[order] for a in (track, module, s, src, xyz, local))
    again = np.zeros(len(s), bool)  # the same module reached from two crossings of one layer
    again[1:] = (track[1:] == track[:-1]) & (module[1:] == module[:-1]) & (np.abs(s[1:] - s[:-1]) < 20.0)
    keep = np.flatnonzero(~again)
    keep = keep[np.lexsort((s[keep], track[keep]))]
    return Hits(track[keep], module[keep], xyz[keep], local[keep], t3[src[keep]] * p[src[keep], None])


def _rebind(geometry: Geometry, module: np.ndarray, point: np.ndarray, direction: np.ndarray):
    """The modules that lines through ``point [n, 3]`` along ``direction [n, 3]`` cross near ``module [n]``.

    Multiple scattering displaces a crossing; the displaced track may leave its module (the hit is lost in a gap,
    or moves to the neighbour) or enter an overlapping one too (a new duplicate). Each point is projected along
    its direction onto the planes of its own module and of the layer's modules around it.

    Returns:
      (src, module, xyz, local): ``[m]`` row of the input each crossing comes from, module row, global point
      ``[m, 3]`` on the module's mid-plane, local point ``[m, 3]`` (w = 0).
    """
    layer_of = geometry.layer_index[module]
    out = []
    for li in np.unique(layer_of):
        rows = np.flatnonzero(layer_of == li)
        cand = np.concatenate([module[rows, None], geometry.layers[li].candidates(point[rows])], axis=1)
        cand.sort(axis=1)
        cand[:, 1:][cand[:, 1:] == cand[:, :-1]] = -1
        r, j = np.nonzero(cand >= 0)
        src, m = rows[r], cand[r, j].astype(np.int64)
        normal = geometry.rotation[m][:, :, 2]
        denom = np.einsum("ij,ij->i", normal, direction[src])
        ok = np.abs(denom) > 1e-3
        off = np.einsum("ij,ij->i", normal, point[src] - geometry.center[m])
        proj = point[src] - (off / np.where(ok, denom, 1.0))[:, None] * direction[src]
        loc = geometry.to_local(m, proj)
        loc[:, 2] = 0.0
        hit = ok & geometry.contains(m, loc, tol=0.0)
        out.append((src[hit], m[hit], proj[hit], loc[hit]))
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3))
    return tuple(np.concatenate(x) for x in zip(*out))


def secondaries(geometry: Geometry, parents: Particles, hits: Hits, rng: np.random.Generator, model: PhysicsModel,
                sampler) -> Particles:
    """Soft particles started at barrel-module crossings of primaries (production point: the crossing)."""
    barrel = np.abs(geometry.rotation[hits.module, 2, 2]) < 0.5
    spawn = np.flatnonzero(barrel & (rng.random(len(hits.particle)) < model.secondary_probability))
    n = len(spawn)
    parent = hits.particle[spawn]
    pmom = hits.mom[spawn]
    eta = np.clip(rng.normal(0, model.secondary_eta_sigma, n), -model.eta_max, model.eta_max)
    phi = np.arctan2(pmom[:, 1], pmom[:, 0]) + rng.normal(0, model.secondary_angle, n)
    pt = sampler(rng, n)
    # the secondary's number among its parent's secondaries, in the low bits of the parent's id
    order = np.argsort(parent, kind="stable")
    ranks = np.empty(n, np.int64)
    ranks[order] = np.arange(n) - np.searchsorted(parent[order], parent[order])
    pid = parents.pid[parent] | (ranks + 1)
    q = rng.choice(np.array([-1, 1], np.int32), n)
    return Particles(pid, hits.xyz[spawn].copy(), momenta(pt, eta, phi), q)
