"""A study shared by many workers: its storage, the trial budget, and the worker loop.

Storage: a path ending in ``.db``, ``.sqlite`` or ``.sqlite3`` is an SQLite database (Optuna's RDB storage);
any other path is an Optuna journal file (``JournalFileBackend`` with the open-lock, which works on shared file
systems where symbolic links do not), the choice for SLURM array tasks on a parallel file system. Workers on any
number of hosts that see the same path share the study.

The budget: ``trials`` is the size of the whole study. A worker asks Optuna for a new trial only while fewer than
``trials`` trials have started (complete, pruned, failed or running; trials interrupted by a signal or a lost
worker do not count), and it counts and asks under an exclusive lock on ``<storage>.trkx-hpo.lock``
(``fcntl.flock``; Optuna's journal keeps its own ``<storage>.lock``), so two workers never start one trial too many
and every trial is recorded once. Running the same command again resumes the study: its trials are kept and it
goes on up to ``trials``.

A lost worker (killed with SIGKILL, node failure) leaves its trial RUNNING; every worker writes a heartbeat into its
running trial (user attribute ``heartbeat``) and a trial without one for :data:`STALE_AFTER_S` is marked failed and
``interrupted`` by the next worker that counts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import math
import os
import shlex
import signal
import socket
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from trkx_tf.config import config_to_dict, load_config
from trkx_tf.errors import TrkxError
from trkx_tf.hpo.space import StudySpec, load_space, override
from trkx_tf.hpo.trial import run_trial

log = logging.getLogger("trkx_tf.hpo")

#: Seconds between a worker's heartbeats into its running trial.
HEARTBEAT_S = 30.0
#: A RUNNING trial without a heartbeat for this long belongs to a lost worker: it is failed (interrupted).
STALE_AFTER_S = 600.0
#: Exit status of a worker stopped by SIGTERM/SIGUSR1 (its trial is failed and interrupted, not counted).
EXIT_REQUEUE = 99
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class StudyError(TrkxError):
    """The study cannot be run as asked (a different space under the same name, a used trials folder, ...)."""


@dataclass(frozen=True)
class StudyArgs:
    """What a worker needs (plain values: it crosses process boundaries).

    Attributes:
      space: the study file (:mod:`trkx_tf.hpo.space`).
      config: the base config file of every trial (None: the built-in defaults).
      overrides: ``--set`` overrides every trial gets.
      study: the study name.
      storage: the storage path (journal file, or ``*.db`` SQLite).
      trials: the study's size.
      out: the folder of the trials' run folders (``trial-NNNN``); default ``<storage>-<study>-trials`` beside
        the storage.
      launcher: a command prefix for every trial, e.g. ``("horovodrun", "-np", "2", "-H", "localhost:2")``.
      worker: this worker's id (mixed into the sampler's seed).
      poll_s: seconds between looks at a trial's metrics.
      grace_s: seconds between SIGTERM and SIGKILL when a trial is stopped.
    """

    space: str
    config: Optional[str]
    study: str
    storage: str
    trials: int
    overrides: tuple[str, ...] = ()
    out: Optional[str] = None
    launcher: tuple[str, ...] = ()
    worker: int = 0
    poll_s: float = 1.0
    grace_s: float = 10.0

    def trials_dir(self) -> Path:
        """The folder of the trials' run folders."""
        if self.out:
            return Path(self.out).resolve()
        storage = Path(self.storage).resolve()
        return storage.parent / f"{storage.stem}-{self.study}-trials"


# ------------------------------------------------------------------------------------------------- storage
def open_storage(path: os.PathLike | str):
    """The Optuna storage at ``path``: SQLite for ``*.db|*.sqlite|*.sqlite3``, else a journal file.

    Raises:
      StudyError: the folder of ``path`` does not exist.
    """
    import optuna

    path = Path(path).resolve()
    if not path.parent.is_dir():
        raise StudyError(f"--storage {path}: folder {path.parent} does not exist")
    if path.suffix in SQLITE_SUFFIXES:
        return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 120}})
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


