"""The stack itself: Horovod is built with TensorFlow, Gloo and MPI, and 2 real ranks allreduce correctly."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("hvd_allreduce.py")


def _ranks_output(stdout: str) -> list[dict]:
    """The JSON records the ranks printed, whatever prefix horovodrun put before them; two ranks' lines may
    arrive joined on one line (mpirun's tagged output does not always keep a rank's newline before the next tag)."""
    records = [json.loads(m.group(0)) for m in re.finditer(r'\{"rank"[^{}]*\}', stdout)]
    return sorted(records, key=lambda r: r["rank"])


@pytest.mark.multiproc
@pytest.mark.parametrize("controller", ["gloo", "mpi"])
def test_two_rank_allreduce_under_horovodrun(controller, venv_bin):
    cmd = [str(venv_bin / "horovodrun"), "-np", "2", "-H", "localhost:2"]
    cmd += ["--gloo"] if controller == "gloo" else ["--mpi"]
    cmd += [sys.executable, str(SCRIPT)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ranks = _ranks_output(proc.stdout)
    assert [r["rank"] for r in ranks] == [0, 1]
    for r in ranks:
        assert r["size"] == 2
        assert r["sum"] == 3.0  # (0 + 1) + (1 + 1)
        assert r["avg"] == [0.5] * 4
        assert r["controller"] == controller


def test_check_build_shows_tensorflow_gloo_and_mpi(venv_bin):
    out = subprocess.run([str(venv_bin / "horovodrun"), "--check-build"], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")).stdout
    for name in ("TensorFlow", "Gloo", "MPI"):
        assert f"[X] {name}" in out, out


def test_trkx_info_reports_the_stack(venv_bin):
    proc = subprocess.run([str(venv_bin / "trkx-info"), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert info["tensorflow"].startswith("2.18.")
    assert info["sonnet"] == "2.0.2" and info["graph_nets"] == "1.1.0"
    hvd = info["horovod"]
    assert hvd["version"] == "0.28.1"
    assert hvd["frameworks"]["TensorFlow"] is True
    assert hvd["controllers"] == {"MPI": True, "Gloo": True}
    assert "Open MPI" in info["mpi_library"] or "MPICH" in info["mpi_library"]
    assert any(d.startswith("CPU:") for d in info["devices"])
    assert info["native_kernels"].startswith("built for this CPU: ")  # g++ is part of the set-up (Horovod)
