"""The Horovod backend: one process per rank, started by ``horovodrun``, ``mpirun`` or ``srun``.

Exactness rules (see :mod:`trkx_tf.train.backend` for the hook contract):

* the loss of every rank is divided by the **allreduced** sum of valid weights (``reduce_sum``), and the tape
  **sums** the per-rank gradients, so the update is the gradient of the global batch whatever the graph sizes;
* metric counts and step times are allreduced as numbers (``host_sum`` / ``host_max``), ratios come later;
* the per-epoch step count is agreed (minimum over ranks) before the epoch starts;
* variables are broadcast from rank 0 after the warm-up build and after every restore.

Gradients are allreduced in ``gradient_groups`` grouped collectives per step (``backend.gradient_groups``, default
1: one fused allreduce of every gradient once the backward pass is done). Horovod's default (0) submits each
gradient as it is ready and fuses what arrives within one cycle: on CPUs and small models that made 6-8 separate
latency-bound allreduces per step (``benchmarks/distributed_horovod_scaling.py --timeline``, docs/distributed.md).

Horovod is imported when the backend is constructed, never at module import.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import tensorflow as tf

from trkx_tf.errors import BackendError
from trkx_tf.train.backend import Backend

log = logging.getLogger("trkx_tf.train")


def pin_gpu(local_rank: int) -> str:
    """Makes TensorFlow use one GPU per rank: ``local_rank``'s, or the only one visible.

    SLURM with ``--gpus-per-task=1`` exposes exactly one GPU to each task (``CUDA_VISIBLE_DEVICES``); that GPU is
    then used whatever the local rank. With several visible GPUs rank ``local_rank`` takes GPU ``local_rank``.

    Args:
      local_rank: the rank of this process on its node.

    Returns:
      The device used (``"GPU:k"``) or ``"CPU"``.

    Raises:
      BackendError: more ranks on the node than visible GPUs.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    index = 0 if len(gpus) == 1 else local_rank
    if index >= len(gpus):
        raise BackendError(f"local rank {local_rank} has no GPU: only {len(gpus)} visible on this node "
                           "(start one rank per GPU, e.g. srun --gpus-per-task=1)")
    tf.config.set_visible_devices(gpus[index], "GPU")
    tf.config.experimental.set_memory_growth(gpus[index], True)
    return f"GPU:{index}"


class HorovodBackend(Backend):
    """Data parallelism over Horovod ranks (Gloo or MPI controller, whichever the launcher set up).

    Args:
      gradient_groups: gradient allreduces per step (Horovod's ``groups``); 0: Horovod's own grouping by cycle.

    Raises:
      BackendError: Horovod is not installed or cannot initialise, or ``gradient_groups`` < 0.
    """

    name = "horovod"

    def __init__(self, gradient_groups: int = 1):
        if gradient_groups < 0:
            raise BackendError(f"backend.gradient_groups must be >= 0 (got {gradient_groups})")
        self.gradient_groups = int(gradient_groups)
        try:
            import horovod.tensorflow as hvd
        except ImportError as exc:
            raise BackendError(f"backend 'horovod' needs Horovod ({exc}); run `make setup`") from None
        try:
            hvd.init()
        except Exception as exc:  # noqa: BLE001 - Horovod raises plain ValueError/RuntimeError here
            raise BackendError(f"Horovod could not initialise ({exc.__class__.__name__}: {exc}); start the "
                               "ranks with horovodrun, mpirun or srun --mpi=pmix") from None
        self._hvd = hvd
        self.device = pin_gpu(hvd.local_rank())
        self.controller = "mpi" if hvd.mpi_enabled() else "gloo" if hvd.gloo_enabled() else "unknown"
        log.info("horovod rank %d/%d (local %d) on %s, controller %s", hvd.rank(), hvd.size(), hvd.local_rank(),
                 self.device, self.controller)

    @property
    def rank(self) -> int:
        return self._hvd.rank()

    @property
    def size(self) -> int:
        return self._hvd.size()

    @property
    def local_rank(self) -> int:
        return self._hvd.local_rank()

    def reduce_sum(self, x: tf.Tensor) -> tf.Tensor:
        return self._hvd.allreduce(x, op=self._hvd.Sum)

    def tape(self, tape: tf.GradientTape):
        # op=Sum: every rank's loss is already divided by the global weight sum (see the module docstring).
        # sparse_as_dense: embedding-style gathers give IndexedSlices; dense allreduce is simpler and exact.
        # groups: see the module docstring (None: Horovod's default grouping)
        return self._hvd.DistributedGradientTape(tape, op=self._hvd.Sum, sparse_as_dense=True,
                                                 groups=self.gradient_groups or None)

    def broadcast(self, variables: Sequence[tf.Variable]) -> None:
        if variables:
            self._hvd.broadcast_variables(list(variables), root_rank=0)

    def host_sum(self, array: np.ndarray) -> np.ndarray:
        return self._host_reduce(array, self._hvd.Sum)

    def host_max(self, array: np.ndarray) -> np.ndarray:
        return self._host_reduce(array, self._hvd.Max)

    def host_min(self, array: np.ndarray) -> np.ndarray:
        return self._host_reduce(array, self._hvd.Min)

    def _host_reduce(self, array: np.ndarray, op) -> np.ndarray:
        array = np.asarray(array)
        # float64 carries int64 counts exactly up to 2**53 and every controller supports it
        out = self._hvd.allreduce(tf.constant(array, tf.float64), op=op).numpy()
        return out.astype(array.dtype) if array.dtype.kind in "iu" else out

    def barrier(self) -> None:
        self.host_sum(np.zeros(1))
