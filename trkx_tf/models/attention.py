"""The attention GNN (AGNN) edge classifier: the Exa.TrkX paper's lower-memory alternative to the IN.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``E``, ``F``); ``H`` is the latent width, ``T`` the
number of message-passing steps.

The function computed
---------------------
Only nodes carry latents; an edge is a score computed from its two hits (``v`` node latents, ``r``/``s`` the
receiver/sender of an edge, ``sigma`` the logistic function)::

    v = node_encoder(x)
    repeat T times (shared weights):
      a_e   = sigma(edge_net([v_r, v_s, (edge features)]))      # attention, one scalar per edge, 0 on padding
      m_i   = [sum over edges e received by i of a_e v_s(e),      # attention-weighted aggregation
               (sum over edges e sent by i of a_e v_r(e))]        # aggregation="both": the other direction too
      v     = v + node_net([m_i, v_i])                            # residual
    logit = edge_net([v_r, v_s, (edge features)])                 # the same edge network scores the edges

This is the "ResAGNN" of the Exa.TrkX paper (arXiv 2103.06995; HEP.TrkX's GNN segment classifier with
residuals): its edge network is ``[H] * layers`` hidden layers and a ``Linear(1)`` output, its node encoder and
node network are ``[H] * layers`` (the last a plain ``Linear``), with LayerNorm; the paper uses ``H = 64``,
``layers = 3``, ``T = 8`` and both aggregation directions. Every MLP is
:class:`~trkx_tf.models.layers.MLP`. With ``all_steps`` the edge logits after every step are returned: the
logits after step ``t < T`` are exactly the attention logits of step ``t + 1``, so they cost nothing extra.

Between steps only ``[E]`` attention weights and ``[N, H]`` node latents are carried (the IN carries ``[E, H]``
edge latents); the aggregation is a sparse ``[N, N] x [N, H]`` product (:func:`attention_aggregate`), which keeps
no ``[E, H]`` tensor for the backward pass. The per-edge work and memory is the edge network (on node
projections gathered onto the edges, :class:`~trkx_tf.models.layers.MultiLinear`), whose activations the backward
pass keeps for every step unless ``recompute``. Measured against the IN in ``benchmarks/agnn_vs_in.py``.

Padding
-------
Padded edges are sent to an extra node row ``N`` by integer segment ids
(:func:`~trkx_tf.models.graph.masked_segment_ids`): they read only that row and their messages are summed only
into it, so they reach no real node; their attention is set to 0. Padded nodes are read by no real edge. The
outputs on real edges are therefore exactly those of the same graphs without padding (tested).

Memory options as the IN: ``recompute=True`` wraps each step in ``tf.recompute_grad`` (gradient
checkpointing); ``compute_dtype="bfloat16"`` runs the MLPs in reduced precision with float32 variables, the
raw-feature first layers, the gathers and the aggregation sums in float32.
"""

from __future__ import annotations

from typing import Mapping, Optional

import sonnet as snt
import tensorflow as tf

from trkx_tf.config import GNNConfig, schema_default
from trkx_tf.errors import ConfigError
from trkx_tf.models.graph import check_batch, gather_rows, masked_segment_ids
from trkx_tf.models.layers import MLP, as_compute_dtype

_AGGREGATIONS = ("receivers", "both")


def attention_aggregate(v: tf.Tensor, attention: tf.Tensor, gather_ids: tf.Tensor, segment_ids: tf.Tensor,
                        num_nodes: tf.Tensor) -> tf.Tensor:
    """``m_i = sum over edges e with segment_ids[e] == i of attention[e] * v[gather_ids[e]]``.

    Computed as ``A @ v`` with ``A`` the sparse [N + 1, N + 1] attention matrix (``A[segment_ids[e],
    gather_ids[e]] = attention[e]``): neither the forward nor the backward pass keeps an [E, H] tensor between
    steps (the gradient of the attention values is formed on the fly), which is what makes the AGNN lighter than a
    gather-multiply-sum.

    Args:
      v: [N + 1, H] node latents (row N is the padding row).
      attention: [E] edge weights (0 for padded edges).
      gather_ids: [E] int32, the node whose latent an edge carries (the other end), in ``[0, N]``.
      segment_ids: [E] int32 from :func:`~trkx_tf.models.graph.masked_segment_ids`, in ``[0, N]``.
      num_nodes: scalar int32, N.

    Returns:
      [N + 1, H] float32; row N collects the padded edges and is never read by a real edge.
    """
    rows = tf.cast(num_nodes, tf.int64) + 1
    indices = tf.stack([tf.cast(segment_ids, tf.int64), tf.cast(gather_ids, tf.int64)], 1)
    matrix = tf.sparse.SparseTensor(indices, tf.cast(attention, tf.float32), tf.stack([rows, rows]))
    return tf.sparse.sparse_dense_matmul(matrix, tf.cast(v, tf.float32))


