"""``trkx-infer --seeds`` on toy events with real (untrained) filter, GNN and triplet models, and its errors."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from test_pipeline import _save, _small_cfg, events_dir, module_map  # noqa: F401 (fixtures)
from trkx_tf.config import load_config
from trkx_tf.errors import CheckpointError, ConfigError
from trkx_tf.graphs.features import hit_features, hit_rows
from trkx_tf.graphs.triplets import doublets_to_triplets, orient_outwards, triplet_batch
from trkx_tf.models.registry import build_model
from trkx_tf.reco.outputs import edges_path, read_edges
from trkx_tf.reco.seeds import check_seed_config, load_seed_finder, read_seeds, seeds_path
from trkx_tf.trackml.io import read_event
from trkx_tf.train.checkpoints import build_edge_model

TRIPLET = ["model.triplet.hidden=8", "model.triplet.layers=2"]


def _triplet_checkpoint(tmp_path):
    model = build_model(load_config(None, TRIPLET).model, "triplet")
    nodes = hit_features(pd.DataFrame({"hit_id": [1, 2, 3], "x": [30.0, 70, 120], "y": [1.0, 2, 3],
                                       "z": [5.0, 10, 20]}))
    batch, _ = triplet_batch(nodes, [0, 1], [1, 2], np.array([0.9, 0.8], np.float32), 1000.0, 1000.0)
    model({k: tf.constant(v) for k, v in batch.items()})
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:  # not the initial values: a restore must be seen
        v.assign(v + rng.normal(0, 0.3, v.shape).astype(np.float32))
    return _save(model, tmp_path / "triplet"), model, batch


def test_seed_finder_restores_the_classifier(tmp_path):
    prefix, model, batch = _triplet_checkpoint(tmp_path)
    cfg = load_config(None, TRIPLET)
    finder = load_seed_finder(cfg, tmp_path / "triplet")
    expected = tf.sigmoid(model({k: tf.constant(v) for k, v in batch.items()})).numpy()
    np.testing.assert_allclose(finder.score(batch), expected, rtol=1e-6)
    with pytest.raises(CheckpointError):
        load_seed_finder(load_config(None, ["model.triplet.hidden=16"]), prefix)


def test_cli_infer_writes_seeds(tmp_path, module_map, events_dir, capsys):  # noqa: F811
    from trkx_tf.cli.infer import main as infer_main

    cfg = _small_cfg(tmp_path, module_map)
    _save(build_edge_model("gnn", cfg.model, 3), tmp_path / "gnn")
    seed_prefix, _, _ = _triplet_checkpoint(tmp_path)
    sets = ["--set", "model.gnn.hidden=8", "--set", "model.gnn.layers=2", "--set", "model.gnn.steps=2",
            "--set", "model.triplet.hidden=8", "--set", "model.triplet.layers=2",
            "--set", "infer.seed_doublet_threshold=0.0", "--set", "infer.seed_threshold=0.0"]
    out = tmp_path / "out"
    code = infer_main(["--input", str(events_dir), "--out", str(out), "--gnn-ckpt", str(tmp_path / "gnn"),
                       "--module-map", str(module_map), "--no-progress", "--seeds", "--seed-ckpt", seed_prefix, *sets])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("seeds: event") == 2
    for eid in (100, 101):
        hits = read_event(events_dir, eid, parts=("hits",)).hits
        hit_id = hits["hit_id"].to_numpy()
        edges = read_edges(edges_path(out, eid))
        s, r = hit_rows(hit_id, edges.senders, "s"), hit_rows(hit_id, edges.receivers, "r")
        inner, outer = orient_outwards(s, r, hit_features(hits), 1000.0, 1000.0)
        expected = doublets_to_triplets(inner, outer)
        seeds = read_seeds(seeds_path(out, eid))
        # thresholds 0: every triplet of every edge that reached the GNN is a seed, inner to outer
        assert seeds.n_seed == expected.n_triplet > 0
        assert sorted(map(tuple, seeds.hit_id.tolist())) == sorted(map(tuple, hit_id[expected.hits].tolist()))
        assert (np.diff(seeds.score) <= 0).all()  # best first


def test_seed_errors(tmp_path, module_map, events_dir, capsys):  # noqa: F811
    from trkx_tf.cli.infer import main as infer_main

    with pytest.raises(ConfigError, match="infer.seed_ckpt"):
        check_seed_config(load_config(None))
    with pytest.raises(ConfigError, match="save_edges"):
        check_seed_config(load_config(None, ["infer.save_edges=false", "infer.seed_ckpt=x"]))
    assert check_seed_config(load_config(None), "some/ckpt") == "some/ckpt"
    # a user error is one line and exit 2, before any track is made
    code = infer_main(["--input", str(events_dir), "--out", str(tmp_path / "out"), "--gnn-ckpt", "x",
                       "--module-map", str(module_map), "--no-progress", "--seeds"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "infer.seed_ckpt" in err
    assert not (tmp_path / "out").exists()