@contextlib.contextmanager
def study_lock(storage: os.PathLike | str):
    """Holds the exclusive lock ``<storage>.trkx-hpo.lock`` (fcntl) of a study's storage while the block runs."""
    lock_path = Path(str(Path(storage).resolve()) + ".trkx-hpo.lock")  # not Optuna's own <storage>.lock
    with open(lock_path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------- sampler, pruner, space
def distributions(spec: StudySpec) -> dict:
    """Optuna distributions of the study file's parameters, by config key."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for key, p in spec.params.items():
        kind = p.kind
        if kind == "choice":
            out[key] = CategoricalDistribution(list(p.choice))
        elif kind == "int":
            out[key] = IntDistribution(*p.bounds(kind))
        else:
            out[key] = FloatDistribution(*p.bounds(kind), log=kind == "log_uniform")
    return out


def make_sampler(spec: StudySpec, worker: int = 0, started: int = 0):
    """The study file's sampler for one worker.

    Args:
      spec: the study file.
      worker: the worker's id.
      started: trials the study had when the worker started (a resumed study does not replay its seeds).
    """
    import optuna

    s = spec.sampler
    seed = None if s.seed is None else zlib.crc32(f"{s.seed}/{worker}/{started}".encode())
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "grid":
        return optuna.samplers.GridSampler({k: list(p.choice) for k, p in spec.params.items()}, seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=s.startup_trials, seed=seed, constant_liar=True)


def make_pruner(spec: StudySpec, epochs: int):
    """The study file's pruner (step = epoch; ``epochs`` is the trials' ``train.epochs``)."""
    import optuna

    p = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs)
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_epochs, reduction_factor=p.reduction_factor)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_epochs, max_resource=max(epochs, p.min_epochs),
                                              reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()


# ---------------------------------------------------------------------------------------------- the study
def counted(trials) -> int:
    """Trials that count toward the budget: started ones, except those interrupted by a signal or a lost worker."""
    from optuna.trial import TrialState

    return sum(1 for t in trials if t.state != TrialState.WAITING and not t.user_attrs.get("interrupted"))


def fail_stale(study, stale_after_s: float = STALE_AFTER_S) -> list[int]:
    """Fails (as interrupted) the RUNNING trials whose worker wrote no heartbeat for ``stale_after_s``.

    Returns:
      The numbers of the trials failed.
    """
    from optuna.trial import TrialState

    now = time.time()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.user_attrs.get("heartbeat", t.datetime_start.timestamp() if t.datetime_start else now)
        if now - beat > stale_after_s:
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_user_attr(t._trial_id, "error", f"worker lost (no heartbeat for "
                                                                     f"{now - beat:.0f} s)")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            failed.append(t.number)
    return failed


def _identity(spec: StudySpec, args: StudyArgs) -> dict:
    """What must not change when a study resumes: the study file and the resolved base config."""
    return {"space": spec.model_dump(mode="json", by_alias=True),
            "base_config": config_to_dict(load_config(args.config, args.overrides))}


def create_or_load(args: StudyArgs, spec: StudySpec):
    """Creates the study (with its identity, its enqueued trials and its trials folder) or loads it to resume.

    Call it under :func:`study_lock`.

    Returns:
      (study, created).

    Raises:
      StudyError: the study exists with another study file or base config, or it is new and its trials folder
        already holds run folders.
    """
    import optuna

    storage = open_storage(args.storage)
    ident = _identity(spec, args)
    try:
        study = optuna.load_study(study_name=args.study, storage=storage)
    except KeyError:
        study = None
    if study is not None:
        stored = {k: study.user_attrs.get(k) for k in ident}
        for key in ident:
            if json.dumps(stored[key], sort_keys=True) != json.dumps(ident[key], sort_keys=True):
                what = "study file" if key == "space" else "base config (with its --set overrides)"
                raise StudyError(f"study {args.study!r} in {args.storage} was made with another {what}: resume it "
                                 f"with the same one, or give a new --study name")
        return study, False
    trials_dir = args.trials_dir()
    if trials_dir.exists() and any(trials_dir.iterdir()):
        raise StudyError(f"{trials_dir}: trials folder of a new study already holds runs: remove it or give --out")
    study = optuna.create_study(study_name=args.study, storage=storage, direction=spec.objective.direction)
    for key, value in ident.items():
        study.set_user_attr(key, value)
    study.set_user_attr("config_path", args.config)
    study.set_user_attr("overrides", list(args.overrides))
    study.set_user_attr("trials_dir", str(trials_dir))
    for fixed in spec.enqueue:
        study.enqueue_trial(dict(fixed), skip_if_exists=True)
    trials_dir.mkdir(parents=True, exist_ok=True)
    return study, True


def trial_command(args: StudyArgs, params: dict, run_name: str) -> list[str]:
    """The command of one trial: launcher, ``trkx-train``, the base config, the overrides and the parameters.

    The launcher's program and ``trkx-train`` are found on PATH or beside this interpreter (an environment that is
    not activated still finds its own ``horovodrun``).

    Raises:
      BackendError: the launcher's program or trkx-train is installed nowhere.
    """
    from trkx_tf.scaling.launchers import console_script

    launcher = [console_script(args.launcher[0]), *args.launcher[1:]] if args.launcher else []
    cmd = [*launcher, console_script("trkx-train")]
    if args.config:
        cmd += ["--config", str(Path(args.config).resolve())]
    for item in [*args.overrides, *(override(k, v) for k, v in params.items()),
                 override("run.out_dir", str(args.trials_dir())), override("run.name", run_name)]:
        cmd += ["--set", item]
    return cmd


def trial_value(values: Sequence[float], spec: StudySpec) -> float:
    """A finished trial's value from its per-epoch objective: the last one, or the best one."""
    if spec.objective.reduce == "last":
        return values[-1]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if spec.objective.direction == "maximize" else min(finite)


