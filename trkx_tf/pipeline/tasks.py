"""The two small stage bodies that no other console script does: learn a module map alone, link events.

``trkx-pipeline learn-map`` and ``trkx-pipeline link-events`` call them (trkx_tf/cli/pipeline.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from trkx_tf.config import Config
from trkx_tf.errors import ConfigError, DataError


def learn_map(cfg: Config, events_dir: os.PathLike | str, out: os.PathLike | str, split: Optional[str] = None,
              event_ids: Optional[Sequence[int]] = None, workers: int = 0, progress: bool = False) -> str:
    """Learns the module map from the truth of some events and saves it (as trkx-build would learn it).

    Args:
      cfg: the config (``graph.module_map`` learning settings; ``data.val_fraction`` with ``split``).
      events_dir: the events folder.
      out: the ``.npz`` to write (atomically).
      split: ``"train"``: only the training split of the folder, as trkx-build splits it (``data.val_fraction``);
        None: the events of ``event_ids``, or all.
      event_ids: the events (with ``split`` None).
      workers: processes (0: one per core).
      progress: show a progress bar.

    Returns:
      A one-line summary.

    Raises:
      DataError: no events, or events without truth.
      ConfigError: ``split`` is not ``"train"``.
    """
    from trkx_tf.graphs.event_splits import split_events
    from trkx_tf.graphs.map_learning import learn_module_map
    from trkx_tf.trackml.io import list_events

    ids = [int(e) for e in event_ids] if event_ids else list_events(events_dir)
    if split is not None:
        if split != "train":
            raise ConfigError(f"--split {split}: only the training split learns a module map")
        ids = split_events(ids, cfg.data.val_fraction)["train"]
    if not ids:
        raise DataError(f"{events_dir}: no events to learn a module map from")
    workers = workers or max(1, os.cpu_count() or 1)
    mm = learn_module_map(events_dir, ids, cfg.graph.module_map, workers, progress)
    mm.save(out)
    return f"module map: {mm.n_pairs} module pairs from {mm.n_events} events of {events_dir} -> {out}"


def link_events(events_dirs: os.PathLike | str | Sequence[os.PathLike | str], out: os.PathLike | str, first: int = 0,
                exclude: Sequence[int] = ()) -> str:
    """Makes ``out`` a folder of symbolic links to every file of some events of one or more folders.

    The events are those of all the folders (each id in one folder only), less ``exclude``, sorted by id, and of
    those the first ``first``. The folder is made beside ``out`` under a temporary name and renamed into place, so
    it is whole or absent.

    Args:
      events_dirs: the events folder, or several (the TrackML challenge's ``train_1``, ``train_2``, ...).
      out: the folder to make (replaced when it exists).
      first: only the first N events; 0: all.
      exclude: event ids never linked (held-out validation and test events).

    Returns:
      A one-line summary.

    Raises:
      DataError: a folder is missing, an event id is in two folders, no event is left, or fewer than ``first``.
    """
    from trkx_tf.trackml.io import event_prefix, list_events

    dirs = [events_dirs] if isinstance(events_dirs, (str, os.PathLike)) else list(events_dirs)
    where: dict[int, Path] = {}
    for d in dirs:
        for e in list_events(d):
            if e in where:
                raise DataError(f"event {e} is in both {where[e]} and {d}: event ids must be unique")
            where[e] = Path(d)
    skip = {int(e) for e in exclude}
    ids = sorted(e for e in where if e not in skip)
    if len(ids) < max(first, 1):
        raise DataError(f"{', '.join(map(str, dirs))}: {len(ids)} events after {len(skip & set(where))} excluded, "
                        f"fewer than the {max(first, 1)} asked for")
    ids = ids[:first] if first else ids
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=out.parent))  # unpredictable, never a planted link
    try:
        keep = {event_prefix(e): where[e].resolve() for e in ids}
        n = 0
        for src in sorted(set(keep.values())):
            for name in sorted(os.listdir(src)):
                if keep.get(name.split("-", 1)[0]) == src:
                    os.symlink(src / name, tmp / name)
                    n += 1
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    source = dirs[0] if len(dirs) == 1 else f"{len(dirs)} folders"
    return f"linked {n} files of {len(ids)} events {ids[0]}..{ids[-1]} of {source} into {out}"
