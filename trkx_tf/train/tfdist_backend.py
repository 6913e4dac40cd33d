"""The tf.distribute backend: ``MultiWorkerMirroredStrategy`` over processes, one replica per process.

The cluster comes from ``TF_CONFIG`` (any launcher) or from SLURM (``SlurmClusterResolver`` inside an ``srun``
step with several tasks). Each process runs one replica on its device (its GPU, pinned by local task id, or the
CPU) and feeds it the fixed-shape padded bucket batches of its rank. Gradients, the loss's weight sum, metric
counts and step times are reduced exactly as in the Horovod backend, with the strategy's collectives.

Variables are created in the strategy's scope with ``aggregation=ONLY_FIRST_REPLICA`` (unless a creator asks
otherwise): the gradients are already summed over replicas, so every replica computes the same update, and the
strategy's mirrored variables accept that update from replica context. Sonnet's own optimizers refuse
strategies; :class:`~trkx_tf.train.optim.Adam` is plain ``tf.Variable`` maths and works here.

TensorFlow's distribution modules are only touched when the backend is constructed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Callable, ContextManager, Sequence

import numpy as np
import tensorflow as tf

from trkx_tf.errors import BackendError
from trkx_tf.train.backend import Backend

log = logging.getLogger("trkx_tf.train")


def cluster_resolver():
    """The cluster of this process: from ``TF_CONFIG``, else from SLURM, else None (one process).

    On CPU-only SLURM nodes ``SlurmClusterResolver`` needs a non-zero GPU count per task to build its spec, so
    it is given one "GPU" per task with ``auto_set_gpu=False`` (nothing is pinned by it).

    Raises:
      BackendError: ``TF_CONFIG`` is not valid JSON.
    """
    resolvers = tf.distribute.cluster_resolver
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise BackendError(f"TF_CONFIG is not valid JSON ({exc.msg} at char {exc.pos})") from None
        return resolvers.TFConfigClusterResolver()
    if int(os.environ.get("SLURM_STEP_NUM_TASKS", os.environ.get("SLURM_NTASKS", "1"))) > 1 \
            and "SLURM_PROCID" in os.environ:
        per_node = int(os.environ.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0])
        port = int(os.environ.get("TRKX_TFDIST_PORT", 8888 + int(os.environ.get("SLURM_JOB_ID", "0")) % 1000))
        return resolvers.SlurmClusterResolver(port_base=port, gpus_per_node=per_node, gpus_per_task=1, auto_set_gpu=False)
    return None


class TFDistBackend(Backend):
    """Data parallelism with a ``tf.distribute`` strategy, one replica per process.

    Args:
      resolver: a cluster resolver; None takes :func:`cluster_resolver`'s. Without a cluster (one process) the
        strategy is a ``MirroredStrategy`` over this process's one device.

    Raises:
      BackendError: the strategy cannot be built (bad cluster, unreachable workers).
    """

    name = "tfdist"

    def __init__(self, resolver=None):
        resolver = resolver if resolver is not None else cluster_resolver()
        self._task_id = 0
        try:
            if resolver is not None and len(resolver.cluster_spec().as_dict().get("worker", [])) > 1:
                self._task_id = int(resolver.task_id or 0)
                self._pin_gpu()
                options = tf.distribute.experimental.CommunicationOptions(
                    implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
                self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
                    cluster_resolver=resolver, communication_options=options)
            else:
                devices = [d.name.replace("physical_device:", "") for d in tf.config.list_logical_devices("GPU")]
                self.strategy = tf.distribute.MirroredStrategy(devices=devices[:1] or ["/cpu:0"])
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise BackendError(f"tf.distribute strategy could not start ({exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0][:200]})") from None
        if self.strategy.num_replicas_in_sync != self.size:
            raise BackendError(f"tf.distribute runs {self.strategy.num_replicas_in_sync} replicas for "
                               f"{self.size} processes: use one device per process")
        log.info("tf.distribute %s worker %d/%d", type(self.strategy).__name__, self.rank, self.size)

    def _pin_gpu(self) -> None:
        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) > 1:
            local = int(os.environ.get("SLURM_LOCALID", self._task_id % len(gpus)))
            tf.config.set_visible_devices(gpus[local % len(gpus)], "GPU")

    @property
    def rank(self) -> int:
        return self._task_id

    @property
    def size(self) -> int:
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None:
            return 1
        return max(1, len(resolver.cluster_spec().as_dict().get("worker", [])))

    def scope(self) -> ContextManager:
        stack = contextlib.ExitStack()
        stack.enter_context(self.strategy.scope())

        def first_replica(next_creator, **kwargs):
            if kwargs.get("aggregation") in (None, tf.VariableAggregation.NONE):
                kwargs["aggregation"] = tf.VariableAggregation.ONLY_FIRST_REPLICA
            return next_creator(**kwargs)

        stack.enter_context(tf.variable_creator_scope(first_replica))
        return stack

    def reduce_sum(self, x: tf.Tensor) -> tf.Tensor:
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, x)

    def tape(self, tape: tf.GradientTape):
        return _SummingTape(tape)

    def wrap_step(self, fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
        strategy = self.strategy

        def step(batch: dict) -> dict:
            per_replica = strategy.run(fn, args=(batch,))
            # one replica per process: its local result is this rank's output, as in the Horovod backend
            return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], per_replica)

        return step

    def broadcast(self, variables: Sequence[tf.Variable]) -> None:
        """Mirrored variables are synchronised by the strategy (created from the chief, updated in lockstep)."""
        return None

    def host_sum(self, array: np.ndarray) -> np.ndarray:
        return self._host_reduce(array, tf.reduce_sum)

    def host_max(self, array: np.ndarray) -> np.ndarray:
        return self._host_reduce(array, tf.reduce_max)

    def _host_reduce(self, array: np.ndarray, reduce_fn) -> np.ndarray:
        """Gathers every rank's array (collectives have SUM and MEAN only) and reduces over the rank axis."""
        array = np.asarray(array)
        if self.size == 1:
            return array
        value = tf.constant(array, tf.float64)[tf.newaxis]
        gathered = self.strategy.gather(self.strategy.run(lambda: value), axis=0)
        out = reduce_fn(gathered, axis=0).numpy()
        return out.astype(array.dtype) if array.dtype.kind in "iu" else out


class _SummingTape:
    """A gradient tape whose ``gradient()`` returns the sum over replicas of the per-replica gradients."""

    def __init__(self, tape: tf.GradientTape):
        self._tape = tape

    def gradient(self, target, sources, **kwargs):
        grads = self._tape.gradient(target, sources, **kwargs)
        present = [i for i, g in enumerate(grads) if g is not None]
        dense = [tf.convert_to_tensor(grads[i]) for i in present]
        summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, dense)
        out = list(grads)
        for i, g in zip(present, summed):
            out[i] = g
        return out

    def __getattr__(self, name):
        return getattr(self._tape, name)
