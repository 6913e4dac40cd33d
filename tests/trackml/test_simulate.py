"""The event simulator and trkx-simulate (trkx_tf.trackml.simulate, trkx_tf.cli.simulate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trkx_tf.errors import DataError
from trkx_tf.trackml.io import list_events, read_event, validate_event
from trkx_tf.trackml.score import hit_weights, score_event
from trkx_tf.trackml.simulate import (
    PhysicsModel, event_rng, large_angle_kicks, moliere_b, simulate_event, simulate_events,
)


def assert_events_equal(a, b):
    for part in ("hits", "particles", "truth", "cells"):
        x, y = getattr(a, part), getattr(b, part)
        assert (x is None) == (y is None)
        if x is not None:
            pd.testing.assert_frame_equal(x, y, check_exact=True)


# ------------------------------------------------------------------------------------- toy detector (no shared data)
def test_toy_event_is_valid_and_deterministic(toy_geometry):
    a = simulate_event(toy_geometry, 3, event_rng(9, 3), pileup=5)
    b = simulate_event(toy_geometry, 3, event_rng(9, 3), pileup=5)
    c = simulate_event(toy_geometry, 3, event_rng(10, 3), pileup=5)
    validate_event(a)
    assert_events_equal(a, b)
    assert len(a.hits) != len(c.hits) or not np.array_equal(a.hits["x"], c.hits["x"])
    assert len(a.hits) > 50


def _on_modules(geometry, event, columns=("x", "y", "z"), tol=2e-3):
    hits = event.hits
    rows = geometry.rows(hits["volume_id"].to_numpy(), hits["layer_id"].to_numpy(), hits["module_id"].to_numpy())
    frame = hits if columns[0] == "x" else event.truth.set_index("hit_id").loc[hits["hit_id"]].reset_index()
    xyz = frame[list(columns)].to_numpy(np.float64)
    local = geometry.to_local(rows, xyz)
    return geometry.contains(rows, local, tol=tol), local, rows


def test_toy_hits_lie_on_their_modules(toy_geometry):
    ev = simulate_event(toy_geometry, 1, event_rng(1, 1), pileup=8)
    inside, local, rows = _on_modules(toy_geometry, ev)
    assert inside.all()
    assert (np.abs(local[:, 2]) <= 0.5 * toy_geometry.thickness[rows] + 2e-3).all()


# ------------------------------------------------------------------------------------------- real geometry
@pytest.mark.shared_data
def test_event_is_valid(sim_event):
    validate_event(sim_event)
    hits, parts, truth, cells = sim_event.hits, sim_event.particles, sim_event.truth, sim_event.cells
    assert hits["hit_id"].tolist() == list(range(1, len(hits) + 1))
    assert parts["particle_id"].is_unique and (parts["particle_id"] > 0).all()
    assert truth["hit_id"].tolist() == hits["hit_id"].tolist()
    assert set(np.unique(cells["hit_id"])) == set(hits["hit_id"])  # every hit has at least one cell
    # hits are grouped by module, as in the real files
    key = hits["volume_id"].astype(np.int64) * 10**9 + hits["layer_id"] * 10**5 + hits["module_id"]
    assert key.is_monotonic_increasing


@pytest.mark.shared_data
def test_deterministic_per_seed(geometry, sim_event):
    again = simulate_event(geometry, 7, event_rng(123, 7), pileup=10, noise_fraction=0.146)
    assert_events_equal(sim_event, again)
    other = simulate_event(geometry, 7, event_rng(124, 7), pileup=10, noise_fraction=0.146)
    assert not np.array_equal(other.particles["px"].to_numpy()[:50], sim_event.particles["px"].to_numpy()[:50])


@pytest.mark.shared_data
def test_hits_and_true_points_lie_on_their_modules(geometry, sim_event):
    for columns in (("x", "y", "z"), ("tx", "ty", "tz")):
        inside, local, rows = _on_modules(geometry, sim_event, columns)
        assert inside.all(), f"{(~inside).sum()} of {len(inside)} points outside their module ({columns})"
        assert (np.abs(local[:, 2]) <= 0.5 * geometry.thickness[rows] + 2e-3).all()


@pytest.mark.shared_data
def test_nhits_matches_truth(sim_event):
    counts = sim_event.truth["particle_id"].value_counts()
    nhits = sim_event.particles.set_index("particle_id")["nhits"]
    assert (counts.drop(0).reindex(nhits.index, fill_value=0) == nhits).all()
    assert (nhits == 0).any()  # particles below the hit threshold are kept, as in the real files


@pytest.mark.shared_data
@pytest.mark.parametrize("fraction", [0.0, 0.146, 0.3])
def test_noise_fraction(geometry, fraction):
    ev = simulate_event(geometry, 2, event_rng(5, 2), pileup=5, noise_fraction=fraction)
    noise = (ev.truth["particle_id"] == 0).to_numpy()
    assert abs(noise.mean() - fraction) < 1.0 / len(noise) + 1e-9
    assert (ev.truth["weight"][noise] == 0).all()


@pytest.mark.shared_data
def test_duplicate_hits_on_layers(sim_event):
    t = sim_event.truth.merge(sim_event.hits, on="hit_id")
    t = t[t["particle_id"] != 0]
    per_layer = t.groupby(["particle_id", "volume_id", "layer_id"]).size()
    assert 0.1 < (per_layer > 1).mean() < 0.5
    # the duplicates sit in different modules of the same layer (overlaps), not twice in one module
    per_module = t.groupby(["particle_id", "volume_id", "layer_id", "module_id"]).size()
    assert (per_module > 1).mean() < 0.01


@pytest.mark.shared_data
def test_weights_and_perfect_score(sim_event):
    w = hit_weights(sim_event.truth, sim_event.particles)
    assert sim_event.truth["weight"].to_numpy() == pytest.approx(w, abs=1e-7)
    assert sim_event.truth["weight"].sum() == pytest.approx(1.0, abs=1e-5)
    perfect = pd.DataFrame({"hit_id": sim_event.truth["hit_id"], "track_id": sim_event.truth["particle_id"]})
    assert score_event(sim_event.truth, perfect) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.shared_data
def test_measurement_resolution_and_cells(geometry, sim_event):
    hits, truth, cells = sim_event.hits, sim_event.truth, sim_event.cells
    signal = (truth["particle_id"] != 0).to_numpy()
    rows = geometry.rows(hits["volume_id"].to_numpy(), hits["layer_id"].to_numpy(), hits["module_id"].to_numpy())
    meas = geometry.to_local(rows, hits[["x", "y", "z"]].to_numpy(np.float64))
    true = geometry.to_local(rows, truth[["tx", "ty", "tz"]].to_numpy(np.float64))
    du = (meas[:, 0] - true[:, 0])[signal]
    r = rows[signal]
    # smearing comes from the pixel pitch: errors within a few pitches, RMS at most about pitch/sqrt(12)
    assert (np.abs(du) <= 2.0 * geometry.pitch_u[r] + 1e-3).mean() > 0.97
    assert np.sqrt(np.mean((du / geometry.pitch_u[r]) ** 2)) < 1 / np.sqrt(12) + 0.01
    assert np.std(du) > 0  # not the true position
    # cells: pixel indices inside the module; clusters grow with the crossing angle
    crow = rows[cells["hit_id"].to_numpy() - 1]
    assert (cells["ch0"] >= 0).all() and (cells["ch1"] >= 0).all()
    assert (cells["ch0"].to_numpy() < np.round(2 * geometry.hu_max[crow] / geometry.pitch_u[crow])).all()
    assert (cells["ch1"].to_numpy() < np.round(2 * geometry.hv[crow] / geometry.pitch_v[crow])).all()
    assert (cells["value"] > 0).all()
    size = cells.groupby("hit_id").size().reindex(hits["hit_id"]).to_numpy()
    p = truth[["tpx", "tpy", "tpz"]].to_numpy(np.float64)
    normal = geometry.rotation[rows][:, :, 2]
    cos_in = np.abs(np.einsum("ij,ij->i", normal, p)) / np.maximum(np.linalg.norm(p, axis=1), 1e-12)
    pixel = signal & np.isin(hits["volume_id"].to_numpy(), [8])
    steep, flat = pixel & (cos_in > 0.9), pixel & (cos_in < 0.4)
    assert size[flat].mean() > 2 * size[steep].mean()


@pytest.mark.shared_data
def test_pileup_scales_the_event(geometry):
    zero = simulate_event(geometry, 1, event_rng(3, 1), pileup=0)
    more = simulate_event(geometry, 1, event_rng(3, 1), pileup=30)
    vertex_bits = zero.particles["particle_id"].to_numpy() >> 52
    assert set(np.unique(vertex_bits)) == {1}  # only the hard scatter
    assert zero.particles.pipe(lambda p: np.hypot(p.px, p.py)).max() > 10.0  # its high-pT tracks
    assert len(more.hits) > 2 * len(zero.hits)


@pytest.mark.shared_data
def test_bad_parameters(geometry, tmp_path):
    with pytest.raises(DataError, match="noise_fraction must be in"):
        simulate_event(geometry, 0, event_rng(0, 0), noise_fraction=1.0)
    with pytest.raises(DataError, match="pileup must be >= 0"):
        simulate_event(geometry, 0, event_rng(0, 0), pileup=-1)
    with pytest.raises(DataError, match="number of events must be >= 1"):
        simulate_events(tmp_path, geometry, 0)
    with pytest.raises(DataError, match="seed must be >= 0"):
        simulate_events(tmp_path, geometry, 1, seed=-3)


@pytest.mark.shared_data
@pytest.mark.slow
def test_default_event_looks_real(geometry):
    """One μ=200 event against the real events' ranges (loose: the realism report has the exact figures)."""
    ev = simulate_event(geometry, 0, event_rng(2024, 0), cells=False)
    parts = ev.particles
    with_hits = parts[parts["nhits"] > 0]
    assert 85_000 < len(ev.hits) < 135_000
    assert 7_500 < len(with_hits) < 11_500
    assert 9.0 < with_hits["nhits"].mean() < 11.0
    pt = np.hypot(with_hits["px"], with_hits["py"])
    assert 0.36 < np.median(pt) < 0.44
    share = ev.hits["volume_id"].value_counts(normalize=True)
    assert 0.2 < share[8] < 0.28 and 0.18 < share[13] < 0.26


