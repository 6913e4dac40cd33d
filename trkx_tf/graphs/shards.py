"""Padded HDF5 graph shards: the schema, a verifying reader of single shards, and the manifest's reader.

The writer (padding, atomic shard files, the manifest) is :mod:`trkx_tf.graphs.shard_writer`.

One shard holds up to ``graph.graphs_per_shard`` graphs of ONE bucket, each padded to the bucket's budget
(``node_budget`` = Nb nodes, ``edge_budget`` = Eb edges). ``G`` is the number of graphs in the shard, ``A`` the
number of edge features (the vocabulary of :mod:`trkx_tf.graphs.batch`). The full schema is in docs/shards.md;
in short (schema version 2):

=================  =================  ======================================================================
dataset            shape / dtype      meaning
=================  =================  ======================================================================
``nodes``          [G, Nb, F] f4      node features (padded rows 0)
``hit_id``         [G, Nb] i8         TrackML hit id of each node (padded 0)
``senders``        [G, Eb] i4         source node of each edge, local to its graph; padded edges point at
                                      node ``n_node`` (the first padded node) or 0 when the graph has none
``receivers``      [G, Eb] i4         target node, same rules
``edge_labels``    [G, Eb] u1         1 true, 0 fake or padding
``edge_weights``   [G, Eb] f4         loss weight (0 for padding and neutral edges)
``edge_pt``        [G, Eb] f4         pT of a true edge's particle (GeV), else 0
``edges``          [G, Eb, A] f4      edge features (:func:`trkx_tf.graphs.features.edge_features`, padded 0)
``n_node``         [G] i4             real nodes of each graph
``n_edge``         [G] i4             real edges of each graph
``event_id``       [G] i8             event of each graph
``sector``         [G] i4             sector of each graph (-1: whole event)
=================  =================  ======================================================================

Besides, ``graph_sha256`` [G] S64 holds the hex sha256 of each graph's slices of those datasets
(:func:`graph_checksum`), so a reader can verify exactly the graph it reads, when it reads it.

File attributes: ``schema_version``, ``node_budget``, ``edge_budget``, ``n_graphs``, ``n_features``,
``feature_names`` (JSON list), ``n_edge_features``, ``edge_feature_names`` (JSON list), ``split``, ``builder``,
``checksum`` (``sha256:<hex>`` of the datasets, see
:func:`checksum`).

A shard is written under a temporary name in the same folder and renamed into place
(:func:`~trkx_tf.graphs.shard_writer.write_shard`), so a reader never sees a half-written shard and an exception
mid-write leaves none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from trkx_tf.errors import ShardError, first_line
from trkx_tf.graphs.features import EDGE_FEATURES
from trkx_tf.graphs.graph import EventGraph

#: 2: added the ``edges`` dataset (edge features)
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
GRAPH_CHECKSUM = "graph_sha256"

#: what h5py raises on a damaged file (besides OSError: wrong attribute types, broken metadata, failed filters)
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OverflowError, AttributeError)


#: dataset -> (dtype, axis kind): "node" [G, Nb(, F)], "edge" [G, Eb(, A)], "graph" [G]
DATASETS: dict[str, tuple[str, str]] = {
    "nodes": ("float32", "node"),
    "hit_id": ("int64", "node"),
    "senders": ("int32", "edge"),
    "receivers": ("int32", "edge"),
    "edge_labels": ("uint8", "edge"),
    "edge_weights": ("float32", "edge"),
    "edge_pt": ("float32", "edge"),
    "edges": ("float32", "edge"),
    "n_node": ("int32", "graph"),
    "n_edge": ("int32", "graph"),
    "event_id": ("int64", "graph"),
    "sector": ("int32", "graph"),
}


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """What the manifest records of one shard.

    Attributes:
      file: file name, relative to the shards folder.
      split: ``train`` or ``val``.
      bucket: bucket index.
      node_budget, edge_budget: the bucket's budget.
      checksum: ``sha256:<hex>``.
      n_node, n_edge, event_id, sector: per graph, in shard order.
    """

    file: str
    split: str
    bucket: int
    node_budget: int
    edge_budget: int
    checksum: str
    n_node: tuple[int, ...]
    n_edge: tuple[int, ...]
    event_id: tuple[int, ...]
    sector: tuple[int, ...]

    @property
    def n_graphs(self) -> int:
        return len(self.n_node)

    def to_json(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping) -> "ShardInfo":
        return cls(**{f.name: (tuple(int(x) for x in data[f.name]) if f.type.startswith("tuple") else data[f.name])
                      for f in dataclasses.fields(cls)})


def checksum(arrays: Mapping[str, np.ndarray], names: Sequence[str] = DATASETS) -> str:
    """``sha256:<hex>`` over the datasets in ``names`` order: each name, dtype, shape and C-order bytes.

    Args:
      arrays: dataset name -> array, every name of ``names``.
      names: the datasets, in order (default: the graph shards' :data:`DATASETS`).

    Returns:
      The checksum string.
    """
    h = hashlib.sha256()
    for name in names:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{list(a.shape)}|".encode())
        h.update(a.reshape(-1).view(np.uint8))  # the C-order bytes, without a copy
    return "sha256:" + h.hexdigest()


def graph_checksum(graph_arrays: Mapping[str, np.ndarray]) -> bytes:
    """Hex sha256 of one graph's slices (each dataset without the G axis): name, dtype, shape and C-order bytes.

    Args:
      graph_arrays: dataset name -> the graph's slice, every name of :data:`DATASETS`.

    Returns:
      64 ASCII hex digits.
    """
    h = hashlib.sha256()
    for name in DATASETS:
        a = np.ascontiguousarray(graph_arrays[name])
        h.update(f"{name}|{a.dtype.str}|{list(a.shape)}|".encode())
        h.update(a.reshape(-1).view(np.uint8))  # the C-order bytes, without a copy
    return h.hexdigest().encode()


class Shard:
    """One shard opened for reading; checks the schema on open and (optionally) the checksums.

    Args:
      path: the shard file.
      verify: at open, recompute the checksum of every dataset and compare it with the stored one (reads the whole
        shard). Independently, :meth:`graph` verifies each graph it reads against its ``graph_sha256``.
      expected_checksum: also require this checksum (from the manifest), to catch a swapped file.

    Raises:
      ShardError: one line naming the file and what is wrong: not HDF5, other schema version, missing or
        misshapen dataset, checksum mismatch.
    """

    def __init__(self, path: os.PathLike | str, verify: bool = True, expected_checksum: Optional[str] = None):
        import h5py

        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise ShardError(f"{self.path}: shard file not found") from None
        except _H5_ERRORS as exc:
            raise ShardError(f"{self.path}: not a readable HDF5 shard ({first_line(exc)}) "
                             f"(rebuild the shards with trkx-build)") from None
        try:
            self._check(verify, expected_checksum)
        except ShardError:
            self._file.close()
            raise
        except _H5_ERRORS as exc:  # h5py's errors on damaged metadata, attributes of the wrong type or shape
            self._file.close()
            raise self._fail(f"corrupt shard ({exc.__class__.__name__}: {first_line(exc)})") from None
        except BaseException:
            self._file.close()
            raise

    def _fail(self, what: str) -> ShardError:
        """A one-line error naming the file, what is wrong, and what to do."""
        if "trkx-build" not in what:
            what += " (rebuild the shards with trkx-build)"
        return ShardError(f"{self.path}: {what}")

    def _check(self, verify: bool, expected_checksum: Optional[str]) -> None:
        import h5py

        attrs = self._file.attrs
        if "schema_version" not in attrs:
            raise self._fail("no schema_version attribute (not a trkx-tf shard)")
        version = int(attrs["schema_version"])
        if version != SCHEMA_VERSION:
            raise self._fail(f"schema version {version}, this reader reads version {SCHEMA_VERSION} "
                             f"(rebuild the shards with this trkx-build)")
        for key in ("node_budget", "edge_budget", "n_graphs", "n_features", "n_edge_features", "checksum"):
            if key not in attrs:
                raise self._fail(f"missing attribute {key!r}")
        self.node_budget = int(attrs["node_budget"])
        self.edge_budget = int(attrs["edge_budget"])
        self.n_graphs = int(attrs["n_graphs"])
        self.n_features = int(attrs["n_features"])
        self.n_edge_features = int(attrs["n_edge_features"])
        if self.n_edge_features != len(EDGE_FEATURES):
            raise self._fail(f"{self.n_edge_features} edge features, this reader knows {len(EDGE_FEATURES)}")
        self.checksum = str(attrs["checksum"])
        self.feature_names = tuple(json.loads(attrs.get("feature_names", "[]")))
        self.split = str(attrs.get("split", ""))
        self.builder = str(attrs.get("builder", ""))
        g, nb, eb, f = self.n_graphs, self.node_budget, self.edge_budget, self.n_features
        shapes = {"node": (g, nb), "edge": (g, eb), "graph": (g,)}
        for name, (dtype, kind) in DATASETS.items():
            if name not in self._file:
                raise self._fail(f"missing dataset {name!r}")
            ds = self._file[name]
            if not isinstance(ds, h5py.Dataset):
                raise self._fail(f"{name!r} is not a dataset")
            want = (g, nb, f) if name == "nodes" else (g, eb, self.n_edge_features) if name == "edges" \
                else shapes[kind]
            if ds.shape != want or ds.dtype != np.dtype(dtype):
                raise self._fail(f"dataset {name!r} is {ds.dtype}{list(ds.shape)}, expected {dtype}{list(want)}")
        if expected_checksum is not None and expected_checksum != self.checksum:
            raise self._fail(f"checksum {self.checksum[:19]}… differs from the manifest's {expected_checksum[:19]}…")
        if verify:
            actual = checksum(self.read_all())
            if actual != self.checksum:
                raise self._fail(f"checksum mismatch (stored {self.checksum[:19]}…, computed {actual[:19]}…): "
                                 f"the shard is corrupt")
        sums = self._file.get(GRAPH_CHECKSUM)
        if not isinstance(sums, h5py.Dataset) or sums.shape != (g,) or sums.dtype != np.dtype("S64"):
            raise self._fail(f"missing or misshapen dataset {GRAPH_CHECKSUM!r} (expected S64[{g}])")
        self._graph_sums = self._file[GRAPH_CHECKSUM][()]
        counts_n = self._file["n_node"][()]
        counts_e = self._file["n_edge"][()]
        if g and (counts_n.min() < 0 or counts_n.max() > nb or counts_e.min() < 0 or counts_e.max() > eb):
            raise self._fail("n_node/n_edge exceed the bucket budget")

    @property
    def compression(self) -> Optional[str]:
        """The compression filter of the datasets (``"lzf"``, ``"gzip"`` or None)."""
        return self._file["nodes"].compression

    def read_all(self) -> dict[str, np.ndarray]:
        """Every dataset, whole."""
        try:
            return {name: self._file[name][()] for name in DATASETS}
        except _H5_ERRORS as exc:
            raise self._fail(f"cannot read datasets ({first_line(exc)}): the shard is corrupt") from None

    def graph(self, i: int, verify: bool = True) -> dict[str, np.ndarray]:
        """The padded arrays of graph i (datasets without the leading G axis; per-graph ones as 0-d arrays).

        Args:
          i: graph index in the shard.
          verify: check the graph's bytes against its stored ``graph_sha256``.

        Raises:
          ShardError: i is out of range, the data cannot be read, or (verify) the graph's checksum differs.
        """
        if not 0 <= i < self.n_graphs:
            raise ShardError(f"{self.path}: graph {i} out of range [0, {self.n_graphs})")
        try:
            out = {name: self._file[name][i] for name in DATASETS}
        except _H5_ERRORS as exc:
            raise self._fail(f"cannot read graph {i} ({first_line(exc)}): the shard is corrupt") from None
        if verify:
            actual = graph_checksum(out)
            if actual != self._graph_sums[i]:
                raise self._fail(f"graph {i} (event {int(out['event_id'])}): checksum mismatch (stored "
                                 f"{self._graph_sums[i][:12].decode(errors='replace')}…, computed "
                                 f"{actual[:12].decode()}…): the shard is corrupt")
        return out

    def unpadded(self, i: int) -> EventGraph:
        """Graph i without its padding, as an :class:`EventGraph`."""
        d = self.graph(i)
        n, e = int(d["n_node"]), int(d["n_edge"])
        return EventGraph(
            d["nodes"][:n], d["senders"][:e], d["receivers"][:e], d["edge_labels"][:e], d["edge_weights"][:e],
            d["edge_pt"][:e], d["hit_id"][:n], int(d["event_id"]), int(d["sector"]),
        )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Shard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------- manifest
def read_manifest(folder: os.PathLike | str) -> dict:
    """The manifest of a shards folder, its structure checked.

    Raises:
      ShardError: no manifest, not JSON, another schema version, no shard list, or an entry of the wrong type
        (every shard entry must have the :class:`ShardInfo` fields, a plain file name and per-graph lists of equal
        length).
    """
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ShardError(f"{path}: no manifest (is {folder} a trkx-build output folder?)") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable manifest ({exc.__class__.__name__}) "
                         f"(rebuild the shards with trkx-build)") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ShardError(f"{path}: schema version {version}, this reader reads version {SCHEMA_VERSION} "
                         f"(rebuild the shards with this trkx-build)")
    for key in ("shards", "n_features"):
        if key not in data:
            raise ShardError(f"{path}: manifest has no {key!r}")
    problem = _manifest_problem(data)
    if problem:
        raise ShardError(f"{path}: malformed manifest: {problem} (rebuild the shards with trkx-build)")
    return data


def _is_int(x, low: int = 0) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _manifest_problem(data: dict) -> Optional[str]:
    """What is structurally wrong with a manifest, or None."""
    if not _is_int(data["n_features"]):
        return "'n_features' is not a non-negative integer"
    names = data.get("feature_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return "'feature_names' is not a list of strings"
    if not isinstance(data["shards"], list):
        return "'shards' is not a list"
    per_graph = ("n_node", "n_edge", "event_id", "sector")
    for k, entry in enumerate(data["shards"]):
        where = f"shards[{k}]"
        if not isinstance(entry, dict):
            return f"{where} is not an object"
        missing = [f.name for f in dataclasses.fields(ShardInfo) if f.name not in entry]
        if missing:
            return f"{where} has no {missing[0]!r}"
        name = entry["file"]
        if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name:
            return f"{where}.file {name!r} is not a file name in the shards folder"
        if not isinstance(entry["split"], str) or not isinstance(entry["checksum"], str):
            return f"{where}: 'split' and 'checksum' must be strings"
        if not _is_int(entry["bucket"]) or not _is_int(entry["node_budget"], 1) \
                or not _is_int(entry["edge_budget"], 1):
            return f"{where}: 'bucket', 'node_budget', 'edge_budget' must be integers (budgets >= 1)"
        lists = [entry[key] for key in per_graph]
        if not all(isinstance(v, list) and all(_is_int(x, -(2**63)) for x in v) for v in lists):
            return f"{where}: {', '.join(per_graph)} must be lists of integers"
        if len({len(v) for v in lists}) != 1:
            return f"{where}: {', '.join(per_graph)} differ in length"
    return None
