"""The CPU kernels of ``native/edge_ln.cc`` (the IN edge step's LayerNorm + ReLU, one pass per row), built on
first use and cached.

The library is compiled with the C++ compiler that built Horovod (``g++``, or ``$CXX``) against the installed
TensorFlow, for the CPU it runs on (``-march=native``), into ``$TRKX_CACHE_DIR/ops`` (default
``~/.cache/trkx-tf/ops``) under a key of the source, TensorFlow version, compiler and CPU flags: a second process
(or Horovod rank) loads it in milliseconds, and nodes with different CPUs sharing one home directory each get
their own build. It is written to a temporary file and renamed, so concurrent ranks never load half a library.

``TRKX_NATIVE_OPS=0`` turns the kernels off (the XLA kernels of :mod:`trkx_tf.models.kernels` run instead; the
benchmarks use it for side-by-side runs). Where they cannot be built (no compiler) or a GPU is visible (they
have CPU kernels only), the XLA kernels run, with one warning line in the first case.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import tensorflow as tf

from trkx_tf.errors import first_line

log = logging.getLogger("trkx_tf")

SOURCE = Path(__file__).with_name("native") / "edge_ln.cc"
ENV_SWITCH = "TRKX_NATIVE_OPS"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _compile_command(cxx: str, out: Path) -> list[str]:
    return ([cxx, "-shared", "-fPIC", "-O3", "-march=native", "-fopenmp-simd", str(SOURCE), "-o", str(out)]
            + tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags())


def library_path(cxx: str) -> Path:
    """Where the library built by ``cxx`` for this source, TensorFlow and CPU is cached."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), tf.__version__, version, _cpu_flags(),
                                    " ".join(_compile_command(cxx, Path("x")))]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("TRKX_CACHE_DIR", Path.home() / ".cache" / "trkx-tf")) / "ops"
    return cache / f"edge_ln-{key}.so"


def build(cxx: Optional[str] = None) -> Path:
    """Compiles the library unless it is cached; returns its path.

    Raises:
      RuntimeError: no compiler, or the compilation failed (its output in the message).
    """
    cxx = cxx or os.environ.get("CXX") or "g++"
    if shutil.which(cxx) is None:
        raise RuntimeError(f"no C++ compiler {cxx!r} on PATH")
    path = library_path(cxx)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        result = subprocess.run(_compile_command(cxx, Path(tmp)), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE.name} failed:\n{result.stderr[-4000:]}")
        os.replace(tmp, path)  # atomic: a concurrent rank sees no library or a whole one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@functools.lru_cache(maxsize=None)
def _load():
    try:
        return tf.load_op_library(str(build()))
    except (RuntimeError, OSError, subprocess.SubprocessError, tf.errors.NotFoundError) as exc:
        log.warning("trkx_tf native kernels unavailable, using the XLA kernels (slower on CPUs): %s",
                    first_line(exc))
        return None


def _not_used() -> Optional[str]:
    """Why the kernels are not used here (off, or a GPU visible), or None."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"off ({ENV_SWITCH}=0)"
    if tf.config.list_logical_devices("GPU"):
        return "not used (a GPU is visible)"
    return None


def ops():
    """The loaded op library, or None where the kernels are off, unavailable or a GPU is visible."""
    return None if _not_used() else _load()


def status() -> str:
    """One line for ``trkx-info``: where the kernels are loaded from, or why the XLA kernels run instead."""
    reason = _not_used()
    if reason:
        return f"{reason}: XLA kernels"
    try:
        path = build()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({first_line(exc)}): XLA kernels"
    return f"built for this CPU: {path}"