# -------------------------------------------------------------------------------------- non-Gaussian scattering
TAILS_OFF = PhysicsModel(coulomb_tail_start=0.0, elastic_per_x0=0.0, quasi_elastic_per_x0=0.0)


def test_moliere_b_solves_its_equation():
    x0 = np.array([0.005, 0.02, 0.1])
    b = moliere_b(x0, np.ones(3))
    omega = 7800 * 15 * 14 ** (1 / 3) * x0 * 21.82 / (28.0855 * (1 + 3.34 * (14 / 137.036) ** 2))
    np.testing.assert_allclose(b - np.log(b), np.log(omega), rtol=1e-6)
    assert 10.0 < b[1] < 11.5 and np.all(np.diff(b) > 0)  # a TrackML module; thicker layers: more scatters


def test_tails_off_draw_nothing():
    rng = event_rng(1, 1)
    state = rng.bit_generator.state
    kicks = large_angle_kicks(rng, np.full(5, 1e-3), np.full(5, 0.02), np.ones(5), np.ones(5), TAILS_OFF)
    assert np.all(kicks == 0) and rng.bit_generator.state == state


def test_kick_rates_and_angles_follow_the_physics():
    n = 400_000
    theta0, x0, beta, p = np.full(n, 1e-3), np.full(n, 0.02), np.ones(n), np.full(n, 2.0)
    # nuclear elastic only: rate 1 - exp(-per_x0 x0), <θ²> = <|t|> / p² = 1 / (b p²)
    model = PhysicsModel(coulomb_tail_start=0.0, elastic_per_x0=0.5, elastic_slope=100.0, quasi_elastic_per_x0=0.0)
    polar = np.hypot(*large_angle_kicks(np.random.default_rng(0), theta0, x0, beta, p, model).T)
    hit = polar > 0
    assert abs(hit.mean() - (1 - np.exp(-0.01))) < 0.0006
    assert abs(np.mean(polar[hit] ** 2) * 4.0 * 100.0 - 1.0) < 0.05
    # Coulomb tail only: P(θ > k θ0) = 2 / (B k²) (θ0 k far below the nuclear cut-off), Rutherford beyond
    model = PhysicsModel(coulomb_tail_start=3.0, elastic_per_x0=0.0, quasi_elastic_per_x0=0.0)
    polar = np.hypot(*large_angle_kicks(np.random.default_rng(1), theta0, x0, beta, p, model).T)
    b = moliere_b(x0[:1], beta[:1])[0]
    assert abs((polar > 3e-3).mean() / (2 / (b * 9)) - 1) < 0.05
    assert abs((polar > 6e-3).mean() / (polar > 3e-3).mean() - 0.25) < 0.03  # N(>θ) ∝ 1/θ²
    assert polar.max() <= 0.1973 / (2.0 * 1.2 * 28.0855 ** (1 / 3)) + 1e-12  # nuclear-size cut-off


