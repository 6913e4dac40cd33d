"""An event simulator on the real TrackML geometry.

Each event is built in seven steps, all vectorised with numpy:

1. **Vertices.** One hard-scatter vertex and Poisson(μ) pile-up vertices, Gaussian in a beam spot.
2. **Particles.** Each pile-up vertex is empty (diffractive, nothing in the acceptance) with probability
   ``empty_fraction``, else it emits a negative-binomial number of charged particles; η is uniform in
   ``|η| < eta_max``, φ uniform, the charge ±1, and pT > ``pt_min`` follows ``pT·(1 + pT/(nT))^-n`` (the
   Tsallis form fitted to the calibration events). A fraction of them come from a displaced decay point. The
   hard scatter adds two jets and two isolated leptons with high-pT tracks.
3. **Propagation.** Helices in the solenoid field are intersected with every module plane they cross
   (:func:`~trkx_tf.trackml.geometry.intersect`), so module overlaps give duplicate hits on a layer. A helix stops
   where it leaves the detector or after ``max_half_turns`` half-turns (loopers); particles below ``hit_pt_min``
   leave no hits (the real events show this sharp threshold at 0.15 GeV).
4. **Multiple scattering.** Each crossed module deflects the track by a Gaussian angle (Highland formula, material
   ``x/X0`` proportional to the module thickness and the path length in it); the deflections displace the later
   crossings (lever arm along the track). Two rare processes add the non-Gaussian tails (:func:`large_angle_kicks`):
   single Coulomb scatters (Molière's Rutherford tail beyond 3 θ0) and nuclear elastic scatters on silicon (the
   track goes on with a kink of √|t|/p). Each displaced crossing is projected along the track onto its own
   module and the layer's neighbours, so scattering moves hits into gaps, onto neighbours, or into overlaps.
5. **Interactions and secondaries.** A particle ends at a module with probability ``interaction_probability``
   (nuclear interaction); a barrel-module crossing of a primary starts a soft secondary with probability
   ``secondary_probability`` (material interactions: central, soft); secondaries are propagated the same way.
6. **Hit efficiency.** Each module crossing of a charged particle leaves a hit with probability ``hit_efficiency``
   (a dead or unread sensor, a cluster below threshold); the particle goes on regardless (its scattering in that
   module, a possible interaction or secondary there, all happen). Its random numbers come from a child stream of
   the event's (:func:`_efficiency_rng`), and none is drawn at efficiency 1, so efficiency 1 is the fully efficient
   simulator bit for bit.
7. **Digitisation and noise.** The track segment inside the sensor lights the pixels it crosses (cells, charge
   proportional to the path length in each); the measured position is the charge-weighted centroid of the cells,
   so the resolution is at most pitch/√12 and the cluster size follows the crossing angle. Noise hits, one pixel
   each, are spread over the modules so that they make ``noise_fraction`` of all hits.

Truth carries the true (scattered) crossing point, the momentum at the hit and the official TrackML weights;
particles carry ``nhits`` (the hits they left, after the inefficiency). Particle ids follow the TrackML bit layout:
the vertex number in bits 52+, the particle number in bits 36-51, and a secondary's number in the low bits.

Every event is deterministic given (seed, event_id): its random stream is ``SeedSequence([seed, event_id])``, so the
events do not depend on the number of workers. Calibration against the real events is in ``README.md`` beside this
file and in ``benchmarks/simulate_calibration.py``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.trackml.geometry import Geometry, Helix, intersect
from trkx_tf.trackml.io import Event, write_event
from trkx_tf.trackml.score import hit_weights

PION_MASS = 0.13957  # GeV
MIP_DEDX = 0.388  # MeV/mm in silicon
MAX_VERTICES = 2047  # vertex number must fit the particle-id bits 52..62
MAX_PILEUP = 1800.0  # Poisson(1800) stays below MAX_VERTICES (5.8 sigma)


@dataclass(frozen=True)
class PhysicsModel:
    """The calibrated physics of the simulator (lengths in mm, momenta in GeV).

    The defaults were fitted to the six calibration events in ``../shared/trackml/calibration`` (see README.md).
    """

    bz: float = 2.0  # solenoid field, T
    beam_sigma_xy: float = 0.015  # beam spot
    beam_sigma_z: float = 5.3
    eta_max: float = 4.0
    pt_min: float = 0.1  # particles generated above this pT
    hit_pt_min: float = 0.15  # particles below this pT leave no hits (as in the real events)
    eta_taper: float = 0.15  # dN/dη falls linearly by this fraction from |η| = 2.5 to eta_max
    empty_fraction: float = 0.30  # pile-up vertices with no charged particle above pt_min in |η| < eta_max
    multiplicity_mean: float = 55.0  # charged particles of a non-empty min-bias vertex (negative binomial)
    multiplicity_shape: float = 1.6
    pt_temperature: float = 0.159  # Tsallis T and n of prompt particles
    pt_power: float = 6.88
    decay_fraction: float = 0.095  # particles from a displaced decay
    decay_length: float = 35.0  # mean transverse decay distance
    decay_pt_temperature: float = 0.080
    decay_pt_power: float = 4.45
    hard_multiplicity: float = 120.0  # soft particles of the hard-scatter vertex
    jet_tracks: float = 12.0  # mean charged tracks per jet (two jets)
    jet_pt_min: float = 1.0
    jet_pt_index: float = 2.2  # track pT ~ pT^-index above jet_pt_min (within the jet cone)
    lepton_pt: tuple[float, float] = (20.0, 60.0)  # two isolated leptons, uniform pT range
    interaction_probability: float = 0.01  # per module crossing: the particle ends there (nuclear interaction)
    secondary_stop_probability: float = 0.09  # the same for secondaries (soft: they also range out)
    secondary_probability: float = 0.062  # per barrel-module crossing of a primary
    secondary_pt_temperature: float = 0.092  # exponential pT·exp(-pT/T)
    secondary_eta_sigma: float = 0.6  # secondaries' η is Gaussian around 0 (they come from barrel material)
    secondary_angle: float = 0.35  # spread (rad) of a secondary's φ around its parent's
    material_x0: float = 0.02  # x/X0 of a 0.15 mm module at normal incidence; scales with module thickness
    coulomb_tail_start: float = 3.0  # single Coulomb scatters beyond this many θ0 (Rutherford tail; 0: none)
    elastic_per_x0: float = 0.110  # coherent nuclear elastic scatters per unit x/X0 crossed: X0 / λ_el of silicon
    elastic_slope: float = 113.0  # GeV^-2: dσ/dt ∝ exp(-b|t|), b = R²/3 of a silicon nucleus (R = 1.2 A^(1/3) fm)
    quasi_elastic_per_x0: float = 0.020  # quasi-elastic scatters off single nucleons per unit x/X0 (0.1 X0 / λ_I)
    quasi_elastic_slope: float = 10.0  # GeV^-2: the nucleon-nucleon elastic slope at a few GeV
    max_half_turns: float = 1.25
    hit_efficiency: float = 1.0  # per module crossing of a charged particle: it leaves a hit (see README.md)
    noise_per_area: bool = False  # noise spread by module area (True) or equally over modules (False)


# --------------------------------------------------------------------------------------------- sampling helpers
def _tsallis_sampler(temperature: float, power: float,
                     pt_min: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    """Inverse-CDF sampler of pT·(1 + pT/(nT))^-n (n = inf: pT·exp(-pT/T)) above pt_min."""
    x = np.geomspace(pt_min, 2000.0, 6000)
    if np.isfinite(power):
        logpdf = np.log(x) - power * np.log1p(x / (power * temperature))
    else:
        logpdf = np.log(x) - x / temperature
    pdf = np.exp(logpdf - logpdf.max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    log_x = np.log(x)

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        return np.exp(np.interp(rng.random(n), cdf, log_x))

    return sample


def _momenta(pt, eta, phi) -> np.ndarray:
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)


@dataclass
class _Particles:
    """Generated particles, all arrays ``[n_particles]`` (vertex and momentum ``[n_particles, 3]``)."""

    pid: np.ndarray
    vertex: np.ndarray
    momentum: np.ndarray
    q: np.ndarray

    @staticmethod
    def concat(parts: Sequence["_Particles"]) -> "_Particles":
        return _Particles(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pid", "vertex", "momentum", "q")))


def _generate_primaries(rng: np.random.Generator, pileup: float, model: PhysicsModel, samplers) -> _Particles:
    n_pu = int(rng.poisson(pileup)) if pileup > 0 else 0
    n_vtx = 1 + n_pu
    if n_vtx > MAX_VERTICES:
        raise DataError(f"simulate: pileup {pileup} gives {n_vtx} vertices, more than the {MAX_VERTICES} "
                        "that particle ids can number")
    vtx = np.stack([rng.normal(0, model.beam_sigma_xy, n_vtx), rng.normal(0, model.beam_sigma_xy, n_vtx),
                    rng.normal(0, model.beam_sigma_z, n_vtx)], axis=1)
    # soft particles per vertex: vertex 0 is the hard scatter
    k = model.multiplicity_shape
    mult = rng.negative_binomial(k, k / (k + model.multiplicity_mean), n_vtx)
    mult[1:][rng.random(n_pu) < model.empty_fraction] = 0
    mult[0] = rng.poisson(model.hard_multiplicity)
    vidx = np.repeat(np.arange(n_vtx), mult)
    n_soft = len(vidx)
    eta = rng.uniform(-model.eta_max, model.eta_max, n_soft)
    # a taper of dN/dη in the forward region: move a fraction of the forward particles to the central region
    excess = np.clip((np.abs(eta) - 2.5) / max(model.eta_max - 2.5, 1e-9), 0.0, 1.0) * model.eta_taper
    eta = np.where(rng.random(n_soft) < excess, rng.uniform(-2.5, 2.5, n_soft), eta)
    phi = rng.uniform(-np.pi, np.pi, n_soft)
    decay = rng.random(n_soft) < model.decay_fraction
    pt = np.where(decay, samplers["decay"](rng, n_soft), samplers["prompt"](rng, n_soft))
    q = rng.choice(np.array([-1, 1], np.int32), n_soft)
    # hard process: two back-to-back jets of collimated high-pT tracks and two isolated leptons
    jet_phi = rng.uniform(-np.pi, np.pi)
    jet_axes = [(rng.uniform(-2.0, 2.0), jet_phi), (rng.uniform(-2.0, 2.0), jet_phi + np.pi)]
    h_eta, h_phi, h_pt = [], [], []
    for axis_eta, axis_phi in jet_axes:
        n = int(rng.poisson(model.jet_tracks))
        h_eta.append(axis_eta + rng.normal(0, 0.1, n))
        h_phi.append(axis_phi + rng.normal(0, 0.1, n))
        h_pt.append(model.jet_pt_min * rng.random(n) ** (-1.0 / (model.jet_pt_index - 1.0)))
    h_eta.append(rng.uniform(-2.5, 2.5, 2))
    h_phi.append(rng.uniform(-np.pi, np.pi, 2))
    h_pt.append(rng.uniform(*model.lepton_pt, 2))
    h_eta, h_phi, h_pt = (np.concatenate(a) for a in (h_eta, h_phi, h_pt))
    h_pt = np.minimum(h_pt, 1000.0)
    n_hard = len(h_pt)
    # put everything together: vertex 0 first
    vidx = np.concatenate([np.zeros(n_hard, np.int64), vidx])
    eta = np.concatenate([h_eta, eta])
    phi = np.concatenate([h_phi, phi])
    pt = np.concatenate([h_pt, pt])
    q = np.concatenate([rng.choice(np.array([-1, 1], np.int32), n_hard), q])
    decay = np.concatenate([np.zeros(n_hard, bool), decay])
    keep = np.abs(eta) < model.eta_max
    vidx, eta, phi, pt, q, decay = vidx[keep], eta[keep], phi[keep], pt[keep], q[keep], decay[keep]
    momentum = _momenta(pt, eta, phi)
    vertex = vtx[vidx].copy()
    # displaced decay products: shifted along their own direction
    r_decay = rng.exponential(model.decay_length, int(decay.sum()))
    vertex[decay] += r_decay[:, None] * (momentum[decay] / pt[decay, None])
    # particle number within its vertex
    order = np.argsort(vidx, kind="stable")
    vidx, vertex, momentum, q = vidx[order], vertex[order], momentum[order], q[order]
    first = np.searchsorted(vidx, vidx)
    number = np.arange(len(vidx)) - first + 1
    pid = ((vidx.astype(np.int64) + 1) << 52) | (number.astype(np.int64) << 36)
    return _Particles(pid, vertex, momentum, q)


# ------------------------------------------------------------------------------------------ large-angle scatters
SI_Z, SI_A, SI_X0 = 14.0, 28.0855, 21.82  # silicon: atomic number, mass number, radiation length (g/cm²)
SI_RADIUS = 1.2 * SI_A ** (1.0 / 3.0)  # fm, nuclear radius
HBARC = 0.1973  # GeV fm


def moliere_b(x0: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Molière's expansion parameter B of silicon layers ``x0 [n]`` (x/X0) crossed at speed ``beta [n]``.

    B solves B - ln B = ln Ω, Ω the mean number of single scatters in the layer (Lynch & Dahl, NIM B58 (1991) 6:
    Ω = 7800 (Z + 1) Z^(1/3) t / (β² A (1 + 3.34 (Z α / β)²)), t in g/cm²); B ≈ 10-11 for a TrackML module.
    """
    t = np.maximum(x0, 1e-9) * SI_X0
    omega = 7800.0 * (SI_Z + 1) * SI_Z ** (1 / 3) * t / (beta ** 2 * SI_A * (1 + 3.34 * (SI_Z / 137.036 / beta) ** 2))
    log_omega = np.log(np.maximum(omega, 3.0))
    b = log_omega + 1.0
    for _ in range(8):  # fixed point of B = ln Ω + ln B (contracting: d/dB ln B = 1/B < 1)
        b = log_omega + np.log(b)
    return b


