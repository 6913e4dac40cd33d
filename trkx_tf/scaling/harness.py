"""The sweep: run ``trkx-train`` at every rank count on a fixed workload, and record what it measured.

Strong scaling keeps the global workload fixed: every run does ``scaling.steps_per_epoch`` steps of
``scaling.global_batch`` graphs, split as ``train.graphs_per_step = global_batch / N`` per rank. Weak scaling
keeps the per-rank workload fixed: ``train.graphs_per_step = scaling.rank_batch``. Every run trains
``warmup_epochs + epochs`` epochs; the warm-up epochs (graph tracing, caches) are left out of its record.
Repeats are interleaved (N = 1, 2, ..., then again) so that a drift of the machine spreads over every N; every run
record holds the host's 1-minute load average before and after its launch. Overrides given to ``trkx-scaling run``
(``--set backend.threads=1 --set backend.pin_cores=true``) are in the study's ``config.yaml``, which every launched
``trkx-train`` reads, and the placement is part of the environment record.

Layout of a study folder ``<scaling.out_dir>/<scaling.name>/``::

    config.yaml     the resolved config the runs were started from
    command.txt     the commands that made the study (one per trkx-scaling invocation)
    records.json    study, environment, run records and summary (trkx_tf.scaling.records)
    runs.csv  summary.csv
    runs/<mode>-<backend>-n<N>-r<repeat>/   each run's own folder (metrics.jsonl, checkpoints, ...)
    logs/<run>.log                          each run's output

Runs already in ``records.json`` are skipped, so an interrupted sweep continues where it stopped; a run that was
interrupted is started again from scratch (its partial timings would mix a restart into the measurement).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from trkx_tf.config import Config, ScalingConfig, save_config
from trkx_tf.errors import BackendError, ConfigError
from trkx_tf.scaling.environment import collect_environment, load_average
from trkx_tf.scaling.launchers import Launch, free_ports, launch_commands
from trkx_tf.scaling.records import load_study, read_epochs, run_record, write_study

REQUEUE_EXIT = 99  # trkx-train's "checkpointed after SIGUSR1/SIGTERM, requeue me"


class RunInterrupted(BackendError):
    """A run stopped on a signal (exit 99): the sweep stops too and should be requeued (exit 99)."""


def study_folder(scaling: ScalingConfig) -> Path:
    """``<scaling.out_dir>/<scaling.name>``.

    Raises:
      ConfigError: the name is empty or not a plain folder name.
    """
    name = scaling.name
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ConfigError(f"scaling.name: {name!r} must be a plain folder name")
    return Path(scaling.out_dir) / name


def validate(scaling: ScalingConfig) -> None:
    """Checks the rank counts and the workload split.

    Raises:
      ConfigError: no ranks, a rank count < 1 or repeated, ranks other than [1] for backend single, or (strong) a
        global batch that N does not divide.
    """
    if not scaling.ranks:
        raise ConfigError("scaling.ranks: give at least one rank count, e.g. --ranks 1,2")
    if min(scaling.ranks) < 1 or len(set(scaling.ranks)) != len(scaling.ranks):
        raise ConfigError(f"scaling.ranks: rank counts must be distinct and >= 1 (got {list(scaling.ranks)})")
    if scaling.backend == "single" and tuple(scaling.ranks) != (1,):
        raise ConfigError(f"scaling.backend=single runs one plain trkx-train: scaling.ranks must be [1] "
                          f"(got {list(scaling.ranks)})")
    if scaling.mode == "strong":
        bad = [n for n in scaling.ranks if scaling.global_batch % n]
        if bad:
            raise ConfigError(
                f"scaling.global_batch={scaling.global_batch} cannot be split evenly over {bad} ranks: strong "
                "scaling needs a global batch that every rank count divides"
            )


def run_name(scaling: ScalingConfig, ranks: int, repeat: int) -> str:
    """``<mode>-<backend>-n<N>-r<repeat>``, the run's folder and log name."""
    return f"{scaling.mode}-{scaling.backend}-n{ranks}-r{repeat}"