def test_toy_tails_off_is_the_gaussian_simulator(toy_geometry):
    """With the tails on the hits move (rarely); with them off the event is the Gaussian-only one."""
    a = simulate_event(toy_geometry, 2, event_rng(5, 2), pileup=8, model=TAILS_OFF)
    b = simulate_event(toy_geometry, 2, event_rng(5, 2), pileup=8, model=TAILS_OFF)
    c = simulate_event(toy_geometry, 2, event_rng(5, 2), pileup=8)
    assert_events_equal(a, b)
    validate_event(c)
    assert len(a.hits) != len(c.hits) or not np.array_equal(a.hits["x"], c.hits["x"])


@pytest.mark.shared_data
@pytest.mark.slow
def test_tails_widen_the_doublet_z0_tail(geometry):
    """True pixel end-cap doublets of pT > 0.5 GeV: the tails put ~0.3 % of them beyond 100 mm in |z0|
    (the real event 1000 has 0.2 %), the Gaussian simulator none; the core (median) stays."""
    from trkx_tf.graphs.doublets import doublet_variables
    from trkx_tf.graphs.features import cylindrical
    from trkx_tf.graphs.truth import truth_graph

    def z0_of(model):
        out = []
        for e in range(2):
            ev = simulate_event(geometry, e, event_rng(3, e), pileup=100, cells=False, model=model)
            tg = truth_graph(ev.hits, ev.particles, ev.truth)
            sel = (tg.pt > 0.5) & np.isin(ev.hits["volume_id"].to_numpy()[tg.senders], (7, 9))
            r, phi, z = cylindrical(ev.hits)
            out.append(np.abs(doublet_variables(r, phi, z, tg.senders[sel], tg.receivers[sel])[1]))
        return np.concatenate(out)

    off, on = z0_of(TAILS_OFF), z0_of(PhysicsModel())
    assert np.mean(off > 100) < 2e-4 < 1e-3 < np.mean(on > 100)
    assert abs(np.median(on) / np.median(off) - 1) < 0.15