class AttentionGNN(snt.Module):
    """Attention GNN edge classifier on padded batches (see the module docstring for the maths).

    Same interface as :class:`~trkx_tf.models.interaction.InteractionNetwork`: ``model(batch) -> [E]`` logits,
    ``model(batch, all_steps=True) -> [T, E]``.

    Args:
      hidden: H, width of every latent and hidden layer.
      layers: Linear layers of the node encoder and the node network (>= 2: at least one hidden layer); the edge
        network has ``layers`` hidden layers and a ``Linear(1)`` output.
      steps: T, message-passing iterations (shared weights).
      aggregation: ``"receivers"`` (a node sums the attention-weighted latents of its senders) or ``"both"`` (also,
        separately, those of the receivers of the edges it sends: the paper's AGNN).
      layernorm: LayerNorm in the hidden layers of every MLP.
      recompute: gradient checkpointing of each message-passing step (``tf.recompute_grad``).
      compute_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (variables stay float32).
      edge_features: the edge network also takes ``batch["edges"]`` [E, D] (the batch must then carry it).
      sort_edges: process the edges in receiver order internally (same result; the gathers and the sparse
        products walk memory in order).
      name: module name.

    Raises:
      ConfigError: a size is out of range or ``aggregation`` is unknown.
    """

    def __init__(self, hidden: int = schema_default(GNNConfig, "attention_hidden"),
                 layers: int = schema_default(GNNConfig, "attention_layers"),
                 steps: int = schema_default(GNNConfig, "steps"), aggregation: str = "both",
                 layernorm: bool = schema_default(GNNConfig, "layernorm"), recompute: bool = False,
                 compute_dtype: str = "float32",
                 edge_features: bool = False, sort_edges: bool = True, name: Optional[str] = "attention_gnn"):
        super().__init__(name=name)
        if hidden < 1 or layers < 2 or steps < 1:
            raise ConfigError(f"AttentionGNN needs hidden >= 1, layers >= 2 and steps >= 1 "
                              f"(got hidden={hidden}, layers={layers}, steps={steps})")
        if aggregation not in _AGGREGATIONS:
            raise ConfigError(f"AttentionGNN aggregation must be 'receivers' or 'both' (got {aggregation!r})")
        self.hidden, self.layers, self.steps = int(hidden), int(layers), int(steps)
        self.aggregation = aggregation
        self.recompute = bool(recompute)
        self.edge_features = bool(edge_features)
        self.sort_edges = bool(sort_edges)
        self.compute_dtype = as_compute_dtype(compute_dtype)
        sizes = [self.hidden] * self.layers
        with self.name_scope:
            self.node_encoder = MLP(sizes, layernorm=layernorm, compute_dtype=self.compute_dtype,
                                    first_layer_dtype="float32", name="node_encoder")
            # the edge network's first layer reads float32 gathers (and raw edge features): kept float32
            self.edge_net = MLP(sizes + [1], layernorm=layernorm, compute_dtype=self.compute_dtype,
                                first_layer_dtype="float32", name="edge_net")
            self.node_net = MLP(sizes, layernorm=layernorm, compute_dtype=self.compute_dtype, name="node_net")

    @property
    def node_net_parts(self) -> list[str]:
        """Names of the node network's input parts, in weight-block order."""
        return ["agg_received"] + (["agg_sent"] if self.aggregation == "both" else []) + ["v"]

    def _build(self, n_features: int, n_edge_features: int) -> None:
        """Creates every variable (needed before ``tf.recompute_grad`` sees the step)."""
        h = self.hidden
        self.node_encoder.build([n_features])
        self.edge_net.build([h, h] + ([n_edge_features] if n_edge_features else []))
        self.node_net.build([h] * len(self.node_net_parts))

    def __call__(self, batch: Mapping[str, tf.Tensor], all_steps: bool = False) -> tf.Tensor:
        """Scores every edge of a padded batch.

        Args:
          batch: padded batch with ``nodes`` [N, F], ``senders``/``receivers`` [E] and ``edge_mask`` [E] (and
            ``edges`` [E, D] with ``edge_features``).
          all_steps: also score the edges after every message-passing step.

        Returns:
          [E] float32 logits after the last step, or [T, E] (one row per step, the last row being the final
          logits) when ``all_steps``. Logits of padded edges are finite and meaningless.

        Raises:
          DataError: a needed key is missing or has the wrong rank.
        """
        logits, _ = self._run(batch)
        return logits if all_steps else logits[-1]

    def attention(self, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """The attention weights of every step.

        Args:
          batch: as for ``__call__``.

        Returns:
          [T, E] float32 in [0, 1]; exactly 0 on padded edges.
        """
        return self._run(batch)[1]

    def _run(self, batch: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        check_batch(batch, ["nodes", "senders", "receivers", "edge_mask"] + (["edges"] if self.edge_features else []))
        x = tf.cast(batch["nodes"], tf.float32)
        n = tf.shape(x)[0]
        # one extra node row, N, for the padded edges (as in the IN): node tensors keep N + 1 rows throughout
        x = tf.concat([x, tf.zeros([1, x.shape[-1]], tf.float32)], 0)
        edge_mask = batch["edge_mask"]
        seg_r = masked_segment_ids(batch["receivers"], edge_mask, n)
        seg_s = masked_segment_ids(batch["senders"], edge_mask, n)
        edge_x = tf.cast(batch["edges"], tf.float32) if self.edge_features else None
        inverse = None
        if self.sort_edges:  # only [E] vectors are permuted; the outputs are put back at the end
            order = tf.argsort(seg_r, stable=True)
            inverse = tf.math.invert_permutation(order)
            seg_r, seg_s, edge_mask = tf.gather(seg_r, order), tf.gather(seg_s, order), tf.gather(edge_mask, order)
            edge_x = tf.gather(edge_x, order) if edge_x is not None else None
        real = tf.cast(edge_mask > 0, tf.float32)
        self._build(x.shape[-1], edge_x.shape[-1] if edge_x is not None else 0)
        net, node = self.edge_net, self.node_net
        both = self.aggregation == "both"

        def edge_logits(v):
            """[E] float32 logits of the edge network on node latents v [N + 1, H]."""
            first = net.first
            terms = [gather_rows(first.project(0, tf.cast(v, tf.float32)), seg_r),
                     gather_rows(first.project(1, tf.cast(v, tf.float32)), seg_s), first.bias()]
            if edge_x is not None:
                terms.append(first.project(2, edge_x))
            return tf.cast(net.last([net.hidden(terms)])[:, 0], tf.float32)

        def step(v, att_logits):
            """One step: attention from ``att_logits``, aggregation, residual node update; returns the next v
            and its edge logits (the next step's attention logits)."""
            att = tf.sigmoid(att_logits) * real
            aggs = [attention_aggregate(v, att, seg_s, seg_r, n)]
            if both:
                aggs.append(attention_aggregate(v, att, seg_r, seg_s, n))
            v_next = v + node([tf.cast(a, self.compute_dtype) for a in aggs] + [v])
            return v_next, edge_logits(v_next)

        run_step = tf.recompute_grad(step) if self.recompute else step
        v = self.node_encoder([x])
        out = edge_logits(v)
        logits, attention = [], []
        for _ in range(self.steps):
            attention.append(tf.sigmoid(out) * real)
            v, out = run_step(v, out)
            logits.append(out)
        logits, attention = tf.stack(logits, 0), tf.stack(attention, 0)
        if inverse is not None:
            logits, attention = tf.gather(logits, inverse, axis=1), tf.gather(attention, inverse, axis=1)
        return logits, attention
