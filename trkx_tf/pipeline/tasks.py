"""The two small stage bodies that no other console script does: learn a module map alone, link an event subset.

``trkx-pipeline learn-map`` and ``trkx-pipeline link-events`` call them (trkx_tf/cli/pipeline.py).
"""

from __future__ import annotations

import os
import shutil
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
    from trkx_tf.graphs.build import learn_module_map, split_events
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


def link_events(events_dir: os.PathLike | str, first: int, out: os.PathLike | str) -> str:
    """Makes ``out`` a folder of symbolic links to every file of the first ``first`` events of ``events_dir``.

    The folder is made beside ``out`` under a temporary name and renamed into place, so it is whole or absent.

    Returns:
      A one-line summary.

    Raises:
      DataError: the folder has fewer events than ``first``.
    """
    from trkx_tf.trackml.io import event_prefix, list_events

    ids = list_events(events_dir)
    if len(ids) < first:
        raise DataError(f"{events_dir}: {len(ids)} events, fewer than the {first} asked for")
    keep = {event_prefix(e) for e in ids[:first]}
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    src = Path(events_dir).resolve()
    n = 0
    for name in sorted(os.listdir(src)):
        if name.split("-", 1)[0] in keep:
            os.symlink(src / name, tmp / name)
            n += 1
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return f"linked {n} files of events {ids[0]}..{ids[first - 1]} of {events_dir} into {out}"
