"""The edge-filter MLP: scores each candidate edge from the features of its two ends.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``E``, ``F``, ``A`` edge features).
"""

from __future__ import annotations

from typing import Mapping, Optional

import graph_nets as gn
import sonnet as snt
import tensorflow as tf

from trkx_tf.config import FilterConfig, schema_default
from trkx_tf.errors import ConfigError
from trkx_tf.models.graph import check_batch, to_graphs_tuple
from trkx_tf.models.layers import MLP, as_compute_dtype


class EdgeFilter(snt.Module):
    """``logit_e = MLP([edge_features_e, x_receiver(e), x_sender(e)])``, a ``graph_nets`` EdgeBlock.

    Each edge is scored alone, so padding cannot leak into real edges; the logits of padded edges are finite
    and meaningless (the loss and the metrics mask them).

    Args:
      hidden: width of the hidden layers.
      layers: number of hidden layers (each ``Linear -> [LayerNorm] -> ReLU``), followed by ``Linear(1)``.
      layernorm: LayerNorm in the hidden layers.
      use_edge_features: also feed ``batch["edges"]`` [E, A] (the batch must then carry it).
      compute_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (variables stay float32).
      name: module name.

    Raises:
      ConfigError: ``hidden`` or ``layers`` < 1.
    """

    def __init__(self, hidden: int = schema_default(FilterConfig, "hidden"),
                 layers: int = schema_default(FilterConfig, "layers"),
                 layernorm: bool = schema_default(FilterConfig, "layernorm"), use_edge_features: bool = False,
                 compute_dtype: str = "float32", name: Optional[str] = "edge_filter"):
        super().__init__(name=name)
        if hidden < 1 or layers < 1:
            raise ConfigError(f"EdgeFilter needs hidden >= 1 and layers >= 1 (got hidden={hidden}, layers={layers})")
        self.compute_dtype = as_compute_dtype(compute_dtype)
        self.use_edge_features = use_edge_features
        sizes = [int(hidden)] * int(layers) + [1]
        with self.name_scope:
            self._block = gn.blocks.EdgeBlock(
                edge_model_fn=lambda: MLP(sizes, layernorm=layernorm, compute_dtype=self.compute_dtype,
                                          first_layer_dtype="float32", name="mlp"),
                use_edges=use_edge_features, use_receiver_nodes=True, use_sender_nodes=True, use_globals=False)

    def __call__(self, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Scores every edge of a padded batch.

        Args:
          batch: padded batch with ``nodes`` [N, F], ``senders``/``receivers`` [E], ``n_node``/``n_edge`` [G],
            and ``edges`` [E, A] when ``use_edge_features``.

        Returns:
          [E] float32 logits.

        Raises:
          DataError: a needed key is missing or has the wrong rank.
        """
        keys = ["nodes", "senders", "receivers", "n_node", "n_edge"] + (["edges"] if self.use_edge_features else [])
        check_batch(batch, keys)
        nodes = tf.cast(batch["nodes"], tf.float32)  # raw features: the first layer stays float32
        edges = tf.cast(batch["edges"], tf.float32) if self.use_edge_features else None
        graph = self._block(to_graphs_tuple(batch, nodes=nodes, edges=edges))
        return tf.cast(graph.edges[:, 0], tf.float32)
