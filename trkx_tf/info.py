"""What the toolkit runs on: versions of the stack, Horovod's build, the MPI library, TensorFlow devices and the
models' native CPU kernels."""

from __future__ import annotations

import importlib.metadata as metadata
import platform
from pathlib import Path
from typing import Any


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def horovod_build() -> dict[str, Any]:
    """Horovod's frameworks, controllers and tensor operations, as ``horovodrun --check-build`` shows them.

    Returns:
      ``{"version": str, "frameworks": {name: bool}, "controllers": {...}, "tensor_operations": {...}}``, or
      ``{"version": "not installed"}``.
    """
    try:
        import horovod
        import horovod.tensorflow as hvd_tf
    except ImportError:
        return {"version": "not installed"}
    return {
        "version": horovod.__version__,
        "frameworks": {name: _extension_built(horovod, sub) for name, sub in _FRAMEWORKS.items()},
        "controllers": {"MPI": bool(hvd_tf.mpi_built()), "Gloo": bool(hvd_tf.gloo_built())},
        "tensor_operations": {
            "NCCL": bool(hvd_tf.nccl_built()), "DDL": bool(hvd_tf.ddl_built()), "CCL": bool(hvd_tf.ccl_built()),
            "MPI": bool(hvd_tf.mpi_built()), "Gloo": bool(hvd_tf.gloo_built()),
        },
    }


_FRAMEWORKS = {"TensorFlow": "tensorflow", "PyTorch": "torch", "MXNet": "mxnet"}


def _extension_built(horovod_module, subpackage: str) -> bool:
    """Whether Horovod's compiled extension for a framework exists (looked up on disk, nothing imported)."""
    folder = Path(horovod_module.__file__).parent / subpackage
    return any(folder.glob("mpi_lib*.so"))


def mpi_library() -> str:
    """The MPI library mpi4py is linked with (its version string), without initialising MPI."""
    try:
        import mpi4py

        mpi4py.rc.initialize = False
        mpi4py.rc.finalize = False
        from mpi4py import MPI
    except ImportError:
        return "mpi4py not installed"
    return MPI.Get_library_version().replace("\x00", "").strip().splitlines()[0]


def collect() -> dict[str, Any]:
    """Every fact ``trkx-info`` prints, as a dict."""
    import tensorflow as tf

    from trkx_tf.models import native

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "tensorflow_build": "cuda" if tf.test.is_built_with_cuda() else "cpu",
        "sonnet": _version("dm-sonnet"),
        "graph_nets": _version("graph-nets"),
        "horovod": horovod_build(),
        "mpi4py": _version("mpi4py"),
        "mpi_library": mpi_library(),
        "h5py": _version("h5py"),
        "numpy": _version("numpy"),
        "devices": [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()],
        "native_kernels": native.status(),
    }


def format_info(info: dict[str, Any]) -> str:
    """Human-readable lines for :func:`collect`'s dict."""
    mark = lambda ok: "[X]" if ok else "[ ]"  # noqa: E731
    hvd = info["horovod"]
    lines = [
        f"Python           {info['python']} ({info['platform']})",
        f"TensorFlow       {info['tensorflow']} ({info['tensorflow_build']} build)",
        f"Sonnet           {info['sonnet']}",
        f"graph_nets       {info['graph_nets']}",
        f"Horovod          {hvd['version']}",
    ]
    for group in ("frameworks", "controllers", "tensor_operations"):
        if group in hvd:
            title = group.replace("_", " ").capitalize()
            lines.append(f"  {title + ':':19s}" + "  ".join(f"{mark(v)} {k}" for k, v in hvd[group].items()))
    lines += [
        f"MPI library      {info['mpi_library']}",
        f"mpi4py           {info['mpi4py']}",
        f"h5py             {info['h5py']}",
        f"numpy            {info['numpy']}",
        f"Devices          {', '.join(info['devices']) or 'none'}",
        f"Native kernels   {info['native_kernels']}",
    ]
    return "\n".join(lines)
