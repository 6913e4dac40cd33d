"""The rank-sharded shard reader: padded batches of one bucket per step, the same step count on every rank.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`. A batch of bucket b with budget (Nb, Eb) holds
G = ``graphs_per_step`` graphs, so N = G·Nb nodes and E = G·Eb edges; :attr:`ShardReader.bucket_shapes` lists
the shapes, one per bucket, so a step function can be compiled per bucket.

How an epoch is dealt (:func:`plan_epoch`), identically on every rank and without communication (everything
comes from the manifest, the seed and the epoch number):

1. The graphs of each bucket are shuffled (``numpy.random.default_rng([seed, epoch])``; in manifest order when
   ``shuffle`` is off) and cut into *global steps* of ``size × G`` graphs.
2. The remainder: the last global step of a bucket is filled up with *empty filler graphs* (every mask, label,
   weight and count 0, so they add nothing to a loss, gradient or metric; they only cost the padded compute).
   So every real graph is read exactly once per epoch, and a bucket with n graphs takes ceil(n / (size·G))
   steps on every rank.
3. Within a global step the real graphs, sorted by edge count, are dealt round-robin to the ranks, so each rank
   gets a similar amount of real work and the fillers spread out; all ranks run the same bucket at the same step.
4. The global steps of all buckets are shuffled together (kept in bucket order without ``shuffle``).

Every rank therefore runs ``steps_per_epoch = Σ_b ceil(n_b / (size·G))`` steps.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import queue
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from trkx_tf.errors import ShardError
from trkx_tf.graphs.batch import batch_signature
from trkx_tf.graphs.features import EDGE_FEATURES
from trkx_tf.graphs.shards import Shard, ShardInfo, read_manifest

FILLER = -1


@dataclasses.dataclass(frozen=True)
class BucketShape:
    """The static shape of the batches of one bucket.

    Attributes:
      bucket: bucket index.
      n_nodes: N = G · node budget.
      n_edges: E = G · edge budget.
      n_features: F.
      n_graphs: G.
    """

    bucket: int
    n_nodes: int
    n_edges: int
    n_features: int
    n_graphs: int

    def signature(self) -> dict:
        """The ``tf.TensorSpec`` dict of this bucket's batches, ``edges`` included (imports TensorFlow)."""
        return _signature(self.n_nodes, self.n_edges, self.n_features, self.n_graphs)


@dataclasses.dataclass(frozen=True)
class Step:
    """One global step: a bucket and the graphs of every rank.

    Attributes:
      bucket: bucket index.
      graphs: [size, G] int64 graph indices (into the reader's graph list), ``FILLER`` (-1) for an empty filler.
    """

    bucket: int
    graphs: np.ndarray