# ------------------------------------------------------------------------------------------- many events, CLI
@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.multiproc
def test_output_does_not_depend_on_workers(geometry, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    s1 = simulate_events(one, geometry, 3, pileup=4, seed=11, workers=1, first_event=5, progress=False)
    s2 = simulate_events(two, geometry, 3, pileup=4, seed=11, workers=2, first_event=5, progress=False)
    assert [s.event_id for s in s1] == [s.event_id for s in s2] == [5, 6, 7]
    assert list_events(one) == list_events(two) == [5, 6, 7]
    for name in sorted(p.name for p in one.iterdir()):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    # an event does not depend on which others are simulated with it
    three = tmp_path / "three"
    simulate_events(three, geometry, 1, pileup=4, seed=11, workers=1, first_event=6, progress=False)
    assert (three / "event000000006-hits.csv").read_bytes() == (one / "event000000006-hits.csv").read_bytes()


@pytest.mark.shared_data
def test_cli_writes_readable_events(shared_trackml, tmp_path, capsys):
    from trkx_tf.cli.simulate import main

    out = tmp_path / "events"
    code = main(["--events", "2", "--pileup", "3", "--seed", "4", "--out", str(out), "--workers", "1",
                 "--detector", str(shared_trackml / "detectors.csv.gz"), "--compress", "--no-cells", "--quiet",
                 "--set", "simulate.noise_fraction=0.25"])
    assert code == 0
    assert "wrote 2 events (ids 0..1)" in capsys.readouterr().out
    assert list_events(out) == [0, 1]
    assert all(p.name.endswith(".csv.gz") for p in out.iterdir())
    ev = read_event(out, 1)
    assert ev.cells is None and len(ev.hits) > 100
    assert abs((ev.truth["particle_id"] == 0).mean() - 0.25) < 0.01  # --set reached the simulator


NOWHERE = ["--detector", "/nonexistent/detectors.csv"]


@pytest.mark.parametrize("argv,message", [
    (["--events", "many"], "argument --events: invalid int value: 'many'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--events", "0", *NOWHERE], "simulate.events: Input should be greater than or equal to 1 (got 0)"),
    (["--events", "1", "--detector", "/nonexistent/detectors.csv"],
     "/nonexistent/detectors.csv: detector file not found"),
    (["--set", "simulate.pileup=-4"], "simulate.pileup"),
    (["--noise-fraction", "1.5", *NOWHERE], "simulate.noise_fraction: Input should be less than 1"),
    (["--pileup", "5000", *NOWHERE], "simulate.pileup: Input should be less than or equal to 1800"),
    (["--workers", "-1", *NOWHERE], "simulate.workers: Input should be greater than or equal to 0"),
    (["--events", "1"], "data.detector is not set"),  # no default detector: the configs name it
])
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    from trkx_tf.cli.simulate import main

    with pytest.raises(SystemExit) as exc:
        code = main(argv + ["--out", str(tmp_path / "o"), "--quiet"])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("trkx-simulate: error: ")
    assert message in err


