"""Edge scorers: the one interface through which inference and the graph stage use a trained edge classifier.

An :class:`EdgeScorer` is a callable
``scorer(nodes [n_node, F] float32, senders [n_edge] int32, receivers [n_edge] int32) -> [n_edge] float32``
returning scores in [0, 1]. :class:`ModelScorer` wraps a trained Sonnet model (``EdgeFilter`` or
``InteractionNetwork``) with a ``tf.function`` whose input signature has unknown sizes, so events of any size
reuse one trace; for a model trained with edge features it computes them with
:func:`trkx_tf.graphs.features.edge_features`, the function that wrote them into the training shards.
:func:`load_scorer` makes one from the config and a checkpoint (restored by :mod:`trkx_tf.train.checkpoints`);
``trkx-build --filter-ckpt`` uses it too (:mod:`trkx_tf.reco.build`), so the GNN trains on the edges the filter
keeps in inference. Tests substitute other scorers (a truth oracle) behind the same interface.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch` (``n_node``, ``n_edge``, ``F``, ``A``).
"""

from __future__ import annotations

import abc
import functools
import logging
import os
from typing import Optional, Protocol

import numpy as np

from trkx_tf.errors import ConfigError, DataError
from trkx_tf.graphs.features import EDGE_FEATURES, edge_features

log = logging.getLogger("trkx_tf.reco.scorers")


