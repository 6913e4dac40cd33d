"""The gradient size of a config's model: its trainable parameters, counted by building the model."""

from pathlib import Path

import pytest

from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError
from trkx_tf.scaling.model_size import gradient_bytes_of, trainable_parameters

REPO = Path(__file__).resolve().parents[2]


def test_the_filter_mlp_has_the_parameters_of_its_dense_layers():
    # 7 node features (r, phi, z + 4 cell features), sender and receiver concatenated: 14 -> 16 -> 16 -> 1
    cfg = load_config(None, ["train.model=filter", "model.filter.hidden=16", "model.filter.layers=2",
                             "model.filter.layernorm=false", "graph.use_cells=true"])
    assert trainable_parameters(cfg) == (14 * 16 + 16) + (16 * 16 + 16) + (16 + 1)
    no_cells = cfg.model_copy(update={"graph": cfg.graph.model_copy(update={"use_cells": False})})
    assert trainable_parameters(no_cells) == (6 * 16 + 16) + (16 * 16 + 16) + (16 + 1)


def test_the_interaction_network_grows_with_its_width_not_its_steps():
    def count(hidden, steps):
        return trainable_parameters(load_config(None, ["train.model=gnn", f"model.gnn.hidden={hidden}",
                                                       f"model.gnn.steps={steps}"]))

    assert count(32, 2) == count(32, 8)  # shared weights over the message-passing steps
    assert 3.5 < count(64, 2) / count(32, 2) < 4.0  # ~ H^2


def test_gradient_bytes_of_a_config_file_are_four_per_parameter():
    path = REPO / "configs" / "demo.yaml"
    assert gradient_bytes_of(path) == 4 * trainable_parameters(load_config(path))
    with pytest.raises(ConfigError):
        gradient_bytes_of(REPO / "configs" / "missing.yaml")
