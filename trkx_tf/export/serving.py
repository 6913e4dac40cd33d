"""The serving form of an edge classifier: a ``tf.Module`` with one ``tf.function`` of a fixed, documented signature.

An exported model (filter or GNN) scores the edges of one whole, unpadded graph:

===============  ===================  ==========================================================================
input            shape / dtype        meaning
===============  ===================  ==========================================================================
``nodes``        [n_node, F] float32  node (hit) features, :func:`trkx_tf.graphs.features.hit_features`
``edges``        [n_edge, A] float32  edge features, :func:`trkx_tf.graphs.features.edge_features` (only for a
                                      model trained with them: ``model.<kind>.edge_features``)
``senders``      [n_edge] int32       source node of each edge, in [0, n_node)
``receivers``    [n_edge] int32       target node of each edge, in [0, n_node)
===============  ===================  ==========================================================================

Output ``scores`` [n_edge] float32: the sigmoid of the model's logit, in [0, 1], in the input edge order.
``n_node`` and ``n_edge`` are dynamic (one export serves events of any size); ``F`` and ``A`` are fixed by the
training. Shape vocabulary as in :mod:`trkx_tf.graphs.batch`.

The graph is traced with the XLA kernels of :mod:`trkx_tf.models.kernels` (:func:`xla_kernels`), never the
native CPU ops of :mod:`trkx_tf.models.native`: those live in a library that only this toolkit can load.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from trkx_tf.graphs.features import EDGE_FEATURES
from trkx_tf.models import native

#: The input names, in the order of the serving function's arguments (``edges`` only for models that use them).
INPUTS = ("nodes", "edges", "senders", "receivers")
#: The output name.
OUTPUT = "scores"
#: The SavedModel signature key.
SIGNATURE_KEY = "serving_default"


@contextlib.contextmanager
def xla_kernels() -> Iterator[None]:
    """Within the block, models built and traced use the XLA kernels (``TRKX_NATIVE_OPS=0``), restored after.

    :func:`trkx_tf.models.native.ops` reads the switch each time a kernel is traced, so the graphs traced inside
    the block hold no native op.
    """
    old = os.environ.get(native.ENV_SWITCH)
    os.environ[native.ENV_SWITCH] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(native.ENV_SWITCH, None)
        else:
            os.environ[native.ENV_SWITCH] = old


def input_names(uses_edges: bool) -> tuple[str, ...]:
    """The serving inputs of a model, in argument order (see the module docstring)."""
    return tuple(n for n in INPUTS if uses_edges or n != "edges")


def input_signature(n_features: int, uses_edges: bool) -> list:
    """The ``tf.TensorSpec`` of each serving input, in argument order.

    Args:
      n_features: F.
      uses_edges: whether the model takes edge features (``edges`` [n_edge, A]).

    Returns:
      A list of TensorSpecs named as :data:`INPUTS`, with unknown ``n_node`` and ``n_edge``.
    """
    import tensorflow as tf

    specs = {"nodes": tf.TensorSpec([None, int(n_features)], tf.float32, name="nodes"),
             "edges": tf.TensorSpec([None, len(EDGE_FEATURES)], tf.float32, name="edges"),
             "senders": tf.TensorSpec([None], tf.int32, name="senders"),
             "receivers": tf.TensorSpec([None], tf.int32, name="receivers")}
    return [specs[n] for n in input_names(uses_edges)]


def serving_module(model, n_features: int, uses_edges: bool):
    """A ``tf.Module`` that tracks ``model`` and serves it with :func:`input_signature`.

    The batch given to the model is the one graph unpadded (``n_node = [n_node]``, ``n_edge = [n_edge]``,
    ``edge_mask`` all ones), as :class:`trkx_tf.reco.scorers.ModelScorer` gives it in ``trkx-infer``.

    Args:
      model: a built, restored edge classifier (``batch -> [E] logits``).
      n_features: F.
      uses_edges: the model takes ``batch["edges"]``.

    Returns:
      The module; ``module.serve(*inputs) -> {"scores": [n_edge] float32}`` is its ``tf.function``.
    """
    import tensorflow as tf

    names = input_names(uses_edges)

    def serve(*inputs):
        x = dict(zip(names, inputs))
        n_edge = tf.shape(x["senders"])[0]
        batch = {"nodes": x["nodes"], "senders": x["senders"], "receivers": x["receivers"],
                 "n_node": tf.shape(x["nodes"])[:1], "n_edge": tf.reshape(n_edge, [1]),
                 "edge_mask": tf.ones([n_edge], tf.float32)}
        if uses_edges:
            batch["edges"] = x["edges"]
        return {OUTPUT: tf.sigmoid(tf.cast(model(batch), tf.float32))}

    module = tf.Module(name="edge_scorer")
    module.model = model
    module.serve = tf.function(serve, input_signature=input_signature(n_features, uses_edges))
    return module


def native_op_types(graph_def) -> list[str]:
    """The op types of a GraphDef (its function library included) that come from the native kernel library.

    Args:
      graph_def: a ``tf.compat.v1.GraphDef``.

    Returns:
      Sorted op type names starting with ``Trkx`` (empty for a portable graph).
    """
    types = {n.op for n in graph_def.node}
    for f in graph_def.library.function:
        types |= {n.op for n in f.node_def}
    return sorted(t for t in types if t.startswith("Trkx"))
