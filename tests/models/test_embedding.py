"""The metric-learning embedding and its radius graph."""

import numpy as np
import pytest
import tensorflow as tf

from trkx_tf.config import load_config
from trkx_tf.errors import CheckpointError, ConfigError
from trkx_tf.models.embedding import EmbeddingMLP, embedding_radius_graph, load_embedding_model


def brute_force_pairs(emb, radius, k):
    n = emb.shape[0]
    d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    pairs = set()
    for i in range(n):
        order = [j for j in np.argsort(d[i], kind="stable") if j != i][:k]
        pairs |= {(min(i, j), max(i, j)) for j in order if d[i, j] < radius}
    return pairs


def test_shapes_and_normalisation():
    model = EmbeddingMLP(dim=3, hidden=8, layers=2)
    out = model({"nodes": tf.random.normal([7, 4])})
    assert out.shape == (7, 3)
    np.testing.assert_allclose(np.linalg.norm(out.numpy(), axis=1), 1.0, rtol=1e-5)
    raw = EmbeddingMLP(dim=3, hidden=8, layers=2, normalize=False).embed(tf.random.normal([7, 4]))
    assert not np.allclose(np.linalg.norm(raw.numpy(), axis=1), 1.0)


@pytest.mark.parametrize("k", [2, 50])
def test_radius_graph_is_the_capped_neighbourhood(k):
    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(60, 3)).astype(np.float32)
    model = EmbeddingMLP(dim=2, hidden=8, layers=1, normalize=False)
    emb = model.embed(tf.constant(nodes)).numpy()
    radius = float(np.quantile(np.linalg.norm(emb[:, None] - emb[None], axis=-1), 0.1))
    s, r = embedding_radius_graph(model, nodes, radius, k)
    assert s.dtype == np.int32 and (s < r).all()
    assert set(zip(s.tolist(), r.tolist())) == brute_force_pairs(emb, radius, k)
    assert len(s) > 0


def test_radius_graph_rejects_bad_arguments():
    model = EmbeddingMLP(dim=2, hidden=4, layers=1)
    with pytest.raises(ConfigError):
        embedding_radius_graph(model, np.zeros((3, 2)), 0.0, 3)
    assert embedding_radius_graph(model, np.zeros((1, 2)), 1.0, 3)[0].size == 0


def test_load_embedding_model_round_trip(tmp_path):
    cfg = load_config(None, ["model.embedding.hidden=8", "model.embedding.layers=2", "model.embedding.dim=3"])
    from trkx_tf.models.registry import build_model

    model = build_model(cfg.model, "embedding")
    x = tf.random.normal([5, 6])
    want = model.embed(x).numpy()
    tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    loaded = load_embedding_model(tmp_path, cfg)
    np.testing.assert_allclose(loaded.embed(x).numpy(), want, atol=1e-6)
    other = load_config(None, ["model.embedding.hidden=16", "model.embedding.layers=2", "model.embedding.dim=3"])
    with pytest.raises(CheckpointError):
        load_embedding_model(tmp_path, other)
    with pytest.raises(CheckpointError):
        load_embedding_model(tmp_path / "nothing", cfg)
