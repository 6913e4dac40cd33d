"""``trkx-build`` as a library: TrackML events in, padded HDF5 graph shards out.

Pipeline (deterministic: the same input and config give the same shards, whatever the number of workers)::

    events (sorted ids) ──split──> train (first) / val (last round(val_fraction · n))
    train events' truth ─────────> module map (learned, or graph.module_map.path)      [parallel over events]
    every event: features, truth graph, candidate edges, labels, weights (train: sectors)  [parallel over events]
    graph.filter_ckpt set: each graph keeps the edges the filter scores >= the threshold  [this process]
    graph sizes ─────────────────> buckets (chosen, or graph.buckets + the oversize rule)
    graphs by (split, bucket) ───> shards of graph.graphs_per_shard graphs               [parallel over shards]
    manifest.json, config.yaml, module_map.npz

Output folder layout: ``<split>-b<bucket:02d>-<k:05d>.h5`` shards (docs/shards.md), ``manifest.json`` (every
shard with its budget, checksum and graphs; the buckets; the padding overhead; the builder's efficiency and purity
per event), ``config.yaml`` (the resolved config), ``module_map.npz`` (the map used, module_map builder).
Shards of an older build that the new manifest does not list are removed after the new manifest is written.

Filtered shards (what the GNN trains on): with ``graph.filter_ckpt`` (``trkx-build --filter-ckpt``) the trained edge
filter scores every graph's candidate edges, exactly as ``trkx-infer`` does (the caller passes the scorer, see
:func:`build_shards`), and only edges scoring at least ``graph.filter_threshold`` (default:
``infer.filter_threshold``) are written; the nodes stay. Use the module map the filter was trained with
(``--module-map <filter shards>/module_map.npz``). The manifest's
``filter`` entry records the checkpoint, the threshold and the filter's edge efficiency and purity.

Reliability (docs/reliability.md):

* One build at a time per output folder: a build holds an exclusive ``flock`` on ``<out>/.trkx-build.lock``; a
  second build into the same folder refuses at once (:class:`BuildLockedError`).
* Nothing half-written: shards, ``module_map.npz``, ``config.yaml`` and ``manifest.json`` are written under
  temporary names and renamed into place; the manifest is written last.
* Resumable: a re-run after an interruption (SIGINT, SIGKILL, a node failure) removes the temporary files of the
  dead build, rebuilds the graphs (deterministic), keeps every complete shard whose checksum matches the graphs it
  must hold (the file is not rewritten) and writes the rest; the manifest comes out as an uninterrupted build's.
* A failed build (bad input, bad config) leaves no output: it removes its temporary files and an output folder
  it created (unless complete shards are already in it, kept for the resume).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import logging
import os
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from trkx_tf.config import Config, config_to_dict, save_config
from trkx_tf.errors import ConfigError, DataError, ShardError, TrkxError
from trkx_tf.graphs.buckets import assign_buckets, choose_buckets
from trkx_tf.graphs.builders import EdgeBuilder, EdgeSample, ModuleMap, make_builder
from trkx_tf.graphs.features import cylindrical, feature_names, hit_features
from trkx_tf.graphs.graph import EventGraph
from trkx_tf.graphs.sectors import split_sectors
from trkx_tf.graphs.shards import ShardInfo, existing_shard, write_manifest, write_shard
from trkx_tf.graphs.truth import TruthGraph, label_edges, truth_graph

log = logging.getLogger("trkx_tf.graphs.build")

PT_REPORT = 0.5  # GeV: the efficiency target is quoted for true edges of particles above it
_SHARD_NAME = "{split}-b{bucket:02d}-{k:05d}.h5"
LOCK_FILE = ".trkx-build.lock"
MODULE_MAP_FILE = "module_map.npz"
_TMP_DIR = ".tmp-build-{pid}"
#: temporary names of this module's writers: the work folder, and ``.<name>.tmp<pid>`` of an atomic write
_STALE = re.compile(r"^(\.tmp-build-\d+|\..+\.(h5|json|yaml|npz)\.tmp\d+)$")


class BuildLockedError(TrkxError):
    """Another ``trkx-build`` is writing into the same output folder."""


# ------------------------------------------------------------------------------------------- the output folder
class OutputLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>/.trkx-build.lock`` (released when the process dies).

    The file holds the owner's pid, for the message. It is removed on release while the lock is still held; a
    process that locked a removed file notices (another inode at the path) and counts the folder as busy.

    Args:
      folder: the output folder (must exist).

    Raises:
      BuildLockedError: another process holds the lock (from :meth:`acquire`).
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self._fd: Optional[int] = None
        self.locked = False

    def acquire(self) -> "OutputLock":
        """Takes the lock, or raises BuildLockedError at once."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                owner = _read_pid(fd)
                os.close(fd)
                raise self._busy(owner) from None
            # a file system without flock (Lustre mounted without -o flock, some NFS): go on unlocked
            log.warning("%s: cannot lock (%s): a concurrent trkx-build into this folder would not be detected",
                        self.path, exc.strerror)
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

    def _busy(self, owner: Optional[int]) -> BuildLockedError:
        who = f"another trkx-build (pid {owner})" if owner else "another trkx-build"
        return BuildLockedError(f"{self.path.parent}: {who} is writing into this folder ({LOCK_FILE} is locked); "
                                f"wait for it to finish or build into another folder")

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


