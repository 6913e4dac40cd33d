"""One training run from a config: backend, logging, this rank's shard readers, then the loop.

This is what ``trkx-train`` calls; tests call it too, in-process or under a launcher.

Preemption: SIGUSR1 (what the SLURM templates ask ``--signal`` to send) or SIGTERM sets a flag; all ranks stop
after the same step, rank 0 writes a checkpoint holding the data position, and ``trkx-train`` exits with
:data:`EXIT_REQUEUE` so the job script requeues the job. The next run resumes from that checkpoint with the same
data order.

Requeue marker: when the job script sets ``TRKX_REQUEUE_MARK`` (slurm/lib/launch.sh does), the writer rank also
creates that file once its checkpoint is complete. The script requeues on exit 99 *or* on a forwarded signal plus
the marker, because under ``srun --kill-on-bad-exit=1`` the first rank to exit 99 makes srun terminate the others,
and the step's status becomes 143 whichever rank was last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from pathlib import Path

from trkx_tf.config import Config
from trkx_tf.files import OutputLock, check_output_folder, write_text_atomic
from trkx_tf.logs import setup_logging
from trkx_tf.placement import place_process
from trkx_tf.train.distributed import make_backend
from trkx_tf.train.loop import FitResult, train

log = logging.getLogger("trkx_tf.train")

#: Exit status of a run stopped by a preemption signal after checkpointing: "requeue me".
EXIT_REQUEUE = 99
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
#: Environment variable naming the requeue marker file (set by ``trkx_step`` in slurm/lib/launch.sh).
REQUEUE_MARK_ENV = "TRKX_REQUEUE_MARK"
#: The run folder's lock file: one trkx-train at a time per run folder.
LOCK_FILE = ".trkx-train.lock"


def mark_requeue(text: str, path: str | None = None) -> bool:
    """Creates the requeue marker (``$TRKX_REQUEUE_MARK`` unless ``path``) holding ``text``; call it only once the
    checkpoint is complete, on the writer rank. The file appears whole (written aside, then renamed).

    Returns whether a marker was written: False when no path is set, or (logged) when it cannot be written; the
    run still exits :data:`EXIT_REQUEUE` then.
    """
    path = path or os.environ.get(REQUEUE_MARK_ENV)
    if not path:
        return False
    try:
        write_text_atomic(path, text.rstrip("\n") + "\n")
    except OSError as e:
        log.warning("cannot write the requeue marker %s: %s", path, e)
        return False
    return True


@contextlib.contextmanager
def stop_on_signals(signals=STOP_SIGNALS):
    """Within the block, the listed signals set an event instead of killing the process; yields the event.

    Handlers are installed only in the main thread and restored on exit.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum, frame):
        log.warning("received %s: stopping after this step and checkpointing", signal.Signals(signum).name)
        event.set()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def open_sources(cfg: Config, rank: int, size: int, replicas: int = 1):
    """This process's training and validation shard readers (validation None when the build made no val split).

    With ``data.real`` the training graphs are the simulated shards' and the real ones' (``data.real.shards_dir``)
    mixed at ``data.real.fraction`` (:class:`~trkx_tf.graphs.mixed.MixedReader`), and the validation graphs are the
    real validation events' (``data.real.validation: real``) or the simulated ones'.

    Args:
      cfg: the config (``data.shards_dir``, ``data.real``, ``train.graphs_per_step``, ``run.seed``).
      rank: this process's rank.
      size: the number of processes.
      replicas: R, replicas in this process. R > 1: one reader per replica, for data rank ``rank·R + i`` of
        ``size·R``, zipped into stacked batches (:class:`~trkx_tf.train.replicas.ReplicaSource`).

    Raises:
      ShardError: the shards folder has no valid manifest.
    """
    from trkx_tf.graphs.mixed import MixedReader
    from trkx_tf.graphs.reader import ShardReader
    from trkx_tf.train.replicas import ReplicaSource

    real = cfg.data.real

    def reader(split: str, shuffle: bool, data_rank: int):
        kw = dict(shuffle=shuffle, rank=data_rank, size=size * replicas, graphs_per_step=cfg.train.graphs_per_step,
                  seed=cfg.run.seed)
        if real is None or (split == "train" and real.fraction == 0.0) or (split == "val" and real.validation == "sim"):
            return ShardReader(cfg.data.shards_dir, split, **kw)
        if split == "val" or real.fraction == 1.0:
            return ShardReader(real.shards_dir, split, **kw)
        return MixedReader(cfg.data.shards_dir, real.shards_dir, split, fraction=real.fraction, **kw)

    def readers(split: str, shuffle: bool):
        out = [reader(split, shuffle, rank * replicas + i) for i in range(replicas)]
        return out[0] if replicas == 1 else ReplicaSource(out)

    train_source = readers("train", True)
    val_source = readers("val", False)
    if not val_source.n_graphs:
        val_source.close()
        val_source = None
    return train_source, val_source


def run_training(cfg: Config) -> FitResult:
    """Trains as ``cfg`` says on this process's backend and returns the loop's result.

    Raises:
      TrkxError: any documented problem (config, shards, backend, checkpoint); OutputError when
        ``run.out_dir/run.name`` is a file; OutputLockedError when another trkx-train holds the run folder's
        lock (``<run>/.trkx-train.lock``, taken by the writer rank once the shards are checked).
    """
    run_root = check_output_folder(Path(cfg.run.out_dir) / cfg.run.name, "run.out_dir/run.name")
    placement = place_process(cfg.backend.threads, cfg.backend.pin_cores)
    backend = make_backend(cfg.backend.name, cfg.backend.local_replicas, cfg.backend.gradient_groups)
    setup_logging(backend.rank, cfg.run.log_level)
    log.info("placement: %s", placement)
    train_source, val_source = open_sources(cfg, backend.rank, backend.size, backend.local_replicas)
    log.info("%s backend, %d process(es) x %d replica(s): %d training graphs, %d steps per epoch", backend.name,
             backend.size, backend.local_replicas, train_source.n_graphs, train_source.steps_per_epoch)
    lock = None
    try:
        if backend.is_writer:  # one trkx-train per run folder, with the build's lock (dies with the process)
            run_root.mkdir(parents=True, exist_ok=True)
            lock = OutputLock(run_root, LOCK_FILE, "trkx-train").acquire()
        with stop_on_signals() as stop:
            result = train(cfg, train_source, val_source, backend=backend, stop_requested=stop.is_set)
            if result.interrupted and backend.is_writer:
                # The checkpoint is complete. Still inside stop_on_signals: the SIGTERM with which srun
                # --kill-on-bad-exit ends this rank when another rank has already exited 99 only sets the flag
                # here, so the marker is written before this rank can be terminated.
                mark_requeue(f"checkpoint at epoch {result.epoch}, step {result.steps}")
            return result
    finally:
        if lock is not None:
            lock.release()
        train_source.close()
        if val_source is not None:
            val_source.close()


def train_from_config(cfg: Config) -> int:
    """:func:`run_training` for a console script: returns the exit status (:data:`EXIT_REQUEUE` if preempted)."""
    result = run_training(cfg)
    if result.interrupted:
        log.warning("stopped at epoch %d, step %d; checkpoint written: exit %d to be requeued", result.epoch,
                    result.steps, EXIT_REQUEUE)
        return EXIT_REQUEUE
    return 0
