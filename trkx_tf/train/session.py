"""One training run from a config: backend, logging, this rank's shard readers, then the loop.

This is what ``trkx-train`` calls; tests call it too, in-process or under a launcher.
"""

from __future__ import annotations

import logging

from trkx_tf.config import Config
from trkx_tf.logs import setup_logging
from trkx_tf.train.distributed import make_backend
from trkx_tf.train.loop import FitResult, train

log = logging.getLogger("trkx_tf.train")


def open_sources(cfg: Config, rank: int, size: int):
    """This rank's training and validation shard readers (validation None when the build made no val split).

    Raises:
      ShardError: the shards folder has no valid manifest.
    """
    from trkx_tf.graphs.reader import ShardReader

    common = dict(rank=rank, size=size, graphs_per_step=cfg.train.graphs_per_step, seed=cfg.run.seed)
    train_source = ShardReader(cfg.data.shards_dir, "train", shuffle=True, **common)
    val_source = ShardReader(cfg.data.shards_dir, "val", shuffle=False, **common)
    return train_source, (val_source if val_source.n_graphs else None)


def run_training(cfg: Config) -> FitResult:
    """Trains as ``cfg`` says on this process's backend and returns the loop's result.

    Raises:
      TrkxError: any documented problem (config, shards, backend, checkpoint).
    """
    backend = make_backend(cfg.backend.name)
    setup_logging(backend.rank, cfg.run.log_level)
    train_source, val_source = open_sources(cfg, backend.rank, backend.size)
    log.info("%s backend, %d rank(s): %d training graphs, %d steps per epoch per rank", backend.name,
             backend.size, train_source.n_graphs, train_source.steps_per_epoch)
    try:
        return train(cfg, train_source, val_source, backend=backend)
    finally:
        train_source.close()
        if val_source is not None:
            val_source.close()


def train_from_config(cfg: Config) -> int:
    """:func:`run_training` for a console script: returns the exit status."""
    run_training(cfg)
    return 0
