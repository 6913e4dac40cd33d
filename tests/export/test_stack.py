"""The export stack installs beside TensorFlow: the pinned versions, and protobuf still one TensorFlow accepts."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _pins(name):
    return {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
            for line in (REPO / name).read_text().splitlines() if "==" in line and not line.startswith("#")}


@pytest.mark.parametrize("module,dist", [("tf2onnx", "tf2onnx"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime")])
def test_pinned_versions_are_installed(module, dist):
    from importlib.metadata import version

    pytest.importorskip(module)
    assert version(dist) == _pins("constraints.txt")[dist] == _pins("requirements.txt")[dist]


def test_protobuf_stays_below_6_and_tensorflow_reads_onnx_side_by_side():
    import google.protobuf
    import onnx
    import tensorflow as tf

    assert int(google.protobuf.__version__.split(".")[0]) < 6
    # both libraries build and parse their protos in one process
    graph = tf.function(lambda x: x + 1.0).get_concrete_function(tf.TensorSpec([2])).graph.as_graph_def()
    assert tf.compat.v1.GraphDef.FromString(graph.SerializeToString()) == graph
    node = onnx.helper.make_node("Add", ["a", "b"], ["c"])
    assert onnx.NodeProto.FromString(node.SerializeToString()) == node
