"""Plans and runs the stages: skip what is up to date, rerun the rest and everything downstream, record it all.

A stage's **hash** is the SHA-256 of its exact command, its config slice (:mod:`trkx_tf.pipeline.stages`) and the
content hashes of its input files (:mod:`trkx_tf.pipeline.hashing`). A stage is **skipped** when the record in
``<dir>/pipeline.json`` says it finished with that hash and its outputs still exist with the recorded content.
Otherwise it **runs**, and so does every selected stage downstream of it (the "upstream reruns" reason), whether
or not the new outputs differ.

``pipeline.json`` (written atomically after every change) holds, per stage: ``status`` (``running``, ``done``,
``failed``), the ``command`` (argv, and ``shell``: the same as one line), its extra ``env``, the ``config`` slice,
the ``inputs`` and ``outputs`` with their SHA-256 (outputs also with file count and bytes), ``wall_s``,
``started``/``finished`` (UTC), the ``hash``, the ``log`` file and the ``exit`` status; and a stat cache of the
files hashed (``files``) so that a rerun with nothing changed reads no file.

SIGUSR1 (what the SLURM templates' ``--signal`` sends before the time limit) stops the run: it is passed on to a
running training stage (which checkpoints and exits 99; any other stage gets SIGTERM), the stage is recorded as
``interrupted``, and ``trkx-pipeline`` exits 99 (:class:`PipelineStopped`) so that slurm/pipeline.sh requeues the
job; the requeued run resumes the training from its checkpoint. SIGINT and SIGTERM stop it too (exit 130).

After a kill: the record still says ``running``. A resumable stage (training) whose hash is unchanged is started
again on the folder it left, and ``trkx-train`` resumes from its last checkpoint. Any other stage is rerun
cleanly: what it owns is removed first. Outputs are removed only where ``pipeline.json`` records this pipeline
made them; an existing folder the pipeline did not make stops the run (it may be data, never deleted).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, TextIO

from trkx_tf.config import Config, save_config
from trkx_tf.errors import PipelineError
from trkx_tf.pipeline import hashing
from trkx_tf.pipeline.records import Records, RunLock, now_utc
from trkx_tf.pipeline.stages import (CONFIG_FILE, PIPELINE_FILE, Stage, config_slice, effective_config,
                                     pipeline_dir, read_set_file, select, set_args)

#: exit status of a ``trkx-train`` stopped by SIGTERM/SIGUSR1 after its checkpoint (trkx_tf.train.session)
EXIT_REQUEUE = 99


class PipelineStopped(PipelineError):
    """SIGUSR1 stopped the run (the stage it hit is recorded as interrupted): run again to continue. Exit 99."""

    exit_status = EXIT_REQUEUE


@dataclass
class Decision:
    """What the plan does with one stage: ``action`` is ``run``, ``resume``, ``skip`` or ``off`` (not selected)."""

    stage: Stage
    action: str
    reason: str
    argv: Optional[list[str]] = None
    hash: Optional[str] = None
    slice: Optional[dict] = None
    inputs: Optional[dict] = None


def _flat(d, prefix=""):
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: d}


def _diff(old: dict, new: dict, limit: int = 3) -> str:
    a, b = _flat(old), _flat(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k, "<unset>") != b.get(k, "<unset>")]
    parts = [f"{k} {json.dumps(a.get(k, '<unset>'))} -> {json.dumps(b.get(k, '<unset>'))}" for k in keys[:limit]]
    return ", ".join(parts) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _stage_hash(argv: Sequence[str], slice_: dict, inputs: dict) -> str:
    blob = json.dumps({"command": list(argv), "config": slice_, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class Pipeline:
    """The stages of one config and their records.

    Args:
      cfg: the validated config.
      stages: the stages (default :func:`~trkx_tf.pipeline.stages.pipeline_stages`).
    """

    def __init__(self, cfg: Config, stages: Optional[Sequence[Stage]] = None):
        from trkx_tf.pipeline.stages import pipeline_stages

        self.cfg = cfg
        self.stages = list(stages if stages is not None else pipeline_stages(cfg))
        self.dir = pipeline_dir(cfg)
        self.records = Records(self.dir / PIPELINE_FILE)
        self.logs = self.dir / "logs"

    # ------------------------------------------------------------------------------------------------- plan
    def _inputs_of(self, stage: Stage) -> dict:
        return {s.key(): hashing.hash_spec(s, self.records.cache).sha256 for s in stage.inputs}

    def _argv(self, stage: Stage) -> tuple[list[str], list[str]]:
        """The final command and the overrides of the stage's set files (read now)."""
        file_sets = [o for f in stage.set_files for o in read_set_file(f)]
        return list(stage.argv) + set_args(file_sets), file_sets

    def decide(self, stage: Stage, selected: bool, rerun: set[str], force: bool = False) -> Decision:
        """Whether a stage runs, resumes or is skipped, and why (inputs are hashed; nothing is written).

        Args:
          stage: the stage.
          selected: whether ``--from``/``--to``/``--only`` select it.
          rerun: the stages that run before it in this invocation.
          force: run it even when it is up to date.
        """
        if not selected:
            return Decision(stage, "off", "not selected")
        rec = self.records.stages.get(stage.name)
        up = [u for u in stage.after if u in rerun]
        missing_in = [s for s in stage.inputs if not hashing.exists(s)]
        if missing_in:
            producers = [u for u in stage.after if u in rerun]
            if producers:
                return Decision(stage, "run", f"upstream {producers[-1]} reruns")
            makers = ", ".join(stage.after) or "no stage: it must exist"
            raise PipelineError(f"stage {stage.name} needs {missing_in[0].key()}, which does not exist (made by "
                                f"{makers}; run that stage first)")
        if up:
            return Decision(stage, "run", f"upstream {up[-1]} reruns")
        argv, file_sets = self._argv(stage)
        slice_ = config_slice(effective_config(self.cfg, [*stage.overrides, *file_sets]), stage.config_keys)
        inputs = self._inputs_of(stage)
        h = _stage_hash(argv, slice_, inputs)
        d = Decision(stage, "run", "", argv, h, slice_, inputs)
        if rec is None:
            d.reason = "never run"
        elif rec.get("status") != "done":
            if stage.resumable and rec.get("hash") == h:
                d.action, d.reason = "resume", f"{rec.get('status')} run: resumes from its checkpoints"
            else:
                d.reason = f"{rec.get('status')} run: reruns cleanly"
        elif rec.get("config") != slice_:
            d.reason = f"config changed: {_diff(rec.get('config', {}), slice_)}"
        elif rec.get("command", {}).get("argv") != argv:
            d.reason = f"command changed (was: {rec.get('command', {}).get('shell', '?')[:100]})"
        elif rec.get("inputs") != inputs:
            changed = [k for k in inputs if rec.get("inputs", {}).get(k) != inputs[k]]
            d.reason = f"input changed: {changed[0] if changed else 'the list of inputs'}"
        else:
            for spec in stage.outputs:
                if not hashing.exists(spec):
                    d.reason = f"output missing: {spec.key()}"
                    break
                if hashing.hash_spec(spec, self.records.cache).sha256 != rec["outputs"].get(spec.key(), {}).get(
                        "sha256"):
                    d.reason = f"output changed since its run: {spec.key()}"
                    break
            else:
                d.action, d.reason = ("run", "forced (--force)") if force else ("skip", "up to date")
        return d

    def plan(self, first: Optional[str] = None, last: Optional[str] = None, only: Sequence[str] = (),
             force: bool = False) -> list[Decision]:
        """Every stage's :class:`Decision`, assuming the stages that run change their outputs (dry-run view)."""
        chosen = set(select(self.stages, first, last, only))
        rerun: set[str] = set()
        out = []
        for s in self.stages:
            d = self.decide(s, s.name in chosen, rerun, force)
            if d.action in ("run", "resume"):
                rerun.add(s.name)
            out.append(d)
        return out

    # -------------------------------------------------------------------------------------------------- run
    def _clean(self, stage: Stage) -> None:
        """Removes what the stage owns, where pipeline.json records this pipeline made it."""
        rec = self.records.stages.get(stage.name) or {}
        made = set(rec.get("owns", []))
        for path in stage.owns:
            p = Path(path)
            if not p.exists() and not p.is_symlink():
                continue
            if path not in made:
                raise PipelineError(f"stage {stage.name}: {path} exists but {self.records.path} has no record of "
                                    f"this pipeline making it; remove it yourself or point the config elsewhere")
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    def _execute(self, stage: Stage, argv: list[str], log_path: Path, show) -> int:
        """Runs one command with its output appended to its log; forwards SIGINT/SIGTERM to it."""
        env = dict(os.environ, **stage.env, PYTHONUNBUFFERED="1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"\n=== {now_utc()} {shlex.join(argv)}\n")
            log.flush()
            try:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env)
            except OSError as exc:
                raise PipelineError(f"stage {stage.name}: cannot start {argv[0]} ({exc.strerror})") from None
            got: list[int] = []

            def forward(signum, frame):  # SIGUSR1 to a training: checkpoint and exit 99; else stop
                got.append(signum)
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGUSR1 if signum == signal.SIGUSR1 and stage.resumable
                                     else signal.SIGTERM)

            old = {}
            if threading.current_thread() is threading.main_thread():
                old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
            try:
                while True:
                    try:
                        code = proc.wait(timeout=1.0)
                        break
                    except subprocess.TimeoutExpired:
                        show()
            finally:
                for sig, handler in old.items():
                    signal.signal(sig, handler)
        if signal.SIGUSR1 in got:
            raise _Stopped(code)
        if got:
            raise KeyboardInterrupt
        return code

    def run(self, first: Optional[str] = None, last: Optional[str] = None, only: Sequence[str] = (),
            force: bool = False, progress: bool = True, out: TextIO = sys.stdout) -> list[Decision]:
        """Runs the selected stages that are not up to date, in order, and records them.

        Args:
          first, last, only: the stage selection (``--from``, ``--to``, ``--only``).
          force: rerun the selected stages even when they are up to date.
          progress: one tqdm bar over the stages (else one line per stage).
          out: where the per-stage lines go.

        Returns:
          The decisions taken, in stage order.

        Raises:
          PipelineError: a stage failed (its log is named), an input is missing, or outputs are in the way.
          ConfigError: a bad selection.
          PipelineStopped: SIGUSR1 (forwarded to the running stage first).
          KeyboardInterrupt: SIGINT/SIGTERM (forwarded to the running stage first).
        """
        from tqdm import tqdm

        self.dir.mkdir(parents=True, exist_ok=True)
        with RunLock(self.dir / ".pipeline.lock"):
            save_config(self.cfg, self.dir / CONFIG_FILE)
            self.records.prune()
            chosen = set(select(self.stages, first, last, only))
            rerun: set[str] = set()
            done: list[Decision] = []
            todo = len(chosen)
            bar = tqdm(total=todo, unit="stage", disable=not progress, file=sys.stderr, dynamic_ncols=True,
                       bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} stages [{elapsed}]{postfix}")

            def say(line: str) -> None:
                if progress:
                    bar.write(line, file=out)
                else:
                    print(line, file=out, flush=True)

            between: list[int] = []  # SIGUSR1 while no stage runs
            previous = None
            if threading.current_thread() is threading.main_thread():
                previous = signal.signal(signal.SIGUSR1, lambda signum, frame: between.append(signum))
            try:
                for stage in self.stages:
                    if between:
                        raise PipelineStopped(f"stopped by SIGUSR1 before stage {stage.name}; run again to continue")
                    d = self.decide(stage, stage.name in chosen, rerun, force)
                    done.append(d)
                    if d.action == "off":
                        continue
                    if d.action == "skip":
                        say(f"{stage.name}: skipped ({d.reason})")
                        bar.update(1)
                        continue
                    if d.argv is None:  # an upstream stage reran: hash now, with its new outputs
                        d2 = self.decide(stage, True, set(), force=True)
                        d.argv, d.hash, d.slice, d.inputs = d2.argv, d2.hash, d2.slice, d2.inputs
                    rerun.add(stage.name)
                    self._run_stage(stage, d, bar, say)
                    bar.update(1)
            finally:
                bar.close()
                if previous is not None:
                    signal.signal(signal.SIGUSR1, previous)
            return done

    def _run_stage(self, stage: Stage, d: Decision, bar, say) -> None:
        rec_old = self.records.stages.get(stage.name) or {}
        say(f"{stage.name}: {'resuming' if d.action == 'resume' else 'running'} ({d.reason})")
        if d.action != "resume":
            self._clean(stage)
        log_path = self.logs / f"{stage.name}.log"
        exe = shutil.which(d.argv[0], path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
        rec = {"status": "running", "hash": d.hash,
               "command": {"argv": d.argv, "shell": shlex.join(d.argv), "executable": exe},
               "env": dict(stage.env), "config": d.slice, "inputs": d.inputs,
               "owns": sorted(set(rec_old.get("owns", [])) | set(stage.owns)), "started": now_utc(),
               "log": str(log_path)}
        self.records.stages[stage.name] = rec
        self.records.save()
        t0 = time.monotonic()
        bar.set_description_str(stage.name)

        def show():
            bar.set_postfix_str(f"{time.monotonic() - t0:,.0f} s in this stage", refresh=True)

        try:
            code = self._execute(stage, d.argv, log_path, show)
        except KeyboardInterrupt:
            rec.update(status="interrupted", wall_s=round(time.monotonic() - t0, 3))
            self.records.save()
            raise
        except _Stopped as stop:
            rec.update(status="interrupted", wall_s=round(time.monotonic() - t0, 3), exit=stop.code)
            self.records.save()
            then = "resumes from its checkpoint" if stage.resumable and stop.code == EXIT_REQUEUE else "reruns"
            raise PipelineStopped(f"stage {stage.name} stopped by SIGUSR1 (exit {stop.code}); run again: it "
                                  f"{then}") from None
        rec["wall_s"] = round(time.monotonic() - t0, 3)
        rec["exit"] = code
        if code != 0:
            rec["status"] = "failed"
            self.records.save()
            last = _last_line(log_path)
            what = ("stopped after its checkpoint (exit 99); run again to resume" if code == EXIT_REQUEUE
                    else f"failed (exit {code})")
            raise PipelineError(f"stage {stage.name} {what}: {last}; log: {log_path}")
        missing = [s.key() for s in stage.outputs if not hashing.exists(s)]
        if missing:
            rec["status"] = "failed"
            self.records.save()
            raise PipelineError(f"stage {stage.name} exited 0 but did not write {missing[0]}; log: {log_path}")
        rec["outputs"] = {k: h.record() for k, h in hashing.hash_many(stage.outputs, self.records.cache).items()}
        rec.update(status="done", finished=now_utc())
        self.records.save()
        say(f"{stage.name}: done in {rec['wall_s']:,.1f} s")


class _Stopped(Exception):
    """A stage's command ended after SIGUSR1 was passed on to it (``code``: its exit status)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _last_line(path: Path) -> str:
    """The last non-empty line of a log (the one-line error of a trkx command), shortened."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 8192))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return (lines[-1] if lines else "no output")[:300]
