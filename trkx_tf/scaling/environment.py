"""Where a scaling study ran: the stack (:func:`trkx_tf.info.collect`), the host, its CPUs and the interconnect."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

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


def collect_environment() -> dict[str, Any]:
    """The environment record of a study.

    Returns:
      ``{"hostname", "cpu_model", "cpu_count", "interconnect", "slurm": {...}, "stack": trkx_tf.info.collect()}``.
    """
    from trkx_tf.info import collect

    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "interconnect": interconnect(),
        "slurm": {k: os.environ[k] for k in _SLURM_VARIABLES if k in os.environ},
        "stack": _clean(collect()),
    }
