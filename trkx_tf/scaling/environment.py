"""Where a scaling study ran: the stack (:func:`trkx_tf.info.collect`), the host, its CPUs, the interconnect, the
threads and cores each rank was given, and how loaded the host was."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Mapping, Optional

#: Environment variables that set thread counts or placement of the ranks (recorded when set).
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "HOROVOD_CYCLE_TIME", "HOROVOD_FUSION_THRESHOLD", "CUDA_VISIBLE_DEVICES")
_SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_NTASKS",
                    "SLURM_NTASKS_PER_NODE", "SLURM_CPUS_PER_TASK", "SLURM_GPUS_PER_TASK", "SLURM_CLUSTER_NAME")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def interconnect(sys_root: os.PathLike | str = "/sys/class/infiniband") -> str:
    """The high-speed network this host has, as far as can be seen without privileges.

    Args:
      sys_root: where the kernel lists InfiniBand/RoCE devices (a parameter for tests).

    Returns:
      ``"infiniband: mlx5_0 port 1 100 Gb/sec (4X EDR), ..."`` from sysfs, else ``ibstat``'s rates, else
      ``"loopback/shared-memory"`` (single host: ranks talk through shared memory and the loopback device).
    """
    root = Path(sys_root)
    ports = []
    if root.is_dir():
        for rate in sorted(root.glob("*/ports/*/rate")):
            try:
                ports.append(f"{rate.parents[2].name} port {rate.parent.name} {rate.read_text().strip()}")
            except OSError:
                continue
    if ports:
        return "infiniband: " + ", ".join(ports)
    if shutil.which("ibstat"):
        try:
            out = subprocess.run(["ibstat"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        rates = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("Rate:")]
        if rates:
            return "infiniband (ibstat): " + ", ".join(f"{r} Gb/s" for r in rates)
    return "loopback/shared-memory"


def _clean(value: Any) -> Any:
    """Drops NUL characters (MPI_Get_library_version pads with them) from the strings of a nested record."""
    if isinstance(value, str):
        return value.replace("\x00", "").strip()
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def load_average() -> list[float]:
    """The host's 1, 5 and 15-minute load averages (every runnable process counts, other users' too)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def code_commit(root: Optional[os.PathLike | str] = None) -> str:
    """The git commit of the trkx_tf package's checkout (``+dirty`` when the package itself has uncommitted
    changes: a study writing its own tracked records does not count), or ``unknown`` (an installed copy, or no
    git)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent  # git finds the checkout above
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "."],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def collect_environment(placement: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The environment record of a study.

    Args:
      placement: how each rank was placed, e.g. ``{"threads": 1, "pin_cores": True}`` (the ``backend`` section);
        the thread variables of :data:`THREAD_VARIABLES` that are set are added to it.

    Returns:
      ``{"hostname", "cpu_model", "cpu_count", "cores_allowed", "interconnect", "placement", "load_average",
      "slurm": {...}, "stack": trkx_tf.info.collect()}``.
    """
    from trkx_tf.info import collect

    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_allowed": sorted(os.sched_getaffinity(0)),
        "interconnect": interconnect(),
        "placement": {**dict(placement or {}),
                      "env": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}},
        "load_average": load_average(),
        "commit": code_commit(),
        "slurm": {k: os.environ[k] for k in _SLURM_VARIABLES if k in os.environ},
        "stack": _clean(collect()),
    }
