"""Fixtures of the transformer tests: a tiny reduced set made from one simulated event on the real geometry."""

from pathlib import Path

import pytest
import yaml

from trkx_tf.config import Config, config_to_dict


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory, shared_trackml) -> Path:
    """Reduced events of 10-20 particles from two simulated μ=5 events, and their hits-only shards."""
    from trkx_tf.trackml.simulate.events import simulate_events
    from trkx_tf.transformer.data import make_reduced_set
    from trkx_tf.transformer.shards import build_hit_shards

    root = tmp_path_factory.mktemp("tf")
    simulate_events(root / "source", shared_trackml / "detectors.csv.gz", 2, pileup=5, seed=5, noise_fraction=0.0,
                    workers=1, cells=False, progress=False)
    make_reduced_set(root / "source", root / "events", 10, 20, seed=1, max_events=12)
    build_hit_shards(root / "events", root / "shards", val_fraction=0.2, events_per_shard=4, hit_quantum=32)
    return root


def tiny_config(root: Path, name: str, *overrides: str) -> Config:
    """A tiny training config over :func:`tiny_set` (2 layers of width 16)."""
    from trkx_tf.config import load_config

    data = config_to_dict(Config())
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    base = [f"run.out_dir={root / 'runs'}", f"run.name={name}", f"transformer.source_dir={root / 'source'}",
            f"transformer.events_dir={root / 'events'}", f"transformer.shards_dir={root / 'shards'}",
            "transformer.hidden=16", "transformer.num_heads=2", "transformer.layers=2", "transformer.ff=32",
            "transformer.phi_bins=4", "transformer.theta_bins=4", "transformer.qpt_bins=2",
            "transformer.events_per_step=2", "train.epochs=1", "train.warmup_epochs=0", "train.lr=3e-3",
            "train.lr_scaling=none", "backend.name=single", "eval.min_track_hits=3", "eval.reconstructable_hits=3"]
    return load_config(str(path), base + list(overrides))
