"""CPU placement of one process: XLA:CPU's runtime, TensorFlow's thread pools and, optionally, the cores it may run on.

The launcher's variables (rank, size, local rank) are read here, by :func:`launch_env`, and nowhere else
(:func:`slurm_step` is its view of the SLURM variables alone).
Used by the command entry (:func:`prefer_legacy_xla_cpu_runtime`, called by every console script before
TensorFlow starts), by training (``backend.threads``, ``backend.pin_cores``: one rank per core for clean scaling
measurements) and by inference (``infer.threads``). Must run before TensorFlow executes its first op; afterwards
the thread counts are fixed and a request to change them is logged and ignored. Importing this module changes
nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Mapping, MutableMapping, Optional

log = logging.getLogger("trkx_tf")

#: The XLA flag that picks XLA:CPU's runtime. The fused kernels of the models (trkx_tf.models.kernels) run faster on
#: the legacy runtime than on the thunk runtime TensorFlow 2.18 uses by default (the legacy one can split a large
#: element-wise kernel over the cores): the IN trains ~5 % (float32) and ~12 % (bfloat16) faster relative to
#: graph_nets (benchmarks/in_throughput.py --xla-cpu-runtime thunk|legacy). It only affects XLA on CPUs.
XLA_CPU_RUNTIME_FLAG = "--xla_cpu_use_thunk_runtime"

#: Variables in which launchers (Horovod, Open MPI, PMI/PMIx, SLURM) give a process its global rank, most specific
#: first; the number of processes; and its rank on the node.
RANK_VARIABLES = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")
SIZE_VARIABLES = ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS")
LOCAL_RANK_VARIABLES = ("HOROVOD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID",
                        "PMI_LOCAL_RANK")


@dataclasses.dataclass(frozen=True)
class LaunchEnv:
    """What the launcher told this process.

    Attributes:
      rank: its global rank (0 when launched alone).
      size: the number of processes (1 when launched alone).
      local_rank: its rank on its node (0 when launched alone).
    """

    rank: int
    size: int
    local_rank: int


def launch_env(environ: Optional[Mapping[str, str]] = None) -> LaunchEnv:
    """The one reader of the launchers' variables (:data:`RANK_VARIABLES`, :data:`SIZE_VARIABLES`,
    :data:`LOCAL_RANK_VARIABLES`).

    The rank and the local rank are the first of their variables that holds a number; the size is the largest
    of the sizes set (a SLURM step of several tasks counts even where Horovod says 1). Without a local-rank
    variable, ``TF_CONFIG``'s task index is the local rank (tf.distribute workers started on one machine).

    Args:
      environ: the environment; ``os.environ`` when None.

    Returns:
      The :class:`LaunchEnv`.
    """
    environ = os.environ if environ is None else environ

    def numbers(names):
        return [int(v) for v in (environ.get(n, "").strip() for n in names) if v.isdigit()]

    ranks, sizes, local = numbers(RANK_VARIABLES), numbers(SIZE_VARIABLES), numbers(LOCAL_RANK_VARIABLES)
    if local:
        local_rank = local[0]
    else:
        try:
            local_rank = int(json.loads(environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))
        except (ValueError, TypeError, AttributeError):
            local_rank = 0
    return LaunchEnv(ranks[0] if ranks else 0, max(sizes) if sizes else 1, local_rank)


def slurm_step(environ: Optional[Mapping[str, str]] = None) -> Optional[LaunchEnv]:
    """This process's place in a SLURM step (``srun``): :func:`launch_env` of the ``SLURM_*`` variables alone.

    tf.distribute's ``SlurmClusterResolver`` reads the step's variables, not Horovod's or MPI's, so a backend that
    builds its cluster from SLURM asks this rather than :func:`launch_env` (whose rank may come from another
    launcher's variables).

    Args:
      environ: the environment; ``os.environ`` when None.

    Returns:
      The step's :class:`LaunchEnv` (rank ``SLURM_PROCID``, size ``SLURM_STEP_NUM_TASKS``, local rank
      ``SLURM_LOCALID``), or None outside a SLURM task (no ``SLURM_PROCID``).
    """
    environ = os.environ if environ is None else environ
    if "SLURM_PROCID" not in environ:
        return None
    return launch_env({k: v for k, v in environ.items() if k.startswith("SLURM_")})


def prefer_legacy_xla_cpu_runtime(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """Adds ``--xla_cpu_use_thunk_runtime=false`` to ``XLA_FLAGS`` unless the flag is already set there (the
    user's choice wins). XLA reads its flags once, at its first use, so call this before TensorFlow runs an op.

    Args:
      environ: the environment to edit; ``os.environ`` when None.

    Returns:
      ``XLA_FLAGS`` as it is afterwards.
    """
    environ = os.environ if environ is None else environ
    flags = environ.get("XLA_FLAGS", "")
    if XLA_CPU_RUNTIME_FLAG not in flags:
        environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_RUNTIME_FLAG}=false".strip()
    return environ["XLA_FLAGS"]


def set_threads(threads: int, inter_op: Optional[int] = None) -> None:
    """Sets TensorFlow's intra-op (and inter-op, default the same) thread counts; 0 keeps TensorFlow's default."""
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op or threads)
    except RuntimeError:
        log.warning("threads=%d ignored: TensorFlow was already initialised in this process", threads)


def pin_cores(local_rank: int, cores_per_rank: int) -> list[int]:
    """Restricts this process to ``cores_per_rank`` of the cores it may use, block ``local_rank`` of them
    (wrapping around when the node has fewer cores than ranks × cores_per_rank). Returns the cores."""
    allowed = sorted(os.sched_getaffinity(0))
    n = max(1, min(cores_per_rank, len(allowed)))
    start = (local_rank * n) % len(allowed)
    chosen = [allowed[(start + i) % len(allowed)] for i in range(n)]
    os.sched_setaffinity(0, chosen)
    return chosen


def place_process(threads: int, pin: bool, environ: Optional[Mapping[str, str]] = None) -> str:
    """Applies ``threads`` (0: default) and, if ``pin``, core pinning by local rank; returns a line for the log."""
    set_threads(threads)
    where = f"{threads or 'default'} TF thread(s)"
    if pin:
        cores = pin_cores(launch_env(environ).local_rank, threads or 1)
        where += f", pinned to core(s) {','.join(map(str, cores))}"
    return where
