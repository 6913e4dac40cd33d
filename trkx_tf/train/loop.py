"""The training loop: epochs over batch sources, checkpoints, TensorBoard, ``metrics.jsonl``, early stopping.

Two entry points:

* :func:`train` reads the config (the only place in ``train/`` that does), builds model, task and optimizer, and
  calls :func:`fit`. ``trkx-train`` is a thin wrapper over it.
* :func:`fit` runs the loop for given objects and :class:`FitOptions`; tests and benchmarks call it directly.
  Checkpoints are :class:`~trkx_tf.train.checkpoints.TrainingCheckpoint`, TensorBoard
  :class:`~trkx_tf.train.summaries.Summaries`.

Data comes from a :class:`BatchSource` (the shard reader implements it; :class:`InMemorySource` serves a list
of batches). Its batch order must be a deterministic function of the epoch: resuming from a checkpoint skips
``position`` batches of the saved epoch and continues exactly where the interrupted run stopped.

Distributed rules, all through the :class:`~trkx_tf.train.backend.Backend`: variables are built with a warm-up
batch and broadcast from rank 0 (and again after a restore); every rank restores the same checkpoint; all ranks
agree on the step count of an epoch before it starts; counts and sums are reduced across ranks before ratios are
taken; only the writer rank writes checkpoints, TensorBoard and ``metrics.jsonl``.

A backend with R > 1 replicas per process (``backend.local_replicas``) takes the source's batches stacked
(``[R] + S``, :class:`~trkx_tf.train.replicas.ReplicaSource`); the loop splits them only where host code needs
one replica's batch (the warm-up build, the task's host-side preparation).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Callable, Iterator, Mapping, Optional, Protocol, Sequence

import numpy as np
import tensorflow as tf

from trkx_tf.config import Config
from trkx_tf.errors import ConfigError, TrainingError
from trkx_tf.rundir import RunDir
from trkx_tf.train.backend import Backend, SingleBackend
from trkx_tf.release import initial_weights
from trkx_tf.train.checkpoints import TrainingCheckpoint
from trkx_tf.train.metrics import Counts
from trkx_tf.train.optim import Adam, WarmupSchedule, scaled_lr
from trkx_tf.train.replicas import split_replicas, stack_replicas
from trkx_tf.train.steps import DynamicLossScale, StepFunctions
from trkx_tf.train.summaries import Summaries
from trkx_tf.train.tasks import EdgeTask, EmbeddingTask

log = logging.getLogger("trkx_tf.train")

#: Early-stopping metrics and whether larger is better.
MONITORS = {"val_loss": False, "val_efficiency": True, "val_purity": True, "val_f1": True,
            "val_efficiency_at_purity": True, "val_purity_at_efficiency": True,
            "loss": False, "efficiency": True, "purity": True, "f1": True}


class BatchSource(Protocol):
    """Where a rank's batches come from (the shard reader implements this).

    ``batches(epoch, start)`` must yield the same sequence for the same epoch on every call (shuffle with a seed
    derived from the epoch), beginning at batch index ``start``.
    """

    def num_batches(self, epoch: int) -> int:
        """Batches this rank has in ``epoch``."""

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict]:
        """This rank's padded batches (numpy dicts, see :mod:`trkx_tf.graphs.batch`) of ``epoch`` from ``start``."""


