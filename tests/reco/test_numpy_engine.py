"""The numpy inference engine scores edges as the TensorFlow models do, and a released model runs without TensorFlow."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trkx_tf.config import load_config
from trkx_tf.errors import CheckpointError, ConfigError
from trkx_tf.reco.numpy_engine import numpy_scorer, uses_numpy_engine
from trkx_tf.reco.pipeline import make_pipeline
from trkx_tf.reco.scorers import scorer_for_model
from trkx_tf.release import model_weights
from trkx_tf.train.checkpoints import build_edge_model

REPO = Path(__file__).resolve().parents[2]


def _graph(n_node=60, n_edge=400, seed=0):
    rng = np.random.default_rng(seed)
    nodes = rng.normal(size=(n_node, 3)).astype(np.float32)
    senders = rng.integers(0, n_node, n_edge).astype(np.int32)
    receivers = rng.integers(0, n_node, n_edge).astype(np.int32)
    return nodes, senders, receivers


def _both(kind, overrides):
    """The TensorFlow scorer of a seeded model and the numpy scorer of the same weights."""
    cfg = load_config(None, overrides)
    model = build_edge_model(kind, cfg.model, 3)
    return scorer_for_model(cfg, kind, model, 3), numpy_scorer(cfg, kind, model_weights(model), 3)


@pytest.mark.parametrize("overrides", [
    ["model.filter.hidden=16", "model.filter.layers=3"],
    ["model.filter.hidden=8", "model.filter.layers=2", "model.filter.layernorm=false"],
    ["model.filter.hidden=8", "model.filter.layers=1", "model.filter.edge_features=false"],
    ["model.filter.hidden=8", "model.filter.edge_features=true", "infer.filter_chunk_edges=70"],
])
def test_filter_scores_match_tensorflow(overrides):
    tf_scorer, np_scorer = _both("filter", overrides)
    nodes, s, r = _graph()
    expected = tf_scorer(nodes, s, r)
    got = np_scorer(nodes, s, r)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(expected) > 1e-3  # the comparison is of distinct scores, not of a constant


@pytest.mark.parametrize("overrides", [
    ["model.gnn.hidden=8", "model.gnn.layers=2", "model.gnn.steps=3"],
    ["model.gnn.hidden=8", "model.gnn.layers=3", "model.gnn.steps=2", "model.gnn.aggregation=both"],
    ["model.gnn.hidden=8", "model.gnn.steps=2", "model.gnn.layernorm=false", "model.gnn.edge_features=true"],
])
@pytest.mark.parametrize("chunk", [None, 37])
def test_interaction_network_scores_match_tensorflow(overrides, chunk, monkeypatch):
    if chunk:  # a step's hidden activations in pieces of 37 edges: 10 full pieces and a short one
        monkeypatch.setattr("trkx_tf.reco.numpy_engine._CHUNK", chunk)
    tf_scorer, np_scorer = _both("gnn", overrides)
    nodes, s, r = _graph(seed=1)
    expected = tf_scorer(nodes, s, r)
    np.testing.assert_allclose(np_scorer(nodes, s, r), expected, atol=1e-5)
    assert np.ptp(expected) > 1e-3
    assert np_scorer(nodes, s[:0], r[:0]).shape == (0,)


def test_interaction_network_reuses_its_memory_across_events():
    """Events of other sizes in turn: each scores as a fresh model scores it, in the first event's memory."""
    tf_scorer, np_scorer = _both("gnn", ["model.gnn.hidden=8", "model.gnn.steps=2", "model.gnn.aggregation=both",
                                         "model.gnn.edge_features=true"])
    events = [_graph(60, 400, seed=2), _graph(30, 90, seed=3), _graph(80, 700, seed=4), _graph(60, 400, seed=2)]
    scores = []
    for nodes, s, r in events:
        got = np_scorer(nodes, s, r)
        np.testing.assert_allclose(got, tf_scorer(nodes, s, r), atol=1e-5)
        scores.append(got)
    np.testing.assert_array_equal(scores[0], scores[-1])  # nothing of the larger events left in the result
    assert np_scorer.model._work["z"].size == 700 * 8  # grown once, to the largest event, and kept


def test_engine_choice():
    assert uses_numpy_engine(load_config(None, []))  # auto: the IN with residual skips
    assert not uses_numpy_engine(load_config(None, ["infer.engine=tensorflow"]))
    assert not uses_numpy_engine(load_config(None, ["model.gnn.skip=latent0"]))  # auto falls back
    with pytest.raises(ConfigError, match="skip=residual"):
        uses_numpy_engine(load_config(None, ["model.gnn.skip=latent0", "infer.engine=numpy"]))
    with pytest.raises(ConfigError, match="released models"):
        make_pipeline(load_config(None, ["infer.engine=numpy"]), gnn_ckpt="unused")


def test_numpy_engine_refuses_weights_that_do_not_fit():
    cfg = load_config(None, ["model.gnn.hidden=8"])
    weights = model_weights(build_edge_model("gnn", cfg.model, 3))
    with pytest.raises(CheckpointError, match=r"InteractionNetwork needs \(3, 16\)"):
        numpy_scorer(load_config(None, ["model.gnn.hidden=16"]), "gnn", weights, 3)
    with pytest.raises(CheckpointError, match="unexpected"):
        numpy_scorer(load_config(None, ["model.gnn.hidden=8", "model.gnn.layernorm=false"]), "gnn", weights, 3)
    del weights["decoder/linears/1/b"]
    with pytest.raises(CheckpointError, match="missing decoder/linears/1/b"):
        numpy_scorer(cfg, "gnn", weights, 3)


def test_released_model_runs_without_tensorflow(tmp_path):
    """trkx-infer --model on the numpy engine never imports TensorFlow (its start-up and memory)."""
    code = (
        "import sys, numpy as np\n"
        "from trkx_tf.release import release_config, release_pipeline, resolve_release\n"
        "rel = resolve_release('demo-mu20')\n"
        "p = release_pipeline(release_config(rel, []), rel)\n"
        "nodes = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)\n"
        "s = np.arange(19, dtype=np.int32); r = s + 1\n"
        "scores = p.gnn(nodes, s, r)\n"
        "assert p.engine == 'numpy' and scores.shape == (19,)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