# ---------------------------------------------------------------------------------------------------- hit efficiency
def _signal_points(event) -> pd.DataFrame:
    """(particle_id, true point, momentum) of the signal hits, sorted: what the hit efficiency thins out."""
    t = event.truth[event.truth["particle_id"] != 0]
    cols = ["particle_id", "tx", "ty", "tz", "tpx", "tpy", "tpz"]
    return t[cols].sort_values(cols, kind="stable").reset_index(drop=True)


def test_efficiency_one_draws_nothing_and_changes_nothing(toy_geometry, monkeypatch):
    """Efficiency 1 is the fully efficient simulator: no random numbers, not even a child stream."""
    from trkx_tf.trackml.simulate import response

    a = simulate_event(toy_geometry, 4, event_rng(8, 4), pileup=10, model=PhysicsModel(hit_efficiency=1.0))

    def boom(rng):
        raise AssertionError("efficiency 1 must not draw")

    monkeypatch.setattr(response, "efficiency_rng", boom)
    b = simulate_event(toy_geometry, 4, event_rng(8, 4), pileup=10, model=PhysicsModel(hit_efficiency=1.0))
    assert_events_equal(a, b)


def test_efficiency_stream_is_a_separate_child():
    from trkx_tf.trackml.simulate.response import efficiency_rng

    rng = event_rng(3, 5)
    state = rng.bit_generator.state
    x = efficiency_rng(rng).random(4)
    assert rng.bit_generator.state == state  # the event's own stream did not move
    np.testing.assert_array_equal(x, efficiency_rng(event_rng(3, 5)).random(4))  # deterministic per (seed, id)
    assert not np.array_equal(x, efficiency_rng(event_rng(3, 6)).random(4))
    assert not np.array_equal(x, event_rng(3, 5).random(4))  # not the event's own numbers


