"""Fixtures of the export tests: the reco tests' toy events (tests/reco/toy_events.py, the same module)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "reco"))
