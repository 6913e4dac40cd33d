"""A tiny toy detector and event generator for the graph tests (barrel layers only, helices in 2 T).

The layers are cylinders at ``LAYER_R`` (volume 8, layer_id 2, 4, …), cut into ``phi_modules`` × ``z_modules``
modules. Particles come from a vertex near the origin on helices; with probability ``overlap`` a hit gets a twin
on the same layer (a module overlap, 1 mm further out, next module in φ). Noise hits sit at random on the layers.
Everything is in TrackML columns, hit ids shuffled.
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd

LAYER_R = (32.0, 72.0, 116.0, 172.0, 260.0, 360.0)
Z_HALF = 600.0


def module_of(layer: int, phi: np.ndarray, z: np.ndarray, phi_modules: int, z_modules: int) -> np.ndarray:
    n_phi = phi_modules * (layer + 1)
    i_phi = np.clip(((phi + np.pi) / (2 * np.pi) * n_phi).astype(int), 0, n_phi - 1)
    i_z = np.clip(((z + Z_HALF) / (2 * Z_HALF) * z_modules).astype(int), 0, z_modules - 1)
    return 1 + i_phi * z_modules + i_z


def make_event(
    event_id: int = 1,
    n_particles: int = 50,
    noise: int = 20,
    seed: int = 0,
    overlap: float = 0.1,
    phi_modules: int = 6,
    z_modules: int = 6,
    with_cells: bool = False,
):
    """A toy event: a namespace with ``event_id, hits, particles, truth, cells`` DataFrames."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(0.3, 5.0, n_particles)
    q = rng.choice([-1, 1], n_particles)
    phi0 = rng.uniform(-np.pi, np.pi, n_particles)
    eta = rng.uniform(-1.0, 1.0, n_particles)
    vz = rng.normal(0.0, 20.0, n_particles)
    vx = rng.normal(0.0, 0.01, n_particles)
    vy = rng.normal(0.0, 0.01, n_particles)
    pid = (np.arange(n_particles) + 1) * 1000 + 7
    radius = pt * 1000.0 / (0.3 * 2.0)  # mm
    cot = np.sinh(eta)
    rows = []
    for p in range(n_particles):
        for layer, r in enumerate(LAYER_R):
            if r >= 2 * radius[p]:
                break
            for twin in ((0.0, 1.0) if rng.random() < overlap else (0.0,)):
                rr = r + twin
                turn = np.arcsin(rr / (2 * radius[p]))
                phi = np.mod(phi0[p] + q[p] * turn + np.pi, 2 * np.pi) - np.pi
                z = vz[p] + 2 * radius[p] * turn * cot[p]
                if abs(z) >= Z_HALF:
                    break
                x, y = rr * np.cos(phi) + vx[p], rr * np.sin(phi) + vy[p]
                mod = module_of(layer, np.array([phi]), np.array([z]), phi_modules, z_modules)[0]
                if twin:
                    mod = mod + z_modules  # the neighbouring module in phi
                rows.append((x, y, z, 8, 2 * (layer + 1), int(mod), pid[p]))
    for _ in range(noise):
        layer = int(rng.integers(len(LAYER_R)))
        phi = rng.uniform(-np.pi, np.pi)
        z = rng.uniform(-Z_HALF, Z_HALF)
        r = LAYER_R[layer]
        mod = module_of(layer, np.array([phi]), np.array([z]), phi_modules, z_modules)[0]
        rows.append((r * np.cos(phi), r * np.sin(phi), z, 8, 2 * (layer + 1), int(mod), 0))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    n = len(rows)
    arr = np.array(rows, dtype=object)
    hits = pd.DataFrame({
        "hit_id": np.arange(1, n + 1, dtype=np.int64),
        "x": arr[:, 0].astype(np.float64), "y": arr[:, 1].astype(np.float64), "z": arr[:, 2].astype(np.float64),
        "volume_id": arr[:, 3].astype(np.int64), "layer_id": arr[:, 4].astype(np.int64),
        "module_id": arr[:, 5].astype(np.int64),
    })
    hit_pid = arr[:, 6].astype(np.int64)
    particles = pd.DataFrame({
        "particle_id": pid, "vx": vx, "vy": vy, "vz": vz, "px": pt * np.cos(phi0), "py": pt * np.sin(phi0),
        "pz": pt * cot, "q": q, "nhits": np.array([(hit_pid == i).sum() for i in pid]),
    })
    weight = np.where(hit_pid != 0, 1.0, 0.0)
    weight = weight / weight.sum() if weight.sum() else weight
    truth = pd.DataFrame({
        "hit_id": hits["hit_id"], "particle_id": hit_pid, "tx": hits["x"], "ty": hits["y"], "tz": hits["z"],
        "tpx": 0.0, "tpy": 0.0, "tpz": 0.0, "weight": weight,
    })
    cells = None
    if with_cells:
        k = rng.integers(1, 4, n)
        cells = pd.DataFrame({
            "hit_id": np.repeat(hits["hit_id"].to_numpy(), k),
            "ch0": rng.integers(0, 100, k.sum()), "ch1": rng.integers(0, 100, k.sum()),
            "value": rng.uniform(0.01, 0.5, k.sum()),
        })
    return types.SimpleNamespace(event_id=event_id, hits=hits, particles=particles, truth=truth, cells=cells)


def write_event_csv(folder, event) -> None:
    """Writes a toy event as TrackML CSV files (event<id:09d>-<part>.csv)."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in ("hits", "particles", "truth", "cells"):
        df = getattr(event, part)
        if df is not None:
            df.to_csv(folder / f"event{event.event_id:09d}-{part}.csv", index=False)
