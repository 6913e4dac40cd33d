"""The inference pipeline on tiny toy events: submission format, timings, edges, models and checkpoints, CLIs."""

import json

import numpy as np
import pandas as pd
import pytest

from toy_events import make_event
from trkx_tf.config import Config, EvalConfig, load_config
from trkx_tf.errors import CheckpointError, ConfigError, DataError
from trkx_tf.graphs.candidates import ModuleMapBuilder
from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
from trkx_tf.graphs.truth import hit_particle_ids, truth_graph
from trkx_tf.reco.evaluate import evaluate
from trkx_tf.reco.outputs import TIMINGS_FILE, edges_path, read_edges, submission_path
from trkx_tf.reco.pipeline import Pipeline, infer, make_pipeline
from trkx_tf.reco.scorers import ModelScorer
from trkx_tf.trackml.io import write_event
from trkx_tf.trackml.score import read_submission
from trkx_tf.train.checkpoints import build_edge_model, restore_model

TRAIN_IDS = range(40)
TEST_IDS = (100, 101)


@pytest.fixture(scope="module")
def module_map(tmp_path_factory):
    samples = []
    for i in TRAIN_IDS:
        e = make_event(i)
        samples.append(EdgeSample.from_truth(e.hits, truth_graph(e.hits, e.particles, e.truth)))
    path = tmp_path_factory.mktemp("mm") / "module_map.npz"
    ModuleMap.fit(samples, pt_min=0.0).save(path)
    return path


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("events")
    for i in TEST_IDS:
        write_event(folder, make_event(i))
    return folder


class Oracle:
    """A test double behind the EdgeScorer interface: 0.9 for hits of one particle, 0.1 otherwise."""

    def __init__(self, events_dir, event_id):
        from trkx_tf.trackml.io import read_event

        ev = read_event(events_dir, event_id)
        self.pid = hit_particle_ids(ev.hits, ev.truth)
        self.calls = 0

    def __call__(self, nodes, senders, receivers):
        self.calls += 1
        same = (self.pid[senders] == self.pid[receivers]) & (self.pid[senders] != 0)
        return np.where(same, 0.9, 0.1).astype(np.float32)


def oracle_pipeline(module_map, events_dir, event_id, labelling="cc"):
    builder = ModuleMapBuilder(ModuleMap.load(module_map))
    return Pipeline(builder, gnn=Oracle(events_dir, event_id), filter=Oracle(events_dir, event_id),
                    filter_threshold=0.5, gnn_threshold=0.5, labelling=labelling)


@pytest.mark.parametrize("labelling", ["cc", "walk"])
def test_oracle_pipeline_reconstructs_tracks(module_map, events_dir, tmp_path, labelling):
    out = tmp_path / "out"
    pipe = oracle_pipeline(module_map, events_dir, 100, labelling)
    summary = infer(Config(), events_dir, out, events=[100], pipeline=pipe, progress=False)
    sub = read_submission(submission_path(out, 100))
    hits = pd.read_csv(events_dir / "event000000100-hits.csv")
    assert sorted(sub["hit_id"]) == sorted(hits["hit_id"]) and (sub["event_id"] == 100).all()
    timings = json.loads((out / TIMINGS_FILE).read_text())
    assert timings["stages"] == ["loading", "graph_construction", "filter", "gnn", "labelling"]
    rec = timings["events"][0]
    assert rec["event_id"] == 100 and rec["n_hits"] == len(hits)
    assert all(rec["seconds"][k] >= 0 for k in timings["stages"]) and summary.total["total"] > 0
    edges = read_edges(edges_path(out, 100))
    assert list(edges.keep) == ["graph", "filter", "gnn"]
    assert np.all(edges.keep["gnn"] <= edges.keep["filter"])
    assert np.isnan(edges.scores["gnn"][~edges.keep["filter"]]).all()
    m = evaluate(events_dir, out, tmp_path / "eval", EvalConfig(), progress=False)
    # the oracle keeps exactly the true candidate edges, so only builder losses can hurt
    assert m["edges"]["gnn"]["all"]["purity"] == 1.0
    assert m["edges"]["gnn"]["all"]["efficiency"] == m["edges"]["graph"]["all"]["efficiency"] > 0.9
    assert m["tracks"]["all"]["technical_efficiency"] > 0.85 and m["tracks"]["all"]["purity"] > 0.9
    assert m["score"]["all"] > 0.85
    assert "n_tracks_5" in rec and summary.format().count("\n") >= 2


