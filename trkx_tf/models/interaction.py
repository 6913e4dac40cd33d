"""The Interaction Network edge classifier (encode, N recurrent message-passing steps, decode).

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``E``, ``F``); ``H`` is the latent width, ``T`` the
number of message-passing steps.

The function computed
---------------------
It is exactly a ``graph_nets.modules.InteractionNetwork`` applied ``T`` times with shared weights, wrapped by
encoders and a decoder (``e`` edge latents, ``v`` node latents, ``r``/``s`` receiver/sender of an edge)::

    v0 = node_encoder(x)                 e0 = edge_encoder([x_r, x_s, (edge features)])
    repeat T times:
      m   = edge_core([e, (e0), v_r, v_s])                       # messages, one per edge
      a   = [sum of m over edges received, (sum over edges sent)]  # padded edges excluded
      e   = e + m            (skip="residual")   or  m           (skip="latent0": e0 fed back above)
      v   = v + node_core([a, v])                 or  node_core([a, v, v0])
    logit = decoder(e)

Every MLP is ``Linear -> [LayerNorm] -> ReLU`` repeated, ending with a plain ``Linear``
(:class:`~trkx_tf.models.layers.MLP`).

How it is computed (the hot path)
---------------------------------
A per-edge MLP over ``[e, v_r, v_s]`` costs ``E*3H*H`` multiply-adds for its first layer and as much again for
its gradient. Three exact rewrites remove most of that work:

1. **Node projections are gathered, not concatenations multiplied.** ``[e, v_r, v_s] @ W1 =
   e @ W_e + (v @ W_r)[r] + (v @ W_s)[s]``: the node terms cost ``N*H*H`` (``N`` is ~10x smaller than ``E``)
   and a gather.
2. **The edge latent is carried through its first-layer projection.** Because the core MLP ends with a linear
   layer, ``m = h @ W2 + b2`` (``h`` the last hidden activation), so the next step's ``e @ W_e`` equals
   ``z + h @ (W2 @ W_e) + b2 @ W_e`` with ``z`` the previous one. One ``[E,H]x[H,H]`` product per step
   replaces two (``h @ W2`` then ``e @ W_e``), and the per-edge messages ``m`` are never materialised: the
   final latent is ``e0 + (sum_t h_t) @ W2 + T*b2``.
3. **Aggregation happens before the output layer.** ``sum m = (sum h) @ W2 + degree * b2``: the segment sum
   runs on ``h``, and the node core's first layer takes ``(sum h) @ (W2 @ W_a)``, one product per node.

Per step and per edge this is one ``H x H`` product forward and two backward, instead of four and eight.
With one hidden layer and LayerNorm (``layers=2``, the default) the element-wise part of a step (gathers,
LayerNorm, ReLU, the running sum, the receivers' sum, and every gradient that reaches ``h``) is one fused kernel
each way (:func:`~trkx_tf.models.kernels.edge_step`: native C++ on CPUs, XLA elsewhere); other shapes use the
same maths through the generic MLP.

Edges are processed in receiver order (one integer sort per batch), so receiver-side gathers and segment sums
walk memory in order. Padding is handled with integer segment ids (:func:`~trkx_tf.models.graph.masked_segment_ids`)
that send padded edges to an extra node row ``N``, never by multiplying ``[E, H]`` tensors by masks.

Memory options: ``recompute=True`` wraps each message-passing step in ``tf.recompute_grad`` (gradient
checkpointing: only the step inputs are kept, the rest is recomputed in the backward pass). The fused step
already keeps only two ``[E, H]`` tensors per step, as many as a checkpoint must keep, so checkpointing pays
off for deeper MLPs (``layers >= 3``), see ``benchmarks/memory_options.py``. ``compute_dtype="bfloat16"`` (or
``"float16"``) runs the model in reduced precision with float32 variables and float32 LayerNorm statistics;
the per-edge tensors are then half the bytes, while the scatter-adds of gradients onto the nodes run in float32.

Where a training step's time goes, as profiled, and what was tried and measured no faster: docs/performance.md.
"""

from __future__ import annotations

import functools
from typing import Literal, Mapping, Optional

import sonnet as snt
import tensorflow as tf

from trkx_tf.config import GNNConfig, schema_default
from trkx_tf.errors import ConfigError
from trkx_tf.models.graph import check_batch, gather_rows, masked_segment_ids, segment_sum
from trkx_tf.models.kernels import SORTED, edge_step
from trkx_tf.models.layers import MLP, as_compute_dtype

Skip = Literal["residual", "latent0"]

Aggregation = Literal["receivers", "both"]


