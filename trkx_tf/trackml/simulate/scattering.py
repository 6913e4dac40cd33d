"""Large-angle scattering of the simulator (step 4 of :mod:`trkx_tf.trackml.simulate`): the non-Gaussian tails that
single Coulomb scatters and nuclear elastic scatters add to the Highland Gaussian of multiple scattering.
"""

from __future__ import annotations

import numpy as np

from trkx_tf.trackml.simulate.physics import PhysicsModel

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
