"""Released edge classifiers evaluated with numpy and numba: inference without importing TensorFlow.

A released model (:mod:`trkx_tf.release`) is a set of float32 arrays keyed by their attribute paths in the Sonnet
module. This module evaluates the same functions from those arrays: the edge-filter MLP
(:class:`~trkx_tf.models.filter.EdgeFilter`) and the Interaction Network
(:class:`~trkx_tf.models.interaction.InteractionNetwork`), in the plain form of their docstrings::

    filter:  logit = MLP([edge features, x_receiver, x_sender])
    IN:      v = node_encoder(x);  e = edge_encoder([x_r, x_s, (edge features)])
             T times:  m = edge_core([e, v_r, v_s]);  a = Σ_receiver m;  e += m;  v += node_core([a, v])
             logit = decoder(e)

Each MLP is one numba kernel (:func:`_mlp_rows`) over blocks of 256 rows spread over the cores: a block's
products (BLAS, one thread per kernel thread), biases, gathered node terms, LayerNorms (float32 statistics) and
ReLUs run while it sits in cache. The IN's message-passing steps carry the edge latents in the TensorFlow model's
composed form (one [E, H] x [H, H] product per edge and step, :meth:`NumpyInteractionNetwork.__call__`); the
receivers' sums are a numba scatter-add, the small node-side products numpy.
A ``trkx-infer`` process that uses this engine (``infer.engine=numpy``, or ``auto`` for a release) never imports
TensorFlow, which saves its start-up (seconds) and its memory; the scores agree with the TensorFlow models to
float32 rounding (tested to 1e-5).

Supported: the filter with or without LayerNorm and edge features; the IN with ``skip=residual``,
``aggregation=receivers`` or ``both``, any ``layers >= 2``, with or without LayerNorm and edge features. Other
models (the attention GNN, ``skip=latent0``) raise :class:`~trkx_tf.errors.ConfigError` (use
``infer.engine=tensorflow``).

Shape vocabulary as in :mod:`trkx_tf.graphs.batch` (``n_node``, ``n_edge``, ``F``, ``A``); ``H`` a layer width.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from trkx_tf.errors import CheckpointError, ConfigError
from trkx_tf.graphs.features import EDGE_FEATURES
from trkx_tf.reco.scorers import ChunkedScorer, edge_feature_fn

_EPS = np.float32(1e-5)  # the LayerNorm epsilon of trkx_tf.models.layers.LayerNorm
_BLOCK = 256  # rows per block of the fused kernel: a block's activations stay in the core's cache
_CHUNK = 65536  # edges per piece of a GNN step's hidden activations (32 MiB at H = 128)


@numba.njit(cache=True, fastmath=True, inline="always")
def _activate(h, scale, offset, eps, norm):
    """ReLU([LayerNorm](h)) of every row of a [B, H] block, in place."""
    rows, width = h.shape
    for i in range(rows):
        if norm:
            mean = np.float32(0.0)
            for j in range(width):
                mean += h[i, j]
            mean /= width
            var = np.float32(0.0)
            for j in range(width):
                d = h[i, j] - mean
                var += d * d
            inv = np.float32(1.0) / np.sqrt(var / width + eps)
            for j in range(width):
                y = (h[i, j] - mean) * inv * scale[j] + offset[j]
                h[i, j] = y if y > 0 else np.float32(0.0)
        else:
            for j in range(width):
                if h[i, j] < 0:
                    h[i, j] = np.float32(0.0)


@numba.njit(cache=True, fastmath=True, inline="always")
def _hidden(h, wh, bh, scales, offsets, eps, norm):
    """The first layer's ReLU([LN]) of a [B, H] block of pre-activations, then the hidden layers ``k``:
    ``h @ wh[k] + bh[k]``, ReLU([LN]). Returns the last hidden activation."""
    _activate(h, scales[0], offsets[0], eps, norm)
    for k in range(wh.shape[0]):
        h = h @ wh[k]
        for i in range(h.shape[0]):
            for j in range(h.shape[1]):
                h[i, j] += bh[k, j]
        _activate(h, scales[k + 1], offsets[k + 1], eps, norm)
    return h


@numba.njit(parallel=True, cache=True, fastmath=True)
def _mlp_rows(x, w0, b0, table_r, ids_r, table_s, ids_s, extra, w_extra, wh, bh, scales, offsets, wl, bl, eps,
              norm, output, out):
    """An MLP over the rows of ``x``, in cache-sized blocks over the cores.

    Layer 0: ``x @ w0 + b0 (+ table_r[ids_r] + table_s[ids_s]) (+ extra @ w_extra)`` (each optional term when its
    rows array has a row per row of ``x``), then ReLU([LayerNorm]); hidden layers ``k``: ``h @ wh[k] + bh[k]``,
    ReLU([LN]); output: ``h @ wl + bl``, or, without ``output``, the last hidden activation; written to ``out``
    ([B, out] float32), which is returned.
    """
    n = x.shape[0]
    gather_r = len(ids_r) == n
    gather_s = len(ids_s) == n
    add_extra = extra.shape[0] == n
    for blk in numba.prange((n + _BLOCK - 1) // _BLOCK):
        lo = blk * _BLOCK
        hi = min(n, lo + _BLOCK)
        h = np.ascontiguousarray(x[lo:hi]) @ w0
        if add_extra:
            h += np.ascontiguousarray(extra[lo:hi]) @ w_extra
        width = h.shape[1]
        for i in range(hi - lo):
            for j in range(width):
                h[i, j] += b0[j]
            if gather_r:
                r = ids_r[lo + i]
                for j in range(width):
                    h[i, j] += table_r[r, j]
            if gather_s:
                r = ids_s[lo + i]
                for j in range(width):
                    h[i, j] += table_s[r, j]
        h = _hidden(h, wh, bh, scales, offsets, eps, norm)
        if output:
            o = h @ wl
            for i in range(hi - lo):
                for j in range(o.shape[1]):
                    out[lo + i, j] = o[i, j] + bl[j]
        else:
            out[lo:hi] = h
    return out


@numba.njit(parallel=True, cache=True, fastmath=True)
def _edge_core_rows(z, acc, lo, h_out, table_r, ids_r, table_s, ids_s, wh, bh, scales, offsets, eps, norm, first,
                    m_step, c_step, update_z):
    """One message-passing step of the edge core on the rows ``lo .. lo + len(h_out)`` of the edge arrays.

    The first layer's pre-activation is ``z + table_r[ids_r] + table_s[ids_s]`` (``z`` carries the edge latent's
    projection and the bias); after ReLU([LN]) and the hidden layers ``wh``, ``h`` (the last hidden activation) is
    written to ``h_out``, added to ``acc`` (set on the ``first`` step) and, with ``update_z``, carried into the
    next step's first layer: ``z += h @ m_step + c_step``. ``z``, ``acc`` [E, H] are updated in place.
    """
    n = h_out.shape[0]
    width = h_out.shape[1]
    for blk in numba.prange((n + _BLOCK - 1) // _BLOCK):
        a = blk * _BLOCK
        b = min(n, a + _BLOCK)
        h = np.empty((b - a, width), np.float32)
        for i in range(b - a):
            row = lo + a + i
            r, s = ids_r[row], ids_s[row]
            for j in range(width):
                h[i, j] = z[row, j] + table_r[r, j] + table_s[s, j]
        h = _hidden(h, wh, bh, scales, offsets, eps, norm)
        for i in range(b - a):
            row = lo + a + i
            for j in range(width):
                h_out[a + i, j] = h[i, j]
                acc[row, j] = h[i, j] if first else acc[row, j] + h[i, j]
        if update_z:
            d = h @ m_step
            for i in range(b - a):
                row = lo + a + i
                for j in range(width):
                    z[row, j] += d[i, j] + c_step[j]


@numba.njit(cache=True)
def _scatter_add(out: np.ndarray, values: np.ndarray, ids: np.ndarray) -> None:
    """``out[ids[e]] += values[e]`` for every row ``e`` of ``values`` [B, H], in place, on one core: whole rows
    stay in cache lines (splitting the columns over the cores measured 4x slower)."""
    for e in range(values.shape[0]):
        k = ids[e]
        for j in range(values.shape[1]):
            out[k, j] += values[e, j]


_NO_IDS = np.zeros(0, np.int64)
_UNSUPPORTED = ("infer.engine=numpy evaluates the Interaction Network with skip=residual only; use "
                "infer.engine=tensorflow (or auto) for this model")


def _evaluates(gnn_cfg) -> bool:
    """Whether this engine evaluates the configured GNN."""
    return gnn_cfg.kind == "interaction" and gnn_cfg.skip == "residual"


class _MLP:
    """A :class:`~trkx_tf.models.layers.MLP` (at least one hidden layer, equal hidden widths) from its arrays
    ``linears/<k>/weights/<i>``, ``linears/<k>/b``, ``norms/<k>/scale|offset`` under ``prefix``, checked against
    the configured shape.

    Args:
      arrays: the released weights; the keys read are added to ``used``.
      prefix: the MLP's attribute path.
      sizes: the configured output width of every layer.
      parts: the configured width of every input part of the first layer.
      layernorm: the hidden layers have LayerNorms.
      used: collects the keys read.
      what: how errors name the model (e.g. ``"the configured InteractionNetwork"``).

    Raises:
      CheckpointError: a missing array, or an array of another shape than the configured model needs.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, sizes, parts, layernorm: bool, used: set,
                 what: str):
        def take(key, shape):
            if key not in arrays:
                raise CheckpointError(f"the released weights do not fit {what} (missing {key}): check the "
                                      f"release's config.yaml")
            value = np.asarray(arrays[key], np.float32)
            if value.shape != tuple(shape):
                raise CheckpointError(f"{key} has shape {value.shape}, {what} needs {tuple(shape)}")
            used.add(key)
            return value

        if len(sizes) < 2 or len(set(sizes[:-1])) != 1:
            raise ConfigError(f"infer.engine=numpy: {prefix!r} needs a hidden layer and equal hidden widths")
        width, n_hidden = sizes[0], len(sizes) - 1
        self.blocks = [take(f"{prefix}linears/0/weights/{i}", (p, width)) for i, p in enumerate(parts)]
        self.b0 = take(f"{prefix}linears/0/b", (width,))
        hidden = [take(f"{prefix}linears/{k}/weights/0", (width, width)) for k in range(1, n_hidden)]
        self.wh = np.ascontiguousarray(np.stack(hidden) if hidden else np.zeros((0, width, width), np.float32))
        self.bh = np.stack([take(f"{prefix}linears/{k}/b", (width,)) for k in range(1, n_hidden)]) if hidden \
            else np.zeros((0, width), np.float32)
        self.wl = np.ascontiguousarray(take(f"{prefix}linears/{n_hidden}/weights/0", (width, sizes[-1])))
        self.bl = take(f"{prefix}linears/{n_hidden}/b", (sizes[-1],))
        self.norm = bool(layernorm)
        if self.norm:
            self.scales = np.stack([take(f"{prefix}norms/{k}/scale", (width,)) for k in range(n_hidden)])
            self.offsets = np.stack([take(f"{prefix}norms/{k}/offset", (width,)) for k in range(n_hidden)])
        else:
            self.scales = self.offsets = np.zeros((n_hidden, width), np.float32)
        self.w0 = np.ascontiguousarray(np.concatenate(self.blocks, 0))  # the blocks over the concatenated parts

    def __call__(self, x: np.ndarray, w0: Optional[np.ndarray] = None, b0: Optional[np.ndarray] = None,
                 table_r=None, ids_r=None, table_s=None, ids_s=None, extra=None, w_extra=None,
                 wl: Optional[np.ndarray] = None, bl: Optional[np.ndarray] = None, output: bool = True,
                 out: Optional[np.ndarray] = None) -> np.ndarray:
        """The MLP of the rows of ``x`` [B, K]: the first layer's weights ``w0`` (default: its blocks stacked)
        and bias ``b0``, plus the gathered first-layer terms ``table_r[ids_r]``, ``table_s[ids_s]`` and
        ``extra @ w_extra`` where given; the output layer ``wl``, ``bl`` (default: its own). Returns [B, out], or
        [B, H] the last hidden activation without ``output``, in ``out`` where given (a C-contiguous float32
        array of that shape: the caller's buffer is reused instead of fresh memory)."""
        def given(value, default):
            return np.ascontiguousarray(default if value is None else value, np.float32)

        empty = np.zeros((0, self.b0.shape[0]), np.float32)
        wl = given(wl, self.wl)
        if out is None:
            out = np.empty((len(x), wl.shape[1] if output else self.b0.shape[0]), np.float32)
        return _mlp_rows(np.ascontiguousarray(x, np.float32), given(w0, self.w0), given(b0, self.b0),
                         empty if table_r is None else table_r, _NO_IDS if ids_r is None else ids_r,
                         empty if table_s is None else table_s, _NO_IDS if ids_s is None else ids_s,
                         empty if extra is None else np.ascontiguousarray(extra), given(w_extra, empty.T),
                         self.wh, self.bh, self.scales, self.offsets, wl, given(bl, self.bl), _EPS,
                         self.norm, output, out)


