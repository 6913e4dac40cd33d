"""A serving function as an ONNX graph, through tf2onnx, with every scatter as a standard ONNX operator.

Three steps:

1. **Freeze** the concrete function (variables become constants) and make the XLA kernels inlinable: the fused
   kernels of :mod:`trkx_tf.models.kernels` are ``tf.function(jit_compile=True)`` functions, called through
   ``PartitionedCall`` nodes marked ``_XlaMustCompile`` / ``_noinline``, which tf2onnx would leave as unknown
   ``PartitionedCall`` nodes. The marks are removed from the frozen GraphDef (ONNX has no XLA clusters); the
   maths inside is unchanged and grappler inlines it.
2. **Convert** with tf2onnx at opset :data:`OPSET`, with two handlers of this module in place of tf2onnx's own:

   - ``UnsortedSegmentSum(data, ids, num_segments)`` -> ``ScatterND(zeros[num_segments, ...], ids[:, None], data,
     reduction="add")``. tf2onnx's own conversion sorts the ids and gathers the rows into a dense
     [num_segments, max segment size, H] grid: memory proportional to the largest in-degree times n_node.
   - ``SparseTensorDenseMatMul(indices, values, shape, dense)`` (the attention GNN's aggregation) ->
     ``ScatterND(zeros, indices[:, :1], values[:, None] * dense[indices[:, 1]], reduction="add")``.

3. **Check**: the ONNX checker passes and every node is a standard operator (default domain, known to ONNX at
   :data:`OPSET`); anything else is a :class:`~trkx_tf.errors.ConfigError` naming the ops.

The inputs and output keep the serving names (:mod:`trkx_tf.export.serving`), and their dynamic dimensions are
named ``n_node`` and ``n_edge``.
"""

from __future__ import annotations

import logging
from typing import Sequence

from trkx_tf.errors import ConfigError

log = logging.getLogger("trkx_tf.export")

#: The ONNX opset of the exports: 16 is the first with ``ScatterND(reduction="add")``; 17 is the one the pinned
#: stack (tf2onnx 1.17.0, onnx 1.18.0, onnxruntime 1.32.0) was checked with.
OPSET = 17

_NO_INLINE_ATTRS = ("_XlaMustCompile", "_noinline")
#: The dynamic dimension of each serving input, by name (the serving shape vocabulary).
DIM_NAMES = {"nodes": ("n_node", None), "edges": ("n_edge", None), "senders": ("n_edge",), "receivers": ("n_edge",),
             "scores": ("n_edge",)}


