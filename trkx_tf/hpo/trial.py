"""One trial: a real ``trkx-train`` subprocess, followed through the epoch records it writes.

``trkx-train`` appends one JSON record per epoch to ``<run>/metrics.jsonl`` (:meth:`trkx_tf.rundir.RunDir.log_metrics`,
records with ``"kind": "epoch"``, keys such as ``epoch``, ``loss``, ``val_loss``, ``val_efficiency``,
``val_purity``, ``val_f1``; only rank 0 writes them). :func:`run_trial` starts the command in a process group of its
own, reads each new complete line, hands ``(value, epoch)`` to a ``report`` callback, and when the callback answers
"prune" it stops the whole process tree (SIGTERM, then SIGKILL after a grace period). A launcher such as
``horovodrun`` is part of the command, so its ranks are in the tree that is stopped.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from trkx_tf.errors import TrkxError

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"


class ObjectiveError(TrkxError):
    """The objective's metric is not in the trial's epoch records (a study-file error, not a trial failure)."""


@dataclass
class TrialOutcome:
    """What became of one trial.

    Attributes:
      state: ``complete``, ``pruned`` or ``fail``.
      values: the objective of every epoch record, in order (index = epoch).
      returncode: the command's exit status (negative: killed by that signal); None when it was stopped by us.
      error: why a failed trial failed (the last lines of its log), else "".
      wall_s: seconds from start to end.
    """

    state: str
    values: list = field(default_factory=list)
    returncode: Optional[int] = None
    error: str = ""
    wall_s: float = 0.0


class MetricsFollower:
    """Reads the complete new lines of a growing ``metrics.jsonl`` (a missing file has no lines yet).

    Args:
      path: the file.
    """

    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def new_records(self) -> list[dict]:
        """The records appended since the last call (a line still being written waits for the next call)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


def stop_process_tree(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stops a command started with ``start_new_session=True`` and everything it started.

    SIGTERM goes to the process group and to every descendant (a launcher's ranks may have groups of their own);
    whatever still lives after ``grace_s`` seconds gets SIGKILL.

    Args:
      proc: the command.
      grace_s: seconds between SIGTERM and SIGKILL.
    """
    import psutil

    try:
        tree = [psutil.Process(proc.pid)]
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for p in tree:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=grace_s if sig == signal.SIGTERM else 5.0)
        if not alive:
            break
        tree = alive
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        pass


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def run_trial(command: Sequence[str], run_dir: os.PathLike | str, metric: str,
              report: Callable[[float, int], bool], poll_s: float = 1.0, grace_s: float = 10.0,
              env: Optional[dict] = None, on_poll: Optional[Callable[[], bool]] = None) -> TrialOutcome:
    """Runs one training command to its end, or until ``report`` asks to prune it.

    Args:
      command: the full command (launcher, ``trkx-train``, its ``--config`` and ``--set`` arguments); it must write
        its epoch records to ``<run_dir>/metrics.jsonl``.
      run_dir: the trial's run folder (created here; ``train.log`` in it gets the command's output).
      metric: the key of the epoch records that is reported.
      report: called with (value, epoch) for every epoch record in order; returns True to prune the trial.
      poll_s: seconds between looks at the metrics file.
      grace_s: seconds between SIGTERM and SIGKILL when the trial is stopped.
      env: the command's environment (default: this process's).
      on_poll: called at every look at the metrics file (housekeeping such as a heartbeat); when it returns True
        the trial is stopped at once and the outcome is ``fail`` with error ``interrupted`` (the worker got
        SIGTERM, for example).

    Returns:
      A :class:`TrialOutcome`: ``complete`` when the command exited 0 with at least one epoch record, ``pruned``
      when ``report`` said so (the process tree is stopped before returning), ``fail`` otherwise.

    Raises:
      ObjectiveError: an epoch record has no ``metric`` key (the process tree is stopped first).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    follower = MetricsFollower(run_dir / METRICS_FILE)
    log_path = run_dir / LOG_FILE
    outcome = TrialOutcome(state="fail")
    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    try:
        while True:
            rc = proc.poll()  # before reading: records written before the exit are all read below
            for record in follower.new_records():
                if record.get("kind") != "epoch":
                    continue
                if metric not in record:
                    raise ObjectiveError(f"objective.metric {metric!r} is not in trkx-train's epoch records "
                                         f"(keys: {', '.join(sorted(record))})")
                value = record[metric]
                value = math.nan if value is None else float(value)
                outcome.values.append(value)
                if report(value, int(record.get("epoch", len(outcome.values) - 1))):
                    stop_process_tree(proc, grace_s)
                    outcome.state = "pruned"
                    return outcome
            if rc is not None:
                outcome.returncode = rc
                if rc == 0 and outcome.values:
                    outcome.state = "complete"
                elif rc == 0:
                    outcome.error = "trkx-train wrote no epoch record"
                else:
                    outcome.error = f"exit status {rc}: {_tail(log_path)}"
                return outcome
            if on_poll is not None and on_poll():
                stop_process_tree(proc, grace_s)
                outcome.error = "interrupted"
                return outcome
            time.sleep(poll_s)
    except BaseException:
        if proc.poll() is None:
            stop_process_tree(proc, grace_s)
        raise
    finally:
        outcome.wall_s = time.monotonic() - t0
