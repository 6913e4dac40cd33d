"""``trkx-infer`` as a library: whole TrackML events in, tracks (TrackML submissions) and per-stage timings out.

Per event, on the **whole event** (never sectors)::

    loading            read hits (+ cells where the model uses them)                  trackml.io.read_event
    graph_construction node features + candidate edges of the configured builder     graphs.features / candidates
    filter             edge-filter MLP over edge chunks of infer.filter_chunk_edges   models.filter.EdgeFilter
                       -> keep edges with score >= infer.filter_threshold
    gnn                Interaction Network on the kept edges (one whole-event pass)   models.interaction
    labelling          tracks from edges with GNN score >= infer.gnn_threshold         reco.labelling (cc | walk)
    writing            event<ID>-submission.csv (+ event<ID>-edges.npz)               reco.outputs

The stage names are those of ``timings.json`` (wall time in seconds, as in the Exa.TrkX paper's Table 2).
Without a filter checkpoint there is no filter stage: every candidate edge reaches the GNN.

The pipeline talks to the models through :class:`~trkx_tf.reco.scorers.EdgeScorer` (:mod:`trkx_tf.reco.scorers`
loads them from checkpoints); tests substitute other scorers (a truth oracle) behind the same interface.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch` (``n_node``, ``n_edge``, ``F``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from trkx_tf.config import GraphConfig
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.files import check_output_folder, signals_deferred, write_text_atomic
from trkx_tf.graphs.candidates import EdgeBuilder, make_builder
from trkx_tf.graphs.module_map import ModuleMap
from trkx_tf.graphs.features import cylindrical, feature_names, hit_features, uses_cells
from trkx_tf.placement import set_threads
from trkx_tf.ranks import SINGLE, Ranks
from trkx_tf.reco.labelling import label_tracks, submission_frame
from trkx_tf.reco.outputs import TIMINGS_FILE, StageEdges, edges_path, submission_path, write_edges
from trkx_tf.reco.scorers import EdgeScorer, load_scorer
from trkx_tf.trackml.score import write_submission

log = logging.getLogger("trkx_tf.reco.pipeline")

STAGES = ("loading", "graph_construction", "filter", "gnn", "labelling")
_GRAPH_DEFAULTS = GraphConfig()  # the feature scales' defaults live in the config schema


@dataclasses.dataclass
class EventResult:
    """One event's reconstruction.

    Attributes:
      event_id: the event.
      hit_id: [n_node] int64 hit ids.
      track_id: [n_node] int64 track of each hit (1 … n_tracks).
      edges: the scored edges of every stage.
      seconds: stage -> wall time (the keys of :data:`STAGES`, ``filter`` only with a filter).
    """

    event_id: int
    hit_id: np.ndarray
    track_id: np.ndarray
    edges: StageEdges
    seconds: dict

    @property
    def n_tracks(self) -> int:
        return int(self.track_id.max()) if len(self.track_id) else 0


class Pipeline:
    """features → candidate edges → filter → GNN → labelling, on one whole event at a time.

    Args:
      builder: the candidate-edge builder.
      gnn: the GNN's :class:`EdgeScorer`.
      filter: the filter's :class:`EdgeScorer`, or None (every candidate edge reaches the GNN).
      filter_threshold: filter scores at least this keep an edge (``infer.filter_threshold``).
      gnn_threshold: GNN scores at least this join two hits (``infer.gnn_threshold``).
      labelling: ``"cc"`` or ``"walk"`` (``infer.labelling``, :mod:`trkx_tf.reco.labelling`).
      with_cells: add the cell-shape features (the events must have cells files).
      r_scale, z_scale: feature scales (``graph.r_scale``, ``graph.z_scale``; their defaults are the schema's).
      engine: what evaluates the models, ``"tensorflow"`` or ``"numpy"`` (:mod:`trkx_tf.reco.numpy_engine`).
    """

    def __init__(self, builder: EdgeBuilder, gnn: EdgeScorer, filter: Optional[EdgeScorer] = None, *,
                 filter_threshold: float, gnn_threshold: float, labelling: str, with_cells: bool = False,
                 r_scale: float = _GRAPH_DEFAULTS.r_scale, z_scale: float = _GRAPH_DEFAULTS.z_scale,
                 engine: str = "tensorflow"):
        if labelling not in ("cc", "walk"):
            raise ConfigError(f"infer.labelling must be 'cc' or 'walk', got {labelling!r}")
        self.builder, self.gnn, self.filter = builder, gnn, filter
        self.filter_threshold, self.gnn_threshold = float(filter_threshold), float(gnn_threshold)
        self.labelling = labelling
        self.with_cells = with_cells
        self.r_scale, self.z_scale = r_scale, z_scale
        self.engine = engine

    @property
    def parts(self) -> tuple[str, ...]:
        """The event parts to read."""
        return ("hits", "cells") if self.with_cells else ("hits",)

    def run(self, event, load_seconds: float = 0.0) -> EventResult:
        """Reconstructs one loaded event.

        Args:
          event: a :class:`~trkx_tf.trackml.io.Event` (hits; cells when ``with_cells``).
          load_seconds: the time it took to load, recorded as the ``loading`` stage.

        Returns:
          The :class:`EventResult`; every hit of the event has exactly one track.

        Raises:
          DataError: a malformed event, or no cells where the model uses cell features.
        """
        seconds = {"loading": float(load_seconds)}
        hits = event.hits
        n_node = len(hits)
        t = time.perf_counter()
        nodes = hit_features(hits, event.cells, self.with_cells, self.r_scale, self.z_scale)
        senders, receivers = self.builder.build(hits, nodes)
        senders = senders.astype(np.int32)
        receivers = receivers.astype(np.int32)
        seconds["graph_construction"] = time.perf_counter() - t
        n_edge = len(senders)
        keep = {"graph": np.ones(n_edge, bool)}
        scores = {}

        kept = np.arange(n_edge)
        if self.filter is not None:
            t = time.perf_counter()
            f_scores = self.filter(nodes, senders, receivers)
            seconds["filter"] = time.perf_counter() - t
            keep["filter"] = f_scores >= self.filter_threshold
            scores["filter"] = f_scores
            kept = np.flatnonzero(keep["filter"])

        t = time.perf_counter()
        g_kept = self.gnn(nodes, senders[kept], receivers[kept])
        seconds["gnn"] = time.perf_counter() - t
        g_scores = np.full(n_edge, np.nan, np.float32)
        g_scores[kept] = g_kept
        scores["gnn"] = g_scores
        keep["gnn"] = np.zeros(n_edge, bool)
        keep["gnn"][kept] = g_kept >= self.gnn_threshold

        t = time.perf_counter()
        order_key = None
        if self.labelling == "walk":
            r, _, z = cylindrical(hits)
            order_key = np.hypot(r, z)
        track_id = label_tracks(self.labelling, n_node, senders[kept], receivers[kept], g_kept,
                                self.gnn_threshold, order_key)
        seconds["labelling"] = time.perf_counter() - t

        hit_id = hits["hit_id"].to_numpy(np.int64)
        edges = StageEdges(hit_id[senders], hit_id[receivers], keep, scores)
        return EventResult(int(event.event_id), hit_id, track_id, edges, seconds)


def make_pipeline(cfg, n_features: Optional[int] = None, with_cells: bool = False,
                  filter_ckpt: Optional[str] = None, gnn_ckpt: Optional[str] = None,
                  module_map: Optional[str] = None) -> Pipeline:
    """The pipeline a config describes: builder, models restored from their checkpoints, thresholds.

    Args:
      cfg: the whole config (``graph``, ``model``, ``infer``).
      n_features: F (default: from ``with_cells``).
      with_cells: whether the node features include the cell-shape features.
      filter_ckpt, gnn_ckpt, module_map: override ``infer.filter_ckpt``, ``infer.gnn_ckpt``, ``infer.module_map``.

    Returns:
      The :class:`Pipeline`.

    Raises:
      ConfigError: no GNN checkpoint, or no module map for the module-map builder.
      CheckpointError: a checkpoint is missing or does not fit its model.
      DataError: the module map cannot be read.
    """
    icfg = cfg.infer
    if icfg.engine == "numpy":
        raise ConfigError("infer.engine=numpy runs released models (trkx-infer --model); checkpoints run on "
                          "TensorFlow (infer.engine=auto or tensorflow)")
    filter_ckpt = filter_ckpt or icfg.filter_ckpt
    gnn_ckpt = gnn_ckpt or icfg.gnn_ckpt
    if not gnn_ckpt:
        raise ConfigError("trkx-infer needs a GNN checkpoint (infer.gnn_ckpt or --gnn-ckpt)")
    if cfg.graph.builder == "module_map":
        map_path = module_map or icfg.module_map or cfg.graph.module_map.path
        if not map_path:
            raise ConfigError("graph.builder=module_map: give the module map (infer.module_map or --module-map; "
                              "trkx-build saves it as <shards>/module_map.npz)")
        if not Path(map_path).is_file():
            raise DataError(f"{map_path}: module map not found")
        builder = make_builder(cfg.graph, module_map=ModuleMap.load(map_path))
    else:
        raise ConfigError("trkx-infer: graph.builder=embedding is not wired into inference yet (use module_map)")
    f = n_features if n_features is not None else len(feature_names(with_cells))
    gnn = load_scorer(cfg, "gnn", gnn_ckpt, f)
    filt = load_scorer(cfg, "filter", filter_ckpt, f) if filter_ckpt else None
    return Pipeline(builder, gnn, filt, filter_threshold=icfg.filter_threshold, gnn_threshold=icfg.gnn_threshold,
                    labelling=icfg.labelling, with_cells=with_cells, r_scale=cfg.graph.r_scale,
                    z_scale=cfg.graph.z_scale)


def warm_up(pipeline: Pipeline, n_features: int) -> None:
    """Traces the models' ``tf.function`` (or loads the numpy engine's kernels) and loads the compiled labelling and
    window search once on a tiny graph, so that the first event's timings exclude start-up costs."""
    nodes = np.zeros((3, n_features), np.float32)
    s, r = np.array([0, 1], np.int32), np.array([1, 2], np.int32)
    for scorer in (pipeline.filter, pipeline.gnn):
        if scorer is not None:
            scorer(nodes, s, r)
    label_tracks(pipeline.labelling, 3, s, r, np.ones(2, np.float32), pipeline.gnn_threshold, np.arange(3.0))
    pipeline.builder.warm_up()