def frozen_graph_def(concrete):
    """The frozen, inlinable GraphDef of a concrete function (step 1 of the module docstring).

    Args:
      concrete: a ``ConcreteFunction`` (variables captured).

    Returns:
      ``(graph_def, input_tensor_names, output_tensor_names)``, tensor names as ``"name:0"``, the inputs in the
      function's argument order.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
    graph_def = frozen.graph.as_graph_def(add_shapes=True)

    def strip(nodes):
        for node in nodes:
            for key in _NO_INLINE_ATTRS:
                if key in node.attr:
                    del node.attr[key]

    strip(graph_def.node)
    for function in graph_def.library.function:
        for key in _NO_INLINE_ATTRS:
            if key in function.attr:
                del function.attr[key]
        strip(function.node_def)
    return graph_def, [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]


def _int64(ctx, name: str) -> str:
    from onnx import TensorProto

    if ctx.get_dtype(name) == TensorProto.INT64:
        return name
    return ctx.make_node("Cast", [name], attr={"to": TensorProto.INT64}).output[0]


def _zeros_like_rows(ctx, rows: str, row_source: str, dtype) -> str:
    """``zeros([rows] + shape(row_source)[1:])`` of ``dtype``; ``rows`` a scalar or [1] int64 tensor."""
    import numpy as np
    from onnx import helper
    from tf2onnx.graph_builder import GraphBuilder

    if ctx.get_rank(rows) == 0:
        rows = GraphBuilder(ctx).make_unsqueeze({"data": rows, "axes": [0]})
    tail = GraphBuilder(ctx).make_slice({"data": ctx.make_node("Shape", [row_source]).output[0], "starts": [1],
                                         "ends": [np.iinfo(np.int64).max], "axes": [0]})
    shape = ctx.make_node("Concat", [rows, tail], attr={"axis": 0}).output[0]
    return ctx.make_node("ConstantOfShape", [shape],
                         attr={"value": helper.make_tensor("value", dtype, [1], [0])}).output[0]


def _segment_sum_handler(ctx, node, name, args):
    """tf2onnx handler: ``UnsortedSegmentSum`` as ``ScatterND(reduction="add")`` (see the module docstring)."""
    from tf2onnx.graph_builder import GraphBuilder

    data, ids, num_segments = node.input
    index = GraphBuilder(ctx).make_unsqueeze({"data": _int64(ctx, ids), "axes": [1]})
    zeros = _zeros_like_rows(ctx, _int64(ctx, num_segments), data, ctx.get_dtype(data))
    ctx.replace_inputs(node, [zeros, index, data])
    node.set_attr("reduction", "add")


def _sparse_matmul_handler(ctx, node, name, args):
    """tf2onnx handler: ``SparseTensorDenseMatMul`` (no adjoints) as a gather, a product and a scatter-add."""
    from tf2onnx.graph_builder import GraphBuilder

    if node.get_attr_value("adjoint_a", 0) or node.get_attr_value("adjoint_b", 0):
        raise ConfigError(f"{node.name}: SparseTensorDenseMatMul with adjoints is not exported")
    indices, values, dense_shape, dense = node.input
    indices = _int64(ctx, indices)
    gb = GraphBuilder(ctx)
    rows = gb.make_slice({"data": indices, "starts": [0], "ends": [1], "axes": [1]})  # [nnz, 1]
    cols = gb.make_squeeze({"data": gb.make_slice({"data": indices, "starts": [1], "ends": [2], "axes": [1]}),
                            "axes": [1]})
    picked = ctx.make_node("Gather", [dense, cols], attr={"axis": 0}).output[0]
    weighted = ctx.make_node("Mul", [picked, gb.make_unsqueeze({"data": values, "axes": [1]})]).output[0]
    n_rows = gb.make_slice({"data": _int64(ctx, dense_shape), "starts": [0], "ends": [1], "axes": [0]})
    zeros = _zeros_like_rows(ctx, n_rows, dense, ctx.get_dtype(dense))
    ctx.replace_inputs(node, [zeros, rows, weighted])
    node.set_attr("reduction", "add")
    for key in ("adjoint_a", "adjoint_b", "Tindices", "T"):
        if key in node.attr:
            del node.attr[key]


#: tf2onnx's custom handlers: TF op -> (handler, [ONNX op the node becomes]).
HANDLERS = {"UnsortedSegmentSum": (_segment_sum_handler, ["ScatterND"]),
            "SparseTensorDenseMatMul": (_sparse_matmul_handler, ["ScatterND"])}


def nonstandard_ops(model, opset: int = OPSET) -> list[str]:
    """The ops of an ONNX model that are not standard ONNX operators at ``opset``.

    Args:
      model: an ``onnx.ModelProto``.
      opset: the default-domain opset.

    Returns:
      Sorted ``"domain::op"`` names (empty when every node is a standard operator).
    """
    import onnx

    bad = set()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            bad.add(f"{node.domain}::{node.op_type}")
            continue
        try:
            onnx.defs.get_schema(node.op_type, opset, "")
        except onnx.defs.SchemaError:
            bad.add(f"::{node.op_type}")
    return sorted(bad)


def to_onnx(concrete, names: Sequence[str], output: str, what: str):
    """Converts a serving function to a checked ONNX model (the module docstring's three steps).

    Args:
      concrete: the serving ``ConcreteFunction`` (its inputs in the order of ``names``).
      names: the serving input names, in argument order.
      output: the serving output name.
      what: how errors name the model (e.g. ``"the gnn"``).

    Returns:
      The ``onnx.ModelProto``, inputs named ``names``, output ``output``, dynamic dimensions named as
      :data:`DIM_NAMES`.

    Raises:
      ConfigError: the converted graph has an op that tf2onnx could not map, or a non-standard operator.
    """
    import onnx
    import tf2onnx

    graph_def, inputs, outputs = frozen_graph_def(concrete)
    if len(outputs) != 1 or len(inputs) != len(names):
        raise ConfigError(f"{what}: expected {len(names)} inputs and 1 output, the traced graph has "
                          f"{len(inputs)} and {len(outputs)}")
    rename = dict(zip(inputs, names))
    rename[outputs[0]] = output
    loggers = [logging.getLogger(n) for n in ("tf2onnx", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # tf2onnx's per-node lines and TensorFlow's deprecation notes of the TF1 freezing API it calls;
        lg.setLevel(logging.ERROR)  # unsupported ops still fail below
    try:
        model, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs,
                                                  opset=OPSET, custom_op_handlers=HANDLERS,
                                                  tensors_to_rename=rename)
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises bare exceptions for unsupported graphs
        raise ConfigError(f"{what}: tf2onnx could not convert the graph ({type(exc).__name__}: "
                          f"{(str(exc).splitlines() or [''])[0][:300]})") from None
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    bad = nonstandard_ops(model)
    if bad:
        raise ConfigError(f"{what}: the ONNX graph has ops that are not standard ONNX operators at opset {OPSET}: "
                          f"{', '.join(bad)}")
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for dim, label in zip(dims, DIM_NAMES.get(value.name, ())):
            if label is not None and not dim.HasField("dim_value"):
                dim.dim_param = label
    model.producer_name = "trkx-tf (tf2onnx)"
    onnx.checker.check_model(model, full_check=True)
    return model