def run_overrides(scaling: ScalingConfig, ranks: int, repeat: int, runs_dir: os.PathLike | str) -> list[str]:
    """The ``--set`` overrides that make one run of the sweep.

    Args:
      scaling: the study.
      ranks: N.
      repeat: the repeat index.
      runs_dir: where the runs' folders go.

    Returns:
      Overrides of run.out_dir/name, backend.name, train.epochs, train.max_steps_per_epoch and
      train.graphs_per_step (global_batch / N for strong scaling, rank_batch for weak).
    """
    per_rank = scaling.global_batch // ranks if scaling.mode == "strong" else scaling.rank_batch
    return [
        f"run.out_dir={runs_dir}",
        f"run.name={run_name(scaling, ranks, repeat)}",
        f"backend.name={scaling.backend}",
        f"train.epochs={scaling.warmup_epochs + scaling.epochs}",
        f"train.max_steps_per_epoch={scaling.steps_per_epoch}",
        f"train.graphs_per_step={per_rank}",
    ]


class _Relay:
    """While a sweep runs: SIGUSR1/SIGTERM are passed on to the running launcher and remembered, so that the sweep
    stops after that run (exit 99, requeue) instead of dying between runs. Only in the main thread."""

    def __init__(self, enabled: bool):
        self.enabled, self.signalled, self.procs, self._previous = enabled, 0, [], {}

    def _handle(self, signum, _frame):
        self.signalled = signum
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signum)

    def __enter__(self) -> "_Relay":
        if self.enabled:
            try:
                self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGUSR1, signal.SIGTERM)}
            except ValueError:  # not the main thread
                self._previous = {}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _wait(procs: Sequence[subprocess.Popen], timeout_s: float, relay: _Relay) -> list[int]:
    """Waits for every process of a run; kills the rest when one fails or the time is up.

    Returns:
      The exit statuses.

    Raises:
      BackendError: the run took longer than ``timeout_s`` (every process is killed).
    """
    relay.procs = list(procs)
    deadline = time.monotonic() + timeout_s
    try:
        while any(p.poll() is None for p in procs):
            failed = [p.returncode for p in procs if p.returncode not in (None, 0, REQUEUE_EXIT)]
            if failed or time.monotonic() > deadline:  # a dead worker would leave the others waiting forever
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                for p in procs:
                    p.wait()
                if not failed:
                    raise BackendError(f"run did not finish within scaling.timeout_s={timeout_s:g} s; killed")
                break
            time.sleep(0.2)
    finally:
        relay.procs = []
    return [p.returncode for p in procs]


def _start(launches: Sequence[Launch], log_path: Path, popen: Callable[..., subprocess.Popen]):
    with open(log_path, "ab") as log:
        return [popen(list(l.argv), env={**os.environ, **l.env}, stdout=log, stderr=subprocess.STDOUT)
                for l in launches]


