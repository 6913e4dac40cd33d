"""``trkx-tracker`` as a library: data sets, training and inference of the hit transformers.

* :func:`make_data`: reduced events from ``transformer.source_dir`` into ``transformer.events_dir``, then their
  hits-only shards (``transformer.shards_dir``);
* :func:`train_tracker`: the existing training loop (:func:`trkx_tf.train.loop.fit`) on the shards with a
  :class:`~trkx_tf.transformer.heads.HitTask`, on the configured backend (single, Horovod or tf.distribute): the
  same optimizer, schedule, checkpoints, ``metrics.jsonl`` and exact global loss as ``trkx-train``;
* :func:`infer_events`: a trained model on events (whole events, or local attention over sectors), tracks
  (EncReg: clustering; EncCla: classes), TrackML submissions, and the metrics (``metrics.json``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from trkx_tf.config import Config
from trkx_tf.errors import DataError
from trkx_tf.files import write_text_atomic
from trkx_tf.rundir import RunDir

log = logging.getLogger("trkx_tf.transformer")


def make_data(cfg: Config, seed: Optional[int] = None) -> dict:
    """Writes the reduced events of ``transformer.source_dir`` and their shards; returns a summary.

    Raises:
      DataError, ConfigError: see :func:`~trkx_tf.transformer.data.make_reduced_set`.
    """
    from trkx_tf.transformer.data import make_reduced_set
    from trkx_tf.transformer.shards import build_hit_shards

    t = cfg.transformer
    ids = make_reduced_set(t.source_dir, t.events_dir, t.particles_min, t.particles_max,
                           seed=cfg.run.seed if seed is None else seed, min_particle_hits=t.min_particle_hits,
                           pt_min=t.pt_min, volumes=t.volumes)
    manifest = build_hit_shards(t.events_dir, t.shards_dir, cfg.data.val_fraction, t.events_per_shard,
                                t.hit_quantum)
    hits = [n for s in manifest["shards"] for n in s["n_hit"]]
    return {"events": len(ids), "shards": len(manifest["shards"]), "mean_hits": float(np.mean(hits)),
            "max_hits": int(np.max(hits))}


def _bins(cfg: Config, shards: Sequence[dict]):
    from trkx_tf.transformer.heads import ParameterBins, particle_rows

    t = cfg.transformer
    return ParameterBins.fit(particle_rows(shards), t.phi_bins, t.theta_bins, t.qpt_bins)


def train_tracker(cfg: Config, backend=None, stop_after_steps: Optional[int] = None):
    """Trains the configured head on ``transformer.shards_dir`` (see the module docstring).

    Args:
      cfg: the config (``transformer``, ``train``, ``backend``, ``run``).
      backend: the distributed hooks (None: made from ``backend.*``, e.g. Horovod under horovodrun).
      stop_after_steps: see :func:`trkx_tf.train.loop.fit`.

    Returns:
      The loop's :class:`~trkx_tf.train.loop.FitResult`.

    Raises:
      TrkxError: shards, backend, checkpoint or training problems.
    """
    import tensorflow as tf

    from trkx_tf.logs import setup_logging
    from trkx_tf.placement import place_process
    from trkx_tf.train.distributed import make_backend
    from trkx_tf.train.loop import FitOptions, fit
    from trkx_tf.train.optim import Adam, WarmupSchedule, scaled_lr
    from trkx_tf.train.steps import DynamicLossScale
    from trkx_tf.transformer.heads import HitTask
    from trkx_tf.transformer.model import build_transformer
    from trkx_tf.transformer.shards import HitBatchSource, read_hit_shards

    if backend is None:
        place_process(cfg.backend.threads, cfg.backend.pin_cores)
        backend = make_backend(cfg.backend.name, 0, cfg.backend.gradient_groups)
        setup_logging(backend.rank, cfg.run.log_level)
    t, tc = cfg.transformer, cfg.train
    train_shards = read_hit_shards(t.shards_dir, "train")
    val_shards = read_hit_shards(t.shards_dir, "val")
    bins = _bins(cfg, train_shards)  # the same on every rank: a function of the training shards
    task = HitTask(t.head, bins, t.qpt_scale)
    size = backend.num_replicas
    source = HitBatchSource(train_shards, t.events_per_step, backend.rank, size, seed=cfg.run.seed)
    val = HitBatchSource(val_shards, 1, backend.rank, size, shuffle=False) if val_shards else None
    run_dir = RunDir.from_config(cfg, is_writer=backend.is_writer).create(cfg)
    if backend.is_writer:
        bins.save(run_dir.root / "bins.json")
    tf.random.set_seed(cfg.run.seed)
    dtype = {"none": "float32", "bf16": "bfloat16", "fp16": "float16"}[tc.mixed_precision]
    n0 = backend.agree_steps(source.num_batches(0))
    steps = min(n0, tc.max_steps_per_epoch) if tc.max_steps_per_epoch else n0
    warmup = int(round(tc.warmup_epochs * steps))
    decay = max(tc.epochs * steps, warmup + 1) if tc.lr_decay == "cosine" else 0
    schedule = WarmupSchedule(scaled_lr(tc.lr, size, tc.lr_scaling), warmup, decay, tc.lr_final_ratio)
    with backend.scope():
        model = build_transformer(t, task.outputs, dtype)
        optimizer = Adam(schedule)
        loss_scale = DynamicLossScale() if dtype == "float16" else None
    log.info("%s head, %d classes, %d training steps per epoch on %d rank(s)", t.head, bins.n_classes, steps, size)
    hparams = {"head": t.head, "lr": tc.lr, "ranks": size, **{f"transformer.{k}": v for k, v in
                                                               t.model_dump().items() if isinstance(v, (int, float, str))}}
    return fit(model, task, optimizer, source, FitOptions.from_config(cfg, stop_after_steps=stop_after_steps),
               val_source=val, backend=backend, run_dir=run_dir, hparams=hparams, loss_scale=loss_scale)


def load_tracker(cfg: Config, run_root: os.PathLike | str):
    """The trained model and its task from a run folder (``checkpoints/`` and ``bins.json``).

    Raises:
      DataError: no bins file; CheckpointError: no checkpoint or one that does not fit.
    """
    from trkx_tf.train.checkpoints import restore_model
    from trkx_tf.transformer.data import INPUT_FEATURES
    from trkx_tf.transformer.heads import HitTask, ParameterBins
    from trkx_tf.transformer.model import build_transformer

    root = Path(run_root)
    task = HitTask(cfg.transformer.head, ParameterBins.load(root / "bins.json"), cfg.transformer.qpt_scale)
    model = build_transformer(cfg.transformer, task.outputs)
    model({"hits": np.zeros((1, 1, len(INPUT_FEATURES)), np.float32), "mask": np.ones((1, 1), np.float32)})
    restore_model(model, root / "checkpoints")
    return model, task


def _compiled(model):
    import tensorflow as tf

    fn = tf.function(lambda hits, mask: model({"hits": hits, "mask": mask}), reduce_retracing=True)
    return lambda batch: fn(tf.constant(batch["hits"]), tf.constant(batch["mask"])).numpy()


def infer_events(cfg: Config, run_root: os.PathLike | str, events_dir: os.PathLike | str,
                 out_dir: os.PathLike | str, ids: Sequence[int] = (), local: bool = False) -> dict:
    """Reconstructs events with a trained model, writes submissions and ``metrics.json``; returns the summary.

    Args:
      cfg: the config (``transformer`` clustering and sectors, ``eval``).
      run_root: the training run folder.
      events_dir: TrackML events (with truth and particles: the metrics; without: submissions only).
      out_dir: submissions ``event<ID>-submission.csv`` and ``metrics.json``.
      ids: these events only (empty: all of ``events_dir``).
      local: local attention over sectors (full events) instead of one dense attention over the event.

    Raises:
      DataError: no events; CheckpointError: see :func:`load_tracker`.
    """
    from trkx_tf.graphs.features import cylindrical
    from trkx_tf.reco.evaluate import evaluate_event
    from trkx_tf.reco.outputs import submission_path
    from trkx_tf.trackml.io import list_events, read_event
    from trkx_tf.trackml.score import write_submission
    from trkx_tf.transformer import cluster as C
    from trkx_tf.transformer.data import hit_inputs, hit_targets
    from trkx_tf.transformer.local import local_outputs

    t = cfg.transformer
    ids = list(ids) or list_events(events_dir)
    if not ids:
        raise DataError(f"{events_dir}: no events to reconstruct")
    model, task = load_tracker(cfg, run_root)
    apply = _compiled(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_event, sums = [], {"correct": 0.0, "hits": 0.0, "dm": 0, "reco": 0, "perfect": 0.0, "lhc": 0.0, "parts": 0}
    for event_id in ids:
        event = read_event(events_dir, event_id, parts=("hits", "particles", "truth", "partial-truth"))
        features = hit_inputs(event.hits)
        t0 = time.perf_counter()
        if local:
            r, phi, z = cylindrical(event.hits)
            eta = np.arcsinh(np.divide(z, r, out=np.zeros_like(z), where=r > 0))
            outputs, info = local_outputs(apply, features, phi, eta, task.outputs, t.phi_sectors, t.eta_sectors,
                                          t.overlap)
        else:
            outputs, info = apply({"hits": features[None], "mask": np.ones((1, len(features)), np.float32)})[0], {}
        t_model = time.perf_counter() - t0
        tracks = C.regressed_tracks(task.parameters(outputs), t) if t.head == "reg" else \
            C.class_tracks(np.argmax(outputs, -1))
        t_total = time.perf_counter() - t0
        sub = C.submission(event_id, event.hits["hit_id"].to_numpy(), tracks)
        write_submission(submission_path(out, event_id), sub)
        record = {"event_id": int(event_id), "hits": len(features), "model_s": t_model, "total_s": t_total, **info}
        if event.truth is not None and event.particles is not None:
            targets, pid = hit_targets(event)
            ev = evaluate_event(event, sub, cfg.eval)
            counts = ev.tracks["all"]
            w = (pid != 0).astype(np.float64)
            correct = float((w * (np.asarray(task_classes(task, outputs)) == task.bins.classes(targets))).sum())
            paper = C.paper_efficiencies(pid, tracks, cfg.eval.reconstructable_hits)
            record.update(score=ev.score["all"], dm_efficiency=counts["matched_reconstructable"] /
                          max(counts["reconstructable"], 1), fit_accuracy=correct / max(w.sum(), 1), **paper)
            sums["correct"] += correct
            sums["hits"] += w.sum()
            sums["dm"] += counts["matched_reconstructable"]
            sums["reco"] += counts["reconstructable"]
            if paper["particles"]:
                sums["perfect"] += paper["perfect_efficiency"] * paper["particles"]
                sums["lhc"] += paper["lhc_efficiency"] * paper["particles"]
                sums["parts"] += paper["particles"]
        elif event.partial_truth is not None:  # a real labelled subset: its groups stand for particles
            record.update(_partial_metrics(event, tracks, cfg.eval))
        per_event.append(record)
        log.info("event %d: %s", event_id, {k: v for k, v in record.items() if k != "event_id"})
    summary = _summary(per_event, sums)
    summary.update(peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, local=local,
                   run=str(run_root), events_dir=str(events_dir), head=t.head, events=per_event)
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=1))
    return summary


def _partial_metrics(event, tracks: np.ndarray, eval_cfg) -> dict:
    """Double-majority, perfect and LHC efficiencies over the labelled groups of a real event (unlabelled hits: 0)."""
    from trkx_tf.transformer import cluster as C

    groups = event.partial_truth.set_index("hit_id")["group"]
    pid = groups.reindex(event.hits["hit_id"].to_numpy()).fillna(0).to_numpy(np.int64)
    paper = C.paper_efficiencies(pid, tracks, eval_cfg.reconstructable_hits)
    return {"partial_dm_efficiency": C.double_majority_efficiency(pid, tracks, eval_cfg.min_track_hits,
                                                                  eval_cfg.reconstructable_hits),
            **{f"partial_{k}": v for k, v in paper.items()}}


def task_classes(task, outputs: np.ndarray) -> np.ndarray:
    """The predicted class of every hit from the model's outputs [n, K] (numpy; see ``HitTask``)."""
    if task.head == "cla":
        return np.argmax(outputs, -1)
    return task.bins.classes(task.parameters(outputs))


def _summary(per_event: list, sums: dict) -> dict:
    def mean(key):
        vals = [r[key] for r in per_event if r.get(key) is not None]
        return float(np.mean(vals)) if vals else math.nan

    def ratio(a, b):
        return float(sums[a] / sums[b]) if sums[b] else math.nan

    return {"n_events": len(per_event), "score": mean("score"), "partial_dm_efficiency": mean("partial_dm_efficiency"),
            "partial_perfect_efficiency": mean("partial_perfect_efficiency"), "fit_accuracy": ratio("correct", "hits"),
            "dm_efficiency": ratio("dm", "reco"), "perfect_efficiency": ratio("perfect", "parts"),
            "lhc_efficiency": ratio("lhc", "parts"), "time_per_event_s": mean("total_s"),
            "model_time_per_event_s": mean("model_s")}