def test_no_filter_sends_every_edge_to_the_gnn(module_map, events_dir, tmp_path):
    pipe = oracle_pipeline(module_map, events_dir, 101)
    pipe.filter = None
    infer(Config(), events_dir, tmp_path, events=[101], pipeline=pipe, progress=False)
    edges = read_edges(edges_path(tmp_path, 101))
    assert list(edges.keep) == ["graph", "gnn"] and not np.isnan(edges.scores["gnn"]).any()
    assert "filter" not in json.loads((tmp_path / TIMINGS_FILE).read_text())["stages"]


def test_model_scorer_chunks_agree_and_check_features():
    tf = pytest.importorskip("tensorflow")
    cfg = load_config(None, ["model.filter.hidden=8", "model.filter.layers=2"])
    model = build_edge_model("filter", cfg.model, 3)
    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(20, 3)).astype(np.float32)
    s, r = rng.integers(0, 20, 50), rng.integers(0, 20, 50)
    whole = ModelScorer(model, 3)(nodes, s, r)
    chunked = ModelScorer(model, 3, chunk_edges=7)(nodes, s, r)
    assert whole.shape == (50,) and np.all((whole > 0) & (whole < 1))
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    assert ModelScorer(model, 3)(nodes, s[:0], r[:0]).shape == (0,)
    with pytest.raises(DataError, match="F=3 node features"):
        ModelScorer(model, 3)(np.zeros((4, 7), np.float32), s[:1] % 4, r[:1] % 4)
    assert isinstance(whole, np.ndarray) and tf is not None


def _small_cfg(tmp_path, module_map, **infer):
    overrides = ["model.filter.hidden=8", "model.filter.layers=2", "model.gnn.hidden=8", "model.gnn.layers=2",
                 "model.gnn.steps=2", f"infer.module_map={module_map}"]
    overrides += [f"infer.{k}={v}" for k, v in infer.items()]
    return load_config(None, overrides)


def _save(model, folder):
    import tensorflow as tf

    return tf.train.Checkpoint(model=model, step=tf.Variable(3)).save(str(folder / "ckpt"))


