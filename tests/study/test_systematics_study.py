"""``trkx-study systematics`` end to end on a tiny config: real (untrained) models restored from checkpoints, tiny
simulated events on the real geometry, a stand-in "real" event; the table, the results and the plots."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from trkx_tf.graphs.features import feature_names
from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
from trkx_tf.graphs.truth import truth_graph
from trkx_tf.trackml.io import write_event
from trkx_tf.trackml.simulate import event_rng, simulate_event


def run_study(venv_bin: Path, *args, expect: int = 0) -> subprocess.CompletedProcess:
    """Runs ``trkx-study`` of this environment; fails with its output tail when the exit status is not ``expect``."""
    proc = subprocess.run([str(venv_bin / "trkx-study"), *map(str, args)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == expect, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, shared_trackml, geometry):
    """A study config with small untrained models, a module map of 2 simulated events, a stand-in real event."""
    import tensorflow as tf

    from trkx_tf.config import load_config
    from trkx_tf.train.checkpoints import build_edge_model

    root = tmp_path_factory.mktemp("study")
    samples = []
    for i in range(2):
        e = simulate_event(geometry, i, event_rng(1, i), pileup=3, noise_fraction=0.1, cells=False)
        samples.append(EdgeSample.from_truth(e.hits, truth_graph(e.hits, e.particles, e.truth)))
    ModuleMap.fit(samples, pt_min=0.0).save(root / "module_map.npz")
    # a simulated event standing in for the real one (the real event 1000 is too big for a unit test)
    write_event(root / "real", simulate_event(geometry, 1000, event_rng(2, 1000), pileup=3, noise_fraction=0.146,
                                              cells=False))
    model = {"filter": {"hidden": 8, "layers": 2}, "gnn": {"hidden": 8, "layers": 2, "steps": 2}}
    cfg = load_config(None, [f"model.{m}.{k}={v}" for m, d in model.items() for k, v in d.items()])
    for kind in ("filter", "gnn"):
        net = build_edge_model(kind, cfg.model, len(feature_names(False)))
        tf.train.Checkpoint(model=net, step=tf.Variable(1)).save(str(root / kind / "ckpt"))
    config = {
        "data": {"detector": str(shared_trackml / "detectors.csv.gz")},
        "simulate": {"pileup": 3, "noise_fraction": 0.1, "cells": False},
        "graph": {"use_cells": False},
        "model": model,
        "infer": {"filter_ckpt": str(root / "filter"), "gnn_ckpt": str(root / "gnn"),
                  "module_map": str(root / "module_map.npz"), "filter_threshold": 0.0, "gnn_threshold": 0.5},
        "systematics": {
            "out_dir": str(root / "report"), "work_dir": str(root / "work"), "events": 1, "first_event": 500,
            "noise_fractions": [0.0, 0.2], "pileups": [0, 5], "shifts": [1.0], "shift_layers": [[[8, 2]]],
            "field_errors": [0.01], "real_dir": str(root / "real"), "real_noise_fractions": [0.3],
            "real_shift": 1.0, "workers": 1,
            "models": [{"name": "standard"}, {"name": "noise-free", "set": ["simulate.noise_fraction=0"]}],
        },
    }
    (root / "study.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two whole study runs: 42 s on the idle 2-core machine, 10+ min at load 15
def test_study_runs_end_to_end_and_writes_its_tables_and_plots(tiny_study, venv_bin):
    proc = run_study(venv_bin, "systematics", "--config", tiny_study / "study.yaml", "--no-progress")
    report = tiny_study / "report"
    assert f"report: {report / 'study.md'}" in proc.stdout
    text = (report / "study.md").read_text()
    for heading in ("## Noise (the paper's Table 1)", "## Pile-up (the paper's Figure 6)", "## Misalignment",
                    "## Magnetic field", "## Real event 1000"):
        assert heading in text
    assert "| 20 % |" in text and "| 89.9 | 53.9 |" in text and "| 91.5 | 59.3 |" in text  # beside the paper's
    assert "standard (trained at 10 % noise)" in text and "noise-free (trained at 0 % noise)" in text
    assert "| 1 layer (8/2) | 1 mm |" in text and "| +1 % |" in text
    assert "trkx-study systematics --config" in text
    for png in ("relative_efficiency_vs_pt.png", "efficiency_purity_vs_spacepoints.png"):
        data = (report / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

    results = json.loads((report / "results.json").read_text())
    recs = results["records"]
    by = {(r["study"], r["label"], r["model"]): r for r in recs}
    assert len([r for r in recs if r["study"] == "noise"]) == 4  # 2 levels x 2 models
    assert {r["model"] for r in recs if r["study"] != "noise"} == {"standard"}
    # the noise points share their collisions: the same reconstructable particles, more hits with more noise
    n0, n20 = by[("noise", "0 %", "standard")], by[("noise", "20 %", "standard")]
    t0, t20 = n0["metrics"]["tracks"]["all"], n20["metrics"]["tracks"]["all"]
    assert t0["reconstructable"] == t20["reconstructable"] > 0
    h0, h20 = n0["metrics"]["per_event"][0]["n_hits"], n20["metrics"]["per_event"][0]["n_hits"]
    assert abs(h20 * 0.8 - h0) <= 1
    # more pile-up, more hits; the real variants: the recorded event, noise added up to 30 %, a shifted layer
    assert (by[("pileup", "μ = 5", "standard")]["metrics"]["per_event"][0]["n_hits"]
            > by[("pileup", "μ = 0", "standard")]["metrics"]["per_event"][0]["n_hits"])
    real = [r for r in recs if r["study"] == "real"]
    assert [r["group"] for r in real] == ["recorded", "noise", "shift"]
    assert abs(real[1]["real_facts"]["noise_fraction"] - 0.3) < 1e-3
    assert real[2]["real_facts"]["hits"] == real[0]["real_facts"]["hits"]
    # each point's numbers are its evaluation's; a rerun with nothing changed reads every point back
    sub = Path(results["systematics"]["work_dir"]) / "reco" / "standard"
    metrics = json.loads((sub / "noise-mu3-noise0.2" / "eval" / "metrics.json").read_text())
    assert metrics["tracks"]["all"] == t20
    stamp = (sub / "noise-mu3-noise0.2" / "study-reco.json").stat().st_mtime_ns
    run_study(venv_bin, "systematics", "--config", tiny_study / "study.yaml", "--no-progress")
    assert json.loads((report / "results.json").read_text())["records"] == recs
    assert (sub / "noise-mu3-noise0.2" / "study-reco.json").stat().st_mtime_ns == stamp


def test_study_errors_are_one_line(tiny_study, venv_bin):
    def fails(*sets):
        proc = run_study(venv_bin, "systematics", "--config", tiny_study / "study.yaml", "--no-progress",
                         *sum((["--set", s] for s in sets), []), expect=2)
        lines = [l for l in proc.stderr.splitlines() if l.startswith("trkx-study: error:")]
        assert len(lines) == 1
        return lines[0]

    assert "systematics.studies" in fails("systematics.studies=[noisy]")
    assert "added, not removed" in fails("systematics.studies=[real]", "systematics.real_noise_fractions=[0.01]")
    assert "noise-free" in fails("systematics.studies=[noise]",
                                 "systematics.models=[{name: noise-free}, {name: noise-free}]")


def test_shift_hits_misalignment_moves_the_nominal_events_hits_only(tmp_path, shared_trackml):
    """``systematics.misalignment: shift_hits``: a misalignment point is the nominal events with the chosen layers'
    hits moved by -dx in x (the same events: nothing else differs), made once and reused."""
    import numpy as np

    from trkx_tf.config import load_config
    from trkx_tf.study.systematics import shifted_point, simulate_point, study_points
    from trkx_tf.trackml.io import read_event

    cfg = load_config(None, [f"data.detector={shared_trackml / 'detectors.csv.gz'}", "simulate.pileup=3",
                             "simulate.cells=false", "systematics.events=1", "systematics.workers=1",
                             "systematics.studies=[misalignment]", "systematics.shifts=[0.5]",
                             "systematics.misalignment=shift_hits"])
    points = study_points(cfg, ["standard"])
    nominal, moved = points[0], points[2]  # nominal, 1 layer 0.5 mm, 4 layers 0.5 mm
    assert moved.sim == nominal.sim and moved.hit_shifts == ((8, 2, 0.5), (8, 4, 0.5), (8, 6, 0.5), (8, 8, 0.5))
    assert moved.key() != nominal.key() and points[1].key() != moved.key()

    ids = simulate_point(cfg, nominal.sim, tmp_path / "nominal", progress=False)
    shifted_point(tmp_path / "nominal", ids, moved.hit_shifts, tmp_path / "moved")
    a, b = read_event(tmp_path / "nominal", ids[0]), read_event(tmp_path / "moved", ids[0])
    layer = b.hits["volume_id"].isin([8]) & b.hits["layer_id"].isin([2, 4, 6, 8])
    assert layer.sum() > 0 and (~layer).sum() > 0
    dx = b.hits["x"].to_numpy(np.float64) - a.hits["x"].to_numpy(np.float64)
    np.testing.assert_allclose(dx[layer.to_numpy()], -0.5, atol=1e-4)
    assert not dx[~layer.to_numpy()].any()
    for column in ("y", "z", "hit_id", "volume_id", "layer_id", "module_id"):
        assert (a.hits[column].to_numpy() == b.hits[column].to_numpy()).all(), column
    assert a.truth.equals(b.truth) and a.particles.equals(b.particles)
    # made once: a second call with the same source and shifts leaves the folder alone
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "moved").iterdir()}
    shifted_point(tmp_path / "nominal", ids, moved.hit_shifts, tmp_path / "moved")
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "moved").iterdir()} == before
