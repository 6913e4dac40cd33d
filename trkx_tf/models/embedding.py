"""The metric-learning embedding: an MLP that maps hits to a space where hits of one track are close (the
"embedding" candidate-edge builder of the graph stage, :class:`trkx_tf.graphs.candidates.EmbeddingBuilder`, takes
a radius graph in that space).

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``F``); ``D`` is the embedding dimension, ``n_node``
the hits of one event.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import sonnet as snt
import tensorflow as tf

from trkx_tf.config import EmbeddingConfig, schema_default
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.models.layers import MLP, as_compute_dtype


class EmbeddingMLP(snt.Module):
    """``y = MLP(x)`` per hit, optionally L2-normalised; trained with a pair hinge loss.

    Hidden layer ``k`` is ``Linear -> [LayerNorm] -> activation``, the last one a plain ``Linear(D)`` (the
    Exa.TrkX paper: 6 hidden layers of 512, tanh, LayerNorm, D = 8). With ``periodic_phi`` the first layer also
    takes ``cos(pi x[:, 1]), sin(pi x[:, 1])`` as a second input part (column 1 is ``phi / pi``,
    :data:`trkx_tf.graphs.features.BASE_FEATURES`) in place of column 1 (zeroed), so the embedding is continuous
    across phi = +-pi; the first-layer weight of the features stays ``[F, hidden]`` (what
    :func:`trkx_tf.train.checkpoints.load_embedding_model` reads F from).

    Args:
      dim: D, the embedding dimension.
      hidden: width of the hidden layers.
      layers: number of hidden layers.
      layernorm: LayerNorm in the hidden layers.
      normalize: project the output onto the unit sphere (the radius then has a fixed scale).
      activation: ``"tanh"`` or ``"relu"``.
      periodic_phi: add the cos/sin of the phi column (needs F >= 2).
      compute_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
      name: module name.

    Raises:
      ConfigError: a size is < 1 or an unknown activation.
    """

    def __init__(self, dim: int = schema_default(EmbeddingConfig, "dim"),
                 hidden: int = schema_default(EmbeddingConfig, "hidden"),
                 layers: int = schema_default(EmbeddingConfig, "layers"),
                 layernorm: bool = schema_default(EmbeddingConfig, "layernorm"), normalize: bool = False,
                 activation: str = schema_default(EmbeddingConfig, "activation"),
                 periodic_phi: bool = schema_default(EmbeddingConfig, "periodic_phi"),
                 compute_dtype: str = "float32", name: Optional[str] = "embedding"):
        super().__init__(name=name)
        if dim < 1 or hidden < 1 or layers < 1:
            raise ConfigError(f"EmbeddingMLP needs dim, hidden, layers >= 1 (got {dim}, {hidden}, {layers})")
        if activation not in _ACTIVATIONS:
            raise ConfigError(f"EmbeddingMLP activation must be one of {sorted(_ACTIVATIONS)} (got {activation!r})")
        self.dim = int(dim)
        self.normalize = bool(normalize)
        self.periodic_phi = bool(periodic_phi)
        self.activation = _ACTIVATIONS[activation]
        self.compute_dtype = as_compute_dtype(compute_dtype)
        with self.name_scope:
            self.mlp = MLP([int(hidden)] * int(layers) + [self.dim], layernorm=layernorm,
                           compute_dtype=self.compute_dtype, first_layer_dtype="float32", name="mlp")

    def _parts(self, nodes: tf.Tensor) -> list:
        x = tf.cast(nodes, tf.float32)
        if not self.periodic_phi:
            return [x]
        if x.shape[-1] is not None and x.shape[-1] < 2:
            raise DataError(f"periodic_phi needs the phi column (feature 1); nodes have {x.shape[-1]} features")
        phi = np.pi * x[:, 1]
        keep = np.ones(x.shape[-1], np.float32)
        keep[1] = 0.0  # phi itself jumps at +-pi: only its cos and sin are seen
        return [x * keep, tf.stack([tf.cos(phi), tf.sin(phi)], -1)]

    def embed(self, nodes: tf.Tensor) -> tf.Tensor:
        """Embeds hits.

        Args:
          nodes: [N, F] node features.

        Returns:
          [N, D] float32 embeddings (unit norm when ``normalize``; padded rows are finite and meaningless).

        Raises:
          DataError: ``periodic_phi`` with fewer than 2 features.
        """
        parts = self._parts(nodes)
        mlp = self.mlp
        first = mlp.first
        first.build([p.shape[-1] for p in parts])
        h = tf.add_n([first.project(i, p) for i, p in enumerate(parts)]) + first.bias()
        for k in range(1, len(mlp.linears)):
            h = tf.cast(h, self.compute_dtype)
            if mlp.layernorm:
                mlp.norms[k - 1].build(h.shape[-1])
                h = mlp.norms[k - 1](h)
            h = self.activation(h)
            linear = mlp.linears[k]
            linear.build([h.shape[-1]])
            h = linear([h])
        y = tf.cast(h, tf.float32)
        if self.normalize:
            y = tf.math.l2_normalize(y, axis=-1, epsilon=1e-12)
        return y

    def __call__(self, batch) -> tf.Tensor:
        """Embeds the nodes of a padded batch (``batch["nodes"]`` [N, F]). Returns [N, D] float32."""
        if "nodes" not in batch:
            raise DataError(f"batch is missing 'nodes' (has {sorted(batch)})")
        return self.embed(batch["nodes"])


_ACTIVATIONS = {"tanh": tf.nn.tanh, "relu": tf.nn.relu}


def embed_hits(model: EmbeddingMLP, nodes_np: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """The embedding of one event's hits, as numpy, ``batch_size`` hits per model call.

    This is the ``embed`` function the embedding candidate-edge builder
    (:class:`trkx_tf.graphs.candidates.EmbeddingBuilder`) takes, with ``model`` bound.

    Args:
      model: a trained :class:`EmbeddingMLP`.
      nodes_np: [n_node, F] float features of the event's hits (no padding).
      batch_size: hits embedded per model call (>= 1).

    Returns:
      [n_node, D] float32 embeddings.

    Raises:
      ConfigError: ``batch_size < 1``.
      DataError: ``nodes_np`` is not a 2-D array.
    """
    if batch_size < 1:
        raise ConfigError(f"embed_hits: batch_size must be >= 1, got {batch_size}")
    nodes_np = np.asarray(nodes_np, np.float32)
    if nodes_np.ndim != 2:
        raise DataError(f"nodes_np must be [n_node, F], got shape {nodes_np.shape}")
    if len(nodes_np) == 0:
        return np.zeros((0, model.dim), np.float32)
    return np.concatenate([model.embed(tf.constant(nodes_np[i:i + batch_size])).numpy()
                           for i in range(0, len(nodes_np), batch_size)], 0)