def large_angle_kicks(rng: np.random.Generator, theta0: np.ndarray, x0: np.ndarray, beta: np.ndarray,
                      p: np.ndarray, model: PhysicsModel) -> np.ndarray:
    """Non-Gaussian scattering angles of module crossings, ``[n, 2]`` (rad, the two projections).

    The Highland Gaussian (width θ0) describes the core of multiple scattering; two rare processes make its tails:

    * **single Coulomb scatters** (the Rutherford tail of Molière's distribution): the polar angle θ exceeds
      k·θ0 with probability 2 / (B k²) (dN/dθ = 2 χc² / θ³, θ0 = χc √(B/2)), from k = ``coulomb_tail_start``
      up to the nuclear-size cut-off θmax = ħc / (p R), R = 1.2 A^(1/3) fm;
    * **nuclear elastic scatters**: the particle scatters off a silicon nucleus and goes on, kinked by
      θ = √|t| / p with |t| exponential. Coherent elastic scatters (slope ``elastic_slope`` = R²/3) happen
      ``elastic_per_x0`` times per radiation length crossed: X0 / λ_el = 21.82 / 199 g/cm², with
      1/λ_el = 1/λ_T - 1/λ_I (PDG, silicon: λ_T = 70.2, λ_I = 108.4 g/cm²). Quasi-elastic scatters off single
      nucleons (slope ``quasi_elastic_slope``, the nucleon-nucleon one) happen ``quasi_elastic_per_x0`` times
      per radiation length (about a tenth of the inelastic rate X0 / λ_I = 0.20).

    The azimuth of each kick around the track is uniform.

    Args:
      rng: the event's random stream.
      theta0, x0, beta, p: ``[n]`` Highland width (rad), x/X0, speed and momentum (GeV) of each crossing.
      model: the physics parameters.

    Returns:
      ``[n, 2]`` angles to add to the Gaussian ones.
    """
    n = len(theta0)
    polar = np.zeros(n)
    if model.coulomb_tail_start <= 0 and model.elastic_per_x0 <= 0 and model.quasi_elastic_per_x0 <= 0:
        return np.zeros((n, 2))  # all off: no random numbers drawn (the Gaussian-only simulator, bit for bit)
    k = model.coulomb_tail_start
    if k > 0:
        theta_max = HBARC / (np.maximum(p, 1e-6) * SI_RADIUS)
        start = k * theta0
        u_min = np.minimum((start / theta_max) ** 2, 1.0)
        prob = 2.0 / (moliere_b(x0, beta) * k * k) * (1.0 - u_min)
        hit = np.flatnonzero((rng.random(n) < prob) & (theta0 > 0))
        u = rng.uniform(u_min[hit], 1.0)
        polar[hit] = start[hit] / np.sqrt(u)
    for per_x0, slope in ((model.elastic_per_x0, model.elastic_slope),
                          (model.quasi_elastic_per_x0, model.quasi_elastic_slope)):
        if per_x0 > 0:
            hit = np.flatnonzero(rng.random(n) < -np.expm1(-per_x0 * x0))
            t = rng.exponential(1.0 / slope, len(hit))
            polar[hit] = np.hypot(polar[hit], np.sqrt(t) / p[hit])
    psi = rng.uniform(-np.pi, np.pi, n)
    return np.stack([polar * np.cos(psi), polar * np.sin(psi)], axis=1)