class InMemorySource:
    """A :class:`BatchSource` over a list of batches, reshuffled per epoch with a fixed seed.

    Args:
      batches: padded batches (numpy dicts).
      shuffle: permute the order every epoch (deterministically from ``seed`` and the epoch).
      seed: shuffle seed.
    """

    def __init__(self, batches: Sequence[dict], shuffle: bool = True, seed: int = 0):
        self._batches = list(batches)
        self.shuffle, self.seed = shuffle, seed

    def num_batches(self, epoch: int) -> int:
        return len(self._batches)

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict]:
        order = np.arange(len(self._batches))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        for i in order[start:]:
            yield self._batches[i]


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes:
      history: one record per finished epoch (the lines of ``metrics.jsonl``).
      step_losses: the loss of every step run by this call (rank-local, in order).
      steps: optimizer steps done in total (including those restored from a checkpoint).
      epoch: the next epoch to run (== epochs when training finished).
      stopped_early: early stopping ended the training.
      interrupted: ``stop_after_steps`` or ``stop_requested`` ended this call mid-run (a checkpoint holds the
        position).
      restored_from: the checkpoint this call resumed from, or None.
    """

    history: list
    step_losses: list
    steps: int
    epoch: int
    stopped_early: bool = False
    interrupted: bool = False
    restored_from: Optional[str] = None


class _TrainState(tf.Module):
    """Loop counters that go into the checkpoint next to model and optimizer."""

    def __init__(self):
        super().__init__(name="train_state")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")  # batches done in epoch
        self.best = tf.Variable(math.nan, dtype=tf.float64, trainable=False, name="best")
        self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_epochs")


def _first_batch(source: BatchSource, replicas: int) -> dict:
    """The first replica's first batch (to build variables)."""
    for batch in source.batches(0, 0):
        return split_replicas(batch, replicas)[0]
    raise ConfigError("the training source has no batch")


def _prepare(task: EdgeTask, batch: dict, forward, rng_key: list, replicas: int, epoch: int) -> dict:
    """``task.prepare`` of a process batch at ``epoch``: per replica when stacked, each replica with the generator
    a rank of a one-replica backend would use at this step; the model's ``forward`` is offered from the task's
    ``mine_from_epoch`` on (the embedding's hard negatives)."""
    forward = forward if epoch >= getattr(task, "mine_from_epoch", 0) else None
    parts = [task.prepare(b, forward, np.random.default_rng(rng_key)) for b in split_replicas(batch, replicas)]
    return parts[0] if replicas == 1 else stack_replicas(parts)


def _failure(what: str, checkpoint: TrainingCheckpoint) -> str:
    """The message of a training failure: what happened, and that nothing was saved."""
    manager = checkpoint.manager
    kept = manager.latest_checkpoint if manager is not None else None
    return f"{what}; nothing saved, " + (f"the last checkpoint {kept} is kept" if kept else "no checkpoint written")


def _epoch_sums(backend: Backend, sums: np.ndarray, counts: Counts, times: np.ndarray) -> dict:
    """Reduces an epoch's local sums and step times over ranks; returns the epoch's global metrics."""
    total = backend.host_sum(sums)  # loss_sum, weight_sum, graphs, edges, steps
    counts = counts.reduced(backend)
    loss = total[0] / total[1] if total[1] > 0 else math.nan
    out = {"loss": float(loss), **{k: v for k, v in counts.ratios().items()}}
    if times is not None:
        wall, step_sum, n_steps = times
        mean_step = step_sum / max(n_steps, 1)
        max_step = float(backend.host_max(np.array([mean_step]))[0])
        avg_step = float(backend.host_sum(np.array([mean_step]))[0]) / backend.size
        max_wall = float(backend.host_max(np.array([wall]))[0])
        out.update({
            "graphs": int(total[2]), "edges": int(total[3]),
            "graphs_per_s": float(total[2] / max_wall) if max_wall > 0 else math.nan,
            "edges_per_s": float(total[3] / max_wall) if max_wall > 0 else math.nan,
            "epoch_time_s": max_wall, "steps": int(n_steps),
            "step_time_s": float(mean_step), "step_time_s_max": max_step,
            "imbalance": float(max_step / avg_step - 1.0) if avg_step > 0 else math.nan,  # slowest vs mean rank
        })
    return out


