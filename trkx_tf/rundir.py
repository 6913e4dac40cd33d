"""The run-directory layout shared by every command, and the rank-0 rule for writing into it.

::

    <run.out_dir>/<run.name>/
      config.yaml        resolved config of the run (every key, defaults included)
      metrics.jsonl      one JSON object per line (epoch records, evaluation results)
      checkpoints/       model and optimizer checkpoints
      tensorboard/       TensorBoard event files
      plots/             PNG figures

Only the writer (rank 0) creates or changes anything here; other ranks get a read-only view, so a shared file
is never written twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from trkx_tf.config import Config, save_config


class RunDir:
    """One run's folder.

    Args:
      root: the run folder.
      is_writer: True on rank 0 (the only process that writes shared files).
    """

    def __init__(self, root: os.PathLike | str, is_writer: bool = True):
        self.root = Path(root)
        self.is_writer = is_writer

    @classmethod
    def from_config(cls, cfg: Config, is_writer: bool = True) -> "RunDir":
        """The run folder ``<run.out_dir>/<run.name>`` of a config."""
        return cls(Path(cfg.run.out_dir) / cfg.run.name, is_writer=is_writer)

    config_path = property(lambda self: self.root / "config.yaml")
    metrics_path = property(lambda self: self.root / "metrics.jsonl")
    checkpoints = property(lambda self: self.root / "checkpoints")
    tensorboard = property(lambda self: self.root / "tensorboard")
    plots = property(lambda self: self.root / "plots")

    def create(self, cfg: Config | None) -> "RunDir":
        """Makes the folders and saves the resolved config (writer only; None: folders only). Returns self.

        A run that may resume from a checkpoint passes None and calls :meth:`save_config` once the checkpoint
        is known to fit, so a failed resume leaves the run's config as it was.
        """
        if self.is_writer:
            for folder in (self.root, self.checkpoints, self.tensorboard, self.plots):
                folder.mkdir(parents=True, exist_ok=True)
            if cfg is not None:
                self.save_config(cfg)
        return self

    def save_config(self, cfg: Config) -> None:
        """Writes the resolved config to ``config.yaml`` atomically (writer only)."""
        if self.is_writer:
            save_config(cfg, self.config_path)

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """Appends one JSON line to ``metrics.jsonl`` (writer only), flushed to disk before returning.

        Raises:
          OSError: the line cannot be written (e.g. a full disk); the file is cut back to its previous lines, so no
            partial line is left.
        """
        if not self.is_writer:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(dict(record), sort_keys=True) + "\n").encode()
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, start)
                if exc.filename is None:
                    exc.filename = str(self.metrics_path)
                raise
        finally:
            os.close(fd)

    def read_metrics(self) -> list[dict]:
        """All records of ``metrics.jsonl`` (empty when there are none)."""
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path) as f:
            return [json.loads(line) for line in f if line.strip()]