class InteractionNetwork(snt.Module):
    """Interaction Network edge classifier on padded batches (see the module docstring for the maths).

    Args:
      hidden: H, width of every latent and hidden layer.
      layers: number of Linear layers in each encoder / core MLP (>= 2: at least one hidden layer); the decoder
        has ``layers - 1`` hidden layers and a ``Linear(1)`` output.
      steps: T, message-passing iterations (shared weights).
      skip: ``"residual"`` (``e += m``, ``v += dv``) or ``"latent0"`` (the encoder latents are concatenated to
        the core inputs and the latents are replaced each step).
      aggregation: ``"receivers"`` (the graph_nets Interaction Network: a node sums the messages of the edges
        it receives) or ``"both"`` (it also sums, separately, the messages of the edges it sends, so
        information flows both ways along directed track graphs).
      layernorm: LayerNorm in the hidden layers of every MLP.
      recompute: gradient checkpointing of each message-passing step (``tf.recompute_grad``).
      compute_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (variables stay float32).
      sort_edges: process the edges in receiver order internally (same result, faster aggregation).
      name: module name.
      edge_features: the edge encoder also takes ``batch["edges"]`` [E, A] (the batch must then carry it).

    Raises:
      ConfigError: a size is out of range or ``skip`` / ``aggregation`` is unknown.
    """

    def __init__(self, hidden: int = schema_default(GNNConfig, "hidden"),
                 layers: int = schema_default(GNNConfig, "layers"),
                 steps: int = schema_default(GNNConfig, "steps"), skip: Skip = schema_default(GNNConfig, "skip"),
                 aggregation: Aggregation = schema_default(GNNConfig, "aggregation"),
                 layernorm: bool = schema_default(GNNConfig, "layernorm"), recompute: bool = False,
                 compute_dtype: str = "float32", sort_edges: bool = True,
                 name: Optional[str] = "interaction_network", edge_features: bool = False):
        super().__init__(name=name)
        if hidden < 1 or layers < 2 or steps < 1:
            raise ConfigError(f"InteractionNetwork needs hidden >= 1, layers >= 2 and steps >= 1 "
                              f"(got hidden={hidden}, layers={layers}, steps={steps})")
        if skip not in ("residual", "latent0"):
            raise ConfigError(f"InteractionNetwork skip must be 'residual' or 'latent0' (got {skip!r})")
        if aggregation not in ("receivers", "both"):
            raise ConfigError(f"InteractionNetwork aggregation must be 'receivers' or 'both' (got {aggregation!r})")
        self.hidden, self.layers, self.steps = int(hidden), int(layers), int(steps)
        self.skip, self.aggregation = skip, aggregation
        self.recompute = bool(recompute)
        self.sort_edges = bool(sort_edges)
        self.edge_features = bool(edge_features)
        self.compute_dtype = as_compute_dtype(compute_dtype)
        sizes = [self.hidden] * self.layers

        def mlp(name, out=sizes, first_layer_dtype=None):
            return MLP(out, layernorm=layernorm, compute_dtype=self.compute_dtype, first_layer_dtype=first_layer_dtype,
                       name=name)

        with self.name_scope:
            self.node_encoder = mlp("node_encoder", first_layer_dtype="float32")
            self.edge_encoder = mlp("edge_encoder", first_layer_dtype="float32")
            self.edge_core = mlp("edge_core")
            self.node_core = mlp("node_core")
            self.decoder = mlp("decoder", [self.hidden] * (self.layers - 1) + [1])

    # ------------------------------------------------------------------------------------------- layout
    @property
    def edge_core_parts(self) -> list[str]:
        """Names of the edge-core input parts, in weight-block order."""
        return ["e"] + (["e0"] if self.skip == "latent0" else []) + ["v_receiver", "v_sender"]

    @property
    def node_core_parts(self) -> list[str]:
        """Names of the node-core input parts, in weight-block order."""
        return (["agg_received"] + (["agg_sent"] if self.aggregation == "both" else []) + ["v"]
                + (["v0"] if self.skip == "latent0" else []))

    def _build(self, n_features: int, n_edge_features: int = 0) -> None:
        """Creates every variable (Sonnet builds lazily; the fused forward needs the weights up front)."""
        h = self.hidden
        self.node_encoder.build([n_features])
        self.edge_encoder.build([n_features, n_features] + ([n_edge_features] if n_edge_features else []))
        self.edge_core.build([h] * len(self.edge_core_parts))
        self.node_core.build([h] * len(self.node_core_parts))
        self.decoder.build([h])

    # ------------------------------------------------------------------------------------------- forward
    def __call__(self, batch: Mapping[str, tf.Tensor], all_steps: bool = False) -> tf.Tensor:
        """Scores every edge of a padded batch.

        Args:
          batch: padded batch with ``nodes`` [N, F], ``senders``/``receivers`` [E] and ``edge_mask`` [E].
          all_steps: also decode the edges after every message-passing step.

        Returns:
          [E] float32 logits after the last step, or [T, E] (one row per step, the last row being the final
          logits) when ``all_steps``. Logits of padded edges are finite and meaningless.

        Raises:
          DataError: a needed key is missing or has the wrong rank.
        """
        check_batch(batch, ["nodes", "senders", "receivers", "edge_mask"] + (["edges"] if self.edge_features else []))
        dt = self.compute_dtype
        x = tf.cast(batch["nodes"], tf.float32)  # raw features stay float32: the encoders' first layers are
        n = tf.shape(x)[0]                       # float32 under mixed precision too
        # one extra node row, N, collects the padded edges' sums: node tensors keep N + 1 rows throughout, so
        # no [N + 1, H] sum is ever sliced (nor its gradient padded); no real edge reads row N
        x = tf.concat([x, tf.zeros([1, x.shape[-1]], tf.float32)], 0)
        senders, receivers, edge_mask = batch["senders"], batch["receivers"], batch["edge_mask"]
        edge_x = tf.cast(batch["edges"], tf.float32) if self.edge_features else None
        seg_r = masked_segment_ids(receivers, edge_mask, n)
        inverse = None
        if self.sort_edges:
            # work on edges ordered by receiver (padding last): the receiver-side gathers and segment sums then
            # walk memory in order. Only [E] integer vectors are permuted; the logits are put back at the end.
            order = tf.argsort(seg_r, stable=True)
            inverse = tf.math.invert_permutation(order)
            senders, receivers = tf.gather(senders, order), tf.gather(receivers, order)
            edge_x = tf.gather(edge_x, order) if edge_x is not None else None
            seg_r, edge_mask = tf.gather(seg_r, order), tf.gather(edge_mask, order)
        seg_s = masked_segment_ids(senders, edge_mask, n) if self.aggregation == "both" else None
        seg_s_order = tf.argsort(seg_s, stable=True) if (self.sort_edges and seg_s is not None) else None
        ones = tf.ones_like(edge_mask, dt)
        deg_r = segment_sum(ones, seg_r, n, keep_padding_row=True)[:, None]
        deg_s = segment_sum(ones, seg_s, n, keep_padding_row=True)[:, None] if seg_s is not None else None

        self._build(x.shape[-1], edge_x.shape[-1] if edge_x is not None else 0)
        enc, core, dec = self.edge_encoder, self.edge_core, self.decoder
        latent0 = self.skip == "latent0"
        h_dim = self.hidden

        # Encoders. Raw features are narrow (F << H), so they are gathered per edge and projected there.
        v0 = self.node_encoder([x])
        h_enc = enc.hidden([enc.first.project(0, tf.gather(x, receivers)),
                            enc.first.project(1, tf.gather(x, senders)), enc.first.bias()]
                           + ([enc.first.project(2, edge_x)] if edge_x is not None else []))
        # Edge latents are never materialised: e0 = h_enc @ W_enc + b_enc, e_{t+1} = e_t + h_t @ W2 + b2, and each
        # consumer multiplies them by a fixed matrix, so it gets h @ (composed matrix) plus a per-column constant.
        w_enc, b_enc = enc.last.weight(0), enc.last.bias()
        w2, b2 = core.last.weight(0), core.last.bias()
        w_e = core.first.weight(0)
        # z (+ zc): the edge-latent terms of the edge core's first-layer pre-activation, [E, H] (+ [H])
        z = tf.matmul(h_enc, tf.matmul(w_enc, w_e))
        zc = tf.linalg.matvec(w_e, b_enc, transpose_a=True)
        if latent0:  # z0 + zc0: the e0 @ W_e0 + b1 term, the same in every step
            w_e0 = core.first.weight(1)
            z0 = tf.matmul(h_enc, tf.matmul(w_enc, w_e0))
            zc0 = tf.linalg.matvec(w_e0, b_enc, transpose_a=True) + core.first.bias()
        else:  # the bias b1 rides along in zc
            zc = zc + core.first.bias()
            z0, zc0 = tf.zeros([0, h_dim], dt), tf.zeros([h_dim], dt)
        i_r = 2 if latent0 else 1
        # receiver ids are sorted when the edges are: the native kernels then sum over them in the edge kernels
        segments = [(seg_r, SORTED if self.sort_edges else None)]
        if seg_s is not None:
            segments.append((seg_s, seg_s_order))
        degrees = [deg_r] + ([deg_s] if deg_s is not None else [])
        fused = self.layers == 2 and core.layernorm

        def step(z, zc, v, acc, v0, z0, zc0, first=False, last=False):
            """One message-passing step; returns the next (z, zc, v, acc). The last step skips z and v.

            Everything differentiable it uses is an argument or a variable read here (``tf.recompute_grad``
            differentiates only those, not tensors captured from outside).
            """
            w2, b2 = core.last.weight(0), core.last.bias()
            w_e = core.first.weight(0)
            m_step = tf.matmul(w2, w_e)                        # [H, H]: h_t -> its share of the next e @ W_e
            c_step = tf.linalg.matvec(w_e, b2, transpose_a=True)  # [H]: b2 @ W_e
            edge_terms = [z] + ([z0] if latent0 else [])
            bias = zc + zc0 if latent0 else zc
            # the node terms of the first layer, projected per node and gathered onto the edges; receiver rows by
            # seg_r (padded edges read the padding row N, which no real element reads), the ids summed over
            tables = [(core.first.project(i_r, v), seg_r), (core.first.project(i_r + 1, v), senders)]
            acc_in = None if (latent0 or first) else acc
            if fused:  # one hidden layer with LayerNorm: the whole edge update is one fused op
                norm = core.norms[0]
                z_next, acc_next, sums = edge_step(edge_terms + [bias], norm.scale, norm.offset, acc_in,
                                                   None if last else m_step, segments, n + 1, residual=not latent0,
                                                   tables=tables)
                if last:
                    return z, zc, v, acc_next
                h_sums = sums
            else:
                parts = edge_terms + [gather_rows(t, rows) for t, rows in tables] + [bias]
                h = core.hidden(parts)                    # [E, H] last hidden activation of the edge core
                acc_next = h if acc_in is None else acc_in + h
                if last:
                    return z, zc, v, acc_next
                zh = tf.matmul(h, m_step)
                z_next = zh if latent0 else z + zh
                h_sums = [segment_sum(h, seg, n, None if order is SORTED else order, keep_padding_row=True)
                          for seg, order in segments]
            # node core, first layer: each aggregate a = (sum h) @ W2 + degree * b2 enters as a @ W_a, so it is
            # computed as (sum h) @ (W2 @ W_a) + degree * (b2 @ W_a), one [N,H]x[H,H] product per aggregate
            node = self.node_core
            terms = [node.first.bias()]
            for i, (h_sum, deg) in enumerate(zip(h_sums, degrees)):
                w_a = node.first.weight(i)
                terms += [tf.matmul(h_sum, tf.matmul(w2, w_a)), deg * tf.linalg.matvec(w_a, b2, transpose_a=True)]
            terms.append(node.first.project(len(h_sums), v))
            if latent0:
                terms.append(node.first.project(len(h_sums) + 1, v0))
            dv = node.last([node.hidden(terms)])
            if latent0:
                return z_next, c_step, dv, acc_next
            return z_next, zc + c_step, v + dv, acc_next

        variants = {}
        for first in (False, True):
            for last in (False, True):
                fn = functools.partial(step, first=first, last=last)
                variants[first, last] = tf.recompute_grad(fn) if self.recompute else fn

        # decoder input: e_t @ W_d + b_d, from h_enc and acc (residual) or from the last h (latent0)
        w_d = dec.first.weight(0)
        enc_term = None if latent0 else tf.matmul(h_enc, tf.matmul(w_enc, w_d))
        m_dec = tf.matmul(w2, w_d)
        v, acc = v0, tf.zeros([0, h_dim], dt)  # acc is a placeholder until the first step sets it
        logits = []
        for t in range(self.steps):
            is_last = t == self.steps - 1
            z, zc, v, acc = variants[t == 0, is_last](z, zc, v, acc, v0, z0, zc0)
            if all_steps or is_last:
                if latent0:
                    const = tf.linalg.matvec(w_d, b2, transpose_a=True) + dec.first.bias()
                    parts = [tf.matmul(acc, m_dec), const]
                else:
                    e_const = b_enc + float(t + 1) * b2            # e_t's constant: b_enc + t * b2
                    const = tf.linalg.matvec(w_d, e_const, transpose_a=True) + dec.first.bias()
                    parts = [enc_term, tf.matmul(acc, m_dec), const]
                logits.append(tf.cast(dec.last([dec.hidden(parts)])[:, 0], tf.float32))
        out = tf.stack(logits, 0) if all_steps else logits[-1]
        return tf.gather(out, inverse, axis=-1) if inverse is not None else out

