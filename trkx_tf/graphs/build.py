"""``trkx-build`` as a library: TrackML events in, padded HDF5 graph shards out.

This module orchestrates the passes; which events go into which split is :mod:`trkx_tf.graphs.event_splits`, the
module map's learning :mod:`trkx_tf.graphs.map_learning`, one event's graphs are made in
:mod:`trkx_tf.graphs.event_graphs`, the summary is :mod:`trkx_tf.graphs.summary`, the shard files
:mod:`trkx_tf.graphs.shard_writer` (schema and reader: :mod:`trkx_tf.graphs.shards`). The trained models a build
may use (the embedding, the edge filter) come in as plain callables (:mod:`trkx_tf.reco.build` makes them).

Pipeline (deterministic: the same input and config give the same shards, whatever the number of workers)::

    events (sorted ids) ──split──> train (first) / val (last round(val_fraction · n))
    train events' truth ─────────> module map (learned, or graph.module_map.path)      [parallel over events]
    every event: features, truth graph, candidate edges, labels, weights (train: sectors)  [parallel over events]
    graph.filter_ckpt set: each graph keeps the edges the filter scores >= the threshold  [this process]
    graph sizes ─────────────────> buckets (chosen, or graph.buckets + the oversize rule)
    graphs by (split, bucket) ───> shards of graph.graphs_per_shard graphs               [parallel over shards]
    manifest.json, config.yaml, module_map.npz

On MPI ranks (``mpirun -np N trkx-build``, :mod:`trkx_tf.ranks`): every parallel pass above deals its events or
shards over the ranks (item i to rank i mod N; each rank still uses its ``graph.workers`` processes) and every rank
gets every result back in order; the module map is fitted once, on rank 0, and broadcast; the buckets are chosen
on every rank from the same sizes; the filter pass runs on rank 0; rank 0 alone holds the lock and writes the
module map, config and manifest. The output folder must be on a file system all ranks see. Shards are byte-identical
and the manifest equal (apart from wall times) whatever N; a rank that fails fails every rank, before the manifest.

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
  second build into the same folder refuses at once (:class:`~trkx_tf.files.OutputLockedError`, the lock is
  :class:`trkx_tf.files.OutputLock`).
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
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from trkx_tf.config import Config, config_to_dict, save_config
from trkx_tf.errors import ConfigError, DataError, ShardError
from trkx_tf.files import OutputLock
from trkx_tf.graphs.buckets import assign_buckets, choose_buckets
from trkx_tf.graphs.candidates import make_builder
from trkx_tf.graphs.event_graphs import filter_graph_files, graph_task, load_graph, map_events, set_worker
from trkx_tf.graphs.event_splits import split_events, unlabelled_events
from trkx_tf.graphs.features import feature_names, uses_cells
from trkx_tf.graphs.map_learning import learn_module_map
from trkx_tf.graphs.module_map import ModuleMap
from trkx_tf.graphs.shard_writer import existing_shard, write_manifest, write_shard
from trkx_tf.graphs.shards import ShardInfo
from trkx_tf.graphs.summary import BuildSummary, builder_metrics
from trkx_tf.processes import resolve_workers
from trkx_tf.ranks import SINGLE, Ranks

log = logging.getLogger("trkx_tf.graphs.build")

_SHARD_NAME = "{split}-b{bucket:02d}-{k:05d}.h5"
LOCK_FILE = ".trkx-build.lock"
MODULE_MAP_FILE = "module_map.npz"
_TMP_PREFIX = ".tmp-build-"  # the work folder: mkdtemp's unpredictable name, made by rank 0 and shared
#: what a dead build may leave behind: its work folder and temporary files of atomic writes
_STALE = re.compile(r"^(\.tmp-build-\w+|\..+\.(h5|json|yaml|npz)\.tmp\w+)$")


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


def _shard_task(args: tuple) -> tuple[ShardInfo, bool]:
    """Writes one shard, or keeps the complete one already there (resume): (info, written)."""
    path, files, budget, split, bucket, names, builder, compression, scales = args
    graphs = [load_graph(f) for f in files]
    kw = dict(split=split, bucket=bucket, feature_names=names, builder=builder, compression=compression,
              scales=scales)
    kept = existing_shard(path, graphs, budget[0], budget[1], **kw)
    if kept is not None:
        return kept, False
    return write_shard(path, graphs, budget[0], budget[1], **kw), True


def build_shards(
    cfg: Config,
    input_dir: os.PathLike | str,
    out_dir: os.PathLike | str,
    *,
    workers: Optional[int] = None,
    progress: bool = True,
    embed: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    edge_filter: Optional[Callable[[int], Callable]] = None,
    splits: Optional[dict[str, list[int]]] = None,
    ranks: Ranks = SINGLE,
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
        for graphs of F node features (``trkx_tf.reco.scorers.load_scorer``; graphs do not import the models).
        Called once, before any graph is built.
      embed: for ``graph.builder: embedding``, the trained embedding as a function
        ``embed(nodes [n_node, F]) -> [n_node, D]`` (:class:`~trkx_tf.graphs.candidates.EmbeddingBuilder`; that
        builder runs in this process: the function is not shipped to workers).
      splits: ``{"train": ids, "val": ids}``, the events to build (e.g. :func:`~trkx_tf.graphs.event_splits.split_real_events`); None: every
        event of input_dir, split by ``data.val_fraction`` (:func:`~trkx_tf.graphs.event_splits.split_events`).
      ranks: the MPI ranks that share the work (:mod:`trkx_tf.ranks`; the module docstring); every rank calls this
        with the same arguments (``edge_filter`` is only called on rank 0).

    Returns:
      The :class:`BuildSummary` (on every rank).

    Raises:
      DataError: no events, a malformed event, cells in some events only, no truth to learn a module map from.
      ConfigError: the builder's input is missing.
      ShardError: the output folder or a shard cannot be written.
      OutputLockedError: another build is writing into out_dir.
    A failure leaves the output folder as it was, except for complete shards already written (kept for a resume).
    """
    t_start = time.perf_counter()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    ids, splits = ranks.step(_events_to_build, cfg, input_dir, splits)
    created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]  # deepest first
    lock = ranks.step(_open_output, out_dir, ranks.root)
    done = False
    try:
        summary = _build(cfg, input_dir, out_dir, ids, workers, progress, embed, edge_filter, splits, ranks)
        done = True
    finally:
        if lock is not None:
            lock.release()
        if not done and ranks.root:
            for d in created:  # a folder this failed build made, unless complete shards are in it for a resume
                try:
                    d.rmdir()
                except OSError:
                    break
    summary.seconds = time.perf_counter() - t_start
    return summary


