"""The doublet-level realism report (trkx_tf/study/realism.py) on hand-made events and samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trkx_tf.config import Config
from trkx_tf.errors import DataError
from trkx_tf.study import realism as R
from trkx_tf.trackml.io import Event

BARREL_R = {2: 32.0, 4: 72.0, 6: 116.0, 8: 172.0}  # volume 8 layer radii (mm)


def _track_hits(r, phi0, curvature, cot, z_vertex, volume, layer):
    """Hits of a track from (0, 0, z_vertex): φ(r) = φ0 + curvature·r, z(r) = z_vertex + cot·r."""
    r = np.asarray(r, np.float64)
    phi = phi0 + curvature * r
    return pd.DataFrame({"x": r * np.cos(phi), "y": r * np.sin(phi), "z": z_vertex + cot * r,
                         "volume_id": volume, "layer_id": layer})


def hand_made_event(skip_particle: bool = True) -> Event:
    """Three particles with full truth, plus a noise hit.

    * 1: pT 2 GeV, barrel layers 2, 4, 6, 8 (3 doublets "barrel pT>1"), curvature 1e-4 rad/mm, z vertex 5 mm;
    * 2: pT 0.7 GeV, barrel layers 2, 6, 8 (skips layer 4: one skipping doublet "barrel 0.5-1"), then an end-cap
      hit in volume 9, which the labelled rules drop (0.5-1 GeV particles are labelled in the barrel only);
    * 3: pT 3 GeV, barrel layer 2 then end-cap disks 2 and 4 of volume 9 ("barrel-endcap", "endcap");
    * particle 4: pT 0.3 GeV, two barrel hits: not labelled.
    """
    parts = [
        _track_hits(list(BARREL_R.values()), 0.1, 1e-4, 0.5, 5.0, 8, list(BARREL_R)).assign(pid=1),
        _track_hits([32.0, 116.0, 172.0] if skip_particle else [32.0, 72.0, 116.0], 1.0, -3e-4, 0.2, -2.0, 8,
                    [2, 6, 8] if skip_particle else [2, 4, 6]).assign(pid=2),
        _track_hits([200.0], 1.0, -3e-4, 0.2, -2.0, 9, 2).assign(pid=2),
        _track_hits([32.0, 80.0, 100.0], 2.0, 0.0, 6.0, 1.0, [8, 9, 9], [2, 2, 4]).assign(pid=3),
        _track_hits([32.0, 72.0], 3.0, 1e-3, 0.0, 0.0, 8, [2, 4]).assign(pid=4),
        _track_hits([50.0], 4.0, 0.0, 0.0, 0.0, 8, 4).assign(pid=0),
    ]
    h = pd.concat(parts, ignore_index=True)
    n = len(h)
    h.insert(0, "hit_id", np.arange(1, n + 1, dtype=np.int32))
    h["module_id"] = np.arange(1, n + 1, dtype=np.int32)
    pt = {1: 2.0, 2: 0.7, 3: 3.0, 4: 0.3}
    particles = pd.DataFrame({"particle_id": np.array(list(pt), np.int64), "vx": 0.0, "vy": 0.0,
                              "vz": [5.0, -2.0, 1.0, 0.0], "px": np.array(list(pt.values())), "py": 0.0,
                              "pz": 1.0, "q": 1, "nhits": [4, 4, 3, 2]})
    truth = pd.DataFrame({"hit_id": h["hit_id"], "particle_id": h.pop("pid").astype(np.int64)})
    return Event(7, h, particles, truth)


def test_labelled_doublets_variables_classes_and_skips():
    ev = hand_made_event()
    d = R.event_figures(ev, with_globals=False)
    b1 = d.doublets["barrel pT>1"]
    radii = np.array(list(BARREL_R.values()))
    np.testing.assert_allclose(b1["dr"], np.diff(radii))
    np.testing.assert_allclose(b1["dphi"], 1e-4 * np.diff(radii), atol=1e-12)
    np.testing.assert_allclose(b1["dphi_dr"], 0.1, rtol=1e-9)  # mrad/mm
    np.testing.assert_allclose(b1["dz"], 0.5 * np.diff(radii))
    np.testing.assert_allclose(b1["z0"], 5.0, atol=1e-9)
    b05 = d.doublets["barrel 0.5-1"]
    np.testing.assert_allclose(b05["dr"], [84.0, 56.0])
    np.testing.assert_allclose(b05["dphi_dr"], -0.3, rtol=1e-9)
    np.testing.assert_allclose(b05["z0"], -2.0, atol=1e-9)
    np.testing.assert_allclose(d.doublets["barrel-endcap"]["dr"], [48.0])
    np.testing.assert_allclose(d.doublets["endcap"]["dz"], [120.0])
    np.testing.assert_allclose(d.doublets["endcap"]["z0"], [1.0], atol=1e-9)
    # hits per labelled particle: 4 and 3 (pT > 1), 3 (0.5-1 GeV, its end-cap hit not labelled); particle 4 not
    assert sorted(d.hits_per_particle["pt_min=1.0"]) == [3, 4]
    assert list(d.hits_per_particle["pt_min=0.5"]) == [3]
    # |eta| of the outermost labelled hit, from the origin
    np.testing.assert_allclose(sorted(d.particle_eta["pt_min=1.0"]), sorted([np.arcsinh(91.0 / 172.0),
                                                                              np.arcsinh(601.0 / 100.0)]))
    np.testing.assert_allclose(d.particle_eta["pt_min=0.5"], [np.arcsinh(32.4 / 172.0)])
    s = d.scalars
    assert s["labelled particles"] == 3 and s["labelled hits"] == 10
    assert s["particles skipping a layer"] == pytest.approx(1 / 3)
    assert s["doublets skipping a layer"] == pytest.approx(1 / 7)
    assert s["barrel doublets skipping a layer"] == pytest.approx(1 / 5)
    assert s["endcap doublets skipping a layer"] == 0.0
    assert np.isnan(s["doublets kept by the module map"])
    assert R.event_figures(hand_made_event(False), with_globals=False).scalars["particles skipping a layer"] == 0


def test_endcap_dz_is_folded_and_real_partial_truth_is_used_as_is():
    ev = hand_made_event()
    mirrored = ev.hits.assign(z=-ev.hits["z"], volume_id=ev.hits["volume_id"].replace({9: 7}))
    d = R.event_figures(Event(7, mirrored, ev.particles, ev.truth), with_globals=False)
    np.testing.assert_allclose(d.doublets["endcap"]["dz"], [120.0])  # |z| grows outward: positive
    # a real event: its partial truth only (no full truth); one group of 2 hits
    partial = pd.DataFrame({"hit_id": np.array([1, 2], np.int32), "group": np.array([5, 5], np.int64),
                            "pt_min": np.array([1.0, 1.0], np.float32)})
    d = R.event_figures(Event(8, ev.hits, partial_truth=partial), with_globals=False)
    assert list(d.hits_per_particle["pt_min=1.0"]) == [2] and len(d.doublets["barrel pT>1"]["dr"]) == 1
    with pytest.raises(DataError, match="no partial truth"):
        R.event_figures(Event(9, ev.hits))


def test_module_map_keeps_the_doublets_it_was_learned_from():
    ev = hand_made_event()
    builder = R.fit_builder([ev], Config().graph)
    kept = R.event_figures(ev, builder, with_globals=False).scalars["doublets kept by the module map"]
    assert kept == 1.0
    # the same tracks turned by 90 degrees cross other modules: nothing is kept
    h = ev.hits.copy()
    h["x"], h["y"] = -ev.hits["y"], ev.hits["x"]
    h["module_id"] = h["module_id"] + 100
    kept = R.event_figures(Event(7, h, ev.particles, ev.truth), builder, with_globals=False)
    assert kept.scalars["doublets kept by the module map"] == 0.0


def test_close_pairs_and_volume_shares():
    hits = pd.DataFrame({"x": [100.0, 102.0, 100.5, 400.0, 100.0], "y": 0.0, "z": [0.0, 0.0, 0.0, 0.0, 1.0],
                         "volume_id": [8, 8, 8, 13, 17], "layer_id": [2, 2, 2, 2, 2], "module_id": [1, 2, 1, 3, 4]})
    # pairs within 3 mm in layer 8:2: (0,1) other module, (0,2) same module, (1,2) other module
    assert R.close_pairs(hits, (7, 8, 9), 3.0) == pytest.approx(2 / 3)
    assert R.close_pairs(hits, (12, 13, 14), 6.0) == 0.0
    g = R.global_figures(hits)
    assert g["share vol 8"] == pytest.approx(0.6) and g["share vol 17"] == pytest.approx(0.2)
    assert g["share vol 7"] == 0.0


def test_distances():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 2000)
    assert R.distances(a, a) == (0.0, 0.0)
    ks, w = R.distances(a, a + 10.0)
    assert ks == 1.0 and w == pytest.approx(10.0)
    assert np.isnan(R.distances(a, np.zeros(0))[0])


def test_real_spread_and_verdicts():
    rng = np.random.default_rng(1)
    real = [rng.normal(0, 1, 500) for _ in range(6)]
    same = [rng.normal(0, 1, 500) for _ in range(3)]
    shifted = [rng.normal(0.5, 1, 500) for _ in range(3)]
    c_same, c_shift = R.compare_distribution(same, real), R.compare_distribution(shifted, real)
    assert len(c_same["ks_real"]) == 6 and len(c_same["ks_sim"]) == 3
    assert np.median(c_same["ks_sim"]) < c_same["ks_real"].max()
    assert np.median(c_shift["ks_sim"]) > 2 * c_shift["ks_real"].max()
    assert np.median(c_shift["w_sim"]) == pytest.approx(0.5, abs=0.1)
    assert R.verdict(float(np.median(c_shift["ks_sim"])), c_shift["ks_real"]) == "above"
    assert R.verdict(0.5, np.array([0.4, 0.6])) == "inside" and R.verdict(0.3, np.array([0.4, 0.6])) == "below"
    with pytest.raises(DataError, match="at least 2 real events"):
        R.compare_distribution(same, real[:1])


def test_report_files(tmp_path):
    sim = [R.event_figures(hand_made_event())]
    real = [R.event_figures(hand_made_event()), R.event_figures(hand_made_event(False))]
    tables = R.compare(sim, real)
    rows = {r["figure"]: r for r in tables["scalars"]}
    assert rows["particles skipping a layer"]["real_min"] == 0.0
    assert rows["particles skipping a layer"]["verdict"] == "inside"  # sim 1/3 = real max
    assert rows["labelled hits"]["rel"] == 0.0
    report, plots = R.write_report(sim, real, tmp_path / "out", "# header")
    text = open(report).read()
    assert text.startswith("# header") and "| barrel pT>1:dphi |" in text and "| share vol 17 |" in text
    assert "| abs(eta) pt_min=1.0 |" in text
    assert [p.rsplit("/", 1)[1] for p in plots] == ["doublets.png", "particles.png"]
    assert all(open(p, "rb").read(4) == b"\x89PNG" for p in plots)
    with pytest.raises(DataError, match="no simulated events"):
        R.write_report([], real, tmp_path / "none", "# header")
