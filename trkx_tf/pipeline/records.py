"""``<pipeline dir>/pipeline.json`` (the stage records and the stat cache of hashed files) and the run lock.

The record's fields are described in :mod:`trkx_tf.pipeline.runner`; this module only reads, validates and writes it
(atomically), and holds the ``flock`` that keeps two runs of one pipeline apart.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Optional

from trkx_tf.errors import PipelineError
from trkx_tf.files import write_text_atomic

RECORD_VERSION = 1


def now_utc() -> str:
    """The time now, UTC, to the second (ISO 8601)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Records:
    """``pipeline.json``: the stage records and the stat cache, written atomically on every :meth:`save`."""

    def __init__(self, path: Path):
        self.path = path
        self.data = {"version": RECORD_VERSION, "stages": {}, "files": {}}
        if path.exists():
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise PipelineError(f"{path}: unreadable ({exc.__class__.__name__}); move it away to start over")
            if loaded.get("version") != RECORD_VERSION:
                raise PipelineError(f"{path}: version {loaded.get('version')}, expected {RECORD_VERSION}")
            self.data = loaded

    @property
    def stages(self) -> dict:
        return self.data["stages"]

    @property
    def cache(self) -> dict:
        return self.data["files"]

    def prune(self) -> None:
        """Drops the stat-cache entries of files that no longer exist (removed outputs)."""
        for key in [k for k in self.cache if not os.path.exists(k)]:
            del self.cache[key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=False) + "\n")


class RunLock:
    """An exclusive ``flock`` on the pipeline folder: two runs of one pipeline at once refuse."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: Optional[int] = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise PipelineError(f"{self.path.parent}: another trkx-pipeline runs this pipeline") from None
            raise
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