def _events_to_build(cfg: Config, input_dir: Path, splits: Optional[dict]) -> tuple[list[int], Optional[dict]]:
    """The events of the build (ids, splits), unlabelled ones dropped or refused
    (:func:`~trkx_tf.graphs.event_splits.unlabelled_events`)."""
    from trkx_tf.trackml.io import list_events

    ids = list_events(input_dir)
    if not ids:
        raise DataError(f"{input_dir}: no events (event<id>-hits.csv[.gz]) found")
    if splits is not None:
        missing = sorted(set(e for v in splits.values() for e in v) - set(ids))
        if missing:
            raise DataError(f"{input_dir}: event {missing[0]} of the split is not in the folder")
    dropped = unlabelled_events(input_dir, ids if splits is None else sorted({e for v in splits.values() for e in v}),
                                cfg.graph.unlabelled)
    if dropped:
        ids = [e for e in ids if e not in dropped]
        splits = None if splits is None else {k: [e for e in v if e not in dropped] for k, v in splits.items()}
        if not ids:
            raise DataError(f"{input_dir}: no event with a truth or a partial truth to build labelled graphs from")
    return ids, splits


def _open_output(out_dir: Path, root: bool) -> Optional[OutputLock]:
    """On rank 0: the output folder created, locked and freed of a dead build's temporary files (its lock);
    elsewhere None."""
    if not root:
        return None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(out_dir, LOCK_FILE, "trkx-build").acquire()
    except OSError as exc:
        raise ShardError(f"{out_dir}: cannot write into the output folder ({exc.strerror}); "
                         f"choose another one") from None
    try:
        stale = _remove_stale(out_dir)
    except BaseException:
        lock.release()
        raise
    if stale:
        log.info("removed %d temporary file(s) of an interrupted build: %s", len(stale), ", ".join(stale[:5]))
    return lock


