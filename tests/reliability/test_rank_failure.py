"""A rank dies (SIGKILL): the job fails within 60 s, no process is left behind, and training can resume.

Run under ``horovodrun -np 2 -H localhost:2``:

* a tiny Horovod allreduce loop (rank_death_worker.py) whose rank 1 kills itself, in Gloo mode (``--gloo``) and in
  the default MPI mode;
* the real ``trkx-train`` whose rank 1 is killed from outside once the first checkpoint is written, in MPI mode
  (Gloo too with TRKX_TEST_ALL_LAUNCHERS=1); a second run of the same config resumes from the last checkpoint.

Every process the launcher started is recorded while it runs (and tagged through its environment), so the test
can tell afterwards that none survived.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from rel_tools import BIN, cli_env, run_cli

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

WORKER = Path(__file__).with_name("rank_death_worker.py")
FAIL_WITHIN_S = 60
CONTROLLERS = ["gloo", "mpi"]


class Launch:
    """``horovodrun -np 2`` in its own session, its output read line by line and its process tree recorded."""

    def __init__(self, controller: str, command: list, **env):
        self.tag = uuid.uuid4().hex
        cmd = [str(BIN / "horovodrun"), "-np", "2", "-H", "localhost:2"]
        cmd += ["--gloo"] if controller == "gloo" else []
        self.proc = subprocess.Popen(cmd + [str(c) for c in command], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                     env=cli_env(TRKX_TEST_TAG=self.tag, **env))
        self.lines: list[tuple[float, str]] = []
        self.seen: dict[tuple[int, float], psutil.Process] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def record(self):
        """Adds the launcher's current descendants to the processes seen."""
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    self.seen.setdefault((p.pid, p.create_time()), p)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass

    def wait_for(self, pattern: str, timeout: float) -> float:
        """Waits for an output line matching pattern (recording processes meanwhile); returns when it came."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            self.record()
            for t, line in list(self.lines):
                if rx.search(line):
                    return t
            assert self.proc.poll() is None or self._reader.is_alive(), self.output()
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s\n{self.output()}")

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.record()
            time.sleep(0.1)
        return self.proc.poll()

    def rank_process(self, rank: int, name: str) -> psutil.Process:
        """The launched process of a rank whose command line contains name."""
        self.record()
        for p in self.seen.values():
            try:
                env = p.environ()
                if name in " ".join(p.cmdline()) and \
                        str(rank) in (env.get("HOROVOD_RANK"), env.get("OMPI_COMM_WORLD_RANK")):
                    return p
            except psutil.Error:
                continue
        raise AssertionError(f"no process of rank {rank} running {name}")

    def survivors(self) -> list[str]:
        """Processes of this launch still alive (zombies count as dead): recorded ones and tagged ones."""
        alive = []
        candidates = list(self.seen.values())
        for p in psutil.process_iter():
            try:
                if p.pid != os.getpid() and p.environ().get("TRKX_TEST_TAG") == self.tag:
                    candidates.append(p)
            except psutil.Error:
                continue
        for p in candidates:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            except psutil.Error:
                continue
        return sorted(set(alive))

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)[-4000:]

    def cleanup(self):
        """Kills whatever is left (the session, then tagged processes): never leave a hang behind."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for p in list(self.seen.values()):
            try:
                p.kill()
            except psutil.Error:
                pass
        self.proc.wait(timeout=30)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_killed_rank_fails_the_job_fast(controller):
    run = Launch(controller, [sys.executable, WORKER], TRKX_TEST_KILL_AFTER="5")
    try:
        killed_at = run.wait_for(r"rank 1 step 4\b", timeout=120)
        status = run.wait(timeout=FAIL_WITHIN_S + 30)
        ended = time.monotonic()
        assert status is not None, f"{controller}: still running {FAIL_WITHIN_S + 30} s after the kill\n{run.output()}"
        assert status != 0, run.output()
        assert ended - killed_at < FAIL_WITHIN_S, f"{controller}: took {ended - killed_at:.1f} s to fail"
        assert "finished all" not in run.output()  # rank 0 did not carry on alone
        time.sleep(1)  # let the launcher's own clean-up finish
        assert run.survivors() == [], run.survivors()
    finally:
        run.cleanup()


#: the trainer runs in the default MPI mode (``make demo``'s); Gloo too with TRKX_TEST_ALL_LAUNCHERS=1 (the Gloo
#: failure path is the same as the worker's above, and each trainer run costs about a minute on 2 shared cores)
TRAINER_CONTROLLERS = ["mpi", pytest.param("gloo", marks=pytest.mark.skipif(
    not os.environ.get("TRKX_TEST_ALL_LAUNCHERS"), reason="set TRKX_TEST_ALL_LAUNCHERS=1 to also run it in Gloo mode"))]


@pytest.mark.parametrize("controller", TRAINER_CONTROLLERS)
def test_killed_trainer_rank_fails_fast_and_the_run_resumes(controller, one_bucket_shards, tmp_path):
    run_dir = tmp_path / "runs" / "r"
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        f"run: {{out_dir: {run_dir.parent}, name: r, log_level: INFO, seed: 0}}\n"
        f"data: {{shards_dir: {one_bucket_shards}}}\n"
        "model:\n  gnn: {hidden: 8, layers: 2, steps: 1}\n"
        "train: {model: gnn, epochs: 200, lr: 1.0e-3, warmup_epochs: 0}\n"
        "backend: {name: horovod}\n"
    )
    # Open MPI busy-polls while it waits; with more ranks than free cores that starves the ranks' own work
    run = Launch(controller, [BIN / "trkx-train", "--config", cfg], OMPI_MCA_mpi_yield_when_idle="1")
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "checkpoints" / "checkpoint").exists():  # the first epoch's checkpoint is written
            assert run.proc.poll() is None and time.monotonic() < deadline, run.output()
            run.record()
            time.sleep(0.2)
        run.wait_for(r"\[rank 0\] INFO trkx_tf.train: epoch \d+: loss", timeout=60)
        run.rank_process(1, "trkx-train").kill()
        killed_at = time.monotonic()
        status = run.wait(timeout=FAIL_WITHIN_S + 30)
        ended = time.monotonic()
        assert status is not None, f"{controller}: trkx-train still running after the kill\n{run.output()}"
        assert status != 0, run.output()
        assert ended - killed_at < FAIL_WITHIN_S, f"{controller}: took {ended - killed_at:.1f} s to fail"
        time.sleep(1)
        assert run.survivors() == [], run.survivors()
    finally:
        run.cleanup()
    assert list((run_dir / "checkpoints").glob("ckpt-*.index")), run.output()

    # the job can resume from its last checkpoint: a new run of the same config restores it (here in one process;
    # train.epochs=1 so that it only restores: the checkpoint is already past epoch 1)
    resumed = run_cli("trkx-train", "--config", cfg, "--set", "backend.name=single", "--set", "train.epochs=1",
                      timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and str(run_dir / "checkpoints" / "ckpt-") in resumed.stderr, \
        resumed.stderr[-3000:]
