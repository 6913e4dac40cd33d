"""Atomic file writes: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


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
