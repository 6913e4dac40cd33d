"""The simulator's systematic variations: noise injection, misaligned layers, field error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trkx_tf.errors import DataError
from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event
from trkx_tf.trackml.simulate.systematics import (field_model, inject_noise, misaligned, noise_layer_weights,
                                                  noise_to_add, shift_hits)


def _noise_fraction(event) -> float:
    return float((event.truth["particle_id"].to_numpy() == 0).mean())


@pytest.mark.parametrize("fraction", [0.0, 0.04, 0.2])
def test_simulated_noise_hits_the_fraction(geometry, fraction):
    event = simulate_event(geometry, 1, event_rng(5, 1), pileup=3, noise_fraction=fraction, cells=False)
    n = len(event.hits)
    assert abs(_noise_fraction(event) - fraction) <= 0.5 / n + 1e-12


@pytest.mark.parametrize("fraction", [0.2, 0.3])
def test_injected_noise_hits_the_fraction_and_the_layer_spread(geometry, fraction):
    event = simulate_event(geometry, 2, event_rng(5, 2), pileup=5, noise_fraction=0.1, cells=True)
    # the spread to follow: all on two layers, 3:1
    weights = pd.DataFrame({"volume_id": [8, 13], "layer_id": [2, 4], "fraction": [0.75, 0.25]})
    out = inject_noise(event, fraction, geometry, np.random.default_rng(0), layer_weights=weights)
    assert abs(_noise_fraction(out) - fraction) <= 0.5 / len(out.hits) + 1e-12
    added = out.hits.iloc[len(event.hits):]
    assert len(added) == noise_to_add(len(event.hits), int((event.truth.particle_id == 0).sum()), fraction) > 100
    assert set(zip(added.volume_id, added.layer_id)) == {(8, 2), (13, 4)}
    share = ((added.volume_id == 8) & (added.layer_id == 2)).mean()
    assert abs(share - 0.75) < 4 * np.sqrt(0.75 * 0.25 / len(added))
    # the new hits lie on their (nominal) modules, one pixel each, and the old hits are untouched
    rows = geometry.rows(added.volume_id, added.layer_id, added.module_id)
    local = geometry.to_local(rows, added[["x", "y", "z"]].to_numpy(np.float64))
    assert np.abs(local[:, 2]).max() < 1e-3 and geometry.contains(rows, local, tol=1e-3).all()
    assert out.hits.hit_id.is_unique and out.truth.hit_id.tolist() == out.hits.hit_id.tolist()
    pd.testing.assert_frame_equal(out.hits.iloc[:len(event.hits)], event.hits)
    assert out.cells.hit_id.isin(added.hit_id).sum() == len(added)
    # the default spread is the event's own noise
    own = noise_layer_weights(event)
    assert abs(own.fraction.sum() - 1) < 1e-9
    with pytest.raises(DataError, match="added, not removed"):
        inject_noise(event, 0.01, geometry, np.random.default_rng(0))


def test_misalignment_moves_only_the_chosen_layers_by_the_chosen_amount(geometry):
    shifts = [(8, 2, 1.0), (8, 6, -0.5)]
    built = misaligned(geometry, shifts)
    moved = np.abs(built.center - geometry.center).max(axis=1) > 0
    chosen = ((geometry.volume_id == 8) & np.isin(geometry.layer_id, [2, 6]))
    assert (moved == chosen).all()
    np.testing.assert_allclose(built.center[chosen, 0] - geometry.center[chosen, 0],
                               np.where(geometry.layer_id[chosen] == 2, 1.0, -0.5))
    np.testing.assert_array_equal(built.center[:, 1:], geometry.center[:, 1:])

    event = simulate_event(geometry, 3, event_rng(7, 3), pileup=20, noise_fraction=0.0, cells=False, built=built)
    hits, truth = event.hits, event.truth
    d = hits[["x", "y", "z"]].to_numpy(np.float64) - truth[["tx", "ty", "tz"]].to_numpy(np.float64)
    layer = list(zip(hits.volume_id, hits.layer_id))
    for (v, lay), dx in (((8, 2), 1.0), ((8, 6), -0.5)):
        on = np.array([k == (v, lay) for k in layer])
        assert on.sum() > 50
        # reported in the nominal geometry: the true crossing minus the shift, within the resolution
        assert abs(np.median(d[on, 0]) + dx) < 0.02
        assert abs(np.median(d[on, 1])) < 0.02 and abs(np.median(d[on, 2])) < 0.05
        # the true crossings lie on the displaced modules, the reported hits on the nominal ones
        rows = geometry.rows(hits.volume_id[on], hits.layer_id[on], hits.module_id[on])
        true_xyz = truth[["tx", "ty", "tz"]].to_numpy(np.float64)[on]
        assert np.abs(built.to_local(rows, true_xyz)[:, 2]).max() < 0.2
    other = np.array([k not in ((8, 2), (8, 6)) for k in layer])
    assert np.abs(np.median(d[other], axis=0)).max() < 0.01
    assert np.percentile(np.abs(d[other, 0]), 90) < 0.2
    # real events: the same layers' hits move by -dx, nothing else moves
    out = shift_hits(hits, shifts)
    dx = out.x.to_numpy(np.float64) - hits.x.to_numpy(np.float64)
    expect = np.select([[k == (8, 2) for k in layer], [k == (8, 6) for k in layer]], [-1.0, 0.5], 0.0)
    np.testing.assert_allclose(dx, expect, atol=1e-3)
    assert (out.y == hits.y).all() and (out.z == hits.z).all()
    with pytest.raises(DataError, match="not a layer"):
        misaligned(geometry, [(8, 3, 1.0)])


def _curvature(xy: np.ndarray) -> float:
    """1 / radius of the least-squares circle through points ``[n, 2]`` (algebraic fit)."""
    a = np.column_stack([xy[:, 0], xy[:, 1], np.ones(len(xy))])
    b = -(xy ** 2).sum(axis=1)
    d, e, f = np.linalg.lstsq(a, b, rcond=None)[0]
    return 1.0 / np.sqrt(d * d / 4 + e * e / 4 - f)


@pytest.mark.parametrize("error", [0.01, -0.1])
def test_field_error_changes_the_curvature_by_the_fraction(geometry, error):
    # no scattering tails and little material: the tracks are (nearly) pure helices
    model = PhysicsModel(material_x0=1e-6, coulomb_tail_start=0.0, elastic_per_x0=0.0, quasi_elastic_per_x0=0.0,
                         interaction_probability=0.0, secondary_probability=0.0)
    assert field_model(model, error).bz == pytest.approx(model.bz * (1 + error))
    kappa = {}
    for e in (0.0, error):
        event = simulate_event(geometry, 4, event_rng(9, 4), pileup=10, noise_fraction=0.0, cells=False,
                               model=field_model(model, e))
        t = event.truth[event.truth.particle_id != 0]
        parts = event.particles.set_index("particle_id")
        out = {}
        for pid, g in t.groupby("particle_id"):
            pt = float(np.hypot(parts.px[pid], parts.py[pid]))
            if len(g) >= 6 and 1.0 < pt < 20.0:
                out[pid] = _curvature(g[["tx", "ty"]].to_numpy(np.float64))
        kappa[e] = out
    common = sorted(set(kappa[0.0]) & set(kappa[error]))
    assert len(common) > 20
    ratio = np.array([kappa[error][p] / kappa[0.0][p] for p in common])
    assert abs(np.median(ratio) - (1 + error)) < 0.1 * abs(error)
    with pytest.raises(DataError, match="field_error"):
        field_model(model, 1.0)
