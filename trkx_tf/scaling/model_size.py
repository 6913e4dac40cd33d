"""How many bytes a data-parallel step allreduces: the trainable parameters of a config's model.

Used by the projection (``scaling.projection.gradient_from``): the gradient of every trainable variable is summed
over the ranks each step, in float32 (variables stay float32 under mixed precision), so the allreduced buffer is
4 bytes per trainable parameter.
"""

from __future__ import annotations

import os

from trkx_tf.config import Config, load_config

GRADIENT_BYTES_PER_PARAMETER = 4  # float32 gradients


def trainable_parameters(cfg: Config) -> int:
    """The trainable parameter count of ``cfg.train.model`` as built from ``cfg.model``.

    Sonnet creates variables on the first call, so the model is called once on a tiny random graph with the node
    features the config's graphs have (``graph.use_cells``) and edge features when the model takes them.

    Args:
      cfg: a validated config.

    Returns:
      The number of trainable scalars (the count does not depend on graph sizes).
    """
    import numpy as np
    import tensorflow as tf

    from trkx_tf.graphs.features import EDGE_FEATURES, feature_names
    from trkx_tf.graphs.synthetic import random_graph
    from trkx_tf.models.registry import build_model

    batch = random_graph(6, 10, len(feature_names(cfg.graph.use_cells)), seed=0)
    batch["edges"] = np.zeros((len(batch["senders"]), len(EDGE_FEATURES)), np.float32)
    model = build_model(cfg.model, cfg.train.model)
    model({k: tf.constant(v) for k, v in batch.items()})
    return int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))


def gradient_bytes_of(config_path: os.PathLike | str) -> int:
    """4 bytes × :func:`trainable_parameters` of the config file ``config_path``.

    Raises:
      ConfigError: the file is missing or not a valid config.
    """
    return GRADIENT_BYTES_PER_PARAMETER * trainable_parameters(load_config(config_path))
