"""The plain graph_nets formulation of :class:`~trkx_tf.models.interaction.InteractionNetwork`.

``GraphNetsInteractionNetwork`` computes the same function the straightforward way: ``snt.Linear`` /
``snt.LayerNorm`` MLPs on concatenated inputs, ``graph_nets.modules.InteractionNetwork`` (EdgeBlock then
NodeBlock with ``unsorted_segment_sum``) applied ``T`` times with shared weights and residual updates. It is the
correctness oracle of the fused model (tests copy the weights across and compare outputs and gradients) and the
baseline of ``benchmarks/in_throughput.py``.

It knows no padding: graph_nets aggregates every edge, so it is only meaningful on batches without padded
edges. Only ``skip="residual"`` with ``aggregation="receivers"`` has a graph_nets counterpart.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch`.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import graph_nets as gn
import sonnet as snt
import tensorflow as tf

from trkx_tf.errors import ConfigError
from trkx_tf.models.graph import to_graphs_tuple
from trkx_tf.models.interaction import InteractionNetwork
from trkx_tf.models.layers import MLP


class PlainMLP(snt.Module):
    """``[Linear -> LayerNorm -> ReLU] * (L-1) -> Linear`` on one (concatenated) input, with Sonnet layers.

    Args:
      output_sizes: layer widths, the last one being the output width.
      layernorm: LayerNorm in the hidden layers.
      name: module name.
    """

    def __init__(self, output_sizes: Sequence[int], layernorm: bool = True, name: Optional[str] = None):
        super().__init__(name=name)
        with self.name_scope:
            self.linears = [snt.Linear(int(s), name=f"linear_{i}") for i, s in enumerate(output_sizes)]
            self.norms = ([snt.LayerNorm(-1, create_scale=True, create_offset=True, name=f"layer_norm_{i}")
                           for i in range(len(output_sizes) - 1)] if layernorm else [])

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Applies the MLP. Args: x: [B, F]. Returns: [B, output_sizes[-1]]."""
        for k, linear in enumerate(self.linears[:-1]):
            x = linear(x)
            if self.norms:
                x = self.norms[k](x)
            x = tf.nn.relu(x)
        return self.linears[-1](x)

    def copy_from(self, mlp: MLP) -> None:
        """Assigns the weights of a (built) :class:`~trkx_tf.models.layers.MLP` of the same shape.

        Multi-part first layers become one concatenated weight, in part order.
        """
        for mine, theirs in zip(self.linears, mlp.linears):
            mine.w.assign(tf.concat(list(theirs.weights), 0))
            mine.b.assign(theirs.b)
        for mine, theirs in zip(self.norms, mlp.norms):
            mine.scale.assign(theirs.scale)
            mine.offset.assign(theirs.offset)


class GraphNetsInteractionNetwork(snt.Module):
    """Encoders, ``steps`` x ``graph_nets.modules.InteractionNetwork`` (shared, residual), edge decoder.

    Args:
      hidden: H.
      layers: Linear layers per MLP (>= 2).
      steps: T.
      layernorm: LayerNorm in the hidden layers.
      name: module name.

    Raises:
      ConfigError: ``layers < 2`` or ``steps < 1``.
    """

    def __init__(self, hidden: int = 128, layers: int = 2, steps: int = 8, layernorm: bool = True,
                 name: Optional[str] = "graph_nets_interaction_network"):
        super().__init__(name=name)
        if layers < 2 or steps < 1:
            raise ConfigError(f"GraphNetsInteractionNetwork needs layers >= 2, steps >= 1 (got {layers}, {steps})")
        self.steps = int(steps)
        sizes = [int(hidden)] * int(layers)
        with self.name_scope:
            self.node_encoder = PlainMLP(sizes, layernorm, name="node_encoder")
            self.edge_encoder = PlainMLP(sizes, layernorm, name="edge_encoder")
            self.edge_core = PlainMLP(sizes, layernorm, name="edge_core")
            self.node_core = PlainMLP(sizes, layernorm, name="node_core")
            self.core = gn.modules.InteractionNetwork(edge_model_fn=lambda: self.edge_core,
                                                      node_model_fn=lambda: self.node_core)
            self.decoder = PlainMLP(sizes[:-1] + [1], layernorm, name="decoder")

    def __call__(self, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Scores every edge of an unpadded batch.

        Args:
          batch: batch with ``nodes`` [N, F], ``senders``/``receivers`` [E], ``n_node``/``n_edge`` [G].

        Returns:
          [E] float32 logits.
        """
        x = batch["nodes"]
        v = self.node_encoder(x)
        e = self.edge_encoder(tf.concat([tf.gather(x, batch["receivers"]), tf.gather(x, batch["senders"])], -1))
        graph = to_graphs_tuple(batch, nodes=v, edges=e)
        for _ in range(self.steps):
            update = self.core(graph)
            graph = graph.replace(nodes=graph.nodes + update.nodes, edges=graph.edges + update.edges)
        return self.decoder(graph.edges)[:, 0]

    def copy_from(self, model: InteractionNetwork, batch: Mapping[str, tf.Tensor]) -> None:
        """Makes this network compute exactly the function of ``model``.

        Args:
          model: a residual, receivers-only :class:`InteractionNetwork` of the same sizes.
          batch: any batch, used to build both networks' variables.

        Raises:
          ConfigError: ``model`` has another skip or aggregation.
        """
        if model.skip != "residual" or model.aggregation != "receivers":
            raise ConfigError("only skip='residual', aggregation='receivers' has a graph_nets counterpart "
                              f"(got {model.skip!r}, {model.aggregation!r})")
        model(batch)
        self(batch)
        for name in ("node_encoder", "edge_encoder", "edge_core", "node_core", "decoder"):
            getattr(self, name).copy_from(getattr(model, name))