def run_sweep(
    cfg: Config, *, ranks: Optional[Sequence[int]] = None, mode: Optional[str] = None,
    repeats: Optional[int] = None, launcher: Optional[str] = None, backend: Optional[str] = None,
    name: Optional[str] = None, repo: os.PathLike | str = ".", command_line: Optional[str] = None,
    environment: Optional[dict[str, Any]] = None, trainer: Optional[str] = None,
    popen: Callable[..., subprocess.Popen] = subprocess.Popen,
) -> dict[str, Any]:
    """Runs (or continues) a scaling study and writes its records.

    Args:
      cfg: the full config; its ``scaling`` section describes the study, the rest is what trkx-train trains.
      ranks, mode, repeats, launcher, backend, name: override the matching ``scaling`` keys.
      repo: the repository root, whose ``slurm/`` holds the sbatch templates (launcher ``sbatch``).
      command_line: the command that started the study, recorded in ``command.txt``.
      environment: the environment record; None collects it (:func:`collect_environment`, with the ranks'
        placement from ``cfg.backend``: threads and core pinning).
      trainer: the trkx-train executable; None finds the installed one (not used by the sbatch launcher, whose
        template runs the ``trkx-train`` of the job's environment).
      popen: starts a process (``subprocess.Popen``; a parameter for tests).

    Returns:
      The study's records (``{"study", "environment", "runs", "summary"}``), also written to its folder.

    Raises:
      ConfigError: invalid study parameters, or the sbatch launcher and no slurm/ folder in repo.
      BackendError: a run failed, timed out or left no usable metrics (its log is named).
      RunInterrupted: a run was stopped by SIGUSR1/SIGTERM (exit 99); finished runs are kept.
    """
    update = {k: v for k, v in dict(ranks=tuple(ranks) if ranks else None, mode=mode, repeats=repeats,
                                    launcher=launcher, backend=backend, name=name).items() if v is not None}
    scaling = ScalingConfig.model_validate({**cfg.scaling.model_dump(), **update})
    cfg = cfg.model_copy(update={"scaling": scaling})
    validate(scaling)
    if scaling.launcher == "sbatch" and not (Path(repo) / "slurm").is_dir():
        raise ConfigError(f"scaling.launcher=sbatch: {Path(repo).resolve()} has no slurm/ folder (the sbatch "
                          f"templates); run from the repository root or give trkx-scaling run --repo")
    folder = study_folder(scaling)
    runs_dir, logs_dir = folder / "runs", folder / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    save_config(cfg, config_path)
    if command_line:
        with open(folder / "command.txt", "a") as f:
            f.write(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} on {socket.gethostname()}\n")
            f.write(command_line + "\n")
    runs = load_study(folder)["runs"] if (folder / "records.json").exists() else []
    done = {(r["mode"], r["backend"], int(r["ranks"]), int(r["repeat"])) for r in runs}
    study = {"name": scaling.name, "scaling": scaling.model_dump(mode="json"), "config": str(config_path)}
    with _Relay(enabled=scaling.launcher != "sbatch") as relay:
        if environment is None:
            environment = collect_environment({"threads": cfg.backend.threads, "pin_cores": cfg.backend.pin_cores})
        records = write_study(folder, runs, study, environment)
        for repeat in range(scaling.repeats):
            for n in scaling.ranks:
                if (scaling.mode, scaling.backend, n, repeat) in done:
                    continue
                if relay.signalled:
                    raise RunInterrupted(f"{signal.Signals(relay.signalled).name} received: the sweep stopped before "
                                         f"run {run_name(scaling, n, repeat)}; rerun to continue")
                name_ = run_name(scaling, n, repeat)
                run_dir, log_path = runs_dir / name_, logs_dir / f"{name_}.log"
                if run_dir.exists():
                    shutil.rmtree(run_dir)  # an interrupted run: start it again from scratch
                launches = launch_commands(
                    scaling.launcher, n, config_path, run_overrides(scaling, n, repeat, runs_dir),
                    backend=scaling.backend, tasks_per_node=scaling.tasks_per_node, sbatch_args=scaling.sbatch_args,
                    repo=repo, job_name=f"trkx-scaling-{scaling.name}", log_path=logs_dir / f"{name_}-%j.out",
                    ports=free_ports(n) if scaling.launcher == "tfconfig" else None, trainer=trainer,
                )
                with open(log_path, "a") as log:
                    log.write("".join(f"$ {' '.join(l.argv)}\n" for l in launches))
                load_start = load_average()[:1]
                start = time.monotonic()
                codes = _wait(_start(launches, log_path, popen), scaling.timeout_s, relay)
                wall = time.monotonic() - start
                load_end = load_average()[:1]
                if REQUEUE_EXIT in codes:
                    raise RunInterrupted(f"run {name_} was interrupted (exit {REQUEUE_EXIT}); rerun to continue")
                if any(codes):
                    raise BackendError(f"run {name_} failed (exit status {codes}); see {log_path}")
                epochs = read_epochs(run_dir / "metrics.jsonl")
                runs.append(run_record(
                    epochs, warmup_epochs=scaling.warmup_epochs, ranks=n, repeat=repeat, mode=scaling.mode,
                    launcher=scaling.launcher, wall_s=wall, hostname=socket.gethostname(), run_dir=str(run_dir),
                    **({"load_start": load_start[0], "load_end": load_end[0]} if load_start and load_end else {}),
                ))
                records = write_study(folder, runs, study, environment)
    return records
