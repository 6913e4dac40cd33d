"""The tf.distribute backend: ``MirroredStrategy`` over the devices of one process, ``MultiWorkerMirroredStrategy``
over processes (each with one or several devices).

The cluster comes from ``TF_CONFIG`` (any launcher) or from SLURM (``SlurmClusterResolver`` inside an ``srun``
step with several tasks). Without a cluster, one process runs ``MirroredStrategy`` over R devices: every visible
GPU (``backend.local_replicas: 0``) or the first R, or, on a machine without GPUs, the CPU split into R logical
devices (for tests, and to exercise the multi-device path anywhere). In a cluster each worker runs one replica on
its GPU (pinned by local task id) or its CPU, or R replicas on R GPUs of its own.

Replica i of process p is data rank p·R + i: it is fed its own fixed-shape padded bucket batch (the process's R
batches arrive stacked, see :mod:`trkx_tf.train.replicas`). Gradients and the loss's weight sum are all-reduced
over all replicas; metric counts and step times are reduced over processes on the host; so the exactness rules
of the Horovod backend hold for any number of replicas.

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

from trkx_tf.errors import BackendError, first_line
from trkx_tf.placement import slurm_step
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
    step = slurm_step()
    if step is not None and step.size > 1:
        per_node = int(os.environ.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0])
        port = int(os.environ.get("TRKX_TFDIST_PORT", 8888 + int(os.environ.get("SLURM_JOB_ID", "0")) % 1000))
        return resolvers.SlurmClusterResolver(port_base=port, gpus_per_node=per_node, gpus_per_task=1, auto_set_gpu=False)
    return None


def local_devices(replicas: int) -> list[str]:
    """The devices of a one-process ``MirroredStrategy`` with ``replicas`` replicas (0: every visible GPU).

    Without GPUs, ``replicas`` > 1 splits the CPU into that many logical devices; this must happen before
    TensorFlow initialises its runtime (before the first op).

    Returns:
      Device names, one per replica.

    Raises:
      BackendError: more replicas than GPUs, or the CPU can no longer be split.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if replicas > len(gpus):
            raise BackendError(f"backend.local_replicas={replicas} but only {len(gpus)} GPU(s) are visible")
        return [f"/gpu:{i}" for i in range(replicas or len(gpus))]
    if replicas <= 1:
        return ["/cpu:0"]
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != replicas:
            raise BackendError(f"backend.local_replicas={replicas}: the CPU cannot be split into logical devices "
                               "after TensorFlow has started; create the backend before any TensorFlow op") from None
    return [f"/cpu:{i}" for i in range(replicas)]


