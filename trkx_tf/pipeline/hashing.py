"""Content hashes of files and folders, with a stat cache so that an unchanged tree is not read again.

A *path spec* is a file or folder, optionally narrowed to the names matching some glob patterns (an event set of a
shared folder: ``event000001000-*``). Its hash is the SHA-256 over the sorted ``(relative path, file SHA-256)``
pairs of its files (a file alone: its own SHA-256 under its name). Hidden entries (names starting with ``.``: the
temporary files and locks of the writers) are left out.

The cache maps a file's real path (symbolic links resolved, so that events linked into another folder are read
once) to ``[size, mtime_ns, sha256]``; a file whose size and modification time are as cached is not read (the rule
``make`` and DVC use). A fully cached rerun of a pipeline over gigabytes of events and
shards therefore only calls ``stat``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import MutableMapping, Optional, Sequence

#: ``real path -> [size, mtime_ns, sha256]``
StatCache = MutableMapping[str, list]


@dataclass(frozen=True)
class PathSpec:
    """A file or folder, optionally only its entries whose names match ``patterns``.

    Attributes:
      path: the file or folder, as written in the config (relative to the working directory or absolute).
      patterns: glob patterns on the names of the folder's top-level entries (empty: everything).
    """

    path: str
    patterns: tuple[str, ...] = ()

    def key(self) -> str:
        """How the spec is named in ``pipeline.json``: the path, plus ``[pattern,…]`` when narrowed."""
        return self.path + (f"[{','.join(self.patterns)}]" if self.patterns else "")


@dataclass(frozen=True)
class TreeHash:
    """The hash of a path spec.

    Attributes:
      sha256: hex digest over the sorted (relative path, file digest) pairs.
      files: number of files.
      bytes: their total size.
    """

    sha256: str
    files: int
    bytes: int

    def record(self) -> dict:
        return {"sha256": self.sha256, "files": self.files, "bytes": self.bytes}


def _files(spec: PathSpec) -> list[tuple[str, Path]]:
    """(relative name, path) of every file of a spec, sorted by name; hidden entries are skipped."""
    root = Path(spec.path)
    if root.is_file():
        return [(root.name, root)]
    out = []
    for top in sorted(os.listdir(root)):
        if top.startswith("."):
            continue
        if spec.patterns and not any(fnmatch.fnmatchcase(top, p) for p in spec.patterns):
            continue
        path = root / top
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        full = Path(dirpath) / name
                        out.append((full.relative_to(root).as_posix(), full))
        elif path.is_file():
            out.append((top, path))
    return sorted(out)


def file_sha256(path: Path, cache: Optional[StatCache] = None) -> tuple[str, int]:
    """The SHA-256 (hex) and size of one file, from the cache when its size and mtime are as recorded there."""
    st = path.stat()
    key = os.path.realpath(path)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2], st.st_size
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if cache is not None:
        cache[key] = [st.st_size, st.st_mtime_ns, digest]
    return digest, st.st_size


def exists(spec: PathSpec) -> bool:
    """Whether the spec's path exists and, when narrowed by patterns, has at least one matching entry."""
    root = Path(spec.path)
    if not root.exists():
        return False
    return root.is_file() or not spec.patterns or bool(_files(spec))


def hash_spec(spec: PathSpec, cache: Optional[StatCache] = None) -> TreeHash:
    """The content hash of a path spec.

    Args:
      spec: the file or folder (narrowed by its patterns).
      cache: the stat cache, read and updated (None: every file is read).

    Returns:
      The :class:`TreeHash`.

    Raises:
      FileNotFoundError: the path does not exist.
    """
    h = hashlib.sha256()
    n_files = n_bytes = 0
    for name, path in _files(spec):
        digest, size = file_sha256(path, cache)
        h.update(f"{name}\0{digest}\n".encode())
        n_files += 1
        n_bytes += size
    return TreeHash(h.hexdigest(), n_files, n_bytes)


def hash_many(specs: Sequence[PathSpec], cache: Optional[StatCache] = None) -> dict[str, TreeHash]:
    """``spec.key() -> TreeHash`` for several specs (see :func:`hash_spec`)."""
    return {s.key(): hash_spec(s, cache) for s in specs}