@dataclasses.dataclass
class InferSummary:
    """What one ``trkx-infer`` run did.

    Attributes:
      out_dir: the output folder.
      events: one record per event (``event_id, n_hits, n_edges, n_tracks`` and the stage times).
      total: stage -> summed seconds over events (plus ``total``).
    """

    out_dir: str
    events: list
    total: dict

    def format(self) -> str:
        """Human-readable lines (what trkx-infer prints)."""
        n = len(self.events)
        stages = [s for s in (*STAGES, "writing") if s in self.total]
        lines = [f"trkx-infer: {n} event{'s' if n != 1 else ''} -> {self.out_dir}",
                 f"{'event':>10} {'hits':>8} {'edges':>9} {'→filter':>9} {'→gnn':>8} {'tracks≥5':>8}  "
                 + " ".join(f"{s[:10]:>10}" for s in stages) + f" {'total s':>8}"]
        for e in self.events:
            lines.append(f"{e['event_id']:>10} {e['n_hits']:>8} {e['n_edges']['graph']:>9} "
                         f"{e['n_edges'].get('filter', e['n_edges']['graph']):>9} {e['n_edges']['gnn']:>8} "
                         f"{e['n_tracks_5']:>8}  " + " ".join(f"{e['seconds'].get(s, 0.0):>10.3f}" for s in stages)
                         + f" {e['seconds']['total']:>8.3f}")
        lines.append(f"{'sum':>10} {'':>8} {'':>9} {'':>9} {'':>8} {'':>8}  "
                     + " ".join(f"{self.total.get(s, 0.0):>10.3f}" for s in stages) + f" {self.total['total']:>8.3f}")
        return "\n".join(lines)


