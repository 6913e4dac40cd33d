"""The distributed-backend interface of the training loop, and its single-process implementation.

The loop (:mod:`trkx_tf.train.loop`) and the step functions (:mod:`trkx_tf.train.steps`) never import Horovod
or touch a ``tf.distribute`` strategy: everything distributed goes through one :class:`Backend` object passed
explicitly. A backend owns the distributed context (rank, size, local rank) and supplies these hooks:

=====================================  ======================================================================
hook                                   contract
=====================================  ======================================================================
``rank``, ``size``, ``local_rank``     this process's global rank, the number of processes, its rank on the node
``local_replicas``                     R, the replicas this process runs in lockstep (1 except for
                                       tf.distribute with several devices per process); ``num_replicas`` =
                                       size·R is the data-parallel width. Replica i of process p is data rank
                                       p·R + i: the shard reader deals graphs to data ranks
``is_writer``                          True on exactly one rank (rank 0): the only one that writes files
``scope()``                            context in which models and optimizer variables are created
                                       (``strategy.scope()`` for tf.distribute, a no-op otherwise)
``reduce_sum(x)``                      **in a step function**: the sum of ``x`` over ranks (used as the loss's
                                       ``weight_sum_fn``, so every rank divides by the global weight sum)
``tape(tape)``                         **in a step function**: wraps the ``tf.GradientTape``; its
                                       ``gradient()`` must return the **sum** over ranks of the per-rank
                                       gradients (each rank's loss is already divided by the global weight
                                       sum, so the sum is the exact gradient of the global batch; Horovod:
                                       ``DistributedGradientTape(tape, op=hvd.Sum)``)
``apply_gradients(opt, grads, vars)``  **in a step function**: applies the update (tf.distribute: in cross-
                                       replica context, e.g. via ``strategy.extended.update``)
``wrap_step(fn)``                      turns a per-replica step ``fn(batch) -> dict`` into the function that
                                       ``tf.function`` compiles; it takes the process's batch (R > 1: the R
                                       replica batches stacked on a new leading axis, see
                                       :mod:`trkx_tf.train.replicas`) and returns the list of the R local
                                       replicas' outputs (tf.distribute: ``strategy.run``)
``broadcast(variables)``               makes rank 0's values the values of every rank (after the warm-up
                                       build and after every checkpoint restore)
``host_sum(array)``, ``host_max``      sum / max over processes of a numpy array, outside step functions (metric
                                       counts, step times)
``agree_steps(n)``                     the number of steps every rank runs this epoch (the minimum over
                                       ranks), so no rank waits forever in a collective
``barrier()``                          waits for every rank
=====================================  ======================================================================

The defaults below are the single-process behaviour; a distributed backend overrides what it needs. Every hook
must be collective-safe: all ranks call them in the same order.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Callable, ContextManager, Optional, Sequence

import numpy as np
import tensorflow as tf


class Backend(abc.ABC):
    """Abstract distributed context and hooks of the training loop (see the module docstring)."""

    #: short name used in logs and records ("single", "horovod", "tfdist")
    name: str = "abstract"

    @property
    @abc.abstractmethod
    def rank(self) -> int:
        """Global rank of this process, in ``[0, size)``."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Number of ranks (data-parallel replicas)."""

    @property
    def local_rank(self) -> int:
        """Rank of this process on its node (for device pinning)."""
        return 0

    @property
    def local_replicas(self) -> int:
        """R: replicas this process runs in lockstep, each on its own device and its own batch."""
        return 1

    @property
    def num_replicas(self) -> int:
        """The data-parallel width: ``size * local_replicas`` (what the learning rate scales with)."""
        return self.size * self.local_replicas

    @property
    def is_writer(self) -> bool:
        """True on the one rank that writes checkpoints, TensorBoard and logs."""
        return self.rank == 0

    def scope(self) -> ContextManager:
        """Context in which model and optimizer variables are created."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def reduce_sum(self, x: tf.Tensor) -> tf.Tensor:
        """Sum of ``x`` over ranks, inside a step function.

        Args:
          x: a tensor, same shape on every rank.

        Returns:
          Its sum over ranks (``x`` itself on one rank).
        """

    @abc.abstractmethod
    def tape(self, tape: tf.GradientTape):
        """Wraps a gradient tape so that ``gradient()`` returns the sum over ranks of the per-rank gradients."""

    def apply_gradients(self, optimizer, grads: Sequence[Optional[tf.Tensor]],
                        variables: Sequence[tf.Variable]) -> tf.Tensor:
        """Applies the (already reduced) gradients; returns the learning rate used.

        Args:
          optimizer: a :class:`~trkx_tf.train.optim.Adam` (anything with ``apply(grads, variables)``).
          grads: one gradient per variable.
          variables: the trainable variables.
        """
        return optimizer.apply(grads, variables)

    def wrap_step(self, fn: Callable[[dict], dict]) -> Callable[[dict], list]:
        """The function to compile for a per-replica step ``fn``: process batch -> list of local replica outputs.

        One replica per process: ``[fn(batch)]``.
        """
        return lambda batch: [fn(batch)]

    @abc.abstractmethod
    def broadcast(self, variables: Sequence[tf.Variable]) -> None:
        """Sets every rank's ``variables`` to rank 0's values."""

    @abc.abstractmethod
    def host_sum(self, array: np.ndarray) -> np.ndarray:
        """Sum over ranks of a numpy array (same shape on every rank)."""

    @abc.abstractmethod
    def host_max(self, array: np.ndarray) -> np.ndarray:
        """Element-wise maximum over ranks of a numpy array."""

    def host_min(self, array: np.ndarray) -> np.ndarray:
        """Element-wise minimum over ranks of a numpy array."""
        return -self.host_max(-np.asarray(array))

    def agree_steps(self, n: int) -> int:
        """The step count every rank runs this epoch: the minimum of the ranks' ``n``.

        Args:
          n: the number of batches this rank has for the epoch.

        Returns:
          The agreed number of steps (same on every rank).
        """
        return int(self.host_min(np.array([n], np.int64))[0])

    def barrier(self) -> None:
        """Waits until every rank reaches this point."""
        self.host_sum(np.zeros(1, np.int64))


class SingleBackend(Backend):
    """One process, no communication: every hook is the identity."""

    name = "single"

    @property
    def rank(self) -> int:
        return 0

    @property
    def size(self) -> int:
        return 1

    def reduce_sum(self, x: tf.Tensor) -> tf.Tensor:
        return x

    def tape(self, tape: tf.GradientTape):
        return tape

    def broadcast(self, variables: Sequence[tf.Variable]) -> None:
        return None

    def host_sum(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array)

    def host_max(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array)

    def barrier(self) -> None:
        return None
