"""Fixtures of the graph tests: toy events from tests/graphs/toy.py, and the real event 1000 when present."""

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from toy import make_event, write_event_csv  # noqa: E402


@pytest.fixture
def toy_event():
    return make_event(event_id=1, n_particles=60, noise=15, seed=1)


@pytest.fixture(scope="session")
def toy_events_dir(tmp_path_factory):
    """A folder of 6 toy events in TrackML CSV."""
    folder = tmp_path_factory.mktemp("toy_events")
    for i in range(6):
        write_event_csv(folder, make_event(event_id=100 + i, n_particles=80 + 10 * i, noise=20, seed=10 + i))
    return folder


@pytest.fixture(scope="session")
def event1000(shared_trackml):
    """Real event 1000 (hits, particles, truth); skips without ../shared/trackml."""
    prefix = shared_trackml / "event000001000-"
    if not (shared_trackml / "event000001000-hits.csv.gz").exists():
        pytest.skip(f"event 1000 not found in {shared_trackml}")
    return {p: pd.read_csv(f"{prefix}{p}.csv.gz") for p in ("hits", "particles", "truth")}