class TFDistBackend(Backend):
    """Data parallelism with a ``tf.distribute`` strategy: R replicas in each of ``size`` processes.

    Args:
      resolver: a cluster resolver; None takes :func:`cluster_resolver`'s. Without a cluster (one process) the
        strategy is a ``MirroredStrategy`` over this process's devices (:func:`local_devices`).
      local_replicas: replicas per process; 0: every visible GPU in one process, one per worker in a cluster
        (its GPU, or its CPU). In a cluster R > 1 needs R GPUs per worker (the worker's block of R GPUs, or all
        of them when exactly R are visible).

    Raises:
      BackendError: the strategy cannot be built (bad cluster, unreachable workers, too few devices).
    """

    name = "tfdist"

    def __init__(self, resolver=None, local_replicas: int = 0):
        resolver = resolver if resolver is not None else cluster_resolver()
        self._task_id = 0
        self._workers = 1
        if local_replicas < 0:
            raise BackendError(f"backend.local_replicas must be >= 0 (got {local_replicas})")
        try:
            workers = len(resolver.cluster_spec().as_dict().get("worker", [])) if resolver is not None else 0
            if workers > 1:
                self._task_id = int(resolver.task_id or 0)
                self._workers = workers
                self._pin_gpus(max(1, local_replicas))
                options = tf.distribute.experimental.CommunicationOptions(
                    implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
                self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
                    cluster_resolver=resolver, communication_options=options)
            else:
                self.strategy = tf.distribute.MirroredStrategy(devices=local_devices(local_replicas))
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise BackendError(f"tf.distribute strategy could not start ({exc.__class__.__name__}: "
                               f"{first_line(exc)})") from None
        self._replicas = len(self.strategy.extended.worker_devices)
        if self.strategy.num_replicas_in_sync != self._replicas * self._workers:
            raise BackendError(f"tf.distribute runs {self.strategy.num_replicas_in_sync} replicas for "
                               f"{self._workers} processes of {self._replicas} device(s) each: give every "
                               "process the same number of devices")
        host = tf.DeviceSpec.from_string(self.strategy.extended.worker_devices[0])
        self._host = host.replace(device_type="CPU", device_index=0).to_string()
        log.info("tf.distribute %s worker %d/%d, %d replica(s) on %s", type(self.strategy).__name__, self.rank,
                 self.size, self._replicas, ", ".join(self.strategy.extended.worker_devices))

    def _pin_gpus(self, replicas: int) -> None:
        """Makes this worker see its R GPUs: all of them when exactly R are visible, else block ``local_id``."""
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            if replicas > 1:
                raise BackendError(f"backend.local_replicas={replicas} in a multi-worker cluster needs GPUs: "
                                   "MultiWorkerMirroredStrategy runs one CPU replica per worker")
            return
        if len(gpus) == replicas:
            return
        step = slurm_step()
        local = step.local_rank if step is not None else self._task_id % max(1, len(gpus) // replicas)
        mine = gpus[local * replicas:(local + 1) * replicas]
        if len(mine) != replicas:
            raise BackendError(f"worker {self._task_id} (local {local}) needs GPUs {local * replicas}.."
                               f"{(local + 1) * replicas - 1} but {len(gpus)} are visible")
        tf.config.set_visible_devices(mine, "GPU")

    @property
    def rank(self) -> int:
        return self._task_id

    @property
    def size(self) -> int:
        return self._workers

    @property
    def local_replicas(self) -> int:
        return self._replicas

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

    def wrap_step(self, fn: Callable[[dict], dict]) -> Callable[[dict], list]:
        strategy, replicas, host = self.strategy, self._replicas, self._host

        def step(batch: dict) -> list:
            def replica_batch(ctx):  # data rank p·R + i gets slice i of the stacked batch
                if replicas == 1:
                    return batch
                with tf.device(host):  # slice on the host: each device then receives only its own batch
                    return tf.nest.map_structure(lambda x: x[ctx.replica_id_in_sync_group % replicas], batch)

            per_replica = strategy.experimental_distribute_values_from_function(replica_batch)
            outputs = strategy.run(fn, args=(per_replica,))
            local = [{} for _ in range(replicas)]
            for key, value in outputs.items():
                for i, v in enumerate(strategy.experimental_local_results(value)):
                    local[i][key] = v
            return local

        return step

    def broadcast(self, variables: Sequence[tf.Variable]) -> None:
        """Mirrored variables are synchronised by the strategy (created from the chief, updated in lockstep)."""
        return None

    def host_sum(self, array: np.ndarray) -> np.ndarray:
        return self._host_reduce(array, tf.reduce_sum)

    def host_max(self, array: np.ndarray) -> np.ndarray:
        return self._host_reduce(array, tf.reduce_max)

    def _host_reduce(self, array: np.ndarray, reduce_fn) -> np.ndarray:
        """Gathers every process's array (collectives have SUM and MEAN only) and reduces over the process axis.

        Every local replica contributes a copy; the gather is in replica order (process-major), so every R-th
        row is one process's array.
        """
        array = np.asarray(array)
        if self.size == 1:
            return array
        value = tf.constant(array, tf.float64)[tf.newaxis]
        gathered = self.strategy.gather(self.strategy.run(lambda: value), axis=0)[::self._replicas]
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