def test_checkpoints_restore_and_mismatch(tmp_path, module_map):
    cfg = _small_cfg(tmp_path, module_map)
    gnn = build_edge_model("gnn", cfg.model, 3)
    prefix = _save(gnn, tmp_path / "gnn")
    other = build_edge_model("gnn", cfg.model, 3)
    assert restore_model(other, tmp_path / "gnn") == prefix  # a folder: its latest checkpoint
    for a, b in zip(gnn.trainable_variables, other.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    bigger = build_edge_model("gnn", load_config(None, ["model.gnn.hidden=16"]).model, 3)
    with pytest.raises(CheckpointError, match="does not fit the configured InteractionNetwork"):
        restore_model(bigger, prefix)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        restore_model(other, tmp_path / "nothing")
    with pytest.raises(ConfigError, match="needs a GNN checkpoint"):
        make_pipeline(cfg)
    with pytest.raises(ConfigError, match="module map"):
        make_pipeline(load_config(None, []), gnn_ckpt=prefix)


def test_cli_infer_then_eval_with_real_models(tmp_path, module_map, events_dir, capsys):
    """The whole chain through the console-script entry points, with (untrained) real models."""
    from trkx_tf.cli.eval import main as eval_main
    from trkx_tf.cli.infer import main as infer_main

    cfg = _small_cfg(tmp_path, module_map)
    f_prefix = _save(build_edge_model("filter", cfg.model, 3), tmp_path / "filter")
    _save(build_edge_model("gnn", cfg.model, 3), tmp_path / "gnn")
    sets = ["--set", "model.filter.hidden=8", "--set", "model.filter.layers=2", "--set", "model.gnn.hidden=8",
            "--set", "model.gnn.layers=2", "--set", "model.gnn.steps=2", "--set", "infer.filter_chunk_edges=50",
            "--set", "infer.filter_threshold=0.0", "--set", "infer.labelling=walk"]
    out = tmp_path / "out"
    code = infer_main(["--input", str(events_dir), "--out", str(out), "--filter-ckpt", f_prefix, "--gnn-ckpt",
                       str(tmp_path / "gnn"), "--module-map", str(module_map), "--no-progress", *sets])
    assert code == 0
    printed = capsys.readouterr().out
    assert "trkx-infer: 2 events" in printed and "timings:" in printed
    for eid in TEST_IDS:
        sub = read_submission(submission_path(out, eid))
        assert len(sub) == len(pd.read_csv(events_dir / f"event{eid:09d}-hits.csv"))
    code = eval_main(["--input", str(events_dir), "--submissions", str(out), "--out", str(tmp_path / "ev"),
                      "--no-progress"])
    assert code == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["events"] == list(TEST_IDS) and m["edges"]["filter"]["all"]["edges"] == m["edges"]["graph"]["all"]["edges"]
    assert 0.0 <= m["score"]["all"] <= 1.0
    # a user error is one line on stderr and exit status 2
    capsys.readouterr()
    code = infer_main(["--input", str(events_dir), "--out", str(out), "--gnn-ckpt", str(tmp_path / "none"),
                       "--module-map", str(module_map), "--no-progress", *sets])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith("trkx-infer: error:") and "not found" in err
    code = eval_main(["--input", str(events_dir), "--submissions", str(tmp_path / "nowhere"), "--out",
                      str(tmp_path / "ev2"), "--no-progress"])
    assert code == 2


def test_infer_errors(tmp_path, events_dir):
    with pytest.raises(DataError, match="event 7 not found"):
        infer(Config(), events_dir, tmp_path, events=[7], pipeline=object(), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no events"):
        infer(Config(), tmp_path / "empty", tmp_path / "o", progress=False)


def test_bfloat16_inference_restores_a_float32_checkpoint(tmp_path, module_map):
    cfg = _small_cfg(tmp_path, module_map)
    rng = np.random.default_rng(3)
    nodes = rng.normal(size=(30, 3)).astype(np.float32)
    s, r = rng.integers(0, 30, 80), rng.integers(0, 30, 80)
    for kind in ("filter", "gnn"):
        f32 = build_edge_model(kind, cfg.model, 3)
        prefix = _save(f32, tmp_path / kind)
        bf16 = build_edge_model(kind, cfg.model, 3, compute_dtype="bfloat16")
        restore_model(bf16, prefix)
        a, b = ModelScorer(f32, 3)(nodes, s, r), ModelScorer(bf16, 3)(nodes, s, r)
        assert b.dtype == np.float32 and np.abs(a - b).max() < 0.05, kind


def test_cli_build_with_filter_checkpoint_keeps_what_inference_keeps(tmp_path, module_map, events_dir, capsys):
    """trkx-build --filter-ckpt writes the edges trkx-infer's filter stage keeps (same scorer, same features)."""
    from trkx_tf.cli.build import main as build_main
    from trkx_tf.graphs.reader import ShardReader

    from trkx_tf.trackml.io import list_events, read_event

    sets = ["model.filter.hidden=8", "model.filter.layers=2", "model.filter.edge_features=true",
            "model.gnn.hidden=8", "model.gnn.steps=2", "model.gnn.edge_features=true",
            "graph.use_cells=false", "data.val_fraction=0.5", f"infer.module_map={module_map}"]
    cfg = load_config(None, sets)
    f_prefix = _save(build_edge_model("filter", cfg.model, 3), tmp_path / "filter")
    g_prefix = _save(build_edge_model("gnn", cfg.model, 3), tmp_path / "gnn")
    # the untrained filter's scores sit anywhere in (0, 1): its median score on one event keeps part of the edges
    scores = make_pipeline(cfg, filter_ckpt=f_prefix, gnn_ckpt=g_prefix).run(
        read_event(events_dir, list_events(events_dir)[0])).edges.scores["filter"]
    threshold = float(np.median(scores[np.isfinite(scores)]))
    sets.append(f"infer.filter_threshold={threshold!r}")
    cfg = load_config(None, sets)
    args = [x for s in sets for x in ("--set", s)]
    code = build_main(["--input", str(events_dir), "--out", str(tmp_path / "shards"), "--module-map",
                       str(module_map), "--filter-ckpt", str(tmp_path / "filter"), "--workers", "1",
                       "--no-progress", *args])
    assert code == 0 and f"edge filter (score >= {threshold})" in capsys.readouterr().out
    pipe = make_pipeline(cfg, filter_ckpt=f_prefix, gnn_ckpt=g_prefix)
    reader = ShardReader(tmp_path / "shards", None, shuffle=False)

    checked = 0
    for i in range(reader.n_graphs):
        g = reader.read_graph(i)
        res = pipe.run(read_event(events_dir, int(g["event_id"])))
        keep = res.edges.keep["filter"]
        e = int(g["n_edge"])
        hit = g["hit_id"]
        kept_pairs = set(zip(res.edges.senders[keep].tolist(), res.edges.receivers[keep].tolist()))
        shard_pairs = set(zip(hit[g["senders"][:e]].tolist(), hit[g["receivers"][:e]].tolist()))
        assert shard_pairs == kept_pairs and 0 < len(kept_pairs) < len(keep)
        checked += 1
    assert checked == 2
    # a checkpoint that does not fit: one line, exit 2, no output folder
    capsys.readouterr()
    code = build_main(["--input", str(events_dir), "--out", str(tmp_path / "bad"), "--module-map", str(module_map),
                       "--filter-ckpt", str(tmp_path / "gnn"), "--workers", "1", "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "does not fit" in err and not (tmp_path / "bad").exists()


def test_edge_feature_models_score_through_the_scorer():
    from trkx_tf.graphs.features import edge_features

    cfg = load_config(None, ["model.filter.hidden=8", "model.filter.edge_features=true", "model.gnn.hidden=8",
                             "model.gnn.steps=2", "model.gnn.edge_features=true"])
    rng = np.random.default_rng(1)
    nodes = np.abs(rng.normal(size=(20, 3))).astype(np.float32)
    s, r = rng.integers(0, 20, 50).astype(np.int32), rng.integers(0, 20, 50).astype(np.int32)
    for kind in ("filter", "gnn"):
        model = build_edge_model(kind, cfg.model, 3)
        scores = ModelScorer(model, 3, edge_fn=edge_features)(nodes, s, r)
        import tensorflow as tf

        batch = {k: tf.constant(v) for k, v in {
            "nodes": nodes, "senders": s, "receivers": r, "n_node": np.array([20], np.int32),
            "n_edge": np.array([50], np.int32), "edge_mask": np.ones(50, np.float32),
            "edges": edge_features(nodes, s, r)}.items()}
        np.testing.assert_allclose(scores, 1 / (1 + np.exp(-model(batch).numpy())), rtol=1e-4, atol=1e-6)
        other = dict(batch, edges=tf.zeros_like(batch["edges"]))  # the edge features change the scores
        assert not np.allclose(model(other).numpy(), model(batch).numpy())
