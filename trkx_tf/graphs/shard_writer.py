"""Writing padded HDF5 graph shards (the schema is :mod:`trkx_tf.graphs.shards`): graphs padded to a bucket's
budget, each shard written atomically, a complete shard of an interrupted build recognised, and the manifest.

A shard is written under a temporary name in the same folder and renamed into place, so a reader never sees a
half-written shard and an exception mid-write leaves none; the manifest, written last, is a build's commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from trkx_tf.config import GraphConfig, schema_default
from trkx_tf.errors import ShardError
from trkx_tf.files import atomic_path, write_text_atomic
from trkx_tf.graphs.features import EDGE_FEATURES, edge_features
from trkx_tf.graphs.graph import EventGraph
from trkx_tf.graphs.shards import (DATASETS, GRAPH_CHECKSUM, MANIFEST, SCHEMA_VERSION, Shard, ShardInfo, checksum,
                                   graph_checksum)

#: ``(graph.r_scale, graph.z_scale)``'s defaults: the node features' scales, for the edge features
_SCALES = (schema_default(GraphConfig, "r_scale"), schema_default(GraphConfig, "z_scale"))
_COMPRESSION = schema_default(GraphConfig, "compression")


def pad_graphs(graphs: Sequence[EventGraph], node_budget: int, edge_budget: int,
               scales: tuple[float, float] = _SCALES) -> dict[str, np.ndarray]:
    """The shard datasets of graphs padded to one budget, the edge features computed from the node features.

    Args:
      graphs: G graphs, each with n_node <= node_budget and n_edge <= edge_budget, all with the same F (>= 3:
        the first three node columns are ``r, phi, z``).
      node_budget: Nb.
      edge_budget: Eb.
      scales: ``(graph.r_scale, graph.z_scale)`` of the node features, for the edge features.

    Returns:
      Dataset name -> array, as in :data:`DATASETS`.

    Raises:
      ShardError: a graph exceeds the budget, or the graphs differ in F.
    """
    if not graphs:
        raise ShardError("pad_graphs: no graphs to write")
    n_features = graphs[0].n_features
    g = len(graphs)
    out = {
        "nodes": np.zeros((g, node_budget, n_features), np.float32),
        "hit_id": np.zeros((g, node_budget), np.int64),
        "senders": np.zeros((g, edge_budget), np.int32),
        "receivers": np.zeros((g, edge_budget), np.int32),
        "edge_labels": np.zeros((g, edge_budget), np.uint8),
        "edge_weights": np.zeros((g, edge_budget), np.float32),
        "edge_pt": np.zeros((g, edge_budget), np.float32),
        "edges": np.zeros((g, edge_budget, len(EDGE_FEATURES)), np.float32),
        "n_node": np.zeros(g, np.int32),
        "n_edge": np.zeros(g, np.int32),
        "event_id": np.zeros(g, np.int64),
        "sector": np.zeros(g, np.int32),
    }
    for i, graph in enumerate(graphs):
        n, e = graph.n_node, graph.n_edge
        if n > node_budget or e > edge_budget:
            raise ShardError(f"event {graph.event_id} sector {graph.sector}: {n} nodes / {e} edges exceed the "
                             f"bucket budget {node_budget} / {edge_budget}")
        if graph.n_features != n_features:
            raise ShardError(f"event {graph.event_id}: {graph.n_features} node features, others have {n_features}")
        pad_node = n if n < node_budget else 0
        out["nodes"][i, :n] = graph.nodes
        out["hit_id"][i, :n] = graph.hit_id
        out["senders"][i, :e] = graph.senders
        out["senders"][i, e:] = pad_node
        out["receivers"][i, :e] = graph.receivers
        out["receivers"][i, e:] = pad_node
        out["edge_labels"][i, :e] = graph.edge_labels
        out["edge_weights"][i, :e] = graph.edge_weights
        out["edge_pt"][i, :e] = graph.edge_pt
        out["edges"][i, :e] = edge_features(graph.nodes, graph.senders, graph.receivers, *scales)
        out["n_node"][i] = n
        out["n_edge"][i] = e
        out["event_id"][i] = graph.event_id
        out["sector"][i] = graph.sector
    return out


def write_shard(
    path: os.PathLike | str,
    graphs: Sequence[EventGraph],
    node_budget: int,
    edge_budget: int,
    *,
    split: str = "train",
    bucket: int = 0,
    feature_names: Sequence[str] = (),
    builder: str = "",
    compression: Optional[str] = _COMPRESSION,
    scales: tuple[float, float] = _SCALES,
) -> ShardInfo:
    """Writes one shard atomically.

    Args:
      path: the shard's final path (``.h5``).
      graphs: the G graphs of the shard, in order.
      node_budget: Nb.
      edge_budget: Eb.
      split: recorded in the attributes and the returned info.
      bucket: recorded in the returned info.
      feature_names: F names of the node features.
      builder: the candidate-edge builder's name.
      compression: ``"lzf"``, ``"gzip"`` or None/``"none"``.
      scales: ``(graph.r_scale, graph.z_scale)``, for the edge features (:func:`pad_graphs`).

    Returns:
      The shard's :class:`ShardInfo`.

    Raises:
      ShardError: the graphs do not fit the budget. Any exception leaves no file at ``path`` nor a temporary one.
    """
    import h5py

    path = Path(path)
    arrays = pad_graphs(graphs, node_budget, edge_budget, scales)
    digest = checksum(arrays)
    comp = None if compression in (None, "none") else compression
    with atomic_path(path) as tmp:  # a fresh O_EXCL temporary beside path, renamed on success, removed on error
        with h5py.File(tmp, "w", track_order=True) as f:
            for name, (dtype, kind) in DATASETS.items():
                a = arrays[name]
                chunks = (1,) + a.shape[1:] if kind != "graph" and a.size else None
                f.create_dataset(name, data=a, dtype=dtype, chunks=chunks,
                                 compression=comp if chunks else None, track_times=False)
            per_graph = [graph_checksum({k: v[i] for k, v in arrays.items()}) for i in range(len(graphs))]
            f.create_dataset(GRAPH_CHECKSUM, data=np.array(per_graph, dtype="S64"), track_times=False)
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["node_budget"] = int(node_budget)
            f.attrs["edge_budget"] = int(edge_budget)
            f.attrs["n_graphs"] = len(graphs)
            f.attrs["n_features"] = int(arrays["nodes"].shape[2])
            f.attrs["feature_names"] = json.dumps(list(feature_names))
            f.attrs["n_edge_features"] = len(EDGE_FEATURES)
            f.attrs["edge_feature_names"] = json.dumps(list(EDGE_FEATURES))
            f.attrs["split"] = split
            f.attrs["builder"] = builder
            f.attrs["checksum"] = digest
    return _shard_info(path, graphs, node_budget, edge_budget, split, bucket, digest)


def _shard_info(path: Path, graphs: Sequence[EventGraph], node_budget: int, edge_budget: int, split: str,
                bucket: int, digest: str) -> ShardInfo:
    return ShardInfo(
        path.name, split, int(bucket), int(node_budget), int(edge_budget), digest,
        tuple(int(g.n_node) for g in graphs), tuple(int(g.n_edge) for g in graphs),
        tuple(int(g.event_id) for g in graphs), tuple(int(g.sector) for g in graphs),
    )


def existing_shard(
    path: os.PathLike | str,
    graphs: Sequence[EventGraph],
    node_budget: int,
    edge_budget: int,
    *,
    split: str = "train",
    bucket: int = 0,
    feature_names: Sequence[str] = (),
    builder: str = "",
    compression: Optional[str] = _COMPRESSION,
    scales: tuple[float, float] = _SCALES,
) -> Optional[ShardInfo]:
    """The info of the shard already at ``path`` when it is exactly what :func:`write_shard` would write there.

    Used to resume an interrupted build: the file must open as a shard of this schema, hold the same graphs (its
    datasets' checksum is recomputed and compared with these graphs' checksum), and have the same split, feature
    names, builder and compression. Anything else (no file, a corrupt or different one) gives None: rewrite it.

    Args:
      path, graphs, node_budget, edge_budget, split, bucket, feature_names, builder, compression, scales: as for
        :func:`write_shard`.

    Returns:
      The :class:`ShardInfo` write_shard would return, or None.

    Raises:
      ShardError: the graphs do not fit the budget.
    """
    path = Path(path)
    if not path.is_file():
        return None
    digest = checksum(pad_graphs(graphs, node_budget, edge_budget, scales))
    comp = None if compression in (None, "none") else compression
    try:
        with Shard(path, verify=True, expected_checksum=digest) as shard:
            same = (shard.split == split and shard.feature_names == tuple(feature_names)
                    and shard.builder == builder and shard.compression == comp)
    except ShardError:
        return None
    return _shard_info(path, graphs, node_budget, edge_budget, split, bucket, digest) if same else None


def write_manifest(folder: os.PathLike | str, shards: Sequence[ShardInfo], feature_names: Sequence[str],
                   **fields) -> Path:
    """Writes ``manifest.json`` of a shards folder atomically.

    Args:
      folder: the shards folder.
      shards: every shard of the folder.
      feature_names: the F node feature names.
      **fields: more top-level entries (JSON-serialisable): builder, splits, buckets, padding, metrics, ...

    Returns:
      The manifest's path.
    """
    path = Path(folder) / MANIFEST
    data = {"schema_version": SCHEMA_VERSION, "feature_names": list(feature_names),
            "n_features": len(feature_names), "edge_feature_names": list(EDGE_FEATURES), **fields,
            "shards": [s.to_json() for s in shards]}
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")  # the build's commit: whole or not at all
    return path
