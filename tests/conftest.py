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