def _build(cfg: Config, input_dir: Path, out_dir: Path, ids: list[int], workers: Optional[int], progress: bool,
           embed, edge_filter, splits: Optional[dict] = None, ranks: Ranks = SINGLE) -> BuildSummary:
    """The body of :func:`build_shards`, with the output folder locked and free of stale temporary files."""
    t_start = time.perf_counter()
    tmp_dir = Path(ranks.bcast(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=out_dir) if ranks.root else None))
    try:
        setup = ranks.step(_setup, cfg, input_dir, ids, workers, embed, edge_filter, splits, tmp_dir, ranks.root)
        return _passes(cfg, input_dir, out_dir, tmp_dir, progress, embed, ranks, *setup, t_start)
    finally:
        if ranks.root:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _setup(cfg: Config, input_dir: Path, ids: list[int], workers: Optional[int], embed, edge_filter,
           splits: Optional[dict], tmp_dir: Path, root: bool) -> tuple:
    """What every rank needs before the passes: (splits, workers, with_cells, feature names, the filter's scorer
    (rank 0 only)); the work folder is created."""
    gcfg = cfg.graph
    splits = split_events(ids, cfg.data.val_fraction) if splits is None else \
        {k: sorted(int(e) for e in splits.get(k, ())) for k in ("train", "val")}
    ids = splits["train"] + splits["val"]
    n_workers = resolve_workers(gcfg.workers if workers is None else workers)
    with_cells = uses_cells(input_dir, ids, gcfg.use_cells)
    names = feature_names(with_cells)
    if gcfg.builder == "embedding" and embed is None:
        raise ConfigError("graph.builder=embedding needs a trained embedding model")
    scorer = None
    if gcfg.filter_ckpt:
        if edge_filter is None:
            raise ConfigError("graph.filter_ckpt is set but no edge filter was given to build_shards")
        if root:
            scorer = edge_filter(len(names))
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return splits, n_workers, with_cells, names, scorer


def _passes(cfg: Config, input_dir: Path, out_dir: Path, tmp_dir: Path, progress: bool, embed, ranks: Ranks,
            splits: dict, n_workers: int, with_cells: bool, names, scorer, t_start: float) -> BuildSummary:
    """The build's passes (the module docstring), every parallel one dealt over the ranks."""
    gcfg = cfg.graph
    # the candidate-edge builder (the module map goes into place with the manifest, at the end)
    map_path = _module_map(gcfg, input_dir, splits, tmp_dir, n_workers, progress, ranks)
    initargs = (config_to_dict(cfg), str(map_path) if map_path else None, with_cells, log.getEffectiveLevel())
    tasks = [(str(input_dir), e, str(tmp_dir), split) for split in ("train", "val") for e in splits[split]]
    if gcfg.builder == "embedding":
        set_worker(cfg, make_builder(gcfg, embed=embed), with_cells)
        results = ranks.map(lambda share: [graph_task(t) for t in share], tasks)
    else:
        results = ranks.map(lambda share: map_events(graph_task, share, n_workers, initargs, progress,
                                               "graphs: events"), tasks)
    entries = []  # (split, event_id, sector, file, n_node, n_edge)
    stats = []
    for (_, e, _, split), (graphs, st) in zip(tasks, results):
        stats.append(st)
        entries.extend((split, e, sector, f, nn, ne) for f, sector, nn, ne in graphs)
    filter_metrics = None
    if gcfg.filter_ckpt:  # on rank 0 (it holds the scorer); the kept edges' counts go to every rank
        def run_filter():
            if not ranks.root:
                return None
            threshold = cfg.infer.filter_threshold if gcfg.filter_threshold is None else gcfg.filter_threshold
            metrics = filter_graph_files(entries, scorer, threshold, progress)
            metrics["checkpoint"] = gcfg.filter_ckpt
            return metrics, entries

        filter_metrics, entries = ranks.bcast(ranks.step(run_filter))
    sizes = np.array([[x[4], x[5]] for x in entries], np.int64).reshape(-1, 2)

    def deal():  # the same on every rank: the same sizes give the same buckets and shards
        assignment = _buckets(gcfg, sizes)
        return assignment, assignment.overhead(sizes), _shard_jobs(gcfg, out_dir, entries, assignment, names)

    assignment, padding, jobs = ranks.step(deal)
    written = ranks.map(lambda share: map_events(_shard_task, share, n_workers, initargs, progress, "shards"), jobs)
    infos = [info for info, _ in written]
    kept = sum(1 for _, was_written in written if not was_written)
    if kept:
        log.info("%d shard(s) already complete (checksums verified) kept, not rewritten", kept)

    # the builder's efficiency: over the events with a full truth, else (restricted to the labelled edges, no
    # purity: the truth of most edges is unknown) over those with masked labels
    full = [s for s in stats if s.labels == "full" and s.n_true > 0]
    masked = [s for s in stats if s.labels == "masked" and s.n_true > 0]
    metrics = builder_metrics(full or masked or stats)
    metrics["labels"] = "full" if full else "masked" if masked else "none"
    if not full and masked:
        metrics["purity"] = None
    oversize = [{"event_id": int(entries[i][1]), "sector": int(entries[i][2]), "n_node": int(sizes[i, 0]),
                 "n_edge": int(sizes[i, 1])} for i in assignment.oversize]
    bucket_graphs = np.bincount(assignment.bucket, minlength=len(assignment.buckets)).tolist()
    summary = BuildSummary(
        str(out_dir), splits, {s: sum(1 for x in entries if x[0] == s) for s in ("train", "val")},
        assignment.buckets.tolist(), bucket_graphs, oversize, padding, metrics, len(infos),
        time.perf_counter() - t_start, kept_shards=kept, filter=filter_metrics,
    )

    def commit():
        """Rank 0: module map and config, then the manifest (each renamed into place), then old shards go."""
        if not ranks.root:
            return
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
        keep = {i.file for i in infos}
        for old in out_dir.glob("*-b[0-9][0-9]-[0-9][0-9][0-9][0-9][0-9].h5"):
            if old.name not in keep:
                old.unlink()

    ranks.step(commit)
    return summary