def _remove_stale(out_dir: Path) -> list[str]:
    """Removes what a dead build left in its output folder (temporary files and work folders): their names."""
    removed = []
    for entry in sorted(out_dir.iterdir()):
        if _STALE.match(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


# ------------------------------------------------------------------------------------------------- one event
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
    """

    event_id: int
    n_hits: int
    n_edges: int
    n_true: int
    n_true_found: int
    n_true_pt: int
    n_true_pt_found: int
    seconds: float


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
      ``(graph, stats)``; without truth every label and weight is 0.

    Raises:
      DataError: the event is malformed.
    """
    hits = event.hits
    nodes = hit_features(hits, event.cells, with_cells, graph_cfg.r_scale, graph_cfg.z_scale)
    if truth is None and event.truth is not None and event.particles is not None:
        truth = truth_graph(hits, event.particles, event.truth)
    t0 = time.perf_counter()
    senders, receivers = builder.build(hits, nodes)
    seconds = time.perf_counter() - t0
    labels, weights, pt = label_edges(senders, receivers, truth, graph_cfg.edge_weight, graph_cfg.pt_cut)
    graph = EventGraph(
        nodes, senders.astype(np.int32), receivers.astype(np.int32), labels, weights, pt,
        hits["hit_id"].to_numpy(np.int64), int(event.event_id),
    ).validate()
    hi = truth.pt > PT_REPORT if truth is not None else np.zeros(0, bool)
    stats = EventStats(
        int(event.event_id), graph.n_node, graph.n_edge, truth.n_true if truth is not None else 0,
        int(labels.sum()), int(hi.sum()), int(np.sum((labels == 1) & (pt > PT_REPORT))), seconds,
    )
    return graph, stats


def builder_metrics(stats: Sequence[EventStats]) -> dict:
    """Edge efficiency, purity and edges per event over events (ratios of summed counts).

    Returns:
      ``{"events", "edges_per_event", "efficiency", "efficiency_pt", "purity", "seconds_per_event"}``; the
      efficiency_pt is over true edges of particles with pT > 0.5 GeV; ratios are None without true edges.
    """
    n = len(stats)
    edges = sum(s.n_edges for s in stats)
    true = sum(s.n_true for s in stats)
    found = sum(s.n_true_found for s in stats)
    true_pt = sum(s.n_true_pt for s in stats)
    found_pt = sum(s.n_true_pt_found for s in stats)
    return {
        "events": n,
        "edges_per_event": edges / n if n else 0.0,
        "true_edges_per_event": true / n if n else 0.0,
        "efficiency": found / true if true else None,
        "efficiency_pt": found_pt / true_pt if true_pt else None,
        "purity": found / edges if edges and true else None,
        "seconds_per_event": sum(s.seconds for s in stats) / n if n else 0.0,
    }


# -------------------------------------------------------------------------------------- process-pool workers
_WORKER: dict = {}


def _init_worker(cfg_data: dict, module_map_path: Optional[str], with_cells: bool, log_level: int) -> None:
    logging.getLogger("trkx_tf").setLevel(log_level)
    cfg = Config.model_validate(cfg_data)
    mm = ModuleMap.load(module_map_path) if module_map_path else None
    _WORKER.update(cfg=cfg, builder=make_builder(cfg.graph, module_map=mm) if mm is not None else None,
                   with_cells=with_cells)


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


def _graph_task(args: tuple[str, int, str, str]) -> tuple[list[tuple[str, int, int, int]], EventStats]:
    """Builds one event's graph(s), saves them under tmp_dir, returns [(file, sector, n_node, n_edge)], stats."""
    folder, event_id, tmp_dir, split = args
    cfg, builder, with_cells = _WORKER["cfg"], _WORKER["builder"], _WORKER["with_cells"]
    parts = ("hits", "particles", "truth") + (("cells",) if with_cells else ())
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
        _save_graph(str(path), g)
        out.append((str(path), g.sector, g.n_node, g.n_edge))
    return out, stats


def _stats_task(args: tuple[str, int]) -> EventStats:
    folder, event_id = args
    cfg, builder = _WORKER["cfg"], _WORKER["builder"]
    event = _read_event(folder, event_id, ("hits", "particles", "truth"))
    return event_graph(event, builder, cfg.graph, with_cells=False)[1]


def _load_graph(path: str) -> EventGraph:
    with np.load(path, allow_pickle=False) as d:
        values = {f.name: d[f.name] for f in dataclasses.fields(EventGraph)}
    values["event_id"] = int(values["event_id"])
    values["sector"] = int(values["sector"])
    return EventGraph(**values)


def _save_graph(path: str, g: EventGraph) -> None:
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
      "efficiency_pt", "purity"}`` (efficiencies over the true edges of the candidates; None without any).
    """
    from tqdm import tqdm

    n = kept = true = true_kept = hi = hi_kept = 0
    for k, entry in enumerate(tqdm(entries, desc="filter: graphs", disable=not progress, leave=False)):
        g = _load_graph(entry[3])
        scores = np.asarray(edge_filter(g.nodes, g.senders, g.receivers))
        keep = np.flatnonzero(scores >= threshold)
        is_true = g.edge_labels == 1
        is_hi = is_true & (g.edge_pt > PT_REPORT)
        n, kept = n + g.n_edge, kept + len(keep)
        true, true_kept = true + int(is_true.sum()), true_kept + int(is_true[keep].sum())
        hi, hi_kept = hi + int(is_hi.sum()), hi_kept + int(is_hi[keep].sum())
        _save_graph(entry[3], g.subgraph(np.arange(g.n_node), keep, g.edge_weights[keep], g.sector))
        entries[k] = (*entry[:5], len(keep))
    graphs = max(len(entries), 1)
    return {"threshold": float(threshold), "edges_per_graph": n / graphs, "kept_per_graph": kept / graphs,
            "efficiency": true_kept / true if true else None, "efficiency_pt": hi_kept / hi if hi else None,
            "purity": true_kept / kept if kept and true else None}


def _shard_task(args: tuple) -> tuple[ShardInfo, bool]:
    """Writes one shard, or keeps the complete one already there (resume): (info, written)."""
    path, files, budget, split, bucket, names, builder, compression, scales = args
    graphs = [_load_graph(f) for f in files]
    kw = dict(split=split, bucket=bucket, feature_names=names, builder=builder, compression=compression,
              scales=scales)
    kept = existing_shard(path, graphs, budget[0], budget[1], **kw)
    if kept is not None:
        return kept, False
    return write_shard(path, graphs, budget[0], budget[1], **kw), True


def _run(fn: Callable, items: list, workers: int, initargs: tuple, progress: bool, desc: str) -> list:
    """fn over items, in order, in a process pool (or inline for one worker), with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="ev" if "event" in desc else "it", disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        if workers <= 1 or len(items) <= 1:
            _init_worker(*initargs)
            out = []
            for item in items:
                out.append(fn(item))
                bar.update()
            return out
        with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=get_context("spawn"),
                                 initializer=_init_worker, initargs=initargs) as pool:
            out = []
            for result in pool.map(fn, items):
                out.append(result)
                bar.update()
            return out
    finally:
        bar.close()