def _check_all_used(arrays: Mapping[str, np.ndarray], used: set, what: str) -> None:
    """Raises CheckpointError for released arrays the configured model has no place for."""
    extra = sorted(set(arrays) - used)
    if extra:
        raise CheckpointError(f"the released weights do not fit {what} (unexpected {extra[0]}; {len(extra)} "
                              f"unexpected): check the release's config.yaml")


class NumpyEdgeFilter:
    """The edge filter's logits from its released arrays (see the module docstring).

    Args:
      arrays: the released weights (``filter.npz``).
      filter_cfg: the ``model.filter`` config section.
      n_features: F.

    Raises:
      CheckpointError: arrays that do not form the configured filter.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], filter_cfg, n_features: int):
        self.edge_features = bool(filter_cfg.edge_features)
        what, used = "the configured EdgeFilter", set()
        inputs = 2 * n_features + (len(EDGE_FEATURES) if self.edge_features else 0)
        self.mlp = _MLP(arrays, "_block/_edge_model/", [filter_cfg.hidden] * filter_cfg.layers + [1], [inputs],
                        filter_cfg.layernorm, used, what)
        _check_all_used(arrays, used, what)

    def __call__(self, nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray,
                 edges: Optional[np.ndarray]) -> np.ndarray:
        """[n_edge] float32 logits (edges [n_edge, A] when the model takes them)."""
        parts = ([edges] if self.edge_features else []) + [nodes[receivers], nodes[senders]]
        return self.mlp(np.concatenate(parts, 1))[:, 0]


class NumpyInteractionNetwork:
    """The Interaction Network's logits from its released arrays (see the module docstring).

    Args:
      arrays: the released weights (``gnn.npz``).
      gnn_cfg: the ``model.gnn`` config section.
      n_features: F.

    Raises:
      ConfigError: a model this engine does not evaluate.
      CheckpointError: arrays that do not form the configured model.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], gnn_cfg, n_features: int):
        if not _evaluates(gnn_cfg):
            raise ConfigError(_UNSUPPORTED)
        self.steps = int(gnn_cfg.steps)
        self.both = gnn_cfg.aggregation == "both"
        self.edge_features = bool(gnn_cfg.edge_features)
        h, layers, ln = gnn_cfg.hidden, gnn_cfg.layers, gnn_cfg.layernorm
        what, used = "the configured InteractionNetwork", set()
        edge_inputs = [n_features, n_features] + ([len(EDGE_FEATURES)] if self.edge_features else [])
        layout = {"node_encoder": ([h] * layers, [n_features]), "edge_encoder": ([h] * layers, edge_inputs),
                  "edge_core": ([h] * layers, [h, h, h]), "node_core": ([h] * layers, [h] * (3 if self.both else 2)),
                  "decoder": ([h] * (layers - 1) + [1], [h])}
        self.node_encoder, self.edge_encoder, self.edge_core, self.node_core, self.decoder = (
            _MLP(arrays, f"{name}/", sizes, parts, ln, used, what) for name, (sizes, parts) in layout.items())
        _check_all_used(arrays, used, what)
        self._work: dict[str, np.ndarray] = {}  # the event-sized arrays, kept for the next event

    def _scratch(self, name: str, shape) -> np.ndarray:
        """A C-contiguous float32 array of ``shape`` in the memory ``name`` had at the previous event, grown when
        too small. Fresh memory costs a page fault per 4 KiB page when first written (0.2 s per GB on a healthy
        machine, up to 16 s per GB on a VM whose host reclaims free pages): an event after the first writes into
        memory it already has. The process keeps the largest event's arrays (its peak RSS is unchanged)."""
        size = int(np.prod(shape))
        buffer = self._work.get(name)
        if buffer is None or buffer.size < size:
            self._work[name] = None  # the old buffer is freed before the larger one is made
            buffer = self._work[name] = np.empty(size, np.float32)
        return buffer[:size].reshape(shape)

    def __call__(self, nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray,
                 edges: Optional[np.ndarray]) -> np.ndarray:
        """[n_edge] float32 logits (edges [n_edge, A] when the model takes them).

        The edge latents are carried as the TensorFlow model carries them (``trkx_tf/models/interaction.py``,
        rewrites 1-3): ``z = e @ W_e + b1`` (the edge core's first-layer term) and ``acc``, the sum of the edge
        core's last hidden activations ``h_t``. A step is then one [E, H] x [H, H] product (``z += h @ W2 @ W_e +
        b2 @ W_e``) instead of two, the receivers sum ``h`` (``sum m = (sum h) @ W2 + degree * b2``), and the
        decoder reads ``e_T = e_0 + acc @ W2 + T * b2``, with ``e_0`` recomputed from the narrow encoder inputs.
        Only ``z`` and ``acc`` are [E, H]; each step's ``h`` lives in ``_CHUNK``-row pieces.
        """
        n, n_edge = len(nodes), len(receivers)
        enc, core, node, dec = self.edge_encoder, self.edge_core, self.node_core, self.decoder
        w_e, w_r, w_s = core.blocks
        width = core.b0.shape[0]
        parts = [nodes[receivers], nodes[senders]] + ([edges] if self.edge_features else [])
        inputs = np.concatenate(parts, 1, out=self._scratch("inputs", (n_edge, sum(p.shape[1] for p in parts))))
        z = enc(inputs, wl=enc.wl @ w_e, bl=enc.bl @ w_e + core.b0,  # e_0 @ W_e + b1
                out=self._scratch("z", (n_edge, width)))
        acc = self._scratch("acc", (n_edge, width))
        m_step, c_step = core.wl @ w_e, core.bl @ w_e
        ids = [receivers] + ([senders] if self.both else [])
        # The node core reads [sum m_r, (sum m_s,) v] with sum m = (sum h) @ W2 + degree * b2: its first layer
        # takes the sums of h (columns of node_in) through W2 @ W0_k and the degrees through b2 @ W0_k.
        w0_sums = [core.wl @ block for block in node.blocks[:len(ids)]]
        w0_node = np.concatenate(w0_sums + [node.blocks[-1]], 0)
        degrees = np.stack([np.bincount(k, minlength=n) for k in ids], 1).astype(np.float32)
        w_degrees = np.stack([core.bl @ block for block in node.blocks[:len(ids)]])
        # every [N, H] and [E, H] array is taken from the memory of the previous event (fresh memory is slow)
        node_in = self._scratch("node_in", (n, (len(ids) + 1) * width))
        v = self.node_encoder(nodes, out=self._scratch("v", (n, width)))
        table_r, table_s, update = (self._scratch(name, v.shape) for name in ("table_r", "table_s", "update"))
        h = self._scratch("h", (min(n_edge, _CHUNK), width))
        for t in range(self.steps):
            last = t == self.steps - 1  # v after the last step is never read: no sums, no node update
            np.matmul(v, w_r, out=table_r)
            np.matmul(v, w_s, out=table_s)
            if not last:
                node_in[:, :-width] = 0.0  # this step's sums of h
            for lo in range(0, n_edge, _CHUNK):
                piece = h[:min(_CHUNK, n_edge - lo)]
                _edge_core_rows(z, acc, lo, piece, table_r, receivers, table_s, senders, core.wh, core.bh,
                                core.scales, core.offsets, _EPS, core.norm, t == 0, m_step, c_step, not last)
                if not last:
                    for k, column_ids in enumerate(ids):
                        _scatter_add(node_in[:, k * width:(k + 1) * width], piece, column_ids[lo:lo + len(piece)])
            if not last:
                node_in[:, -width:] = v
                v += node(node_in, w0=w0_node, extra=degrees, w_extra=w_degrees, out=update)
        # the decoder's first layer on e_T = h_enc @ W_enc + b_enc + acc @ W2 + T * b2 (h_enc takes z's memory)
        h_enc = enc(inputs, output=False, out=z)
        w_d = dec.w0
        return dec(h_enc, w0=enc.wl @ w_d, b0=(enc.bl + self.steps * core.bl) @ w_d + dec.b0,
                   extra=acc, w_extra=core.wl @ w_d)[:, 0]


