"""Tiny TrackML events on a toy barrel detector, for pipeline tests that must run without ../shared/trackml.

Six cylindrical layers (volume 8, layer_id 2, 4, … 12) cut into modules in φ and z; particles from near the origin
on helices in a 2 T field, one hit per layer crossed; a few noise hits. All four TrackML parts are produced in the
official columns (cells omitted), hit ids 1..n in random order.
"""

import numpy as np
import pandas as pd

from trkx_tf.trackml.io import Event

LAYER_R = (40.0, 70.0, 110.0, 170.0, 260.0, 360.0)
Z_HALF = 700.0


def make_event(event_id: int, n_particles: int = 40, n_noise: int = 10, seed: int = 0) -> Event:
    rng = np.random.default_rng([seed, event_id])
    pt = rng.uniform(0.6, 5.0, n_particles)
    q = rng.choice([-1, 1], n_particles)
    phi0 = rng.uniform(-np.pi, np.pi, n_particles)
    eta = rng.uniform(-0.8, 0.8, n_particles)
    vz = rng.normal(0.0, 10.0, n_particles)
    radius = pt * 1000.0 / (0.3 * 2.0)  # mm
    pid = np.arange(1, n_particles + 1, dtype=np.int64) * 4096
    rows = []
    for p in range(n_particles):
        for layer, r in enumerate(LAYER_R):
            turn = np.arcsin(r / (2 * radius[p]))
            phi = np.angle(np.exp(1j * (phi0[p] - q[p] * turn)))
            z = vz[p] + 2 * radius[p] * turn * np.sinh(eta[p])
            if abs(z) >= Z_HALF:
                break
            rows.append((r, phi, z, layer, pid[p]))
    for _ in range(n_noise):
        layer = int(rng.integers(len(LAYER_R)))
        rows.append((LAYER_R[layer], rng.uniform(-np.pi, np.pi), rng.uniform(-Z_HALF, Z_HALF), layer, 0))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    r, phi, z, layer, hpid = (np.array(c) for c in zip(*rows))
    n_phi = 4 * (layer + 1)
    module = 1 + np.floor((phi + np.pi) / (2 * np.pi) * n_phi).astype(int) * 10 + np.floor(
        (z + Z_HALF) / (2 * Z_HALF) * 4).astype(int)
    n = len(rows)
    hits = pd.DataFrame({"hit_id": np.arange(1, n + 1), "x": r * np.cos(phi), "y": r * np.sin(phi), "z": z,
                         "volume_id": 8, "layer_id": 2 * (layer + 1), "module_id": module})
    particles = pd.DataFrame({"particle_id": pid, "vx": 0.0, "vy": 0.0, "vz": vz, "px": pt * np.cos(phi0),
                              "py": pt * np.sin(phi0), "pz": pt * np.sinh(eta), "q": q,
                              "nhits": [(hpid == p).sum() for p in pid]})
    w = np.where(hpid != 0, 1.0, 0.0)
    truth = pd.DataFrame({"hit_id": hits["hit_id"], "particle_id": hpid, "tx": hits["x"], "ty": hits["y"],
                          "tz": z, "tpx": 0.0, "tpy": 0.0, "tpz": 0.0, "weight": w / w.sum()})
    return Event(event_id, hits, particles, truth)
