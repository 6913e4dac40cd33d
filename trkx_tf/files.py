"""Safe output files: atomic writes (a reader sees the old file or the whole new one, never a part; temporary
files get unpredictable names, made with ``O_EXCL``, and no symlink is followed), an exclusive lock on an output
folder (one writer at a time), the checks of an output folder path, reading ``.npz`` files with one clear error,
and the message of a full disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import struct
import tempfile
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Iterator, Optional

from trkx_tf.errors import OutputError, TrkxError

log = logging.getLogger("trkx_tf.files")


class OutputLockedError(TrkxError):
    """Another process (e.g. another ``trkx-build``) is writing into the same output folder."""


#: errors of reading a damaged ``.npz`` (a zip of ``.npy`` files): zipfile, zlib, the ``.npy`` header parser
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, struct.error,
               NotImplementedError, UnicodeDecodeError, RuntimeError, OverflowError, MemoryError)

#: errno values of a full disk or quota
_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def signals_deferred(signals: tuple = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Holds these signals back while the block runs and delivers the first one received after it (its previous
    handler runs, or the default action). Outside the main thread, where handlers cannot be set, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            handler = previous[received[0]]
            if callable(handler):
                handler(received[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), received[0])


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` for a writer that wants a file name (h5py, pandas, numpy); renamed
    onto ``path`` when the block ends without an error, removed otherwise.

    The temporary file is made by :func:`tempfile.mkstemp` in the target folder: an unpredictable name, created
    with ``O_EXCL`` (a file or symlink already at that name is never opened, so no symlink is followed), mode 0600
    widened to the umask's usual 0644 before the rename. The rename replaces ``path`` itself (a symlink at
    ``path`` is replaced, not followed).

    Args:
      path: the final file.

    Yields:
      The temporary file's path (it exists, empty).

    Raises:
      OSError: the folder is missing or not writable, or the disk is full (the temporary file is removed).
    """
    path = Path(path)
    with signals_deferred():  # a SIGTERM/SIGINT here would leave a file no cleanup knows the name of
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp", dir=path.parent)
        os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # an OS error without a file name (e.g. zipfile's writes): name the file; a message-only OSError keeps its text
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = str(path)
        raise


def write_bytes_atomic(path: os.PathLike | str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_path`); a reader sees the old file or all of it.

    Raises:
      OSError: the folder is missing or not writable, or the disk is full (nothing is left behind).
    """
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_npz_atomic(path: os.PathLike | str, **arrays) -> None:
    """``np.savez`` of ``arrays`` to ``path`` atomically (built in memory, then :func:`write_bytes_atomic`).

    Raises:
      OSError: the folder is missing or not writable, or the disk is full (nothing is left behind).
    """
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def write_text_atomic(path: os.PathLike | str, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`).

    Raises:
      OSError: the folder is missing or not writable, or the disk is full (nothing is left behind).
    """
    write_bytes_atomic(path, text.encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_npz(path: os.PathLike | str, what: str) -> dict:
    """Every array of an ``.npz`` file, read in full (no pickles), or one clear error for a damaged file.

    ``np.savez`` stores each array with its CRC-32, which :mod:`zipfile` checks on reading: flipped data bytes
    are caught, as are truncation (a missing central directory) and an empty file.

    Args:
      path: the ``.npz`` file.
      what: how the message names it (e.g. ``"edges file"``, ``"module map"``).

    Returns:
      name -> array.

    Raises:
      DataError: the file is missing, empty, truncated or damaged.
    """
    import numpy as np

    from trkx_tf.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{what} {path}: empty file (0 bytes); write it again")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            return {name: data[name] for name in data.files}
    except _NPZ_ERRORS as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise DataError(f"{what} {path}: damaged or truncated ({type(exc).__name__}: {first}); "
                        f"write it again") from None


def check_output_folder(path: os.PathLike | str, what: str = "--out") -> Path:
    """Refuses an output folder path that names something other than a folder (or lies under a file).

    Args:
      path: the output folder (it need not exist).
      what: how the message names it (the option or config key).

    Returns:
      ``path`` as a Path.

    Raises:
      OutputError: ``path`` or one of its parents exists and is not a folder.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                kind = "a file" if p.is_file() else "not a folder"
                raise OutputError(f"{what} {path}: {p} is {kind}; give a folder (new or existing)")
            break
    return path


def disk_full_message(exc: OSError) -> Optional[str]:
    """The one-line message of a full disk or quota (None for any other OSError)."""
    if exc.errno not in _FULL and "No space left on device" not in str(exc):
        return None
    where = exc.filename or "the output"
    return (f"{where}: no space left on device ({os.strerror(exc.errno or errno.ENOSPC)}); free space or write "
            f"elsewhere, then re-run")


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
