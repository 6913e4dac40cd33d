"""TensorBoard summaries of a training run, written by the writer rank only.

Per step (every ``log_every`` optimizer steps): ``step/loss``, ``step/learning_rate``. Per epoch: ``epoch/<key>`` of
the epoch record's keys in :data:`EPOCH_KEYS` (finite values only). Once, at the start of a fresh run, the
hyperparameters for TensorBoard's hparams plugin.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional

import tensorflow as tf

#: The epoch record's keys that become ``epoch/<key>`` scalars.
EPOCH_KEYS = ("loss", "efficiency", "purity", "f1", "learning_rate", "graphs_per_s", "edges_per_s", "step_time_s",
              "step_time_s_max", "imbalance", "epoch_time_s", "val_loss", "val_efficiency", "val_purity", "val_f1")


class Summaries:
    """The TensorBoard writer of a run, or nothing (not the writer rank, or no run folder).

    Args:
      folder: the run's ``tensorboard/`` folder, or None (nothing is written).
      is_writer: this rank writes.
      log_every: steps between per-step scalars.
    """

    def __init__(self, folder: Optional[Path], is_writer: bool, log_every: int):
        self.writer = tf.summary.create_file_writer(str(folder)) if folder is not None and is_writer else None
        self.log_every = int(log_every)

    def hparams(self, values: Optional[Mapping]) -> None:
        """Records the hyperparameters (scalars and strings only) for TensorBoard's hparams plugin."""
        if self.writer is None or not values:
            return
        from tensorboard.plugins.hparams import api as hp

        with self.writer.as_default():
            hp.hparams({k: v for k, v in values.items() if isinstance(v, (bool, int, float, str))})

    def step(self, step: int, loss: float, learning_rate: float) -> None:
        """The per-step scalars, every ``log_every`` steps."""
        if self.writer is None or step % self.log_every:
            return
        with self.writer.as_default(step=step):
            tf.summary.scalar("step/loss", loss)
            tf.summary.scalar("step/learning_rate", learning_rate)

    def epoch(self, step: int, record: Mapping) -> None:
        """The epoch scalars of an epoch record (see :data:`EPOCH_KEYS`), then a flush."""
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for key in EPOCH_KEYS:
                if key in record and record[key] is not None and math.isfinite(record[key]):
                    tf.summary.scalar(f"epoch/{key}", record[key])
        self.writer.flush()

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()