# ----------------------------------------------------------------------------------------------- the build
@dataclasses.dataclass
class BuildSummary:
    """What one build produced (also stored in the manifest).

    Attributes:
      out_dir: the output folder.
      splits: split -> event ids.
      n_graphs: split -> graphs.
      buckets: [B, 2] budgets.
      bucket_graphs: graphs per bucket.
      oversize: graphs that fitted no configured bucket (got their own).
      padding: padded/real element ratios (see :func:`trkx_tf.graphs.buckets.padding_overhead`).
      metrics: builder metrics over all events with truth (see :func:`builder_metrics`).
      n_shards: shards in the output (written or kept).
      seconds: wall time.
      kept_shards: shards already complete in out_dir (an interrupted or earlier build), verified and kept.
      filter: the edge filter's metrics (:func:`filter_graph_files`) when the graphs were filtered, else None.
    """

    out_dir: str
    splits: dict
    n_graphs: dict
    buckets: list
    bucket_graphs: list
    oversize: list
    padding: dict
    metrics: dict
    n_shards: int
    seconds: float
    kept_shards: int = 0
    filter: Optional[dict] = None

    def format(self) -> str:
        """A human-readable summary (what trkx-build prints)."""
        m, p = self.metrics, self.padding

        def pct(x):
            return "n/a" if x is None else f"{100 * x:.2f} %"

        lines = [
            f"trkx-build: {sum(len(v) for v in self.splits.values())} events "
            f"({', '.join(f'{k} {len(v)}' for k, v in self.splits.items())}) -> "
            f"{sum(self.n_graphs.values())} graphs in {self.n_shards} shards under {self.out_dir} "
            f"({self.seconds:.1f} s)",
            f"  candidate edges: {m['edges_per_event']:.0f} per event, efficiency {pct(m['efficiency'])}, "
            f"efficiency pT>{PT_REPORT} GeV {pct(m['efficiency_pt'])}, purity {pct(m['purity'])}, "
            f"{m['seconds_per_event']:.2f} s per event",
            "  buckets (nodes x edges: graphs): "
            + ", ".join(f"{n}x{e}: {c}" for (n, e), c in zip(self.buckets, self.bucket_graphs)),
            f"  padding: padded/real elements {p['elements']:.3f} (nodes {p['nodes']:.3f}, edges {p['edges']:.3f})",
        ]
        if self.filter:
            f = self.filter
            lines.insert(2, f"  edge filter (score >= {f['threshold']}): {f['kept_per_graph']:.0f} of "
                            f"{f['edges_per_graph']:.0f} edges per graph kept, efficiency {pct(f['efficiency'])}, "
                            f"efficiency pT>{PT_REPORT} GeV {pct(f['efficiency_pt'])}, purity {pct(f['purity'])}")
        if self.oversize:
            shown = ", ".join(f"event {o['event_id']}" + (f" sector {o['sector']}" if o["sector"] >= 0 else "")
                              + f" {o['n_node']}x{o['n_edge']}" for o in self.oversize[:5])
            more = f", ... ({len(self.oversize) - 5} more, all in manifest.json)" if len(self.oversize) > 5 else ""
            lines.append(f"  oversize graphs given their own bucket (nodes x edges): {len(self.oversize)}: "
                         f"{shown}{more}")
        if self.kept_shards:
            lines.append(f"  kept: {self.kept_shards} shards already complete (checksums verified), not rewritten")
        return "\n".join(lines)