# ---------------------------------------------------------------------------------------------------- propagation
@dataclass
class _Hits:
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


def _propagate(geometry: Geometry, parts: _Particles, s_min: float, rng: np.random.Generator,
               model: PhysicsModel, stop_probability: float) -> _Hits:
    helix = Helix.from_momentum(parts.vertex, parts.momentum, parts.q, model.bz)
    with np.errstate(divide="ignore"):
        s_turns = model.max_half_turns * np.pi / np.abs(helix.kappa)
    s_max = np.minimum(helix.exit_length(geometry.r_max + 1.0, geometry.z_max + 1.0), s_turns)
    s_max[np.hypot(parts.momentum[:, 0], parts.momentum[:, 1]) < model.hit_pt_min] = 0.0
    turns = int(np.ceil(model.max_half_turns / 2.0)) + 1
    c = intersect(geometry, helix, s_min, s_max, max_turns=turns)
    n = len(c.s)
    if n == 0:
        return _Hits(c.track, c.module, c.xyz, c.local, np.zeros((0, 3)))
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
    return _Hits(track[keep], module[keep], xyz[keep], local[keep], t3[src[keep]] * p[src[keep], None])


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


def _secondaries(geometry: Geometry, parents: _Particles, hits: _Hits, rng: np.random.Generator, model: PhysicsModel,
                 sampler) -> _Particles:
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
    return _Particles(pid, hits.xyz[spawn].copy(), _momenta(pt, eta, phi), q)


