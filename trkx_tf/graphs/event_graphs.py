"""One event's graphs in the graph stage: features, truth, candidate edges, labels and weights, the builder's
statistics, and the tasks that the build's worker processes run on one event (:func:`map_events` runs them;
:mod:`trkx_tf.graphs.build` orchestrates them).

Graphs travel between the build's passes as ``.npz`` files (:func:`save_graph`, :func:`load_graph`); the trained
filter, when the build uses one, rewrites them in place (:func:`filter_graph_files`).

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from trkx_tf.config import Config
from trkx_tf.errors import DataError
from trkx_tf.graphs.candidates import EdgeBuilder, make_builder
from trkx_tf.graphs.features import cylindrical, hit_features
from trkx_tf.graphs.graph import EventGraph
from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
from trkx_tf.graphs.sectors import split_sectors
from trkx_tf.graphs.truth import (TruthGraph, event_partial_truth, label_edges, label_edges_partial,
                                  partial_truth_graph, truth_graph)
from trkx_tf.processes import map_in_processes

PT_REPORT = 0.5  # GeV: the efficiency target is quoted for true edges of particles above it

#: The process's worker state (config, builder, with_cells), set by :func:`init_worker` or :func:`set_worker`.
_WORKER: dict = {}


@dataclasses.dataclass(frozen=True)
class EventStats:
    """How the candidate-edge builder did on one whole event.

    Attributes:
      event_id: the event.
      n_hits: hits (nodes).
      n_edges: candidate edges.
      n_true: true edges of the truth graph (0 without truth).
      n_true_found: of them, among the candidates (= true candidate edges).
      n_true_pt: true edges of particles with pT > 0.5 GeV.
      n_true_pt_found: of them, among the candidates.
      seconds: time to build the candidate edges.
      labels: where the labels came from: ``full`` (the truth), ``masked`` (a partial truth; the true-edge
        counts are then those of the labelled truth graph, :func:`~trkx_tf.graphs.truth.partial_truth_graph`) or
        ``none`` (every weight 0).
    """

    event_id: int
    n_hits: int
    n_edges: int
    n_true: int
    n_true_found: int
    n_true_pt: int
    n_true_pt_found: int
    seconds: float
    labels: str = "full"


def event_graph(
    event,
    builder: EdgeBuilder,
    graph_cfg,
    with_cells: bool,
    truth: Optional[TruthGraph] = None,
) -> tuple[EventGraph, EventStats]:
    """The whole-event graph and the builder's statistics for one event.

    Args:
      event: a :class:`trkx_tf.trackml.io.Event` (or any object with ``event_id, hits, particles, truth, cells``).
      builder: the candidate-edge builder.
      graph_cfg: the ``graph`` config section (features, weights).
      with_cells: add cell features (the event must have cells).
      truth: the event's truth graph if already computed (else computed here when truth and particles exist).

    Returns:
      ``(graph, stats)``. The labels (``graph.labels``): with ``auto`` from the full truth, else masked labels from
      the partial truth (:func:`~trkx_tf.graphs.truth.label_edges_partial`: edges touching an unlabelled hit weigh
      0), else every label and weight 0; with ``masked`` masked labels from the partial truth, or from the full
      truth cut to a partial one by the labelled events' rules.

    Raises:
      DataError: the event is malformed.
    """
    hits = event.hits
    nodes = hit_features(hits, event.cells, with_cells, graph_cfg.r_scale, graph_cfg.z_scale)
    partial = None
    if graph_cfg.labels == "masked" or (truth is None and event.truth is None):
        partial = event_partial_truth(event)
        truth = None
    if partial is not None:
        truth = partial_truth_graph(hits, partial)
    elif truth is None and event.truth is not None and event.particles is not None:
        truth = truth_graph(hits, event.particles, event.truth)
    t0 = time.perf_counter()
    senders, receivers = builder.build(hits, nodes)
    seconds = time.perf_counter() - t0
    if partial is not None:
        labels, weights, pt = label_edges_partial(senders, receivers, truth, graph_cfg.edge_weight, graph_cfg.pt_cut)
    else:
        labels, weights, pt = label_edges(senders, receivers, truth, graph_cfg.edge_weight, graph_cfg.pt_cut)
    graph = EventGraph(
        nodes, senders.astype(np.int32), receivers.astype(np.int32), labels, weights, pt,
        hits["hit_id"].to_numpy(np.int64), int(event.event_id),
    ).validate()
    # a masked label's pt is its group's pt_min, a strict lower bound: pt_min 0.5 is above PT_REPORT
    above = np.greater_equal if partial is not None else np.greater
    hi = above(truth.pt, PT_REPORT) if truth is not None else np.zeros(0, bool)
    stats = EventStats(
        int(event.event_id), graph.n_node, graph.n_edge, truth.n_true if truth is not None else 0,
        int(labels.sum()), int(hi.sum()), int(np.sum((labels == 1) & above(pt, PT_REPORT))), seconds,
        "none" if truth is None else "masked" if partial is not None else "full",
    )
    return graph, stats




def init_worker(cfg_data: dict, module_map_path: Optional[str], with_cells: bool, log_level: int) -> None:
    """Sets up a worker process: the config, the module-map builder (when a map is given) and the cells choice.

    Args:
      cfg_data: the config as a dict (:func:`trkx_tf.config.config_to_dict`).
      module_map_path: a saved :class:`~trkx_tf.graphs.module_map.ModuleMap`, or None (no builder).
      with_cells: the node features include the cell features.
      log_level: the ``trkx_tf`` logger's level.
    """
    logging.getLogger("trkx_tf").setLevel(log_level)
    cfg = Config.model_validate(cfg_data)
    mm = ModuleMap.load(module_map_path) if module_map_path else None
    set_worker(cfg, make_builder(cfg.graph, module_map=mm) if mm is not None else None, with_cells)


def map_events(fn: Callable, items: list, workers: int, initargs: tuple, progress: bool, desc: str) -> list:
    """``fn`` over ``items``, in order, in worker processes set up by :func:`init_worker` with ``initargs``.

    Args:
      fn: a task of this module (:func:`graph_task`, :func:`stats_task`, :func:`edge_sample_task`) or another
        function that reads the worker's setup.
      items: its arguments, one per call.
      workers: processes (:func:`trkx_tf.processes.map_in_processes`).
      initargs: :func:`init_worker`'s arguments.
      progress: show a progress bar labelled ``desc`` (counted in events when ``desc`` names them).

    Returns:
      ``fn``'s results, in the order of ``items``.
    """
    return map_in_processes(fn, items, workers, initializer=init_worker, initargs=initargs, progress=progress,
                            desc=desc, unit="ev" if "event" in desc else "it", leave=False)


def set_worker(cfg: Config, builder: Optional[EdgeBuilder], with_cells: bool) -> None:
    """What :func:`graph_task` and :func:`stats_task` use in this process (a builder that cannot be shipped to
    worker processes, e.g. the embedding's, is set here directly)."""
    _WORKER.update(cfg=cfg, builder=builder, with_cells=with_cells)


def _read_event(folder: str, event_id: int, parts: tuple[str, ...]):
    """:func:`trkx_tf.trackml.io.read_event`, with the events folder and what to do added to a DataError."""
    from trkx_tf.trackml.io import read_event

    try:
        return read_event(folder, event_id, parts=parts)
    except DataError as exc:
        raise DataError(f"{exc} [events folder {folder}: fix or remove event {event_id}, then re-run]") from None


def edge_sample_task(args: tuple[str, int, int]) -> Optional[EdgeSample]:
    """``(events folder, event id, skip_layers)`` -> the event's :class:`EdgeSample`, what a module map is learned
    from (None for an event without particles or truth). One argument, so that process pools can map it."""
    folder, event_id, skip_layers = args
    event = _read_event(folder, event_id, ("hits", "particles", "truth"))
    if event.truth is None or event.particles is None:
        return None
    return EdgeSample.from_truth(event.hits, truth_graph(event.hits, event.particles, event.truth), skip_layers)


def graph_task(args: tuple[str, int, str, str]) -> tuple[list[tuple[str, int, int, int]], EventStats]:
    """``(events folder, event id, tmp_dir, split)`` -> one event's graph(s), saved under tmp_dir, as
    ``([(file, sector, n_node, n_edge)], stats)``; training events are cut into ``graph.sectors``."""
    folder, event_id, tmp_dir, split = args
    cfg, builder, with_cells = _WORKER["cfg"], _WORKER["builder"], _WORKER["with_cells"]
    parts = ("hits", "particles", "truth", "partial-truth") + (("cells",) if with_cells else ())
    event = _read_event(folder, event_id, parts)
    graph, stats = event_graph(event, builder, cfg.graph, with_cells)
    graphs = [graph]
    sec = cfg.graph.sectors
    if split == "train" and sec.phi * sec.eta > 1:
        r, phi, z = cylindrical(event.hits)
        graphs = split_sectors(graph, phi, np.arcsinh(z / np.maximum(r, 1e-9)), sec.phi, sec.eta, sec.overlap)
    out = []
    for g in graphs:
        path = Path(tmp_dir) / f"g{g.event_id:012d}_{g.sector + 1:05d}.npz"
        save_graph(str(path), g)
        out.append((str(path), g.sector, g.n_node, g.n_edge))
    return out, stats


def stats_task(args: tuple[str, int]) -> EventStats:
    """``(events folder, event id)`` -> the builder's :class:`EventStats` on that event (nothing is saved)."""
    folder, event_id = args
    cfg, builder = _WORKER["cfg"], _WORKER["builder"]
    event = _read_event(folder, event_id, ("hits", "particles", "truth", "partial-truth"))
    return event_graph(event, builder, cfg.graph, with_cells=False)[1]


def load_graph(path: str) -> EventGraph:
    """An :class:`~trkx_tf.graphs.graph.EventGraph` saved by :func:`save_graph`."""
    with np.load(path, allow_pickle=False) as d:
        values = {f.name: d[f.name] for f in dataclasses.fields(EventGraph)}
    values["event_id"] = int(values["event_id"])
    values["sector"] = int(values["sector"])
    return EventGraph(**values)


def save_graph(path: str, g: EventGraph) -> None:
    """Saves a graph between the build's passes (an uncompressed ``.npz``)."""
    np.savez(path, **{f.name: np.asarray(getattr(g, f.name)) for f in dataclasses.fields(EventGraph)})


def filter_graph_files(entries: list, edge_filter, threshold: float, progress: bool = False) -> dict:
    """Keeps only the edges the filter scores >= threshold in each saved graph (rewritten in place).

    Args:
      entries: ``(split, event_id, sector, file, n_node, n_edge)`` of every graph; the ``n_edge`` of each entry is
        updated to the kept edges.
      edge_filter: an edge scorer ``(nodes [n_node, F], senders [n_edge], receivers [n_edge]) -> [n_edge]``.
      threshold: the kept edges' minimum score.
      progress: a progress bar.

    Returns:
      The filter's metrics over the graphs: ``{"threshold", "edges_per_graph", "kept_per_graph", "efficiency",
      "efficiency_pt", "purity"}`` (efficiencies over the true edges of the candidates; None without any; the
      purity over the kept edges of known truth: true, or of positive weight, so masked edges count in neither).
    """
    from tqdm import tqdm

    n = kept = known_kept = true = true_kept = hi = hi_kept = 0
    for k, entry in enumerate(tqdm(entries, desc="filter: graphs", disable=not progress, leave=False)):
        g = load_graph(entry[3])
        scores = np.asarray(edge_filter(g.nodes, g.senders, g.receivers))
        keep = np.flatnonzero(scores >= threshold)
        is_true = g.edge_labels == 1
        known = is_true | (g.edge_weights > 0)  # masked edges (unknown truth) are neither true nor false
        is_hi = is_true & (g.edge_pt > PT_REPORT)
        n, kept, known_kept = n + g.n_edge, kept + len(keep), known_kept + int(known[keep].sum())
        true, true_kept = true + int(is_true.sum()), true_kept + int(is_true[keep].sum())
        hi, hi_kept = hi + int(is_hi.sum()), hi_kept + int(is_hi[keep].sum())
        save_graph(entry[3], g.subgraph(np.arange(g.n_node), keep, g.edge_weights[keep], g.sector))
        entries[k] = (*entry[:5], len(keep))
    graphs = max(len(entries), 1)
    return {"threshold": float(threshold), "edges_per_graph": n / graphs, "kept_per_graph": kept / graphs,
            "efficiency": true_kept / true if true else None, "efficiency_pt": hi_kept / hi if hi else None,
            "purity": true_kept / known_kept if known_kept and true else None}