class EdgeScorer(Protocol):
    """Scores the edges of one whole-event graph (see the module docstring)."""

    def __call__(self, nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
        """Args: nodes [n_node, F] float32, senders/receivers [n_edge] int32. Returns: [n_edge] float32 in [0, 1]."""


class ChunkedScorer(abc.ABC):
    """What every :class:`EdgeScorer` here shares: checking the node features, scoring the edges
    ``chunk_edges`` at a time against the same nodes (which bounds the memory of a per-edge model, the filter; a
    message-passing model must see the whole graph at once, ``chunk_edges=None``), and the edge features of a
    model that takes them.

    Args:
      n_features: F, node features the model was trained with.
      chunk_edges: edges scored per call, or None for all at once.
      edge_fn: ``edge_fn(nodes, senders, receivers) -> [n_edge, A]`` edge features for a model that takes them,
        or None.

    Raises:
      ConfigError: ``chunk_edges`` < 1.
    """

    #: the dtype the senders and receivers are passed on in
    index_dtype = np.int32

    def __init__(self, n_features: int, chunk_edges: Optional[int] = None, edge_fn=None):
        if chunk_edges is not None and chunk_edges < 1:
            raise ConfigError(f"infer.filter_chunk_edges must be >= 1, got {chunk_edges}")
        self.n_features = int(n_features)
        self.chunk_edges = chunk_edges
        self.edge_fn = edge_fn

    @abc.abstractmethod
    def _score(self, nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray,
               edges: Optional[np.ndarray]) -> np.ndarray:
        """[k] scores of one chunk of k edges (``edges`` [k, A], or None without an ``edge_fn``)."""

    def __call__(self, nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
        nodes = check_nodes(nodes, self.n_features)
        senders = np.asarray(senders, self.index_dtype)
        receivers = np.asarray(receivers, self.index_dtype)
        n = len(senders)
        if n == 0:
            return np.zeros(0, np.float32)
        step = n if self.chunk_edges is None else self.chunk_edges
        out = []
        for i in range(0, n, step):
            s, r = senders[i:i + step], receivers[i:i + step]
            out.append(self._score(nodes, s, r, None if self.edge_fn is None else self.edge_fn(nodes, s, r)))
        return np.concatenate(out).astype(np.float32, copy=False)


class ModelScorer(ChunkedScorer):
    """A :class:`ChunkedScorer` of a trained edge classifier (``EdgeFilter`` or ``InteractionNetwork``).

    The model sees one graph: ``n_node = [n_node]``, ``n_edge = [n_edge]``, ``edge_mask`` all ones (no padding).

    Args:
      model: a built Sonnet module mapping a batch dict to [n_edge] logits.
      n_features, chunk_edges: see :class:`ChunkedScorer`.
      edge_fn: see :class:`ChunkedScorer`; the model then gets them as ``batch["edges"]``.
    """

    def __init__(self, model, n_features: int, chunk_edges: Optional[int] = None, edge_fn=None):
        import tensorflow as tf

        super().__init__(n_features, chunk_edges, edge_fn)
        self.model = model
        signature = [tf.TensorSpec([None, self.n_features], tf.float32, name="nodes"),
                     tf.TensorSpec([None], tf.int32, name="senders"),
                     tf.TensorSpec([None], tf.int32, name="receivers"),
                     tf.TensorSpec([None, len(EDGE_FEATURES) if edge_fn else 0], tf.float32, name="edges")]

        def scores(nodes, senders, receivers, edges):
            n_edge = tf.shape(senders)[0]
            batch = {"nodes": nodes, "senders": senders, "receivers": receivers,
                     "n_node": tf.shape(nodes)[:1], "n_edge": tf.reshape(n_edge, [1]),
                     "edge_mask": tf.ones([n_edge], tf.float32)}
            if edge_fn is not None:
                batch["edges"] = edges
            return tf.sigmoid(model(batch))

        self._fn = tf.function(scores, input_signature=signature, autograph=False)

    def _score(self, nodes, senders, receivers, edges):
        if edges is None:
            edges = np.zeros((len(senders), 0), np.float32)
        return self._fn(nodes, senders, receivers, edges).numpy()


def check_nodes(nodes: np.ndarray, n_features: int) -> np.ndarray:
    """``nodes`` as a float32 [n_node, F] array.

    Raises:
      DataError: another number of node features than the model was trained with.
    """
    nodes = np.asarray(nodes, np.float32)
    if nodes.ndim != 2 or nodes.shape[1] != n_features:
        raise DataError(f"the model was trained with F={n_features} node features, the event has "
                        f"{nodes.shape[1] if nodes.ndim == 2 else '?'} (graph.use_cells and the events' cells "
                        f"files must agree with the training)")
    return nodes


def edge_feature_fn(cfg, kind: str):
    """``edge_fn(nodes, senders, receivers) -> [n_edge, A]`` for a model configured with ``edge_features`` (at the
    node scales of ``cfg.graph``), else None."""
    if not getattr(cfg.model, kind).edge_features:
        return None
    return functools.partial(edge_features, r_scale=cfg.graph.r_scale, z_scale=cfg.graph.z_scale)


def load_scorer(cfg, kind: str, checkpoint: os.PathLike | str, n_features: int) -> "ModelScorer":
    """The :class:`ModelScorer` of a trained model: built as ``cfg.model`` says, restored from ``checkpoint``.

    The filter scores ``infer.filter_chunk_edges`` edges at a time; the GNN sees whole graphs. Models configured
    with ``edge_features`` get them from :func:`~trkx_tf.graphs.features.edge_features` at the node scales of
    ``cfg.graph``.

    Args:
      cfg: the whole config (``model``, ``graph``, ``infer``).
      kind: ``"filter"`` or ``"gnn"``.
      checkpoint: a checkpoint prefix or folder.
      n_features: F.

    Returns:
      The scorer.

    Raises:
      ConfigError: an unknown kind.
      CheckpointError: no checkpoint, or it does not fit the configured model.
    """
    from trkx_tf.train.checkpoints import load_edge_model

    model, prefix = load_edge_model(kind, cfg.model, checkpoint, n_features, cfg.infer.compute_dtype)
    log.info("%s restored from %s", kind, prefix)
    return scorer_for_model(cfg, kind, model, n_features)


def scorer_for_model(cfg, kind: str, model, n_features: int) -> "ModelScorer":
    """The :class:`ModelScorer` of a built, trained model (restored from a checkpoint by :func:`load_scorer`, or
    given released weights by :mod:`trkx_tf.release`): chunks and edge features as :func:`load_scorer` says.

    Args:
      cfg: the whole config (``model``, ``graph``, ``infer``).
      kind: ``"filter"`` or ``"gnn"``.
      model: the module.
      n_features: F.

    Returns:
      The scorer.
    """
    edge_fn = edge_feature_fn(cfg, kind)
    chunk = cfg.infer.filter_chunk_edges if kind == "filter" else None
    return ModelScorer(model, n_features, chunk_edges=chunk, edge_fn=edge_fn)