# --------------------------------------------------------------------------------------------------- digitisation
def _digitise(geometry: Geometry, module: np.ndarray, local: np.ndarray, direction: np.ndarray,
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


def _noise(geometry: Geometry, n: int, rng: np.random.Generator, model: PhysicsModel):
    """``n`` noise hits: (module rows, local positions at pixel centres, cell ch0, ch1, value)."""
    if model.noise_per_area:
        area = (geometry.hu_min + geometry.hu_max) * geometry.hv
        module = rng.choice(geometry.n_modules, n, p=area / area.sum())
    else:
        module = rng.integers(0, geometry.n_modules, n)
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
    return module, np.stack([cu, cv, np.zeros(n)], axis=1), ch0, ch1, value


# ---------------------------------------------------------------------------------------------- hit efficiency
EFFICIENCY_STREAM = 0x68697465  # spawn-key word of the hit-efficiency child stream ("hite")


def _efficiency_rng(rng: np.random.Generator) -> np.random.Generator:
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


def _check_model(model: PhysicsModel) -> None:
    if not 0.0 < model.hit_efficiency <= 1.0:
        raise DataError(f"simulate: hit_efficiency must be in (0, 1], got {model.hit_efficiency}")


def _detected(n: int, rng: np.random.Generator, model: PhysicsModel) -> Optional[np.ndarray]:
    """Rows of the ``n`` crossings that leave a hit (None: all of them; no random numbers drawn)."""
    if model.hit_efficiency >= 1.0 or n == 0:
        return None
    return np.flatnonzero(_efficiency_rng(rng).random(n) < model.hit_efficiency)


# ---------------------------------------------------------------------------------------------------------- event
def event_rng(seed: int, event_id: int) -> np.random.Generator:
    """The random stream of one event: ``SeedSequence([seed, event_id])``, whoever simulates it."""
    if seed < 0 or event_id < 0:
        raise DataError(f"simulate: seed and event id must be >= 0, got seed {seed}, event {event_id}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(event_id)]))


def simulate_event(
    geometry: Geometry,
    event_id: int,
    rng: np.random.Generator,
    pileup: float = 200.0,
    noise_fraction: float = 0.146,
    cells: bool = True,
    model: PhysicsModel = PhysicsModel(),
) -> Event:
    """Simulates one event.

    Args:
      geometry: the detector (:meth:`Geometry.load` of ``detectors.csv``).
      event_id: the event's number.
      rng: its random stream (see :func:`event_rng`).
      pileup: mean number of pile-up vertices (Poisson), besides the one hard-scatter vertex.
      noise_fraction: noise hits as a fraction of all hits, in [0, 1).
      cells: also make the cells part.
      model: the physics parameters.

    Returns:
      An :class:`~trkx_tf.trackml.io.Event` with hits, particles, truth and (with ``cells``) cells; hits are sorted
      by (volume_id, layer_id, module_id) in random order within a module, hit_id = 1..n_hits.

    Raises:
      DataError: a parameter is out of range.
    """
    if not 0.0 <= noise_fraction < 1.0:
        raise DataError(f"simulate: noise_fraction must be in [0, 1), got {noise_fraction}")
    if pileup < 0:
        raise DataError(f"simulate: pileup must be >= 0, got {pileup}")
    _check_model(model)
    samplers = {
        "prompt": _tsallis_sampler(model.pt_temperature, model.pt_power, model.pt_min),
        "decay": _tsallis_sampler(model.decay_pt_temperature, model.decay_pt_power, model.pt_min),
        "secondary": _tsallis_sampler(model.secondary_pt_temperature, np.inf, model.pt_min),
    }
    prim = _generate_primaries(rng, pileup, model, samplers)
    hits1 = _propagate(geometry, prim, 0.0, rng, model, model.interaction_probability)
    sec = _secondaries(geometry, prim, hits1, rng, model, samplers["secondary"])
    hits2 = _propagate(geometry, sec, 1e-3, rng, model, model.secondary_stop_probability)
    parts = _Particles.concat([prim, sec])
    particle = np.concatenate([hits1.particle, hits2.particle + len(prim.pid)])
    module = np.concatenate([hits1.module, hits2.module])
    true_xyz = np.concatenate([hits1.xyz, hits2.xyz])
    true_local = np.concatenate([hits1.local, hits2.local])
    mom = np.concatenate([hits1.mom, hits2.mom])
    # hit efficiency: a crossing may leave no hit (after the secondaries: they start at crossings regardless)
    detected = _detected(len(particle), rng, model)
    if detected is not None:
        particle, module, true_xyz, true_local, mom = (a[detected] for a in (particle, module, true_xyz,
                                                                               true_local, mom))
    n_sig = len(particle)
    direction = mom / np.maximum(np.linalg.norm(mom, axis=1), 1e-12)[:, None]
    measured, c_row, c0, c1, cval = _digitise(geometry, module, true_local, direction, rng)
    n_noise = int(round(noise_fraction / (1.0 - noise_fraction) * n_sig))
    n_module, n_local, n_c0, n_c1, n_val = _noise(geometry, n_noise, rng, model)
    all_module = np.concatenate([module, n_module])
    all_local = np.concatenate([measured, n_local])
    xyz = geometry.to_global(all_module, all_local)
    n_hits = n_sig + n_noise
    if n_hits == 0:
        raise DataError(f"simulate: event {event_id} has no hits (pileup {pileup})")
    # hit order: by module, random within a module; hit_id = 1..n
    order = np.lexsort((rng.random(n_hits), geometry.module_id[all_module], geometry.layer_id[all_module],
                        geometry.volume_id[all_module]))
    hit_id = np.empty(n_hits, np.int32)
    hit_id[order] = np.arange(1, n_hits + 1, dtype=np.int32)
    hits = pd.DataFrame({
        "hit_id": hit_id[order],
        "x": xyz[order, 0].astype(np.float32), "y": xyz[order, 1].astype(np.float32),
        "z": xyz[order, 2].astype(np.float32),
        "volume_id": geometry.volume_id[all_module[order]], "layer_id": geometry.layer_id[all_module[order]],
        "module_id": geometry.module_id[all_module[order]],
    })
    pid_hit = np.concatenate([parts.pid[particle], np.zeros(n_noise, np.int64)])
    t_xyz = np.concatenate([true_xyz, xyz[n_sig:]])
    t_mom = np.concatenate([mom, np.zeros((n_noise, 3))])
    nhits = np.bincount(particle, minlength=len(parts.pid)).astype(np.int32)
    particles = pd.DataFrame({
        "particle_id": parts.pid,
        "vx": parts.vertex[:, 0].astype(np.float32), "vy": parts.vertex[:, 1].astype(np.float32),
        "vz": parts.vertex[:, 2].astype(np.float32),
        "px": parts.momentum[:, 0].astype(np.float32), "py": parts.momentum[:, 1].astype(np.float32),
        "pz": parts.momentum[:, 2].astype(np.float32),
        "q": parts.q.astype(np.int32), "nhits": nhits,
    })
    truth = pd.DataFrame({
        "hit_id": hit_id[order],
        "particle_id": pid_hit[order],
        "tx": t_xyz[order, 0].astype(np.float32), "ty": t_xyz[order, 1].astype(np.float32),
        "tz": t_xyz[order, 2].astype(np.float32),
        "tpx": t_mom[order, 0].astype(np.float32), "tpy": t_mom[order, 1].astype(np.float32),
        "tpz": t_mom[order, 2].astype(np.float32),
    })
    truth["weight"] = hit_weights(truth, particles).astype(np.float32)
    cells_df = None
    if cells:
        cell_hit = np.concatenate([c_row, n_sig + np.arange(n_noise)])
        cells_df = pd.DataFrame({
            "hit_id": hit_id[cell_hit],
            "ch0": np.concatenate([c0, n_c0]).astype(np.int32),
            "ch1": np.concatenate([c1, n_c1]).astype(np.int32),
            "value": np.concatenate([cval, n_val]).astype(np.float32),
        }).sort_values(["hit_id", "ch0", "ch1"], kind="stable").reset_index(drop=True)
    return Event(int(event_id), hits, particles, truth, cells_df)


# ----------------------------------------------------------------------------------------------- many events
@dataclass(frozen=True)
class EventSummary:
    """What one simulated event holds, for progress reports."""

    event_id: int
    n_hits: int
    n_particles: int
    seconds: float


_WORKER_GEOMETRY: Optional[Geometry] = None


def _init_worker(geometry: Geometry) -> None:
    global _WORKER_GEOMETRY
    _WORKER_GEOMETRY = geometry


def _simulate_and_write(args) -> EventSummary:
    import time

    out_dir, event_id, seed, pileup, noise_fraction, cells, compress, model = args
    start = time.perf_counter()
    event = simulate_event(_WORKER_GEOMETRY, event_id, event_rng(seed, event_id), pileup, noise_fraction, cells,
                           model)
    write_event(out_dir, event, compress=compress)
    return EventSummary(event_id, len(event.hits), int((event.particles["nhits"] > 0).sum()),
                        time.perf_counter() - start)


def simulate_events(
    out_dir: os.PathLike | str,
    detector: os.PathLike | str | Geometry,
    n_events: int,
    pileup: float = 200.0,
    seed: int = 0,
    noise_fraction: float = 0.146,
    workers: int = 0,
    first_event: int = 0,
    cells: bool = True,
    compress: bool = False,
    progress: bool = True,
    model: PhysicsModel = PhysicsModel(),
) -> list[EventSummary]:
    """Simulates events ``first_event .. first_event + n_events - 1`` and writes them to ``out_dir``.

    Args:
      out_dir: destination folder (created if needed).
      detector: ``detectors.csv[.gz]`` path, or a loaded :class:`Geometry`.
      n_events: how many events.
      pileup, noise_fraction, cells, model: as in :func:`simulate_event`.
      seed: the run's seed; event ``i`` uses :func:`event_rng` (seed, i), so the output does not depend on workers.
      workers: processes (0: one per CPU core, 1: in this process).
      first_event: id of the first event.
      compress: write ``.csv.gz``.
      progress: show a tqdm progress bar.

    Returns:
      One :class:`EventSummary` per event, in event order.

    Raises:
      DataError: bad arguments or an unreadable detector file.
    """
    from tqdm import tqdm

    if n_events < 1:
        raise DataError(f"simulate: the number of events must be >= 1, got {n_events}")
    if workers < 0:
        raise DataError(f"simulate: workers must be >= 0, got {workers}")
    if first_event < 0:
        raise DataError(f"simulate: first_event must be >= 0, got {first_event}")
    if seed < 0:
        raise DataError(f"simulate: seed must be >= 0, got {seed}")
    if not 0.0 <= noise_fraction < 1.0:
        raise DataError(f"simulate: noise_fraction must be in [0, 1), got {noise_fraction}")
    if not 0 <= pileup <= MAX_PILEUP:
        raise DataError(f"simulate: pileup must be in [0, {MAX_PILEUP:g}], got {pileup}")
    _check_model(model)
    geometry = detector if isinstance(detector, Geometry) else Geometry.load(detector)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = list(range(first_event, first_event + n_events))
    tasks = [(out_dir, i, seed, pileup, noise_fraction, cells, compress, model) for i in ids]
    workers = workers or os.cpu_count() or 1
    workers = min(workers, n_events)
    bar = tqdm(total=n_events, desc="simulate", unit="event", disable=not progress)
    results: dict[int, EventSummary] = {}
    try:
        if workers == 1:
            _init_worker(geometry)
            for task in tasks:
                summary = _simulate_and_write(task)
                results[summary.event_id] = summary
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                        initargs=(geometry,)) as pool:
                for fut in cf.as_completed([pool.submit(_simulate_and_write, t) for t in tasks]):
                    summary = fut.result()
                    results[summary.event_id] = summary
                    bar.update(1)
    finally:
        bar.close()
    return [results[i] for i in ids]


__all__ = ["PhysicsModel", "EventSummary", "event_rng", "large_angle_kicks", "moliere_b", "simulate_event",
           "simulate_events"]
