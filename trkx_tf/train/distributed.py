"""Choosing the distributed backend: from the config, or detected from the launcher.

``backend.name: auto`` picks

* ``horovod`` when a launcher started several processes (``horovodrun``, ``mpirun``, ``srun`` with more than
  one task: ``HOROVOD_SIZE``, ``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE``/``PMIX_SIZE`` or ``SLURM_STEP_NUM_TASKS``
  above 1);
* ``tfdist`` when ``TF_CONFIG`` describes a cluster, or when one process is asked for several replicas
  (``backend.local_replicas`` > 1: ``MirroredStrategy`` over this process's devices);
* ``single`` otherwise.

Backends import Horovod or build strategies only when constructed, so this module is cheap to import.
"""

from __future__ import annotations

import os

from trkx_tf.errors import BackendError
from trkx_tf.placement import launch_env
from trkx_tf.train.backend import Backend, SingleBackend

BACKENDS = ("single", "horovod", "tfdist")


def detect_backend(environ=None, local_replicas: int = 0) -> str:
    """The backend ``auto`` stands for in this process's environment (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if launch_env(environ).size > 1:
        return "horovod"
    if environ.get("TF_CONFIG") or local_replicas > 1:
        return "tfdist"
    return "single"


def make_backend(name: str = "auto", local_replicas: int = 0, gradient_groups: int = 1) -> Backend:
    """Constructs the named backend (``auto``: :func:`detect_backend`).

    Args:
      name: ``auto`` or one of :data:`BACKENDS`.
      local_replicas: replicas per process (``backend.local_replicas``; 0: the backend's default). Only
        ``tfdist`` runs more than one.
      gradient_groups: gradient allreduces per step of the Horovod backend (``backend.gradient_groups``).

    Raises:
      BackendError: an unknown name, several replicas asked of a one-replica backend, or a backend that cannot
        start.
    """
    if name == "auto":
        name = detect_backend(local_replicas=local_replicas)
    if name in ("single", "horovod") and local_replicas > 1:
        raise BackendError(f"backend {name!r} runs one replica per process (got backend.local_replicas="
                           f"{local_replicas}): use backend.name=tfdist for several devices in one process")
    if name == "single":
        return SingleBackend()
    if name == "horovod":
        from trkx_tf.train.horovod_backend import HorovodBackend

        return HorovodBackend(gradient_groups)
    if name == "tfdist":
        from trkx_tf.train.tfdist_backend import TFDistBackend

        return TFDistBackend(local_replicas=local_replicas)
    raise BackendError(f"unknown backend {name!r}: choose one of auto, {', '.join(BACKENDS)}")