def _infer_event(cfg, pipeline: Pipeline, input_dir: Path, out_dir: Path, event_id: int) -> dict:
    """Reconstructs one event and writes its submission (and edges): its record for ``timings.json``.

    The hits are validated as trkx-build and trkx-eval validate them (:func:`trkx_tf.trackml.io.validate_event`).
    The output folder is created here, once an event is ready to be written.
    """
    from trkx_tf.trackml.io import read_event

    t0 = time.perf_counter()
    event = read_event(input_dir, event_id, parts=pipeline.parts)
    if pipeline.with_cells and event.cells is None:
        raise DataError(f"event {event_id}: the model uses cell features but the event has no cells file")
    result = pipeline.run(event, load_seconds=time.perf_counter() - t0)
    t = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    submission = submission_path(out_dir, event_id)
    try:  # (infer runs each event with SIGTERM / Ctrl-C held back: a stop never lands inside these files)
        write_submission(submission, submission_frame(event_id, result.hit_id, result.track_id))
        if cfg.infer.save_edges:
            write_edges(edges_path(out_dir, event_id), result.edges)
    except BaseException:  # an event's outputs are written together or not at all (a full disk)
        submission.unlink(missing_ok=True)
        raise
    result.seconds["writing"] = time.perf_counter() - t
    result.seconds["total"] = time.perf_counter() - t0
    sizes = np.bincount(result.track_id)
    return {
        "event_id": event_id, "n_hits": len(result.hit_id),
        "n_edges": {k: int(v.sum()) for k, v in result.edges.keep.items()},
        "n_tracks": result.n_tracks, "n_tracks_5": int((sizes >= 5).sum()),
        "seconds": {k: round(v, 6) for k, v in result.seconds.items()},
    }


