"""Fixtures shared by the whole test suite."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TRACKML = Path(os.environ.get("TRKX_SHARED_TRACKML", REPO.parent / "shared" / "trackml"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def shared_trackml() -> Path:
    """../shared/trackml (real TrackML geometry and the test event); skips when it is absent."""
    if not (SHARED_TRACKML / "detectors.csv.gz").exists():
        pytest.skip(f"real TrackML data not found at {SHARED_TRACKML} (set TRKX_SHARED_TRACKML)")
    return SHARED_TRACKML


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    """The folder of the running interpreter's console scripts (horovodrun, trkx-*)."""
    return Path(sys.executable).parent


def run_cli(args, timeout=600, **kwargs):
    """Runs a console script of this environment; fails the test with its output tail when it fails."""
    import subprocess

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.run([str(Path(sys.executable).parent / args[0]), *map(str, args[1:])], capture_output=True,
                          text=True, env=env, timeout=timeout, **kwargs)
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="session")
def cli():
    """:func:`run_cli` for test modules outside this folder's import path (``from conftest import`` is ambiguous:
    every test folder may have a conftest)."""
    return run_cli


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory, shared_trackml) -> Path:
    """4 simulated μ=5 events on the real geometry, built into shards: 3 training graphs (an odd count), 1 val.

    Made once per test session with the real ``trkx-simulate`` and ``trkx-build``.
    """
    root = tmp_path_factory.mktemp("tiny")
    sets = ["--set", "data.val_fraction=0.25", "--set", f"data.detector={shared_trackml / 'detectors.csv.gz'}"]
    run_cli(["trkx-simulate", "--events", 4, "--pileup", 5, "--seed", 3, "--out", root / "events", "--quiet", *sets])
    run_cli(["trkx-build", "--input", root / "events", "--out", root / "shards", "--no-progress", "--workers", 1,
             *sets])
    return root / "shards"