def _check_inefficient_event(full, thin, efficiency):
    validate_event(thin)
    # the particles (generated before the efficiency step) are the same, only their nhits drop
    cols = [c for c in full.particles.columns if c != "nhits"]
    pd.testing.assert_frame_equal(full.particles[cols], thin.particles[cols], check_exact=True)
    assert (thin.particles["nhits"] <= full.particles["nhits"]).all()
    # nhits counts the surviving hits
    counts = thin.truth["particle_id"].value_counts()
    nhits = thin.particles.set_index("particle_id")["nhits"]
    assert (counts.drop(0, errors="ignore").reindex(nhits.index, fill_value=0) == nhits).all()
    # the surviving signal hits are crossings of the fully efficient event, about `efficiency` of them
    a, b = _signal_points(full), _signal_points(thin)
    merged = b.merge(a.drop_duplicates(), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    n, kept = len(a), len(b)
    sd = np.sqrt(n * efficiency * (1 - efficiency))
    assert abs(kept - efficiency * n) < 4 * sd + 1, (kept, n)
    # noise is not thinned: it stays the requested fraction of all hits
    noise = (thin.truth["particle_id"] == 0).to_numpy()
    assert abs(noise.mean() - 0.146) < 1.0 / len(noise) + 1e-9
    assert thin.truth["weight"].sum() == pytest.approx(1.0, abs=1e-5)


def test_toy_inefficiency_removes_hits_of_particles(toy_geometry):
    full = simulate_event(toy_geometry, 2, event_rng(6, 2), pileup=40, model=PhysicsModel(hit_efficiency=1.0))
    thin = simulate_event(toy_geometry, 2, event_rng(6, 2), pileup=40, model=PhysicsModel(hit_efficiency=0.8))
    again = simulate_event(toy_geometry, 2, event_rng(6, 2), pileup=40, model=PhysicsModel(hit_efficiency=0.8))
    assert_events_equal(thin, again)  # deterministic given (seed, event_id)
    assert (full.truth["particle_id"] != 0).sum() > 300
    _check_inefficient_event(full, thin, 0.8)


@pytest.mark.shared_data
def test_inefficiency_on_the_real_geometry(geometry):
    sim_event = simulate_event(geometry, 7, event_rng(123, 7), pileup=10, noise_fraction=0.146,
                               model=PhysicsModel(hit_efficiency=1.0))
    thin = simulate_event(geometry, 7, event_rng(123, 7), pileup=10, noise_fraction=0.146,
                          model=PhysicsModel(hit_efficiency=0.9))
    _check_inefficient_event(sim_event, thin, 0.9)
    # about 10 % fewer hits per particle with hits; particles that lose all their hits keep nhits = 0
    full_nh = sim_event.particles["nhits"].to_numpy()
    thin_nh = thin.particles["nhits"].to_numpy()
    assert thin_nh.sum() / full_nh.sum() == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize("efficiency", [0.0, -0.1, 1.5])
def test_bad_hit_efficiency(toy_geometry, tmp_path, efficiency):
    model = PhysicsModel(hit_efficiency=efficiency)
    with pytest.raises(DataError, match="hit_efficiency must be in"):
        simulate_event(toy_geometry, 0, event_rng(0, 0), pileup=2, model=model)
    with pytest.raises(DataError, match="hit_efficiency must be in"):
        simulate_events(tmp_path, toy_geometry, 1, pileup=2, workers=1, progress=False, model=model)


# ------------------------------------------------------------------------- η-dependent prompt spectrum (realism)
def test_prompt_power_grows_forward_and_draws_one_number_each():
    from trkx_tf.trackml.simulate.physics import tsallis_sampler

    flat = tsallis_sampler(0.159, 6.5, 0.1)
    grown = tsallis_sampler(0.159, 6.5, 0.1, eta_slope=1.2, eta_start=2.0)
    eta = np.repeat([0.3, -1.9, 3.6, -3.6], 20_000)
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    pa, pb = flat(a, len(eta)), grown(b, len(eta), eta)
    assert a.random() == b.random()  # one uniform number per particle, whatever the η
    central = np.abs(eta) < 2.0
    np.testing.assert_array_equal(pa[central], pb[central])  # below eta_start: the same spectrum, bit for bit
    fwd = ~central
    assert np.all(pb[fwd] <= pa[fwd])  # a larger power: every quantile lower
    assert (pb[fwd] > 1.0).mean() < 0.8 * (pa[fwd] > 1.0).mean()
    np.testing.assert_array_equal(tsallis_sampler(0.159, 6.5, 0.1, eta_slope=0.0)(np.random.default_rng(1),
                                                                                  len(eta), eta), pa)


def test_shallow_crossings_along_v_leave_no_hit(toy_geometry):
    off = simulate_event(toy_geometry, 3, event_rng(4, 3), pileup=40, model=PhysicsModel(max_v_slope=0.0))
    huge = simulate_event(toy_geometry, 3, event_rng(4, 3), pileup=40, model=PhysicsModel(max_v_slope=1e9))
    assert_events_equal(off, huge)  # 0: no limit; a limit nothing reaches: the same event
    cut = simulate_event(toy_geometry, 3, event_rng(4, 3), pileup=40, model=PhysicsModel(max_v_slope=0.5))
    validate_event(cut)
    t = cut.truth.merge(cut.hits, on="hit_id")
    t = t[t["particle_id"] != 0]
    rows = toy_geometry.rows(t["volume_id"].to_numpy(), t["layer_id"].to_numpy(), t["module_id"].to_numpy())
    d = np.einsum("nij,ni->nj", toy_geometry.rotation[rows], t[["tpx", "tpy", "tpz"]].to_numpy(np.float64))
    assert np.all(np.abs(d[:, 1]) <= 0.5 * np.abs(d[:, 2]) * (1 + 1e-4))
    assert len(t) < (off.truth["particle_id"] != 0).sum()
