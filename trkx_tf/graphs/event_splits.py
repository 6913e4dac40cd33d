"""Which events a build takes, and in which split: simulated events by ``data.val_fraction``, real labelled
events by ``data.real`` (never the test event), and the events without labels refused or dropped
(``graph.unlabelled``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from trkx_tf.errors import DataError

log = logging.getLogger("trkx_tf.graphs.build")  # the build's logger: what it logs reads as part of the build


def split_events(event_ids: Sequence[int], val_fraction: float) -> dict[str, list[int]]:
    """Sorted event ids: the last round(val_fraction · n) are validation, the rest training."""
    ids = sorted(int(e) for e in event_ids)
    n_val = int(round(len(ids) * val_fraction))
    return {"train": ids[: len(ids) - n_val], "val": ids[len(ids) - n_val:]}


#: The real TrackML event kept for testing: never in a training or validation split of real events.
TEST_EVENT = 1000


def split_real_events(event_ids: Sequence[int], train_events: int, val_events: int) -> dict[str, list[int]]:
    """The split of real labelled events (``data.real``): the first ``train_events`` sorted ids train, the next
    ``val_events`` validate, any others are left out.

    Args:
      event_ids: the events of the folder.
      train_events: N training events.
      val_events: M validation events.

    Returns:
      ``{"train": [N ids], "val": [M ids]}``.

    Raises:
      DataError: fewer than N + M events, or the test event among them.
    """
    ids = sorted(int(e) for e in event_ids)
    if len(ids) < train_events + val_events:
        raise DataError(f"data.real: {len(ids)} events, fewer than train_events + val_events = "
                        f"{train_events} + {val_events}")
    ids = ids[: train_events + val_events]
    if TEST_EVENT in ids:
        raise DataError(f"data.real: event {TEST_EVENT} is the test event; it may not be trained or selected on "
                        f"(remove it from the real events folder)")
    return {"train": ids[:train_events], "val": ids[train_events:]}


def unlabelled_events(folder: Path, event_ids: Sequence[int], policy: str) -> set[int]:
    """The events without labels (neither truth + particles nor a partial truth), refused or dropped.

    The shards carry edge labels: an event without them would train on nothing (every label and weight 0).

    Args:
      folder: the events folder.
      event_ids: the events to build.
      policy: ``graph.unlabelled``: ``"refuse"`` or ``"skip"`` (drop them with a warning naming them).

    Returns:
      The ids to drop (empty unless ``policy`` is ``"skip"``).

    Raises:
      DataError: with ``"refuse"``, the first unlabelled event, naming the file that is missing.
    """
    from trkx_tf.trackml.io import event_prefix, find_part

    unlabelled, why = [], {}
    for e in event_ids:
        if find_part(folder, e, "partial-truth") is not None:
            continue
        lacking = [p for p in ("truth", "particles") if find_part(folder, e, p) is None]
        if lacking:
            unlabelled.append(int(e))
            why[int(e)] = f"{event_prefix(e)}-{lacking[0]}.csv[.gz]"
    if not unlabelled:
        return set()
    if policy != "skip":
        e = unlabelled[0]
        more = f" ({len(unlabelled) - 1} more such event(s))" if len(unlabelled) > 1 else ""
        raise DataError(f"{folder}: event {e} has no labels: {why[e]} is missing and there is no partial truth"
                        f"{more}; trkx-build writes labelled graphs: add the truth, remove the event, or set "
                        f"graph.unlabelled: skip to drop such events")
    log.warning("graph.unlabelled=skip: dropped %d event(s) without truth or partial truth: %s", len(unlabelled),
                ", ".join(str(e) for e in unlabelled))
    return set(unlabelled)
