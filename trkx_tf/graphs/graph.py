"""One unpadded graph (an event, or a sector of one) as trkx-build makes it and a shard stores it.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch` (``n_node``, ``n_edge``, ``F``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from trkx_tf.errors import DataError

WHOLE_EVENT = -1  # the ``sector`` of a graph that is a whole event


@dataclasses.dataclass(frozen=True)
class EventGraph:
    """The graph of one event (or one sector of it), unpadded.

    Attributes:
      nodes: [n_node, F] float32 node features.
      senders: [n_edge] int32 index of each edge's source node.
      receivers: [n_edge] int32 index of each edge's target node.
      edge_labels: [n_edge] uint8, 1 for true edges.
      edge_weights: [n_edge] float32 loss weight (0: neutral).
      edge_pt: [n_edge] float32 pT of a true edge's particle (GeV), 0 for fake edges.
      hit_id: [n_node] int64 TrackML hit id of each node.
      event_id: the event.
      sector: the sector index, or ``WHOLE_EVENT`` (-1).
    """

    nodes: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    edge_labels: np.ndarray
    edge_weights: np.ndarray
    edge_pt: np.ndarray
    hit_id: np.ndarray
    event_id: int
    sector: int = WHOLE_EVENT

    @property
    def n_node(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def n_edge(self) -> int:
        return int(self.senders.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.nodes.shape[1])

    def validate(self) -> "EventGraph":
        """Checks shapes, dtypes and index ranges; returns self.

        Raises:
          DataError: naming the first field that is wrong.
        """
        n, e = self.n_node, self.n_edge
        where = f"graph of event {self.event_id} sector {self.sector}"
        expect = {
            "nodes": (np.float32, (n, self.nodes.shape[1] if self.nodes.ndim == 2 else -1)),
            "senders": (np.int32, (e,)), "receivers": (np.int32, (e,)),
            "edge_labels": (np.uint8, (e,)), "edge_weights": (np.float32, (e,)), "edge_pt": (np.float32, (e,)),
            "hit_id": (np.int64, (n,)),
        }
        for name, (dtype, shape) in expect.items():
            value = getattr(self, name)
            if value.dtype != dtype or value.shape != shape:
                raise DataError(f"{where}: {name} has {value.dtype}{list(value.shape)}, "
                                f"expected {np.dtype(dtype)}{list(shape)}")
        for name in ("senders", "receivers"):
            value = getattr(self, name)
            if e and (value.min() < 0 or value.max() >= n):
                raise DataError(f"{where}: {name} outside [0, {n})")
        if not np.all(np.isfinite(self.nodes)) or not np.all(np.isfinite(self.edge_weights)):
            raise DataError(f"{where}: nodes or edge_weights are not finite")
        return self

    def subgraph(self, node_index: np.ndarray, edge_index: np.ndarray, edge_weights: np.ndarray,
                 sector: int) -> "EventGraph":
        """The graph restricted to some nodes and edges (every kept edge's ends must be kept nodes).

        Args:
          node_index: [n_node'] int indices of the kept nodes, in their new order.
          edge_index: [n_edge'] int indices of the kept edges.
          edge_weights: [n_edge'] float32 weights of the kept edges.
          sector: the new graph's sector.

        Returns:
          The new :class:`EventGraph`.
        """
        remap = np.full(self.n_node, -1, np.int64)
        remap[node_index] = np.arange(len(node_index))
        s = remap[self.senders[edge_index]]
        r = remap[self.receivers[edge_index]]
        if np.any(s < 0) or np.any(r < 0):
            raise DataError(f"event {self.event_id} sector {sector}: an edge's end is not a node of the sector")
        return EventGraph(
            self.nodes[node_index], s.astype(np.int32), r.astype(np.int32), self.edge_labels[edge_index],
            np.asarray(edge_weights, np.float32), self.edge_pt[edge_index], self.hit_id[node_index],
            self.event_id, sector,
        )
