"""Fixtures of the reco tests. Their toy events are tests/reco/toy_events.py (not ``toy``: the graph tests' ``toy``
module, tests/graphs/toy.py, is another detector, and one pytest session imports a module name once)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