def _module_map(gcfg, input_dir: Path, splits: dict, tmp_dir: Path, workers: int, progress: bool,
                ranks: Ranks = SINGLE) -> Optional[Path]:
    """The module map of a ``module_map`` build, loaded or learned from the training events and saved under
    tmp_dir by rank 0 (None for another builder); every rank's workers load that file."""
    if gcfg.builder != "module_map":
        return None
    if gcfg.module_map.path:
        mm = ranks.step(lambda: ModuleMap.load(gcfg.module_map.path) if ranks.root else None)
    else:
        if not splits["train"]:
            ranks.step(_raise, ConfigError("graph.builder=module_map: no training events to learn the map from "
                                           "(lower data.val_fraction or give graph.module_map.path)"))
        mm = learn_module_map(input_dir, splits["train"], gcfg.module_map, workers, progress, ranks)
    map_path = tmp_dir / MODULE_MAP_FILE

    def save():
        if ranks.root:
            mm.save(map_path)
            log.info("module map: %d module pairs from %d events", mm.n_pairs, mm.n_events)

    ranks.step(save)
    return map_path


def _raise(error: Exception):
    """Raises ``error`` (in a :meth:`Ranks.step`, so that only rank 0 prints it)."""
    raise error


def _buckets(gcfg, sizes: np.ndarray):
    """The padding buckets of the graphs' [n_graphs, 2] sizes: ``graph.buckets`` (+ the oversize rule) or chosen."""
    if gcfg.buckets:
        assignment = assign_buckets(sizes, np.asarray(gcfg.buckets, np.int64),
                                    target=gcfg.bucket_overhead, max_buckets=gcfg.max_buckets)
    else:
        assignment = assign_buckets(sizes, choose_buckets(sizes, gcfg.bucket_overhead, gcfg.max_buckets))
    if len(assignment.oversize):
        log.warning("%d graph(s) larger than every configured bucket got a bucket of their own",
                    len(assignment.oversize))
    return assignment


def _shard_jobs(gcfg, out_dir: Path, entries: list, assignment, names) -> list[tuple]:
    """The arguments of :func:`_shard_task` for every shard: graphs grouped by (split, bucket), in (event, sector)
    order, ``graph.graphs_per_shard`` per shard."""
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
    return jobs
