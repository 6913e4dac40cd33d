"""The rank-sharded shard reader: padded batches of one bucket per step, the same step count on every rank.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`. :attr:`ShardReader.bucket_shapes` lists the batch shapes, one
per bucket, so a step function can be compiled per bucket. How an epoch is dealt to the ranks and steps, and how a
step's graphs become one batch, is :mod:`trkx_tf.graphs.epoch_plan` (:func:`~trkx_tf.graphs.epoch_plan.plan_epoch`):
identically on every rank and without communication, from the manifest, the seed and the epoch number. The reader
reads the graphs of its rank's share of each step from the shards, verified, a few batches ahead.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from trkx_tf.errors import ShardError
from trkx_tf.graphs.epoch_plan import FILLER, BucketShape, Step, assemble_batch, batch_spec, empty_extra, plan_epoch
from trkx_tf.graphs.shards import Shard, ShardInfo, read_manifest


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
            empty_extra(k, 1, 1)
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
    spec = batch_spec(None, None, f, reader.graphs_per_step)
    return tf.data.Dataset.from_generator(lambda: reader.epoch(epoch, prefetch=0),
                                          output_signature=spec).prefetch(2)