def plan_epoch(
    bucket: np.ndarray,
    n_edge: np.ndarray,
    *,
    size: int,
    graphs_per_step: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
) -> list[Step]:
    """Deals one epoch's graphs to ranks and steps (see the module docstring).

    Args:
      bucket: [n_graphs] bucket of each graph.
      n_edge: [n_graphs] real edges of each graph (for balancing).
      size: number of ranks.
      graphs_per_step: G, graphs per rank and step.
      seed: the run's seed.
      epoch: the epoch number (a new shuffle each epoch).
      shuffle: shuffle graphs and steps; off: manifest order, buckets in order.

    Returns:
      The global steps, the same list on every rank.

    Raises:
      ShardError: size or graphs_per_step < 1.
    """
    if size < 1 or graphs_per_step < 1:
        raise ShardError(f"reader: need size >= 1 and graphs_per_step >= 1 (got {size}, {graphs_per_step})")
    bucket = np.asarray(bucket, np.int64)
    n_edge = np.asarray(n_edge, np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)])
    per_step = size * graphs_per_step
    steps = []
    for b in np.unique(bucket):
        members = np.flatnonzero(bucket == b)
        if shuffle:
            members = rng.permutation(members)
        n_steps = -(-len(members) // per_step)
        slots = np.full(n_steps * per_step, FILLER, np.int64)
        slots[: len(members)] = members
        for s in range(n_steps):
            chunk = slots[s * per_step:(s + 1) * per_step]
            real = chunk[chunk != FILLER]
            real = real[np.argsort(-n_edge[real], kind="stable")]
            chunk = np.concatenate([real, np.full(per_step - len(real), FILLER, np.int64)])
            # slot k goes to rank k % size: rank r gets slots r, r + size, ...
            steps.append(Step(int(b), chunk.reshape(graphs_per_step, size).T.copy()))
    if shuffle:
        steps = [steps[i] for i in rng.permutation(len(steps))]
    return steps


def assemble_batch(graphs: Sequence[Optional[dict]], node_budget: int, edge_budget: int, n_features: int,
                   extras: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Concatenates padded graphs of one bucket into a batch dict of :mod:`trkx_tf.graphs.batch`.

    Args:
      graphs: G per-graph dicts as :meth:`Shard.graph` returns them, or None for an empty filler.
      node_budget: Nb.
      edge_budget: Eb.
      n_features: F.
      extras: more per-graph datasets to pass through, concatenated (``hit_id``, ``edge_pt``: [N] / [E];
        ``event_id``, ``sector``: [G]).

    Returns:
      The batch: every key of ``BATCH_KEYS``, ``edges`` [E, D] float32 (the edge features of the shards; 0 for
      padding), + extras; N = G·Nb, E = G·Eb.
    """
    g = len(graphs)
    n_tot, e_tot = g * node_budget, g * edge_budget
    nodes = np.zeros((n_tot, n_features), np.float32)
    senders = np.zeros(e_tot, np.int32)
    receivers = np.zeros(e_tot, np.int32)
    labels = np.zeros(e_tot, np.float32)
    weights = np.zeros(e_tot, np.float32)
    edges = np.zeros((e_tot, len(EDGE_FEATURES)), np.float32)
    node_mask = np.zeros(n_tot, np.float32)
    edge_mask = np.zeros(e_tot, np.float32)
    n_node = np.zeros(g, np.int32)
    n_edge = np.zeros(g, np.int32)
    out_extra = {k: [] for k in extras}
    for i, d in enumerate(graphs):
        if d is None:
            for k in extras:
                out_extra[k].append(_empty_extra(k, node_budget, edge_budget))
            continue
        n, e = int(d["n_node"]), int(d["n_edge"])
        n_node[i], n_edge[i] = n, e
        n0, e0 = i * node_budget, i * edge_budget
        nodes[n0:n0 + n] = d["nodes"][:n]
        np.add(d["senders"][:e], n0, out=senders[e0:e0 + e])
        np.add(d["receivers"][:e], n0, out=receivers[e0:e0 + e])
        labels[e0:e0 + e] = d["edge_labels"][:e]
        weights[e0:e0 + e] = d["edge_weights"][:e]
        edges[e0:e0 + e] = d["edges"][:e]
        node_mask[n0:n0 + n] = 1.0
        edge_mask[e0:e0 + e] = 1.0
        for k in extras:
            out_extra[k].append(np.atleast_1d(d[k]))
    # padded edges point at the batch's first padded node (0 when there is none)
    pad_node = next((i * node_budget + int(n_node[i]) for i in range(g) if n_node[i] < node_budget), 0)
    for i in range(g):
        e0 = i * edge_budget
        senders[e0 + n_edge[i]:e0 + edge_budget] = pad_node
        receivers[e0 + n_edge[i]:e0 + edge_budget] = pad_node
    batch = {
        "nodes": nodes, "senders": senders, "receivers": receivers, "node_mask": node_mask, "edge_mask": edge_mask,
        "edge_labels": labels, "edge_weights": weights, "n_node": n_node, "n_edge": n_edge, "edges": edges,
    }
    for k in extras:
        batch[k] = np.concatenate(out_extra[k]) if out_extra[k] else np.zeros(0)
    return batch


def _signature(n_nodes, n_edges, n_features: int, n_graphs: int) -> dict:
    """:func:`~trkx_tf.graphs.batch.batch_signature` plus the ``edges`` [E, D] features the reader adds."""
    import tensorflow as tf

    spec = batch_signature(n_nodes, n_edges, n_features, n_graphs)
    spec["edges"] = tf.TensorSpec([n_edges, len(EDGE_FEATURES)], tf.float32, name="edges")
    return spec


def _empty_extra(name: str, node_budget: int, edge_budget: int) -> np.ndarray:
    if name == "hit_id":
        return np.zeros(node_budget, np.int64)
    if name == "edge_pt":
        return np.zeros(edge_budget, np.float32)
    if name == "event_id":
        return np.full(1, -1, np.int64)
    if name == "sector":
        return np.full(1, -1, np.int32)
    raise ShardError(f"reader: unknown extra dataset {name!r} (hit_id, edge_pt, event_id, sector)")


class PlannedBatches:
    """The batch side shared by the readers: a subclass gives ``plan(epoch)`` (the global steps), ``read_graph``,
    ``budgets``, ``rank``, ``n_features``, ``extras``, ``steps_per_epoch`` and ``close``; this turns them into
    this rank's batches, read ahead by a background thread (the trainer's ``BatchSource`` protocol)."""

    def batch(self, step: Step) -> dict[str, np.ndarray]:
        """This rank's batch of a global step."""
        nb, eb = self.budgets[step.bucket]
        graphs = [None if i == FILLER else self.read_graph(int(i)) for i in step.graphs[self.rank]]
        return assemble_batch(graphs, nb, eb, self.n_features, self.extras)

    def epoch(self, epoch: int, prefetch: int = 2, start: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """This rank's batches of one epoch, in order.

        Args:
          epoch: the epoch number (sets the shuffle).
          prefetch: batches read ahead by a background thread (0: read in the caller's thread).
          start: skip the first ``start`` steps (resuming inside an epoch).

        Yields:
          ``steps_per_epoch - start`` batch dicts (numpy) of :mod:`trkx_tf.graphs.batch`.
        """
        steps = self.plan(epoch)[max(0, int(start)):]
        if prefetch <= 0:
            for step in steps:
                yield self.batch(step)
            return
        yield from _prefetched((self.batch(s) for s in steps), prefetch)

    # the trainer's BatchSource protocol (trkx_tf.train.loop)
    def num_batches(self, epoch: int) -> int:
        """Batches this rank has in ``epoch`` (= :attr:`steps_per_epoch`, the same on every rank)."""
        return self.steps_per_epoch

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """This rank's batches of ``epoch`` from step ``start``, prefetched (see :meth:`epoch`)."""
        return self.epoch(epoch, prefetch=2, start=start)

    def __enter__(self) -> "PlannedBatches":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ShardReader(PlannedBatches):
    """Reads the shards of one split of a trkx-build folder as padded batches, dealt across ranks.

    Args:
      folder: the trkx-build output folder (with ``manifest.json``).
      split: ``"train"``, ``"val"``, or None for every shard.
      rank: this process's rank.
      size: the number of ranks.
      graphs_per_step: G, graphs per batch on each rank.
      seed: the shuffle seed (the same on every rank).
      shuffle: shuffle each epoch (training); off for validation and inference.
      verify: check every graph read against its checksum (``graph_sha256``; the schema version, dataset shapes and
        the shard's checksum against the manifest are always checked when a shard is opened).
      extras: per-graph datasets to add to each batch besides ``BATCH_KEYS`` (``hit_id``, ``edge_pt``,
        ``event_id``, ``sector``).
      max_open: shard files kept open at once.

    Raises:
      ShardError: no or bad manifest, rank outside [0, size), a shard of the split that is missing, unreadable,
        of another schema version or differs from the manifest (all checked here, before any batch), or (while
        reading) a graph whose data is corrupt.
    """

    def __init__(
        self,
        folder: os.PathLike | str,
        split: Optional[str] = "train",
        *,
        rank: int = 0,
        size: int = 1,
        graphs_per_step: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        verify: bool = True,
        extras: Sequence[str] = (),
        max_open: int = 32,
    ):
        if not 0 <= rank < size:
            raise ShardError(f"reader: rank {rank} is outside [0, {size})")
        if graphs_per_step < 1:
            raise ShardError(f"reader: graphs_per_step must be >= 1, got {graphs_per_step}")
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.split = split
        self.rank, self.size = int(rank), int(size)
        self.graphs_per_step = int(graphs_per_step)
        self.seed, self.shuffle, self.verify = int(seed), bool(shuffle), bool(verify)
        self.extras = tuple(extras)
        for k in self.extras:
            _empty_extra(k, 1, 1)
        self.n_features = int(self.manifest["n_features"])
        self.feature_names = tuple(self.manifest.get("feature_names", ()))
        try:
            self.shards = [ShardInfo.from_json(s) for s in self.manifest["shards"]
                           if split is None or s["split"] == split]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ShardError(f"{self.folder / 'manifest.json'}: malformed shard entry ({exc.__class__.__name__}: "
                             f"{exc}) (rebuild the shards with trkx-build)") from None
        budgets = {}
        refs, buckets, n_node, n_edge = [], [], [], []
        for si, info in enumerate(self.shards):
            if budgets.setdefault(info.bucket, (info.node_budget, info.edge_budget)) \
                    != (info.node_budget, info.edge_budget):
                raise ShardError(f"{self.folder / 'manifest.json'}: bucket {info.bucket} has two budgets "
                                 f"{budgets[info.bucket]} and {(info.node_budget, info.edge_budget)} "
                                 f"(rebuild the shards with trkx-build)")
            for gi in range(info.n_graphs):
                refs.append((si, gi))
                buckets.append(info.bucket)
                n_node.append(info.n_node[gi])
                n_edge.append(info.n_edge[gi])
        self._refs = refs
        self.graph_bucket = np.asarray(buckets, np.int64)
        self.graph_n_node = np.asarray(n_node, np.int64)
        self.graph_n_edge = np.asarray(n_edge, np.int64)
        self.budgets = dict(sorted(budgets.items()))
        self._open: collections.OrderedDict[int, Shard] = collections.OrderedDict()
        self._max_open = max(1, int(max_open))
        self._lock = threading.Lock()
        # fail before any training starts on a missing, truncated, swapped or other-version shard (header checks
        # only; each graph's data is verified when it is read)
        try:
            for si in range(len(self.shards)):
                self._shard(si)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------------ shape
    @property
    def n_graphs(self) -> int:
        """Real graphs in this split."""
        return len(self._refs)

    @property
    def bucket_shapes(self) -> list[BucketShape]:
        """One :class:`BucketShape` per bucket that has graphs in this split, by bucket index."""
        g = self.graphs_per_step
        return [BucketShape(b, g * nb, g * eb, self.n_features, g) for b, (nb, eb) in self.budgets.items()]

    @property
    def steps_per_epoch(self) -> int:
        """Steps each rank runs per epoch (the same on every rank)."""
        per_step = self.size * self.graphs_per_step
        return int(sum(-(-int(np.sum(self.graph_bucket == b)) // per_step) for b in self.budgets))

    def plan(self, epoch: int) -> list[Step]:
        """The epoch's global steps (see :func:`plan_epoch`)."""
        return plan_epoch(self.graph_bucket, self.graph_n_edge, size=self.size,
                          graphs_per_step=self.graphs_per_step, seed=self.seed, epoch=epoch, shuffle=self.shuffle)

    # ------------------------------------------------------------------------------------------------ reading
    def _shard(self, si: int) -> Shard:
        with self._lock:
            shard = self._open.get(si)
            if shard is not None:
                self._open.move_to_end(si)
                return shard
            info = self.shards[si]
            shard = Shard(self.folder / info.file, verify=False, expected_checksum=info.checksum)
            if (shard.node_budget, shard.edge_budget, shard.n_graphs) \
                    != (info.node_budget, info.edge_budget, info.n_graphs) or shard.n_features != self.n_features:
                shard.close()
                raise ShardError(f"{shard.path}: budget, graph count or feature count differs from the manifest "
                                 f"(rebuild the shards with trkx-build)")
            self._open[si] = shard
            while len(self._open) > self._max_open:
                _, old = self._open.popitem(last=False)
                old.close()
            return shard

    def read_graph(self, index: int) -> dict[str, np.ndarray]:
        """The padded arrays of one graph (index into this split's graph list)."""
        si, gi = self._refs[index]
        return self._shard(si).graph(gi, verify=self.verify)

    def close(self) -> None:
        with self._lock:
            for shard in self._open.values():
                shard.close()
            self._open.clear()



_DONE = object()


def _prefetched(items: Iterator, depth: int) -> Iterator:
    """Runs an iterator in a background thread, ``depth`` items ahead; re-raises its exceptions."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=work, daemon=True, name="trkx-shard-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def to_tf_dataset(reader: ShardReader, epoch: int):
    """This rank's batches of one epoch as a ``tf.data.Dataset`` of the batch dicts, prefetched.

    The element spec has unknown N and E (they differ per bucket); every element has its bucket's static shape,
    so a ``tf.function`` without an input signature traces once per bucket (see :attr:`ShardReader.bucket_shapes`).

    Args:
      reader: the reader.
      epoch: the epoch.

    Returns:
      A ``tf.data.Dataset`` yielding ``steps_per_epoch`` dicts of tensors.
    """
    import tensorflow as tf

    f = reader.n_features
    spec = _signature(None, None, f, reader.graphs_per_step)
    return tf.data.Dataset.from_generator(lambda: reader.epoch(epoch, prefetch=0),
                                          output_signature=spec).prefetch(2)
