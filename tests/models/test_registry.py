"""The model registry: the only reader of the model config."""

import pytest
import tensorflow as tf

from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError
from trkx_tf.models.embedding import EmbeddingMLP
from trkx_tf.models.filter import EdgeFilter
from trkx_tf.models.interaction import InteractionNetwork
from trkx_tf.models.registry import build_model


def test_builds_each_kind_from_its_section():
    cfg = load_config(None, ["model.gnn.hidden=12", "model.gnn.steps=3", "model.gnn.skip=latent0",
                             "model.gnn.aggregation=both", "model.filter.layers=2", "model.embedding.dim=5"])
    gnn = build_model(cfg.model, "gnn", compute_dtype="bfloat16", recompute=True)
    assert isinstance(gnn, InteractionNetwork)
    assert (gnn.hidden, gnn.steps, gnn.skip, gnn.aggregation, gnn.recompute) == (12, 3, "latent0", "both", True)
    assert gnn.compute_dtype == tf.bfloat16
    assert isinstance(build_model(cfg.model, "filter"), EdgeFilter)
    emb = build_model(cfg.model, "embedding")
    assert isinstance(emb, EmbeddingMLP) and emb.dim == 5


def test_errors():
    cfg = load_config(None)
    with pytest.raises(ConfigError, match="kind"):
        build_model(cfg.model, "transformer")
    with pytest.raises(ConfigError, match="checkpoint_steps"):
        build_model(cfg.model, "filter", recompute=True)
    with pytest.raises(ConfigError, match="layers"):
        load_config(None, ["model.gnn.layers=1"])
