"""Fixtures of the reliability tests: simulated events, a small build, a tiny training config."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def events_dir(tmp_path_factory, shared_trackml) -> Path:
    """Three small events simulated on the real TrackML geometry (plain CSV, no cells)."""
    from trkx_tf.trackml.simulate import simulate_events

    folder = tmp_path_factory.mktemp("events")
    simulate_events(folder, shared_trackml / "detectors.csv.gz", n_events=3, pileup=3, seed=0, workers=1,
                    cells=False, progress=False)
    return folder


@pytest.fixture(scope="session")
def shards_dir(tmp_path_factory, events_dir) -> Path:
    """A trkx-build output of the three events: one graph per shard, 2 train + 1 val."""
    from trkx_tf.config import load_config
    from trkx_tf.graphs.build import build_shards

    out = tmp_path_factory.mktemp("shards")
    cfg = load_config(None, ["graph.graphs_per_shard=1", "data.val_fraction=0.34"])
    build_shards(cfg, events_dir, out, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def one_bucket_shards(events_dir, tmp_path_factory) -> Path:
    """The three events as training shards of one bucket, no validation split (the least for a trainer to compile)."""
    from trkx_tf.config import load_config
    from trkx_tf.graphs.build import build_shards

    out = tmp_path_factory.mktemp("one_bucket")
    cfg = load_config(None, ["graph.max_buckets=1", "data.val_fraction=0", "graph.graphs_per_shard=4"])
    build_shards(cfg, events_dir, out, workers=1, progress=False)
    return out


@pytest.fixture
def train_config(tmp_path) -> Path:
    """A YAML config of a tiny single-process GNN run (the run and shard folders are given with --set)."""
    path = tmp_path / "train.yaml"
    path.write_text(
        "run: {log_level: WARNING, seed: 0}\n"
        "model:\n  gnn: {hidden: 8, layers: 2, steps: 1}\n"
        "train: {model: gnn, epochs: 1, lr: 1.0e-3}\n"
        "backend: {name: single}\n"
    )
    return path
