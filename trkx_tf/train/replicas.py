"""Batches of a process that runs several replicas: R per-replica batches stacked on a leading axis.

A backend with ``local_replicas`` R > 1 (tf.distribute with several devices in one process) feeds every replica
its own fixed-shape padded batch. The process's batch of a step is then the R replica batches stacked on a new
leading axis: each key ``k`` of shape ``S`` (see :mod:`trkx_tf.graphs.batch`) becomes ``[R] + S``. All replicas
run the same bucket at the same step (the shard reader deals one bucket per global step to every data rank), so
the stacked arrays are rectangular. With R = 1 batches are not stacked.

:class:`ReplicaSource` zips the R sources of a process's data ranks (``process_rank · R + i``) into such stacked
batches; :func:`split_replicas` undoes it where host code needs one replica's batch (warm-up build, pair mining).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from trkx_tf.errors import ConfigError


def stack_replicas(batches: Sequence[dict]) -> dict:
    """Stacks R replica batches (numpy dicts with the same keys and shapes) into one ``[R] + S`` batch.

    Raises:
      ConfigError: the batches differ in keys or shapes (replicas were dealt different buckets).
    """
    keys = set(batches[0])
    for b in batches[1:]:
        if set(b) != keys or any(np.shape(b[k]) != np.shape(batches[0][k]) for k in keys):
            raise ConfigError("replica batches of one step differ in keys or shapes: every replica must get the "
                              "same bucket at the same step (use the shard reader's dealing)")
    return {k: np.stack([np.asarray(b[k]) for b in batches]) for k in batches[0]}


def split_replicas(batch: dict, replicas: int) -> list[dict]:
    """The R replica batches of a process batch (``[batch]`` itself when ``replicas`` is 1)."""
    if replicas == 1:
        return [batch]
    return [{k: v[i] for k, v in batch.items()} for i in range(replicas)]


class ReplicaSource:
    """A :class:`~trkx_tf.train.loop.BatchSource` yielding the stacked batches of R replica sources.

    Args:
      sources: one source per local replica, in replica order (e.g. shard readers of data ranks
        ``process_rank · R + i`` out of ``size · R``). They must yield the same bucket at the same step.

    Raises:
      ConfigError: no source.
    """

    def __init__(self, sources: Sequence):
        if not sources:
            raise ConfigError("ReplicaSource needs at least one source")
        self.sources = list(sources)

    @property
    def replicas(self) -> int:
        """R."""
        return len(self.sources)

    def __getattr__(self, name):  # n_graphs, steps_per_epoch, graphs_per_step, bucket_shapes: the same on all
        if name == "sources":
            raise AttributeError(name)
        return getattr(self.sources[0], name)

    def num_batches(self, epoch: int) -> int:
        """The fewest batches any replica has (readers deal the same number to every data rank)."""
        return min(s.num_batches(epoch) for s in self.sources)

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict]:
        """Stacked ``[R] + S`` batches of ``epoch`` from step ``start``."""
        for parts in zip(*(s.batches(epoch, start) for s in self.sources)):
            yield stack_replicas(parts)

    def close(self) -> None:
        """Closes every source that can be closed."""
        for s in self.sources:
            close = getattr(s, "close", None)
            if close is not None:
                close()