@dataclass
class WorkerSummary:
    """What one worker did: trial numbers by final state, and whether it was interrupted."""

    complete: list = dataclasses.field(default_factory=list)
    pruned: list = dataclasses.field(default_factory=list)
    fail: list = dataclasses.field(default_factory=list)
    interrupted: bool = False


@contextlib.contextmanager
def _stop_on_signals():
    """SIGTERM / SIGUSR1 set an event instead of killing the worker (main thread only)."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    signals = (signal.SIGTERM, signal.SIGUSR1)
    previous = {s: signal.signal(s, lambda *_: event.set()) for s in signals}
    try:
        yield event
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def run_worker(args: StudyArgs, stale_after_s: float = STALE_AFTER_S) -> WorkerSummary:
    """One worker: runs trials of the study until it has ``args.trials`` trials (or a signal stops it).

    Each trial is a ``trkx-train`` subprocess (:func:`trial_command`) followed by :func:`~trkx_tf.hpo.trial.run_trial`;
    its objective is reported every epoch and the pruner may stop it. A trial whose command fails is told FAIL
    (user attribute ``error``: its exit status and last log lines) and the worker goes on with the next one.

    Args:
      args: the study and this worker.
      stale_after_s: see :func:`fail_stale`.

    Returns:
      A :class:`WorkerSummary`.

    Raises:
      SearchSpaceError, ConfigError: the study file or the base config is invalid.
      StudyError: see :func:`create_or_load`.
      ObjectiveError: the objective's metric is not in the epoch records (the trial is told FAIL first).
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_space(args.space, args.config, args.overrides)
    epochs = load_config(args.config, args.overrides).train.epochs
    with study_lock(args.storage):
        study, _ = create_or_load(args, spec)
        started = len(study.get_trials(deepcopy=False))
    study = optuna.load_study(study_name=args.study, storage=open_storage(args.storage),
                              sampler=make_sampler(spec, args.worker, started), pruner=make_pruner(spec, epochs))
    dists = distributions(spec)
    summary = WorkerSummary()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    worker_name = f"{socket.gethostname()}:{os.getpid()}"
    with _stop_on_signals() as stop:
        while not stop.is_set():
            with study_lock(args.storage):
                for number in fail_stale(study, stale_after_s):
                    log.warning("trial %d: its worker is lost; failed as interrupted", number)
                trials = study.get_trials(deepcopy=False)
                if counted(trials) >= args.trials:
                    break
                if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
                    break
                trial = study.ask(dists)
                trial.set_user_attr("worker", worker_name)
                trial.set_user_attr("heartbeat", time.time())
            run_name = f"trial-{trial.number:04d}"
            run_dir = args.trials_dir() / run_name
            command = trial_command(args, trial.params, run_name)
            trial.set_user_attr("run_dir", str(run_dir))
            trial.set_user_attr("command", shlex.join(command))
            log.info("trial %d: %s", trial.number, " ".join(f"{k}={v}" for k, v in trial.params.items()))
            last_beat = [time.monotonic()]

            def report(value: float, epoch: int) -> bool:
                try:
                    trial.report(value, epoch)
                    return trial.should_prune()
                except optuna.exceptions.UpdateFinishedTrialError:  # failed as stale meanwhile: stop it
                    return True

            def on_poll() -> bool:
                if time.monotonic() - last_beat[0] > HEARTBEAT_S:
                    last_beat[0] = time.monotonic()
                    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                        trial.set_user_attr("heartbeat", time.time())
                return stop.is_set()

            try:
                outcome = run_trial(command, run_dir, spec.objective.metric, report, poll_s=args.poll_s,
                                    grace_s=args.grace_s, env=env, on_poll=on_poll)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    trial.set_user_attr("error", f"{exc.__class__.__name__}: {exc}"[:500])
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
            trial.set_user_attr("wall_s", round(outcome.wall_s, 1))
            trial.set_user_attr("returncode", outcome.returncode)
            if outcome.state == "complete":
                value = trial_value(outcome.values, spec)
                if math.isfinite(value):
                    study.tell(trial, value, skip_if_finished=True)
                    summary.complete.append(trial.number)
                    log.info("trial %d: complete, %s = %.5g", trial.number, spec.objective.metric, value)
                    continue
                outcome.error = f"objective {spec.objective.metric} is {value}"
            if outcome.state == "pruned":
                study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
                summary.pruned.append(trial.number)
                log.info("trial %d: pruned after %d epoch(s)", trial.number, len(outcome.values))
                continue
            if outcome.error == "interrupted":
                trial.set_user_attr("interrupted", True)
                summary.interrupted = True
            trial.set_user_attr("error", outcome.error[:500])
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            summary.fail.append(trial.number)
            log.warning("trial %d: failed: %s", trial.number, outcome.error)
    summary.interrupted = summary.interrupted or stop.is_set()
    return summary