def infer(
    cfg,
    input_dir: os.PathLike | str,
    out_dir: os.PathLike | str,
    *,
    events: Optional[Sequence[int]] = None,
    filter_ckpt: Optional[str] = None,
    gnn_ckpt: Optional[str] = None,
    module_map: Optional[str] = None,
    pipeline: Optional[Pipeline] = None,
    progress: bool = True,
    ranks: Ranks = SINGLE,
) -> InferSummary:
    """Reconstructs the tracks of every event of a folder; writes submissions, edges and ``timings.json``.

    Args:
      cfg: the whole config.
      input_dir: TrackML events (hits; cells when the model uses cell features).
      out_dir: output folder (created), see :mod:`trkx_tf.reco.outputs`.
      events: event ids to reconstruct (None: every event of the folder).
      filter_ckpt, gnn_ckpt, module_map: override the ``infer`` section.
      pipeline: a ready pipeline instead of the one the config describes (tests, benchmarks).
      progress: show a progress bar over events (tqdm, on stderr).
      ranks: the MPI ranks sharing the events (:mod:`trkx_tf.ranks`): event i of the sorted ids goes to rank
        i mod size, each rank writes its events' submissions and edges (the same bytes whoever writes them), rank 0
        writes ``timings.json`` with every event's record; a rank that fails fails every rank.

    Returns:
      The :class:`InferSummary` (also written as ``timings.json``), on every rank.

    Raises:
      DataError: no events, a malformed event, cells in some events only.
      ConfigError, CheckpointError: see :func:`make_pipeline`.
    """
    from tqdm import tqdm

    from trkx_tf.trackml.io import list_events

    def prepare():
        out = check_output_folder(out_dir)
        available = list_events(input_dir)
        ids = available if events is None else sorted({int(e) for e in events})
        if not ids:
            raise DataError(f"{input_dir}: no events (event<id>-hits.csv[.gz]) found")
        missing = sorted(set(ids) - set(available))
        if missing:
            raise DataError(f"{input_dir}: event {missing[0]} not found")
        if pipeline is not None and pipeline.engine == "numpy":
            from trkx_tf.reco.numpy_engine import set_threads as set_engine_threads

            set_engine_threads(cfg.infer.threads)
        else:
            set_threads(cfg.infer.threads)
        ready = pipeline
        if ready is None:
            with_cells = uses_cells(input_dir, ids, cfg.graph.use_cells)
            ready = make_pipeline(cfg, with_cells=with_cells, filter_ckpt=filter_ckpt, gnn_ckpt=gnn_ckpt,
                                  module_map=module_map)
            warm_up(ready, len(feature_names(with_cells)))
        return out, ids, ready

    input_dir = Path(input_dir)
    out_dir, ids, pipeline = ranks.step(prepare)
    created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]  # deepest first

    def reconstruct(share):
        records = []
        try:
            for event_id in tqdm(share, desc="infer: events", unit="ev", disable=not progress, dynamic_ncols=True):
                with signals_deferred():  # SIGTERM / Ctrl-C stop the run between events, never inside a library
                    record = _infer_event(cfg, pipeline, input_dir, out_dir, event_id)
                records.append(record)
        except BaseException:
            for d in created:  # the folders this run made, while nothing was written into them
                try:
                    d.rmdir()
                except OSError:
                    break
            raise
        return records

    records = ranks.map(reconstruct, ids)
    keys = [k for k in (*STAGES, "writing", "total") if any(k in r["seconds"] for r in records)]
    total = {k: round(sum(r["seconds"].get(k, 0.0) for r in records), 6) for k in keys}
    summary = InferSummary(str(out_dir), records, total)
    timings = {
        "stages": [k for k in keys if k not in ("writing", "total")],
        "note": "wall seconds per stage; total = loading + graph_construction + filter + gnn + labelling + writing "
                "(+ small bookkeeping); the models are traced once before the first event",
        "threads": cfg.infer.threads or os.cpu_count(),
        "events": records,
        "total": total,
        "mean": {k: round(v / len(records), 6) for k, v in total.items()},
    }
    if ranks.root:
        out_dir.mkdir(parents=True, exist_ok=True)  # a rank > 0 may have reconstructed every event
        ranks.step(write_text_atomic, out_dir / TIMINGS_FILE, json.dumps(timings, indent=1) + "\n")
    else:
        ranks.step(lambda: None)
    return summary
