"""A module map learned from, or measured on, a folder of TrackML events, the events spread over worker processes
(and MPI ranks): what ``trkx-build`` and the pipeline's ``module_map`` stage run. The map itself is
:class:`~trkx_tf.graphs.module_map.ModuleMap`.
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

from trkx_tf.config import Config, config_to_dict
from trkx_tf.errors import DataError
from trkx_tf.graphs.event_graphs import EventStats, edge_sample_task, map_events, stats_task
from trkx_tf.graphs.module_map import ModuleMap
from trkx_tf.ranks import SINGLE, Ranks

log = logging.getLogger("trkx_tf.graphs.build")  # the build's logger: what it logs reads as part of the build


def learn_module_map(folder: os.PathLike | str, event_ids: Sequence[int], map_cfg, workers: int = 1,
                     progress: bool = False, ranks: Ranks = SINGLE) -> ModuleMap:
    """Learns a module map from the truth of some events of a folder.

    Args:
      folder: TrackML events folder.
      event_ids: the training events.
      map_cfg: the ``graph.module_map`` config section (pt_min, connect_pt_min, quantile, skip_layers).
      workers: processes.
      progress: show a progress bar.
      ranks: the MPI ranks that share the events (the map is fitted on rank 0 and broadcast).

    Returns:
      The map (on every rank).

    Raises:
      DataError: no event has truth, or an event is malformed.
    """
    cfg_data = config_to_dict(Config())
    samples = ranks.map(
        lambda share: map_events(edge_sample_task, share, workers, (cfg_data, None, False, log.getEffectiveLevel()),
                           progress, "module map: events"),
        [(str(folder), int(e), map_cfg.skip_layers) for e in event_ids], root_only=True)

    def fit():
        if not ranks.root:
            return None
        found = [s for s in samples if s is not None]
        if not found:
            raise DataError(f"{folder}: no training event has particles and truth to learn a module map from")
        return ModuleMap.fit(found, pt_min=map_cfg.pt_min, quantile=map_cfg.quantile,
                             connect_pt_min=map_cfg.connect_pt_min, skip_layers=map_cfg.skip_layers)

    return ranks.bcast(ranks.step(fit))


def evaluate_module_map(
    cfg: Config,
    folder: os.PathLike | str,
    module_map_path: os.PathLike | str,
    event_ids: Optional[Sequence[int]] = None,
    workers: int = 1,
    progress: bool = False,
) -> list[EventStats]:
    """The module-map builder's statistics on some events (nothing is written).

    Args:
      cfg: the config (``graph.module_map`` window settings).
      folder: TrackML events folder (events need truth and particles for efficiencies).
      module_map_path: a saved :class:`ModuleMap`.
      event_ids: which events (None: all of the folder).
      workers: processes.
      progress: show a progress bar.

    Returns:
      One :class:`EventStats` per event, in event order (see :func:`~trkx_tf.graphs.summary.builder_metrics`).
    """
    from trkx_tf.trackml.io import list_events

    ids = list_events(folder) if event_ids is None else [int(e) for e in event_ids]
    cfg_data = config_to_dict(cfg)
    cfg_data["graph"]["builder"] = "module_map"
    initargs = (cfg_data, str(module_map_path), False, log.getEffectiveLevel())
    return map_events(stats_task, [(str(folder), e) for e in ids], workers, initargs, progress, "evaluate: events")
