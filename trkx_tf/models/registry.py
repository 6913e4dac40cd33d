"""The one place that turns the ``model`` section of the config into model objects.

Models themselves take explicit typed constructor arguments and never see the config.
"""

from __future__ import annotations

from typing import Literal

from trkx_tf.config import ModelConfig
from trkx_tf.errors import ConfigError

ModelKind = Literal["filter", "gnn", "embedding", "triplet"]


def build_model(cfg: ModelConfig, kind: ModelKind, *, compute_dtype: str = "float32", recompute: bool = False):
    """Builds the model of ``kind`` from its config section.

    Args:
      cfg: the ``model`` section (:class:`~trkx_tf.config.ModelConfig`).
      kind: ``"filter"``, ``"gnn"``, ``"embedding"`` or ``"triplet"`` (the seeding triplet classifier: an
        :class:`~trkx_tf.models.filter.EdgeFilter` with edge features, on the triplet graph).
      compute_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (from ``train.mixed_precision``).
      recompute: gradient checkpointing of the message-passing steps (``train.checkpoint_steps``; GNNs only).

    Returns:
      An :class:`~trkx_tf.models.filter.EdgeFilter`, :class:`~trkx_tf.models.interaction.InteractionNetwork`
      (``model.gnn.kind: interaction``), :class:`~trkx_tf.models.attention.AttentionGNN` (``kind: attention``)
      or :class:`~trkx_tf.models.embedding.EmbeddingMLP` (variables are created on the first call).

    Raises:
      ConfigError: unknown kind, ``recompute`` for a model without message passing, or an IN-only option
        (``skip: latent0``) with ``model.gnn.kind: attention``.
    """
    if kind == "filter":
        from trkx_tf.models.filter import EdgeFilter

        _no_recompute(kind, recompute)
        c = cfg.filter
        return EdgeFilter(hidden=c.hidden, layers=c.layers, layernorm=c.layernorm,
                          use_edge_features=c.edge_features, compute_dtype=compute_dtype)
    if kind == "gnn":
        c = cfg.gnn
        if c.kind == "attention":
            from trkx_tf.models.attention import AttentionGNN

            if c.skip != "residual":
                raise ConfigError(f"model.gnn.skip={c.skip!r} is an Interaction Network option; the attention GNN "
                                  f"(model.gnn.kind=attention) is residual")
            return AttentionGNN(hidden=c.attention_hidden, layers=c.attention_layers, steps=c.steps,
                                aggregation=c.aggregation, layernorm=c.layernorm, recompute=recompute,
                                compute_dtype=compute_dtype, edge_features=c.edge_features)
        from trkx_tf.models.interaction import InteractionNetwork

        return InteractionNetwork(hidden=c.hidden, layers=c.layers, steps=c.steps, skip=c.skip,
                                  aggregation=c.aggregation, layernorm=c.layernorm, recompute=recompute,
                                  compute_dtype=compute_dtype, edge_features=c.edge_features)
    if kind == "embedding":
        from trkx_tf.models.embedding import EmbeddingMLP

        _no_recompute(kind, recompute)
        c = cfg.embedding
        return EmbeddingMLP(dim=c.dim, hidden=c.hidden, layers=c.layers, layernorm=c.layernorm,
                            normalize=c.normalize, activation=c.activation, periodic_phi=c.periodic_phi,
                            compute_dtype=compute_dtype)
    if kind == "triplet":
        from trkx_tf.models.filter import EdgeFilter

        _no_recompute(kind, recompute)
        c = cfg.triplet
        return EdgeFilter(hidden=c.hidden, layers=c.layers, layernorm=c.layernorm, use_edge_features=True,
                          compute_dtype=compute_dtype, name="triplet_filter")
    raise ConfigError(f"model kind must be 'filter', 'gnn', 'embedding' or 'triplet' (got {kind!r})")


def _no_recompute(kind: str, recompute: bool) -> None:
    if recompute:
        raise ConfigError(f"train.checkpoint_steps (gradient checkpointing of message passing) needs the gnn "
                          f"model, not {kind!r}")
