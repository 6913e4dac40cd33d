"""The sbatch templates and slurm/lib/launch.sh without a SLURM: headers, syntax, launcher choice, signals."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "slurm" / "lib" / "launch.sh"
TEMPLATES = ["train_horovod.sh", "train_tfdist.sh", "scaling_sweep.sh", "pipeline.sh"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_has_requeue_signal_logs_and_the_shared_launch_logic(name):
    path = REPO / "slurm" / name
    text = path.read_text()
    directives = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#SBATCH ")]
    assert "--requeue" in directives
    assert any(d.startswith("--signal=B:USR1@") for d in directives)
    assert "--output=logs/%x-%j.out" in directives and "--open-mode=append" in directives
    for option in ("--nodes=", "--ntasks-per-node=", "--cpus-per-task=", "--time="):
        assert any(d.startswith(option) for d in directives), option
    assert 'source "${TRKX_REPO:-$SLURM_SUBMIT_DIR}/slurm/lib/launch.sh"' in text
    assert "trkx_setup_env" in text and "trkx_step " in text
    assert os.access(path, os.X_OK)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    assert len(text.splitlines()) < 40  # short and readable


def _bash(script, env=None, **kwargs):
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "{LIB}"; {script}'], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60, **kwargs)


@pytest.mark.parametrize("listing, expected", [
    ("MPI plugin types are...\n\tpmix\n\tnone\n\tpmi2\nspecific pmix plugin versions available: pmix_v4",
     "srun --mpi=pmix --kill-on-bad-exit=1"),
    ("MPI plugin types are...\n\tnone\n\tpmi2", "mpirun -np 4 --bind-to none"),
])
def test_mpi_launcher_prefers_srun_pmix_when_slurm_has_it(tmp_path, listing, expected):
    fake_srun = tmp_path / "srun"
    fake_srun.write_text(f"#!/bin/sh\ncat <<'END'\n{listing}\nEND\n")
    fake_srun.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_NTASKS": "4"}
    proc = _bash('trkx_mpi_launcher; echo "${TRKX_LAUNCH[*]}"', env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_mpi_launcher_can_be_forced_and_rejects_unknown_values():
    assert _bash('trkx_mpi_launcher; echo "${TRKX_LAUNCH[*]}"', {"TRKX_MPI_LAUNCHER": "mpirun", "SLURM_NTASKS": "2"}
                 ).stdout.strip() == "mpirun -np 2 --bind-to none"
    proc = _bash("trkx_mpi_launcher", {"TRKX_MPI_LAUNCHER": "pmi2"})
    assert proc.returncode == 2 and "expected auto, srun or mpirun" in proc.stderr


def test_env_hook_runs_trkx_env_setup_and_sets_threads_from_the_task_cpus():
    proc = _bash('trkx_setup_env; echo "$HOOK $OMP_NUM_THREADS $TF_NUM_INTRAOP_THREADS"',
                 {"TRKX_ENV_SETUP": "export HOOK=ran", "SLURM_CPUS_PER_TASK": "3", "OMP_NUM_THREADS": "",
                  "TF_NUM_INTRAOP_THREADS": ""})
    assert proc.stdout.split()[-3:] == ["ran", "3", "3"], proc.stdout + proc.stderr


def test_trkx_step_forwards_usr1_to_the_step_and_returns_its_requeue_status(tmp_path):
    """Outside a job (no SLURM_JOB_ID) the status 99 is returned as is; inside one it triggers scontrol requeue."""
    step = "trap 'echo step-got-usr1; exit 99' USR1; echo step-ready; while :; do sleep 0.1; done"
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    proc = subprocess.Popen(["bash", "-c", f'source "{LIB}"; trkx_step bash -c "{step}"'], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    assert "trkx: job none" in proc.stdout.readline()
    assert proc.stdout.readline().strip() == "step-ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 99
    assert "got SIGUSR1, forwarded to the job step" in out and "step-got-usr1" in out
    assert "step finished with status 99" in out


def _step_with_fake_scontrol(tmp_path, step, marker_before=False):
    """trkx_step inside a pretend job (SLURM_JOB_ID=4242, scontrol recording its arguments) running the bash
    ``step``, signalled with USR1 once it printed step-ready; returns (exit status, output, scontrol calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n')
    (bin_dir / "scontrol").chmod(0o755)
    mark = tmp_path / ".trkx-requeue-4242"
    if marker_before:
        mark.write_text("stale, from a run killed before it read it\n")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="4242",
               TRKX_REQUEUE_MARK_DIR=str(tmp_path))
    script = tmp_path / "step.sh"
    script.write_text(step)
    proc = subprocess.Popen(["bash", "-c", f'source "{LIB}"; trkx_step bash "{script}"'], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip() == "step-ready":
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert not mark.exists()  # read and removed
    return proc.returncode, "".join(lines) + out, calls.read_text() if calls.exists() else ""


# What srun --kill-on-bad-exit=1 makes of a stop: another rank exited 99 first, so this (writer) rank is
# terminated while it finishes: the step's status is 143 although the checkpoint is complete.
_KILLED_AFTER_MARK = """trap 'echo "ckpt" > "$TRKX_REQUEUE_MARK"; exit 143' USR1
echo step-ready; while :; do sleep 0.1; done
"""
_KILLED_BEFORE_MARK = """trap 'exit 143' USR1
echo step-ready; while :; do sleep 0.1; done
"""


def test_trkx_step_requeues_a_signalled_step_whose_writer_marked_its_checkpoint(tmp_path):
    rc, out, calls = _step_with_fake_scontrol(tmp_path, _KILLED_AFTER_MARK)
    assert rc == 0, out
    assert calls.split() == ["requeue", "4242"], out
    assert "step exited 143 after SIGUSR1, checkpointed (ckpt): requeueing job 4242" in out


def test_trkx_step_fails_a_signalled_step_without_the_marker_even_with_a_stale_one_before(tmp_path):
    rc, out, calls = _step_with_fake_scontrol(tmp_path, _KILLED_BEFORE_MARK, marker_before=True)
    assert rc == 143 and calls == "", out
    assert "step finished with status 143" in out and "requeueing" not in out


def test_trkx_step_requeues_on_exit_99_without_a_marker(tmp_path):
    rc, out, calls = _step_with_fake_scontrol(tmp_path, "trap 'exit 99' USR1\necho step-ready\n"
                                                        "while :; do sleep 0.1; done\n")
    assert rc == 0 and calls.split() == ["requeue", "4242"], out
    assert "step exited 99 (checkpointed): requeueing job 4242" in out
