"""Physics and spectra of the simulator: the calibrated :class:`PhysicsModel` and the primary particles of an
event (steps 1 and 2 of :mod:`trkx_tf.trackml.simulate`): vertices in the beam spot, the minimum-bias multiplicity,
the Tsallis pT spectra, displaced decays and the hard scatter's jets and leptons.

Lengths in mm, momenta in GeV; ``n`` particles of an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from trkx_tf.errors import DataError

MAX_VERTICES = 2047  # vertex number must fit the particle-id bits 52..62
MAX_PILEUP = 1800.0  # Poisson(1800) stays below MAX_VERTICES (5.8 sigma)


@dataclass(frozen=True)
class PhysicsModel:
    """The calibrated physics of the simulator (lengths in mm, momenta in GeV).

    The defaults were fitted to the six calibration events in ``../shared/trackml/calibration`` (see
    docs/trackml.md).
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
    pt_power: float = 6.5  # (6.88 before the η dependence: the ML fit over all |η|)
    pt_power_eta_slope: float = 1.2  # the power grows by this per unit |η| beyond pt_power_eta_start (softer forward)
    pt_power_eta_start: float = 2.0
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
    hit_efficiency: float = 0.992  # per module crossing: it leaves a hit (the labelled events' layer skips, docs/trackml.md)
    max_v_slope: float = 10.0  # crossings with |dv/dw| above it (tracks along a module's v axis) leave no hit; 0: none
    noise_per_area: bool = False  # noise spread by module area (True) or equally over modules (False)


#: Width of the |η| steps in which the prompt spectrum's power grows (``PhysicsModel.pt_power_eta_slope``).
ETA_STEP = 0.25


def tsallis_sampler(temperature: float, power: float, pt_min: float, eta_slope: float = 0.0,
                    eta_start: float = 0.0) -> Callable[..., np.ndarray]:
    """Inverse-CDF sampler of pT·(1 + pT/(nT))^-n (n = inf: pT·exp(-pT/T)) above pt_min.

    Args:
      temperature, power: T and n.
      pt_min: GeV.
      eta_slope: n grows by this per unit of |η| beyond ``eta_start`` (constant within steps of :data:`ETA_STEP`,
        at each step's centre); 0: the same n everywhere.
      eta_start: where the growth starts.

    Returns:
      ``sample(rng, n, eta=None)``: ``[n]`` pT drawn from ``n`` uniform numbers of ``rng`` (one each, whatever
      ``eta``); ``eta`` ``[n]`` applies the growth of n.
    """
    tables = {}

    def table(p: float) -> tuple[np.ndarray, np.ndarray]:
        if p not in tables:
            x = np.geomspace(pt_min, 2000.0, 6000)
            if np.isfinite(p):
                logpdf = np.log(x) - p * np.log1p(x / (p * temperature))
            else:
                logpdf = np.log(x) - x / temperature
            pdf = np.exp(logpdf - logpdf.max())
            cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
            tables[p] = (cdf / cdf[-1], np.log(x))
        return tables[p]

    def sample(rng: np.random.Generator, n: int, eta: Optional[np.ndarray] = None) -> np.ndarray:
        u = rng.random(n)
        if eta is None or eta_slope == 0.0:
            return np.exp(np.interp(u, *table(power)))
        step = np.maximum(np.floor((np.abs(eta) - eta_start) / ETA_STEP), -1).astype(np.int64)  # -1: below start
        out = np.empty(n)
        for k in np.unique(step):
            sel = step == k
            p = power if k < 0 else power + eta_slope * (k + 0.5) * ETA_STEP
            out[sel] = np.exp(np.interp(u[sel], *table(p)))
        return out

    return sample


def momenta(pt, eta, phi) -> np.ndarray:
    """[n, 3] momenta (px, py, pz) of particles of [n] pT, η, φ."""
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)


@dataclass
class Particles:
    """Generated particles, all arrays ``[n_particles]`` (vertex and momentum ``[n_particles, 3]``)."""

    pid: np.ndarray
    vertex: np.ndarray
    momentum: np.ndarray
    q: np.ndarray

    @staticmethod
    def concat(parts: Sequence["Particles"]) -> "Particles":
        return Particles(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pid", "vertex", "momentum", "q")))


def generate_primaries(rng: np.random.Generator, pileup: float, model: PhysicsModel, samplers) -> Particles:
    """The primary particles of one event: the hard scatter (vertex 0) and Poisson(``pileup``) pile-up vertices.

    Args:
      rng: the event's random stream.
      pileup: mean number of pile-up vertices.
      model: the physics parameters.
      samplers: ``{"prompt", "decay"}`` pT samplers (:func:`tsallis_sampler`).

    Returns:
      The :class:`Particles`, sorted by vertex, with TrackML particle ids.

    Raises:
      DataError: more vertices than particle ids can number.
    """
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
    pt = np.where(decay, samplers["decay"](rng, n_soft), samplers["prompt"](rng, n_soft, eta))
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
    momentum = momenta(pt, eta, phi)
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
    return Particles(pid, vertex, momentum, q)
