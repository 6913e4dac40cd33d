"""Running the real console scripts in the reliability tests, and judging what they leave behind.

Every console script is run as a subprocess, the way a user runs it, and judged by :func:`one_error_line`: exit
status 2, exactly one line on stderr (``prog: error: ...``), no traceback.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
EVENT0 = "event000000000"

#: TensorFlow's C++ log lines, which TF_CPP_MIN_LOG_LEVEL does not silence in TF 2.18 (XLA logs through absl)
_TF_NATIVE_LOG = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\] .*"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\] .*)$"
)


def cli_env(**extra) -> dict:
    """The environment of a console script under test: quiet TensorFlow, no launcher variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HOROVOD_", "OMPI_", "PMI_", "PMIX_", "SLURM_")) and k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    env.update(extra)
    return env


def run_cli(name: str, *args, cwd=None, timeout: float = 180, **env) -> subprocess.CompletedProcess:
    """Runs console script ``name`` (trkx-build, trkx-train, ...) with ``args``; returns the finished process."""
    cmd = [str(BIN / name), *(str(a) for a in args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=cli_env(**env))


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr without TensorFlow's native log lines and blank lines."""
    return [line for line in proc.stderr.splitlines() if line.strip() and not _TF_NATIVE_LOG.match(line)]


def one_error_line(proc: subprocess.CompletedProcess, prog: str, status: int = 2) -> str:
    """Asserts the one-line error rule and returns the message after ``prog: error:``."""
    where = f"\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode == status, f"exit status {proc.returncode}, expected {status}{where}"
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, where
    lines = stderr_lines(proc)
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}{where}"
    prefix = f"{prog}: error: "
    assert lines[0].startswith(prefix), where
    return lines[0][len(prefix):]


def listing(folder: Path) -> dict:
    """Every file and folder under ``folder`` (hidden ones too): relative path -> (size, mtime_ns, inode)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.stat()
        out[str(path.relative_to(folder))] = (st.st_size if path.is_file() else -1, st.st_mtime_ns, st.st_ino)
    return out


def copy_event(src: Path, dst: Path, event: str = EVENT0) -> Path:
    """A folder holding one event's files copied from ``src``."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob(f"{event}-*"):
        shutil.copy2(f, dst / f.name)
    return dst


def build_args(events: Path, out: Path, *more) -> list:
    """trkx-build arguments for the small test builds (one worker: the machine is shared)."""
    return ["--input", events, "--out", out, "--workers", "1", "--no-progress",
            "--set", "graph.graphs_per_shard=1", "--set", "run.log_level=WARNING", *more]
