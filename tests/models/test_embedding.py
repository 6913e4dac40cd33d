"""The metric-learning embedding, its batched numpy embedding and its checkpoint loading."""

import numpy as np
import pytest
import tensorflow as tf

from trkx_tf.config import load_config
from trkx_tf.errors import CheckpointError, ConfigError, DataError
from trkx_tf.models.embedding import EmbeddingMLP, embed_hits
from trkx_tf.train.checkpoints import load_embedding_model


def test_shapes_and_normalisation():
    model = EmbeddingMLP(dim=3, hidden=8, layers=2, normalize=True)
    out = model({"nodes": tf.random.normal([7, 4])})
    assert out.shape == (7, 3)
    np.testing.assert_allclose(np.linalg.norm(out.numpy(), axis=1), 1.0, rtol=1e-5)
    raw = EmbeddingMLP(dim=3, hidden=8, layers=2).embed(tf.random.normal([7, 4]))
    assert not np.allclose(np.linalg.norm(raw.numpy(), axis=1), 1.0)


def test_paper_network_tanh_layernorm():
    model = EmbeddingMLP()  # the defaults: 6 x 512, tanh, LayerNorm, 8-d
    model.embed(tf.zeros([1, 3]))
    widths = [lin.weights[0].shape[-1] for lin in model.mlp.linears]
    assert widths == [512] * 6 + [8] and len(model.mlp.norms) == 6
    # tanh after LayerNorm: every hidden activation is in (-1, 1), so a huge input cannot blow the output up
    small = EmbeddingMLP(dim=2, hidden=4, layers=2, periodic_phi=False)
    big = small.embed(tf.constant([[1e6, 0.0, -1e6]])).numpy()
    bound = sum(np.abs(w.numpy()).sum(0) for w in small.mlp.last.weights) + np.abs(small.mlp.last.b.numpy())
    assert np.all(np.abs(big) <= bound + 1e-5)
    with pytest.raises(ConfigError):
        EmbeddingMLP(activation="gelu")


def test_periodic_phi_joins_both_sides_of_the_cut():
    model = EmbeddingMLP(dim=4, hidden=16, layers=2)
    x = tf.constant([[0.3, -1.0, 0.5], [0.3, 1.0, 0.5], [0.3, 0.0, 0.5]])  # phi/pi = -1, 1, 0
    y = model.embed(x).numpy()
    np.testing.assert_allclose(y[0], y[1], atol=1e-5)
    assert not np.allclose(y[0], y[2])
    # the checkpoint's first feature weight stays [F, hidden]: F is what load_embedding_model reads
    assert model.mlp.first.weights[0].shape == (3, 16) and model.mlp.first.weights[1].shape == (2, 16)
    with pytest.raises(DataError):
        model.embed(tf.zeros([2, 1]))


def test_embed_hits_in_batches_is_the_embedding():
    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(60, 3)).astype(np.float32)
    model = EmbeddingMLP(dim=2, hidden=8, layers=1, normalize=False)
    want = model.embed(tf.constant(nodes)).numpy()
    got = embed_hits(model, nodes, batch_size=7)
    assert got.dtype == np.float32 and got.shape == (60, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_embed_hits_rejects_bad_arguments():
    model = EmbeddingMLP(dim=2, hidden=4, layers=1)
    with pytest.raises(ConfigError):
        embed_hits(model, np.zeros((3, 2)), batch_size=0)
    with pytest.raises(DataError):
        embed_hits(model, np.zeros(3))
    assert embed_hits(model, np.zeros((0, 2))).shape == (0, 2)


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
