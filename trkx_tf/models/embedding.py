"""The metric-learning embedding: an MLP that maps hits to a space where hits of one track are close, and the
radius graph in that space (the "embedding" candidate-edge builder of the graph stage).

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``F``); ``D`` is the embedding dimension, ``n_node``
the hits of one event.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import sonnet as snt
import tensorflow as tf

from trkx_tf.errors import ConfigError, DataError
from trkx_tf.models.layers import MLP, as_compute_dtype


class EmbeddingMLP(snt.Module):
    """``y = MLP(x)`` per hit, optionally L2-normalised; trained with a pair hinge loss.

    Args:
      dim: D, the embedding dimension.
      hidden: width of the hidden layers.
      layers: number of hidden layers (``Linear -> [LayerNorm] -> ReLU``), followed by ``Linear(D)``.
      layernorm: LayerNorm in the hidden layers.
      normalize: project the output onto the unit sphere (the radius then has a fixed scale).
      compute_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
      name: module name.

    Raises:
      ConfigError: a size is < 1.
    """

    def __init__(self, dim: int = 8, hidden: int = 256, layers: int = 4, layernorm: bool = True,
                 normalize: bool = True, compute_dtype: str = "float32", name: Optional[str] = "embedding"):
        super().__init__(name=name)
        if dim < 1 or hidden < 1 or layers < 1:
            raise ConfigError(f"EmbeddingMLP needs dim, hidden, layers >= 1 (got {dim}, {hidden}, {layers})")
        self.dim = int(dim)
        self.normalize = bool(normalize)
        self.compute_dtype = as_compute_dtype(compute_dtype)
        with self.name_scope:
            self.mlp = MLP([int(hidden)] * int(layers) + [self.dim], layernorm=layernorm,
                           compute_dtype=self.compute_dtype, first_layer_dtype="float32", name="mlp")

    def embed(self, nodes: tf.Tensor) -> tf.Tensor:
        """Embeds hits.

        Args:
          nodes: [N, F] node features.

        Returns:
          [N, D] float32 embeddings (unit norm when ``normalize``; padded rows are finite and meaningless).
        """
        y = tf.cast(self.mlp([nodes]), tf.float32)
        if self.normalize:
            y = tf.math.l2_normalize(y, axis=-1, epsilon=1e-12)
        return y

    def __call__(self, batch) -> tf.Tensor:
        """Embeds the nodes of a padded batch (``batch["nodes"]`` [N, F]). Returns [N, D] float32."""
        if "nodes" not in batch:
            raise DataError(f"batch is missing 'nodes' (has {sorted(batch)})")
        return self.embed(batch["nodes"])


def embedding_radius_graph(model: EmbeddingMLP, nodes_np: np.ndarray, radius: float, max_neighbours: int,
                           batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Candidate edges of one event: pairs of hits closer than ``radius`` in embedding space.

    Each hit keeps at most its ``max_neighbours`` nearest neighbours within the radius (scipy ``cKDTree``);
    the union of these neighbour relations is returned once per unordered pair, as ``senders < receivers``
    (orienting the edges, for example from inner to outer layer, is the caller's business).

    Args:
      model: a trained :class:`EmbeddingMLP`.
      nodes_np: [n_node, F] float features of the event's hits (no padding).
      radius: the distance cut in embedding space (> 0).
      max_neighbours: at most this many neighbours per hit (>= 1).
      batch_size: hits embedded per model call.

    Returns:
      ``(senders, receivers)``: two [n_edge] int32 arrays of hit indices, ``senders < receivers``, sorted.

    Raises:
      ConfigError: ``radius <= 0`` or ``max_neighbours < 1``.
      DataError: ``nodes_np`` is not a 2-D array.
    """
    from scipy.spatial import cKDTree  # lazy: scipy is only needed here

    if radius <= 0 or max_neighbours < 1:
        raise ConfigError(f"radius must be > 0 and max_neighbours >= 1 (got {radius}, {max_neighbours})")
    nodes_np = np.asarray(nodes_np, np.float32)
    if nodes_np.ndim != 2:
        raise DataError(f"nodes_np must be [n_node, F], got shape {nodes_np.shape}")
    n = nodes_np.shape[0]
    if n < 2:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    emb = np.concatenate([model.embed(tf.constant(nodes_np[i:i + batch_size])).numpy()
                          for i in range(0, n, batch_size)], 0)
    k = min(max_neighbours + 1, n)  # +1: a hit is its own nearest neighbour
    dist, idx = cKDTree(emb).query(emb, k=k, distance_upper_bound=radius)
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    keep = np.isfinite(dist) & (idx != rows) & (idx < n)
    a, b = rows[keep], idx[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(lo.astype(np.int64) * n + hi)
    return (pairs // n).astype(np.int32), (pairs % n).astype(np.int32)


def load_embedding_model(path, cfg) -> EmbeddingMLP:
    """A trained embedding model: built from ``cfg.model.embedding``, weights restored from a checkpoint.

    The number of node features F is read from the checkpoint (the shape of the first layer's weight), so the
    caller does not need to know it.

    Args:
      path: a checkpoint prefix, or a folder (its latest checkpoint, e.g. a run's ``checkpoints/``), written by
        the training loop (the model tracked as ``model``).
      cfg: the config (:class:`~trkx_tf.config.Config`); only ``cfg.model.embedding`` is read, by the registry.

    Returns:
      The restored :class:`EmbeddingMLP`.

    Raises:
      CheckpointError: no checkpoint there, or it does not fit the configured model.
    """
    import os

    from trkx_tf.errors import CheckpointError
    from trkx_tf.models.registry import build_model

    path = str(path)
    prefix = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
    if not prefix or not tf.io.gfile.exists(prefix + ".index"):
        raise CheckpointError(f"{path}: no embedding checkpoint found (a folder with a checkpoint, or a prefix)")
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    first = [k for k in shapes if k.startswith("model/mlp/linears/0/weights/0/")]
    if not first:
        raise CheckpointError(f"{prefix}: holds no embedding model (no model/mlp/linears/0 weight)")
    n_features = int(shapes[first[0]][0])
    model = build_model(cfg.model, "embedding")
    model.embed(tf.zeros([1, n_features]))
    try:
        status = tf.train.Checkpoint(model=model).restore(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise CheckpointError(f"{prefix}: does not fit model.embedding of the config "
                              f"({(str(exc).splitlines() or [''])[0][:200]})") from None
    return model