def split_events(event_ids: Sequence[int], val_fraction: float) -> dict[str, list[int]]:
    """Sorted event ids: the last round(val_fraction · n) are validation, the rest training."""
    ids = sorted(int(e) for e in event_ids)
    n_val = int(round(len(ids) * val_fraction))
    return {"train": ids[: len(ids) - n_val], "val": ids[len(ids) - n_val:]}


def _has_part(folder: Path, event_id: int, part: str) -> bool:
    from trkx_tf.trackml.io import event_prefix

    stem = f"{event_prefix(event_id)}-{part}.csv"
    return (folder / stem).is_file() or (folder / (stem + ".gz")).is_file()


def _resolve_workers(n: int) -> int:
    return n if n > 0 else max(1, os.cpu_count() or 1)


def learn_module_map(folder: os.PathLike | str, event_ids: Sequence[int], map_cfg, workers: int = 1,
                     progress: bool = False) -> ModuleMap:
    """Learns a module map from the truth of some events of a folder.

    Args:
      folder: TrackML events folder.
      event_ids: the training events.
      map_cfg: the ``graph.module_map`` config section (pt_min, connect_pt_min, quantile, skip_layers).
      workers: processes.
      progress: show a progress bar.

    Returns:
      The map.

    Raises:
      DataError: no event has truth, or an event is malformed.
    """
    cfg_data = config_to_dict(Config())
    samples = _run(edge_sample_task, [(str(folder), int(e), map_cfg.skip_layers) for e in event_ids], workers,
                   (cfg_data, None, False, log.getEffectiveLevel()), progress, "module map: events")
    samples = [s for s in samples if s is not None]
    if not samples:
        raise DataError(f"{folder}: no training event has particles and truth to learn a module map from")
    return ModuleMap.fit(samples, pt_min=map_cfg.pt_min, quantile=map_cfg.quantile,
                         connect_pt_min=map_cfg.connect_pt_min, skip_layers=map_cfg.skip_layers)


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
      One :class:`EventStats` per event, in event order (see :func:`builder_metrics`).
    """
    from trkx_tf.trackml.io import list_events

    ids = list_events(folder) if event_ids is None else [int(e) for e in event_ids]
    cfg_data = config_to_dict(cfg)
    cfg_data["graph"]["builder"] = "module_map"
    initargs = (cfg_data, str(module_map_path), False, log.getEffectiveLevel())
    return _run(_stats_task, [(str(folder), e) for e in ids], workers, initargs, progress, "evaluate: events")


def build_shards(
    cfg: Config,
    input_dir: os.PathLike | str,
    out_dir: os.PathLike | str,
    *,
    workers: Optional[int] = None,
    progress: bool = True,
    embedding_model=None,
    edge_filter=None,
) -> BuildSummary:
    """Builds padded HDF5 graph shards from a folder of TrackML events.

    Args:
      cfg: the config (``graph`` and ``data.val_fraction`` are used).
      input_dir: the events folder.
      out_dir: the output folder (created; shards of a previous build are replaced, complete shards of an
        interrupted build with the same content are kept). Locked for the build (see the module docstring).
      workers: processes (None: ``graph.workers``; 0: one per CPU core).
      progress: show progress bars (tqdm, on stderr).
      edge_filter: with ``graph.filter_ckpt``: ``edge_filter(F) -> scorer``, the trained filter of that checkpoint
        for graphs of F node features (``trkx_tf.reco.pipeline.load_scorer``; graphs do not import the models).
        Called once, before any graph is built.
      embedding_model: the trained embedding model, for ``graph.builder: embedding`` (that builder runs in this
        process: the model is not shipped to workers).

    Returns:
      The :class:`BuildSummary`.

    Raises:
      DataError: no events, a malformed event, cells in some events only, no truth to learn a module map from.
      ConfigError: the builder's input is missing.
      ShardError: the output folder or a shard cannot be written.
      BuildLockedError: another build is writing into out_dir.
    A failure leaves the output folder as it was, except for complete shards already written (kept for a resume).
    """
    t_start = time.perf_counter()
    from trkx_tf.trackml.io import list_events

    input_dir, out_dir = Path(input_dir), Path(out_dir)
    ids = list_events(input_dir)
    if not ids:
        raise DataError(f"{input_dir}: no events (event<id>-hits.csv[.gz]) found")
    created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]  # deepest first
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(out_dir).acquire()
    except OSError as exc:
        raise ShardError(f"{out_dir}: cannot write into the output folder ({exc.strerror}); "
                         f"choose another one") from None
    done = False
    try:
        stale = _remove_stale(out_dir)
        if stale:
            log.info("removed %d temporary file(s) of an interrupted build: %s", len(stale), ", ".join(stale[:5]))
        summary = _build(cfg, input_dir, out_dir, ids, workers, progress, embedding_model, edge_filter)
        done = True
    finally:
        lock.release()
        if not done:
            for d in created:  # a folder this failed build made, unless complete shards are in it for a resume
                try:
                    d.rmdir()
                except OSError:
                    break
    summary.seconds = time.perf_counter() - t_start
    return summary


def _build(cfg: Config, input_dir: Path, out_dir: Path, ids: list[int], workers: Optional[int], progress: bool,
           embedding_model, edge_filter=None) -> BuildSummary:
    """The body of :func:`build_shards`, with the output folder locked and free of stale temporary files."""
    t_start = time.perf_counter()
    gcfg = cfg.graph
    splits = split_events(ids, cfg.data.val_fraction)
    n_workers = _resolve_workers(gcfg.workers if workers is None else workers)

    with_cells = False
    if gcfg.use_cells:
        have = [e for e in ids if _has_part(input_dir, e, "cells")]
        if have and len(have) != len(ids):
            missing = sorted(set(ids) - set(have))
            raise DataError(f"{input_dir}: {len(have)} events have cells files but {len(missing)} do not "
                            f"(first: event {missing[0]}); set graph.use_cells=false or complete the cells")
        with_cells = bool(have)
    names = feature_names(with_cells)
    if gcfg.builder == "embedding" and embedding_model is None:
        raise ConfigError("graph.builder=embedding needs a trained embedding model")
    scorer = None
    if gcfg.filter_ckpt:
        if edge_filter is None:
            raise ConfigError("graph.filter_ckpt is set but no edge filter was given to build_shards")
        scorer = edge_filter(len(names))

    tmp_dir = out_dir / _TMP_DIR.format(pid=os.getpid())
    tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        # the candidate-edge builder (the module map goes into place with the manifest, at the end)
        map_path = None
        if gcfg.builder == "module_map":
            map_path = tmp_dir / MODULE_MAP_FILE
            if gcfg.module_map.path:
                mm = ModuleMap.load(gcfg.module_map.path)
            else:
                if not splits["train"]:
                    raise ConfigError("graph.builder=module_map: no training events to learn the map from "
                                      "(lower data.val_fraction or give graph.module_map.path)")
                mm = learn_module_map(input_dir, splits["train"], gcfg.module_map, n_workers, progress)
            mm.save(map_path)
            log.info("module map: %d module pairs from %d events", mm.n_pairs, mm.n_events)

        cfg_data = config_to_dict(cfg)
        initargs = (cfg_data, str(map_path) if map_path else None, with_cells, log.getEffectiveLevel())
        tasks = [(str(input_dir), e, str(tmp_dir), split) for split in ("train", "val") for e in splits[split]]
        if gcfg.builder == "embedding":
            _WORKER.update(cfg=cfg, builder=make_builder(gcfg, embedding_model=embedding_model),
                           with_cells=with_cells)
            results = []
            for t in tasks:
                results.append(_graph_task(t))
        else:
            results = _run(_graph_task, tasks, n_workers, initargs, progress, "graphs: events")
        entries = []  # (split, event_id, sector, file, n_node, n_edge)
        stats = []
        for (_, e, _, split), (graphs, st) in zip(tasks, results):
            stats.append(st)
            entries.extend((split, e, sector, f, nn, ne) for f, sector, nn, ne in graphs)
        filter_metrics = None
        if scorer is not None:
            threshold = cfg.infer.filter_threshold if gcfg.filter_threshold is None else gcfg.filter_threshold
            filter_metrics = filter_graph_files(entries, scorer, threshold, progress)
            filter_metrics["checkpoint"] = gcfg.filter_ckpt
        sizes = np.array([[x[4], x[5]] for x in entries], np.int64).reshape(-1, 2)

        # buckets
        if gcfg.buckets:
            assignment = assign_buckets(sizes, np.asarray(gcfg.buckets, np.int64),
                                        target=gcfg.bucket_overhead, max_buckets=gcfg.max_buckets)
        else:
            chosen = choose_buckets(sizes, gcfg.bucket_overhead, gcfg.max_buckets)
            assignment = assign_buckets(sizes, chosen)
        if len(assignment.oversize):
            log.warning("%d graph(s) larger than every configured bucket got a bucket of their own",
                        len(assignment.oversize))
        padding = assignment.overhead(sizes)

        # shards: graphs grouped by (split, bucket), in (event, sector) order
        jobs, k_next = [], {}
        for split in ("train", "val"):
            for b in range(len(assignment.buckets)):
                members = [i for i, x in enumerate(entries) if x[0] == split and assignment.bucket[i] == b]
                members.sort(key=lambda i: (entries[i][1], entries[i][2]))
                for start in range(0, len(members), gcfg.graphs_per_shard):
                    chunk = members[start:start + gcfg.graphs_per_shard]
                    k = k_next.get((split, b), 0)
                    k_next[(split, b)] = k + 1
                    name = _SHARD_NAME.format(split=split, bucket=b, k=k)
                    jobs.append((str(out_dir / name), [entries[i][3] for i in chunk],
                                 tuple(int(x) for x in assignment.buckets[b]), split, b, names, gcfg.builder,
                                 gcfg.compression, (gcfg.r_scale, gcfg.z_scale)))
        written = _run(_shard_task, jobs, n_workers, initargs, progress, "shards")
        infos = [info for info, _ in written]
        kept = sum(1 for _, was_written in written if not was_written)
        if kept:
            log.info("%d shard(s) already complete (checksums verified) kept, not rewritten", kept)

        with_truth = [s for s in stats if s.n_true > 0]
        metrics = builder_metrics(with_truth) if with_truth else builder_metrics(stats)
        oversize = [{"event_id": int(entries[i][1]), "sector": int(entries[i][2]), "n_node": int(sizes[i, 0]),
                     "n_edge": int(sizes[i, 1])} for i in assignment.oversize]
        bucket_graphs = np.bincount(assignment.bucket, minlength=len(assignment.buckets)).tolist()
        summary = BuildSummary(
            str(out_dir), splits, {s: sum(1 for x in entries if x[0] == s) for s in ("train", "val")},
            assignment.buckets.tolist(), bucket_graphs, oversize, padding, metrics, len(infos),
            time.perf_counter() - t_start, kept_shards=kept, filter=filter_metrics,
        )
        # the commit: module map and config, then the manifest (each renamed into place), then old shards go
        if map_path is not None:
            os.replace(map_path, out_dir / MODULE_MAP_FILE)
        save_config(cfg, out_dir / "config.yaml")
        write_manifest(
            out_dir, infos, names,
            created_by=f"trkx-tf {__import__('trkx_tf').__version__}", builder=gcfg.builder,
            edge_weight=gcfg.edge_weight, pt_cut=gcfg.pt_cut, splits=splits, buckets=summary.buckets,
            bucket_graphs=bucket_graphs, oversize=oversize, padding=padding, builder_metrics=metrics,
            events=[dataclasses.asdict(s) for s in stats], filter=filter_metrics,
        )
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    keep = {i.file for i in infos}
    for old in out_dir.glob("*-b[0-9][0-9]-[0-9][0-9][0-9][0-9][0-9].h5"):
        if old.name not in keep:
            old.unlink()
    return summary
