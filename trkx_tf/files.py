"""Safe output files: atomic writes (a reader sees the old file or the whole new one, never a part) and an exclusive
lock on an output folder (one writer at a time).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from pathlib import Path
from typing import Optional

from trkx_tf.errors import TrkxError

log = logging.getLogger("trkx_tf.files")


class OutputLockedError(TrkxError):
    """Another process (e.g. another ``trkx-build``) is writing into the same output folder."""


def write_text_atomic(path: os.PathLike | str, text: str) -> None:
    """Writes ``text`` to ``path`` under a hidden temporary name beside it, then renames it into place.

    Raises:
      OSError: the folder is missing or not writable (the temporary file is removed).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class OutputLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>/<name>`` (released when the process dies).

    The file holds the owner's pid, for the message. It is removed on release while the lock is still held; a
    process that locked a removed file notices (another inode at the path) and counts the folder as busy.

    Args:
      folder: the output folder (must exist).
      name: the lock file's name.
      writer: who takes the lock, for the messages (e.g. ``"trkx-build"``).

    Raises:
      OutputLockedError: another process holds the lock (from :meth:`acquire`).
    """

    def __init__(self, folder: os.PathLike | str, name: str, writer: str):
        self.path = Path(folder) / name
        self.writer = writer
        self._fd: Optional[int] = None
        self.locked = False

    def acquire(self) -> "OutputLock":
        """Takes the lock, or raises OutputLockedError at once."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                owner = _read_pid(fd)
                os.close(fd)
                raise self._busy(owner) from None
            # a file system without flock (Lustre mounted without -o flock, some NFS): go on unlocked
            log.warning("%s: cannot lock (%s): a concurrent %s into this folder would not be detected",
                        self.path, exc.strerror, self.writer)
            self._fd = fd
            return self
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # we locked a file its last owner removed meanwhile: a newer build may hold the path
            os.close(fd)
            raise self._busy(None)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd, self.locked = fd, True
        return self

    def _busy(self, owner: Optional[int]) -> OutputLockedError:
        who = f"another {self.writer} (pid {owner})" if owner else f"another {self.writer}"
        return OutputLockedError(f"{self.path.parent}: {who} is writing into this folder ({self.path.name} is "
                                 f"locked); wait for it to finish or write into another folder")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing releases the flock
            self._fd, self.locked = None, False

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
