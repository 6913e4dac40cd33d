"""Fixtures of the trackml tests: a toy detector (no shared data needed), the real geometry, small simulated events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trkx_tf.trackml.io import DETECTOR_COLUMNS, Event


def make_toy_detectors() -> pd.DataFrame:
    """A small detector in the detectors.csv layout.

    Volume 8: two barrel layers (r = 50 and 90 mm) of 12 and 20 tilted modules in φ, staggered in r, with 3 rows in
    z that overlap. Volumes 7 and 9: one disk each at z = ∓300 mm of 16 trapezoids, alternating in z.
    """
    rows = []

    def add(vol, lay, mod, c, u, v, w, t, minhu, maxhu, hv, pu, pv):
        rot = np.stack([u, v, w], axis=1)  # columns are the local axes in global coordinates
        rows.append(dict(volume_id=vol, layer_id=lay, module_id=mod, cx=c[0], cy=c[1], cz=c[2],
                         rot_xu=rot[0, 0], rot_xv=rot[0, 1], rot_xw=rot[0, 2],
                         rot_yu=rot[1, 0], rot_yv=rot[1, 1], rot_yw=rot[1, 2],
                         rot_zu=rot[2, 0], rot_zv=rot[2, 1], rot_zw=rot[2, 2],
                         module_t=t, module_minhu=minhu, module_maxhu=maxhu, module_hv=hv, pitch_u=pu, pitch_v=pv))

    for lay, (radius, n_phi) in enumerate([(50.0, 12), (90.0, 20)], start=1):
        mod = 0
        for iz, z in enumerate((-55.0, 0.0, 55.0)):
            for ip in range(n_phi):
                phi = 2 * np.pi * ip / n_phi
                tilt = 0.15
                r = radius + (1.0 if (ip + iz) % 2 else -1.0)
                w = np.array([np.cos(phi + tilt), np.sin(phi + tilt), 0.0])
                v = np.array([0.0, 0.0, 1.0])
                u = np.cross(v, w)
                mod += 1
                add(8, 2 * lay, mod, (r * np.cos(phi), r * np.sin(phi), z + (0.5 if ip % 2 else -0.5)),
                    u, v, w, 0.15, 15.0, 15.0, 30.0, 0.05, 0.05625)
    for vol, z0 in ((7, -300.0), (9, 300.0)):
        for ip in range(16):
            phi = 2 * np.pi * ip / 16
            v = np.array([np.cos(phi), np.sin(phi), 0.0])
            w = np.array([0.0, 0.0, 1.0 if vol == 9 else -1.0])
            u = np.cross(v, w)
            c = (70.0 * np.cos(phi), 70.0 * np.sin(phi), z0 + (2.0 if ip % 2 else -2.0))
            add(vol, 2, ip + 1, c, u, v, w, 0.25, 10.0, 18.0, 40.0, 0.08, 1.2)
    df = pd.DataFrame(rows)
    return df.astype({k: v for k, v in DETECTOR_COLUMNS.items()})


@pytest.fixture(scope="session")
def toy_detectors() -> pd.DataFrame:
    return make_toy_detectors()


@pytest.fixture(scope="session")
def toy_geometry(toy_detectors):
    from trkx_tf.trackml.geometry import Geometry

    return Geometry(toy_detectors, name="toy")


@pytest.fixture(scope="session")
def geometry(shared_trackml):
    """The real TrackML geometry (skips without ../shared/trackml)."""
    from trkx_tf.trackml.geometry import Geometry

    return Geometry.load(shared_trackml / "detectors.csv.gz")


@pytest.fixture(scope="session")
def sim_event(geometry):
    """A μ=10 event on the real geometry."""
    from trkx_tf.trackml.simulate import event_rng, simulate_event

    return simulate_event(geometry, 7, event_rng(123, 7), pileup=10, noise_fraction=0.146)


def tiny_event(event_id: int = 42) -> Event:
    """A hand-made event of 6 hits: particles 11 (3 hits), 22 (2 hits), one noise hit, with cells."""
    hits = pd.DataFrame({
        "hit_id": np.arange(1, 7, dtype=np.int32),
        "x": np.array([1.5, 2.25, -3.125, 4.0, 5.5, -6.0], np.float32),
        "y": np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], np.float32),
        "z": np.array([-100.0, 10.0, 20.5, 30.0, 1e-3, 1234.5678], np.float32),
        "volume_id": np.array([7, 8, 8, 8, 9, 9], np.int32),
        "layer_id": np.array([2, 2, 4, 6, 2, 4], np.int32),
        "module_id": np.array([1, 2, 3, 4, 5, 6], np.int32),
    })
    particles = pd.DataFrame({
        "particle_id": np.array([11, 22, 4503599627370496], np.int64),
        "vx": np.array([0.0, 0.01, 0.0], np.float32), "vy": np.array([0.0, -0.01, 0.0], np.float32),
        "vz": np.array([1.0, -2.0, 0.0], np.float32),
        "px": np.array([0.3, 2.0, 0.1], np.float32), "py": np.array([0.4, 0.0, 0.1], np.float32),
        "pz": np.array([1.0, -3.0, 0.0], np.float32),
        "q": np.array([1, -1, 1], np.int32), "nhits": np.array([3, 2, 0], np.int32),
    })
    truth = pd.DataFrame({
        "hit_id": np.arange(1, 7, dtype=np.int32),
        "particle_id": np.array([11, 11, 11, 22, 22, 0], np.int64),
        "tx": hits["x"], "ty": hits["y"], "tz": hits["z"],
        "tpx": np.array([0.3, 0.3, np.nan, 2.0, 2.0, 0.0], np.float32),
        "tpy": np.array([0.4, 0.4, np.nan, 0.0, 0.0, 0.0], np.float32),
        "tpz": np.array([1.0, 1.0, np.nan, -3.0, -3.0, 0.0], np.float32),
        "weight": np.array([0.2, 0.2, 0.2, 0.2, 0.2, 0.0], np.float32),
    })
    cells = pd.DataFrame({
        "hit_id": np.array([1, 1, 2, 3, 4, 5, 6], np.int32),
        "ch0": np.array([10, 11, 5, 7, 8, 9, 1], np.int32),
        "ch1": np.array([3, 3, 4, 5, 6, 7, 0], np.int32),
        "value": np.array([0.1, 0.05, 0.2, 0.3, 0.4, 0.5, 0.01], np.float32),
    })
    return Event(event_id, hits, particles, truth, cells)
