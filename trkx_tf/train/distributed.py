"""Choosing the distributed backend: from the config, or detected from the launcher.

``backend.name: auto`` picks

* ``horovod`` when a launcher started several processes (``horovodrun``, ``mpirun``, ``srun`` with more than
  one task: ``HOROVOD_SIZE``, ``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE``/``PMIX_SIZE`` or ``SLURM_STEP_NUM_TASKS``
  above 1);
* ``tfdist`` when ``TF_CONFIG`` describes a cluster;
* ``single`` otherwise.

Backends import Horovod or build strategies only when constructed, so this module is cheap to import.
"""

from __future__ import annotations

import os

from trkx_tf.errors import BackendError
from trkx_tf.train.backend import Backend, SingleBackend

BACKENDS = ("single", "horovod", "tfdist")
_MULTI_PROCESS_VARIABLES = ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS")


def detect_backend(environ=None) -> str:
    """The backend ``auto`` stands for in this process's environment (see the module docstring)."""
    environ = os.environ if environ is None else environ
    for name in _MULTI_PROCESS_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return "horovod"
    if environ.get("TF_CONFIG"):
        return "tfdist"
    return "single"


def make_backend(name: str = "auto") -> Backend:
    """Constructs the named backend (``auto``: :func:`detect_backend`).

    Raises:
      BackendError: an unknown name, or a backend that cannot start.
    """
    if name == "auto":
        name = detect_backend()
    if name == "single":
        return SingleBackend()
    if name == "horovod":
        from trkx_tf.train.horovod_backend import HorovodBackend

        return HorovodBackend()
    if name == "tfdist":
        from trkx_tf.train.tfdist_backend import TFDistBackend

        return TFDistBackend()
    raise BackendError(f"unknown backend {name!r}: choose one of auto, {', '.join(BACKENDS)}")