def set_threads(threads: int) -> None:
    """Runs the kernels on ``threads`` threads (0: numba's default, one per core)."""
    if threads:
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """float32 sigmoid, without overflow warnings."""
    out = np.empty_like(logits, np.float32)
    np.exp(-np.abs(logits), out=out)
    return np.where(logits >= 0, 1.0 / (1.0 + out), out / (1.0 + out)).astype(np.float32, copy=False)


class NumpyScorer(ChunkedScorer):
    """A :class:`~trkx_tf.reco.scorers.ChunkedScorer` of a released model evaluated by this engine.

    Args:
      model: a :class:`NumpyEdgeFilter` or :class:`NumpyInteractionNetwork`.
      n_features, chunk_edges, edge_fn: see :class:`~trkx_tf.reco.scorers.ChunkedScorer`.
    """

    index_dtype = np.int64  # what the kernels are compiled for

    def __init__(self, model, n_features: int, chunk_edges: Optional[int] = None, edge_fn=None):
        super().__init__(n_features, chunk_edges, edge_fn)
        self.model = model

    def _score(self, nodes, senders, receivers, edges):
        return sigmoid(self.model(nodes, senders, receivers, edges))

    def __call__(self, nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
        # the kernels run their blocks on numba's threads, each block's products on one BLAS thread
        with threadpool_limits(1, user_api="blas"):
            return super().__call__(nodes, senders, receivers)


def uses_numpy_engine(cfg) -> bool:
    """Whether released models run on this engine: ``infer.engine`` is ``numpy``, or ``auto`` and the engine
    evaluates the configured models (the Interaction Network with ``skip=residual``).

    Raises:
      ConfigError: ``infer.engine=numpy`` for a model it does not evaluate.
    """
    supported = _evaluates(cfg.model.gnn)
    if cfg.infer.engine == "numpy" and not supported:
        raise ConfigError(_UNSUPPORTED)
    return cfg.infer.engine == "numpy" or (cfg.infer.engine == "auto" and supported)


def numpy_scorer(cfg, kind: str, arrays: Mapping[str, np.ndarray], n_features: int) -> NumpyScorer:
    """The :class:`NumpyScorer` of released weights: chunks and edge features as
    :func:`trkx_tf.reco.scorers.scorer_for_model` makes them for the TensorFlow models.

    Args:
      cfg: the whole config (``model``, ``graph``, ``infer``).
      kind: ``"filter"`` or ``"gnn"``.
      arrays: the released weights.
      n_features: F.

    Raises:
      ConfigError: a model this engine does not evaluate.
      CheckpointError: arrays that do not form the configured model.
    """
    if kind == "filter":
        model = NumpyEdgeFilter(arrays, cfg.model.filter, n_features)
    else:
        model = NumpyInteractionNetwork(arrays, cfg.model.gnn, n_features)
    chunk = cfg.infer.filter_chunk_edges if kind == "filter" else None
    return NumpyScorer(model, n_features, chunk_edges=chunk, edge_fn=edge_feature_fn(cfg, kind))
