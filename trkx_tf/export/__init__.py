"""Trained edge classifiers for C++ tracking frameworks: TensorFlow SavedModel and ONNX (``trkx-export``).

==========================================  ==================================================================
:mod:`trkx_tf.export.serving`               the serving signature (nodes, edges, senders, receivers -> scores),
                                            traced with the XLA kernels, never the native CPU ops
:mod:`trkx_tf.export.onnx_graph`            the serving graph through tf2onnx, scatters as ScatterND(add),
                                            checked to hold standard ONNX operators only
:mod:`trkx_tf.export.writer`                :func:`~trkx_tf.export.writer.export_models`: checkpoints -> folders
                                            and the ``export.json`` manifest
==========================================  ==================================================================

How a C++ framework feeds the exported models: docs/export.md. Nothing is imported here, so importing the
package costs nothing (TensorFlow, tf2onnx and ONNX Runtime load when a function runs).
"""
