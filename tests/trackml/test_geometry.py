"""Detector geometry and helix–module intersection (trkx_tf.trackml.geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from trkx_tf.errors import DataError
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.helix import Helix, intersect


def random_helices(rng, n, pt_scale=0.5, displaced=0.0, z_sigma=20.0, eta_max=3.0):
    pt = 0.05 + rng.exponential(pt_scale, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    eta = rng.uniform(-eta_max, eta_max, n)
    mom = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], 1)
    vtx = np.stack([rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), rng.normal(0, z_sigma, n)], 1)
    vtx[:, :2] += rng.uniform(-displaced, displaced, (n, 2))
    return Helix.from_momentum(vtx, mom, rng.choice([-1, 1], n))


def brute_force(geometry: Geometry, helix: Helix, s_max: np.ndarray, ds: float = 0.2) -> set:
    """(track, module) pairs found by stepping along each helix and bisecting every sign change of the plane
    distance of every module (slow, exhaustive)."""
    from scipy.spatial import cKDTree

    found = set()
    normal = geometry.rotation[:, :, 2]
    reach = float(np.hypot(np.maximum(geometry.hu_min, geometry.hu_max), geometry.hv).max()) + 2 * ds
    tree = cKDTree(geometry.center)
    for t in range(len(helix)):
        s = np.arange(0.0, s_max[t] + ds, ds)
        pts = helix.position(s, np.full(len(s), t))
        near = np.unique(np.concatenate([np.asarray(x, np.int64) for x in tree.query_ball_point(pts, reach)]))
        if len(near) == 0:
            continue
        dist = np.einsum("smk,mk->sm", pts[:, None, :] - geometry.center[near][None], normal[near])
        step, col = np.nonzero(np.sign(dist[1:]) != np.sign(dist[:-1]))
        for i, j in zip(step, col):
            m = near[j]
            a, b = s[i], s[i + 1]
            fa = dist[i, j]
            for _ in range(50):
                c = 0.5 * (a + b)
                fc = (helix.position(np.array([c]), np.array([t]))[0] - geometry.center[m]) @ normal[m]
                if np.sign(fc) == np.sign(fa):
                    a, fa = c, fc
                else:
                    b = c
            x = helix.position(np.array([c]), np.array([t]))
            loc = geometry.to_local(np.array([m]), x)
            if geometry.contains(np.array([m]), loc, tol=0.0)[0] and c <= s_max[t]:
                found.add((t, int(m)))
    return found


@pytest.mark.parametrize("seed", [0, 1])
def test_intersect_finds_exactly_the_brute_force_crossings(toy_geometry, seed):
    rng = np.random.default_rng(seed)
    helix = random_helices(rng, 30, displaced=40.0 if seed else 0.0)
    s_max = np.minimum(helix.exit_length(toy_geometry.r_max + 5, toy_geometry.z_max + 5),
                       2.5 * np.pi / np.abs(helix.kappa))
    got = intersect(toy_geometry, helix, 0.0, s_max, max_turns=3)
    expected = brute_force(toy_geometry, helix, s_max)
    assert len(expected) > 20
    assert set(zip(got.track.tolist(), got.module.tolist())) == expected
    # every crossing lies on its module's mid-plane, inside its bounds, sorted by (track, s)
    local = toy_geometry.to_local(got.module, got.xyz)
    assert np.abs(local[:, 2]).max() < 1e-6
    assert toy_geometry.contains(got.module, local, tol=1e-6).all()
    key = got.track * 1e6 + got.s
    assert (np.diff(key) > 0).all()


def test_overlapping_modules_give_two_crossings_on_a_layer(toy_geometry):
    # a radial straight-ish track through the φ overlap of two neighbouring barrel modules of layer 1
    rows = np.flatnonzero((toy_geometry.volume_id == 8) & (toy_geometry.layer_id == 2))
    phis = np.sort(np.unique(np.round(np.arctan2(toy_geometry.center[rows, 1], toy_geometry.center[rows, 0]), 6)))
    mid = 0.5 * (phis[0] + phis[1]) + 0.15 * 0.3  # between two modules, nudged towards the tilted overlap
    crossings = []
    for dphi in np.linspace(-0.05, 0.05, 21):
        helix = Helix.from_momentum(np.zeros((1, 3)), np.array([[np.cos(mid + dphi), np.sin(mid + dphi), 0.01]]) * 50,
                                    np.array([1]))
        c = intersect(toy_geometry, helix, 0.0, np.array([80.0]))
        crossings.append(int(np.isin(c.module, rows).sum()))
    assert max(crossings) == 2 and min(crossings) >= 1


def test_radius_and_z_crossings_are_exact():
    rng = np.random.default_rng(5)
    helix = random_helices(rng, 500, pt_scale=2.0, displaced=100.0)
    for radius in (30.0, 150.0, 700.0):
        s_a, s_b = helix.radius_crossings(radius)
        for s in (s_a, s_b):
            ok = ~np.isnan(s)
            assert ok.sum() > 50
            p = helix.position(s[ok], np.flatnonzero(ok))
            assert np.abs(np.hypot(p[:, 0], p[:, 1]) - radius).max() < 1e-6
        both = ~np.isnan(s_a)
        assert (s_a[both] <= s_b[both]).all() and (s_a[both] >= 0).all()
    s = helix.z_crossing(250.0)
    ok = ~np.isnan(s)
    assert np.abs(helix.position(s[ok], np.flatnonzero(ok))[:, 2] - 250.0).max() < 1e-9
    assert (np.sign(helix.cot[ok]) == np.sign(250.0 - helix.z0[ok])).all()


def test_straight_line_limit():
    n = 4
    z = np.zeros(n)
    line = Helix(x0=np.array([0.0, 1.0, 5.0, -3.0]), y0=np.array([0.0, -2.0, 0.0, 4.0]), z0=z,
                 phi0=np.array([0.3, 1.0, 3.0, -2.0]), kappa=np.zeros(n), cot=np.array([0.0, 1.0, -2.0, 0.5]))
    s = np.full(n, 100.0)
    p = line.position(s)
    expected = np.stack([line.x0 + 100 * np.cos(line.phi0), line.y0 + 100 * np.sin(line.phi0), 100 * line.cot], 1)
    assert np.allclose(p, expected, atol=1e-12)
    s_a, s_b = line.radius_crossings(50.0)
    assert np.isnan(s_b).all()  # the line's other crossing lies behind the start
    assert np.allclose(np.hypot(*line.position(s_a)[:, :2].T), 50.0)
    nearly = Helix(line.x0, line.y0, z, line.phi0, np.full(n, 1e-10), line.cot)
    assert np.allclose(nearly.position(s), p, atol=1e-5)


def test_exit_length_is_on_the_boundary():
    rng = np.random.default_rng(3)
    helix = random_helices(rng, 300, pt_scale=3.0, eta_max=4.0)
    s = helix.exit_length(1000.0, 3000.0)
    p = helix.position(s)
    on_r = np.isclose(np.hypot(p[:, 0], p[:, 1]), 1000.0, atol=1e-6)
    on_z = np.isclose(np.abs(p[:, 2]), 3000.0, atol=1e-6)
    finite = np.isfinite(s)
    assert (on_r | on_z)[finite].all() and finite.sum() > 250


def test_local_global_and_lookup(toy_geometry):
    g = toy_geometry
    rows = np.arange(g.n_modules)
    uvw = np.stack([np.full(len(rows), 1.0), np.full(len(rows), -2.0), np.full(len(rows), 0.01)], 1)
    assert np.allclose(g.to_local(rows, g.to_global(rows, uvw)), uvw)
    assert (g.rows(g.volume_id, g.layer_id, g.module_id) == rows).all()
    with pytest.raises(DataError, match=r"\(8, 2, 999\) is not in the detector"):
        g.rows([8], [2], [999])
    assert g.contains(rows, uvw).all()
    outside = uvw.copy()
    outside[:, 2] = 1.0  # beyond half the thickness
    assert not g.contains(rows, outside).any()
    # every module is listed in its layer's lookup table
    for li, layer in enumerate(g.layers):
        members = set(np.flatnonzero(g.layer_index == li))
        assert members == set(np.unique(layer.table[layer.table >= 0]))


def test_bad_rotation_or_size_is_rejected(toy_detectors):
    bad = toy_detectors.copy()
    bad.loc[3, "rot_xu"] = 2.0
    with pytest.raises(DataError, match=r"not orthonormal in rows \[3\]"):
        Geometry(bad)
    bad = toy_detectors.copy()
    bad.loc[5, "module_hv"] = 0.0
    with pytest.raises(DataError, match=r"'module_hv' is not positive in rows \[5\]"):
        Geometry(bad)


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_geometry_matches_brute_force(geometry):
    rng = np.random.default_rng(11)
    helix = random_helices(rng, 6, pt_scale=1.0, z_sigma=5.0, eta_max=3.5)
    s_max = np.minimum(helix.exit_length(geometry.r_max + 1, geometry.z_max + 1), 1.25 * np.pi / np.abs(helix.kappa))
    got = intersect(geometry, helix, 0.0, s_max)
    expected = brute_force(geometry, helix, s_max, ds=0.5)
    assert len(expected) >= 20
    assert set(zip(got.track.tolist(), got.module.tolist())) == expected


@pytest.mark.shared_data
def test_real_geometry_layers(geometry):
    assert geometry.n_modules == 18_728
    assert len(geometry.layers) == 48
    barrel = {(l.volume_id, l.layer_id) for l in geometry.layers if l.barrel}
    assert {v for v, _ in barrel} == {8, 13, 17}
    assert 1000 < geometry.r_max < 1100 and 2950 < geometry.z_max < 3000