def evaluate(steps: StepFunctions, source: BatchSource, backend: Backend, epoch: int = 0,
             max_steps: int = 0) -> dict:
    """Loss, efficiency and purity over a source (global over ranks).

    Args:
      steps: the step functions.
      source: validation batches.
      backend: distributed hooks.
      epoch: passed to the source (its order does not matter here).
      max_steps: at most this many batches per rank (0: all).

    Returns:
      ``{"loss", "efficiency", "purity", "f1", counts..., "weight_sum", "batches"}``, for edge tasks also the
      working points (:func:`trkx_tf.train.metrics.working_points`); the loss is nan when no
      edge of the source has a non-zero weight (``weight_sum`` 0) or no batch was evaluated (``batches`` 0, the
      same on every rank).
    """
    n = source.num_batches(epoch)
    n = backend.agree_steps(min(n, max_steps) if max_steps else n)
    sums = np.zeros(5, np.float64)
    counts = Counts(targets=getattr(steps.task, "targets", None))  # edge tasks: working points from the histogram
    for i, batch in enumerate(source.batches(epoch, 0)):
        if i >= n:
            break
        batch = _prepare(steps.task, batch, steps.forward, [7919, epoch, i], backend.local_replicas, epoch)
        out = steps.evaluate(batch)
        sums[:2] += (out["loss_sum"], out["weight_sum"])
        counts.add(out["counts"])
    return {**_epoch_sums(backend, sums, counts, None), "weight_sum": float(backend.host_sum(sums[1:2])[0]),
            "batches": n}


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How :func:`fit` runs. :meth:`from_config` builds it from the config (``train`` and ``run.seed``), whose
    schema holds every default.

    Attributes:
      epochs: total epochs (a resumed run continues up to this number).
      checkpoint_every: epochs between checkpoints (the last epoch is always saved).
      keep_checkpoints: checkpoints kept by the manager.
      max_steps_per_epoch: cap on the steps of an epoch (0: all batches).
      early_stopping_patience: stop after this many epochs without improvement of the monitored metric (0: off).
      early_stopping_metric: one of :data:`MONITORS` (``val_*`` needs a validation source).
      log_every: steps between per-step TensorBoard scalars.
      seed: seed of the host-side randomness (pair mining), combined with epoch and position.
      stop_after_steps: end the call after this many steps, saving a checkpoint with the data position (for
        time-limited jobs and resume tests); None: no limit.
      init_checkpoint: the model's starting weights (fine-tuning) when the run has no checkpoint to resume; None:
        the initial weights.
    """

    epochs: int
    checkpoint_every: int
    keep_checkpoints: int
    max_steps_per_epoch: int
    early_stopping_patience: int
    early_stopping_metric: str
    log_every: int
    seed: int
    stop_after_steps: Optional[int] = None
    init_checkpoint: Optional[str] = None

    @classmethod
    def from_config(cls, cfg: Optional[Config] = None, **changes) -> "FitOptions":
        """The options of ``cfg`` (None: the schema's defaults), with ``changes`` applied.

        Raises:
          ConfigError: a change names no option.
        """
        cfg = Config() if cfg is None else cfg
        tc = cfg.train
        options = cls(epochs=tc.epochs, checkpoint_every=tc.checkpoint_every, keep_checkpoints=tc.keep_checkpoints,
                      max_steps_per_epoch=tc.max_steps_per_epoch, early_stopping_patience=tc.early_stopping_patience,
                      early_stopping_metric=tc.early_stopping_metric, log_every=tc.log_every, seed=cfg.run.seed,
                      init_checkpoint=tc.init_checkpoint)
        return options.replace(**changes)

    def replace(self, **changes) -> "FitOptions":
        """A copy with ``changes`` applied.

        Raises:
          ConfigError: a change names no option.
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"fit: unknown option(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


def fit(model, task: EdgeTask, optimizer: Adam, train_source: BatchSource, options: Optional[FitOptions] = None, *,
        val_source: Optional[BatchSource] = None, backend: Optional[Backend] = None,
        run_dir: Optional[RunDir] = None, hparams: Optional[Mapping] = None,
        stop_requested: Optional[Callable[[], bool]] = None, on_ready: Optional[Callable[[], None]] = None,
        loss_scale: Optional[DynamicLossScale] = None, **changes) -> FitResult:
    """Trains ``model`` for ``options.epochs`` epochs, resuming from the run's latest checkpoint when there is one.

    Args:
      model: the Sonnet module.
      task: what a step computes (:mod:`trkx_tf.train.tasks`).
      optimizer: the optimizer (its schedule decides the learning rate).
      train_source: training batches of this rank.
      options: the loop's settings (:class:`FitOptions`; None: ``FitOptions.from_config()``, the schema's defaults).
      val_source: validation batches of this rank, or None.
      backend: distributed hooks (default :class:`SingleBackend`).
      run_dir: where checkpoints, TensorBoard and ``metrics.jsonl`` go (None: nothing is written, no resume).
      hparams: hyperparameters for TensorBoard's hparams plugin.
      stop_requested: polled after every step (e.g. a preemption-signal flag); when it is True on any rank, all
        ranks stop after that same step and the writer saves a checkpoint with the data position.
      on_ready: called once variables are built, restored and broadcast, before the first step.
      loss_scale: float16 dynamic loss scale (saved in the checkpoint).
      **changes: :class:`FitOptions` fields to change (``epochs=3``), for tests and benchmarks.

    Returns:
      A :class:`FitResult`.

    Raises:
      ConfigError: bad options (unknown option or monitor, ``val_*`` monitor without ``val_source``, empty source).
      CheckpointError: the latest checkpoint does not fit the model.
      TrainingError: a step's loss or an epoch's validation loss is not finite, or an epoch's training or
        validation edges all weigh 0 (no labels); nothing is saved then, the last checkpoint is kept (the console
        script exits 3).
    """
    opt = (options or FitOptions.from_config()).replace(**changes)
    backend = backend or SingleBackend()
    if opt.early_stopping_metric not in MONITORS:
        raise ConfigError(f"early_stopping_metric must be one of {sorted(MONITORS)} "
                          f"(got {opt.early_stopping_metric!r})")
    if opt.early_stopping_patience and opt.early_stopping_metric.startswith("val_") and val_source is None:
        raise ConfigError(f"early stopping on {opt.early_stopping_metric} needs a validation source")
    steps = StepFunctions(model, task, optimizer, backend, loss_scale=loss_scale)
    state = _TrainState()

    # 1. build every variable with one warm-up batch (same on every rank), then restore, then broadcast
    steps.build(task.prepare(_first_batch(train_source, backend.local_replicas), None, np.random.default_rng(0)))
    ckpt_objects = {"model": model, "optimizer": optimizer, "state": state}
    if loss_scale is not None:
        ckpt_objects["loss_scale"] = loss_scale
    checkpoint = TrainingCheckpoint(ckpt_objects, None if run_dir is None else run_dir.checkpoints,
                                    opt.keep_checkpoints, backend)
    restored_from = checkpoint.restore_latest()
    if restored_from:
        log.info("resumed from %s (epoch %d, position %d, step %d)", restored_from, int(state.epoch),
                 int(state.position), int(optimizer.iterations.numpy()))
    elif opt.init_checkpoint:  # fine-tuning: every rank reads the same weights (the broadcast below agrees anyway)
        log.info("initial weights from %s (fine-tuning)", initial_weights(model, opt.init_checkpoint))
    backend.broadcast(steps.variables + list(state.variables))
    if on_ready is not None:
        on_ready()
    summaries = Summaries(None if run_dir is None else run_dir.tensorboard, backend.is_writer, opt.log_every)
    if restored_from is None:
        summaries.hparams(hparams)

    higher_better = MONITORS[opt.early_stopping_metric]
    result = FitResult(history=[], step_losses=[], steps=int(optimizer.iterations.numpy()), epoch=int(state.epoch),
                       restored_from=restored_from)
    done_this_call = 0
    while int(state.epoch) < opt.epochs:
        epoch = int(state.epoch)
        n = train_source.num_batches(epoch)
        n = backend.agree_steps(min(n, opt.max_steps_per_epoch) if opt.max_steps_per_epoch else n)
        start = int(state.position)
        sums = np.zeros(5, np.float64)  # loss_sum, weight_sum, graphs, edges, steps
        counts = Counts()
        step_time = 0.0
        t_epoch = time.perf_counter()
        for i, batch in enumerate(train_source.batches(epoch, start), start):
            if i >= n:
                break
            graphs, edges = task.throughput(batch)
            batch = _prepare(task, batch, steps.forward, [opt.seed, epoch, i], backend.local_replicas, epoch)
            t0 = time.perf_counter()
            out = steps.train(batch)
            step_time += time.perf_counter() - t0
            sums += (out["loss_sum"], out["weight_sum"], graphs, edges, 1)
            counts.add(out["counts"])
            result.step_losses.append(float(out["loss"]))
            if not math.isfinite(result.step_losses[-1]):  # diverged: stop before anything is saved
                raise TrainingError(_failure(f"step {int(optimizer.iterations.numpy())} (epoch {epoch}, batch {i}): "
                                             f"the loss is {result.step_losses[-1]}", checkpoint)
                                    + "; lower train.lr or check the shards")
            state.position.assign(i + 1)
            done_this_call += 1
            step = int(optimizer.iterations.numpy())
            summaries.step(step, float(out["loss"]), float(out["lr"]))
            stop_now = opt.stop_after_steps is not None and done_this_call >= opt.stop_after_steps
            if stop_requested is not None:  # a preemption signal on any rank stops every rank at this step
                stop_now = bool(backend.host_max(np.array([stop_now or stop_requested()], np.int64))[0])
            if stop_now:
                checkpoint.save(step)
                result.steps, result.epoch, result.interrupted = step, epoch, True
                summaries.flush()
                return result
        wall = time.perf_counter() - t_epoch
        record = {"epoch": epoch, "step": int(optimizer.iterations.numpy()), "learning_rate": float(optimizer.lr()),
                  **_epoch_sums(backend, sums, counts, np.array([wall, step_time, sums[4]]))}
        # the same on every rank (global sums); an epoch whose last step ran before a preemption's checkpoint runs no
        # step when resumed: its training sums went with the interrupted process (loss nan), nothing failed
        if sums[4] > 0 and not math.isfinite(record["loss"]):
            if float(backend.host_sum(np.array([sums[1]]))[0]) <= 0:
                raise TrainingError(_failure(f"epoch {epoch}: no training edge has a non-zero weight (the shards "
                                             f"carry no labels: the loss is 0/0)", checkpoint)
                                    + "; rebuild the shards from labelled events (trkx-build)")
            raise TrainingError(_failure(f"epoch {epoch}: the loss is {record['loss']}", checkpoint))
        if start:
            record["resumed_at_batch"] = start
        if val_source is not None:
            val = evaluate(steps, val_source, backend, epoch)
            batches = val.pop("batches")
            if not batches:  # fewer validation graphs than ranks: nothing to evaluate, the record says nan
                log.warning("epoch %d: no validation batch to evaluate on %d rank(s) (fewer validation graphs "
                            "than ranks); val_* metrics are nan", epoch, backend.size)
            elif val.pop("weight_sum") <= 0:  # val_loss 0/0 would be nan: early stopping and model choice blind
                raise TrainingError(_failure(f"epoch {epoch}: no validation edge has a non-zero weight (the "
                                             "validation shards carry no labels)", checkpoint)
                                    + "; rebuild them from labelled events (trkx-build) or train without validation")
            elif not math.isfinite(val["loss"]):
                raise TrainingError(_failure(f"epoch {epoch}: the validation loss is {val['loss']}", checkpoint))
            val.pop("weight_sum", None)
            record.update({f"val_{k}": v for k, v in val.items()})
        record.update(kind="epoch", backend=backend.name, ranks=backend.size, replicas=backend.num_replicas,
                      global_batch=backend.num_replicas * getattr(train_source, "graphs_per_step", 1))

        # early stopping on the monitored metric
        stop = False
        value = record.get(opt.early_stopping_metric, math.nan)
        best = float(state.best)
        if math.isfinite(value) and (math.isnan(best) or (value > best if higher_better else value < best)):
            state.best.assign(value)
            state.bad_epochs.assign(0)
        else:
            state.bad_epochs.assign_add(1)
            stop = bool(opt.early_stopping_patience) and int(state.bad_epochs) >= opt.early_stopping_patience
        record["best_" + opt.early_stopping_metric] = float(state.best)
        result.history.append(record)
        if run_dir is not None:
            run_dir.log_metrics(record)
        summaries.epoch(int(optimizer.iterations.numpy()), record)
        log.info("epoch %d: loss %.4f eff %.4f pur %.4f%s", epoch, record["loss"], record["efficiency"],
                 record["purity"], f" | val loss {record['val_loss']:.4f} eff {record['val_efficiency']:.4f} "
                 f"pur {record['val_purity']:.4f}" if val_source is not None else "")
        state.epoch.assign(epoch + 1)
        state.position.assign(0)
        if stop or (epoch + 1) % opt.checkpoint_every == 0 or epoch + 1 == opt.epochs:
            checkpoint.save(int(optimizer.iterations.numpy()))
        if stop:
            result.stopped_early = True
            break
    result.steps, result.epoch = int(optimizer.iterations.numpy()), int(state.epoch)
    summaries.flush()
    return result


def train(cfg: Config, train_source: BatchSource, val_source: Optional[BatchSource] = None,
          backend: Optional[Backend] = None, run_dir: Optional[RunDir] = None,
          stop_after_steps: Optional[int] = None,
          stop_requested: Optional[Callable[[], bool]] = None) -> FitResult:
    """Trains the model named by ``cfg.train.model`` as the config says (the ``trkx-train`` entry point).

    Creates the run directory (writer rank: folders and the resolved ``config.yaml``), builds model and
    optimizer inside ``backend.scope()``, scales the learning rate with the number of replicas
    (``backend.num_replicas``, by ``train.lr_scaling``), warms it up linearly over ``train.warmup_epochs`` epochs
    and, with ``train.lr_decay: cosine``, decays it to ``train.lr_final_ratio`` of its peak at the last step
    (:class:`~trkx_tf.train.optim.WarmupSchedule`), and calls :func:`fit`.

    Args:
      cfg: the validated config.
      train_source: this rank's training batches.
      val_source: this rank's validation batches, or None.
      backend: distributed hooks (default :class:`SingleBackend`).
      run_dir: override of ``RunDir.from_config(cfg)``.
      stop_after_steps: see :func:`fit`.
      stop_requested: see :func:`fit`.

    Returns:
      The :class:`FitResult`.

    Raises:
      ConfigError: inconsistent settings.
      CheckpointError: the run's checkpoint does not fit the model.
      TrainingError: see :func:`fit`.
    """
    from trkx_tf.models.registry import build_model

    backend = backend or SingleBackend()
    tc = cfg.train
    run_dir = run_dir or RunDir.from_config(cfg, is_writer=backend.is_writer)
    run_dir.is_writer = backend.is_writer
    run_dir.create(None)  # the config is saved once a checkpoint to resume from is known to fit (on_ready)
    tf.random.set_seed(cfg.run.seed)  # initial weights: identical on every rank even before the broadcast
    dtype = {"none": "float32", "bf16": "bfloat16", "fp16": "float16"}[tc.mixed_precision]
    n0 = train_source.num_batches(0)
    steps_per_epoch = backend.agree_steps(min(n0, tc.max_steps_per_epoch) if tc.max_steps_per_epoch else n0)
    lr = scaled_lr(tc.lr, backend.num_replicas, tc.lr_scaling)
    warmup_steps = int(round(tc.warmup_epochs * steps_per_epoch))
    decay_steps = max(tc.epochs * steps_per_epoch, warmup_steps + 1) if tc.lr_decay == "cosine" else 0
    schedule = WarmupSchedule(lr, warmup_steps, decay_steps, tc.lr_final_ratio)
    with backend.scope():
        model = build_model(cfg.model, tc.model, compute_dtype=dtype, recompute=tc.checkpoint_steps)
        optimizer = Adam(schedule)
        loss_scale = DynamicLossScale() if dtype == "float16" else None
    if tc.model == "embedding":
        emb = cfg.model.embedding
        task = EmbeddingTask(emb.margin, emb.random_pairs, emb.knn_pairs, tc.true_weight, tc.fake_weight,
                             emb.knn_start_epoch, emb.candidate_negatives)
    else:
        task = EdgeTask(tc.true_weight, tc.fake_weight, tc.threshold,
                        all_steps=(tc.model == "gnn" and cfg.model.gnn.all_steps_loss),
                        targets=(tc.target_purity, tc.target_efficiency))
    hparams = {"model": tc.model, "lr": tc.lr, "lr_scaled": lr, "ranks": backend.size,
               "replicas": backend.num_replicas, "backend": backend.name,
               "mixed_precision": tc.mixed_precision, "checkpoint_steps": tc.checkpoint_steps,
               **{f"{tc.model}.{k}": v for k, v in getattr(cfg.model, tc.model).model_dump().items()}}
    options = FitOptions.from_config(cfg, stop_after_steps=stop_after_steps)
    return fit(model, task, optimizer, train_source, options, val_source=val_source, backend=backend,
               run_dir=run_dir, hparams=hparams, stop_requested=stop_requested, loss_scale=loss_scale,
               on_ready=lambda: run_dir.save_config(cfg))