def _worker_process(args: StudyArgs, stale_after_s: float) -> None:
    """Body of a spawned worker process: exit 0, 2 (user error, one line on stderr) or 99 (interrupted)."""
    from trkx_tf.logs import setup_logging

    setup_logging(args.worker, "INFO")
    try:
        summary = run_worker(args, stale_after_s)
    except TrkxError as exc:
        print(f"trkx-hpo: error: worker {args.worker}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.exit(EXIT_REQUEUE if summary.interrupted else 0)


def run_study(args: StudyArgs, workers: int = 1, stale_after_s: float = STALE_AFTER_S) -> int:
    """Runs ``workers`` workers of one study on this machine (1: in this process) until the study is full.

    Args:
      args: the study; worker k gets id ``args.worker + k``.
      workers: worker processes (spawned; each a :func:`run_worker`).
      stale_after_s: see :func:`fail_stale`.

    Returns:
      The exit status: 0, 2 when a worker stopped on a user error, 99 when a signal interrupted a worker, 1 when
      a worker crashed.

    Raises:
      SearchSpaceError, ConfigError, StudyError: checked once before any worker starts.
      BackendError: the launcher's program or trkx-train is not installed (before any worker starts).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_space(args.space, args.config, args.overrides)
    trial_command(args, {}, "check")  # a missing launcher fails here in one line, not in every trial
    with study_lock(args.storage):
        create_or_load(args, spec)  # once, before the workers: they only load it
    if workers <= 1:
        return EXIT_REQUEUE if run_worker(args, stale_after_s).interrupted else 0
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_process, args=(dataclasses.replace(args, worker=args.worker + k),
                                                       stale_after_s), name=f"trkx-hpo-worker-{k}")
             for k in range(workers)]
    for p in procs:
        p.start()

    def forward(signum, _frame):
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signum)

    with contextlib.ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGUSR1):
                old = signal.signal(s, forward)
                stack.callback(signal.signal, s, old)
        for p in procs:
            p.join()
    codes = [p.exitcode for p in procs]
    if all(c == 0 for c in codes):
        return 0
    for want in (2, EXIT_REQUEUE):
        if want in codes:
            return want
    return 1
