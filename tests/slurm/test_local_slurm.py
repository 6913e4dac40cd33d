"""Real jobs on the local SLURM through slurm/lib/launch.sh, the logic every template uses.

Horovod ranks through ``srun --mpi=pmix`` and through ``mpirun``; a job that is signalled early is requeued and its
second run (SLURM_RESTART_COUNT=1) finishes; the time-limit signal of ``--signal=B:USR1@T`` does the same.
"""

import subprocess
import time
from pathlib import Path

import pytest

from slurmjobs import job_info, ranks_output, sbatch, wait_for_text, wait_job

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

HVD_JOB = """#!/bin/bash
#SBATCH --job-name=trkx-test-hvd
#SBATCH --ntasks=2
#SBATCH --time=00:05:00
set -euo pipefail
source "$TRKX_REPO/slurm/lib/launch.sh"
trkx_setup_env
trkx_mpi_launcher
trkx_step "${TRKX_LAUNCH[@]}" python "$TRKX_REPO/tests/stack/hvd_allreduce.py"
"""

# A step that stands for the trainer: on SIGUSR1 it "checkpoints" and exits 99; a restarted run finishes.
STEP = """#!/bin/bash
trap 'echo "step: USR1 in run ${SLURM_RESTART_COUNT:-0}, checkpointing"; exit 99' USR1
if [[ ${SLURM_RESTART_COUNT:-0} -ge 1 ]]; then echo "step: resumed in run $SLURM_RESTART_COUNT, done"; exit 0; fi
echo "step: working"
for i in $(seq 600); do sleep 0.1; done
echo "step: never signalled"; exit 1
"""

REQUEUE_JOB = """#!/bin/bash
#SBATCH --job-name=trkx-test-requeue
#SBATCH --ntasks=1
#SBATCH --time={time}
#SBATCH --requeue
#SBATCH --signal=B:USR1@{warn}
#SBATCH --open-mode=append
set -euo pipefail
source "$TRKX_REPO/slurm/lib/launch.sh"
trkx_step srun {step}
"""


@pytest.mark.parametrize("launcher", ["auto", "mpirun"])
def test_two_horovod_ranks_in_an_sbatch_job(slurm, tmp_path, launcher):
    script = tmp_path / "hvd.sh"
    script.write_text(HVD_JOB)
    env = dict(slurm, TRKX_MPI_LAUNCHER=launcher)
    started = time.monotonic()
    job, proc = sbatch(env, ["--wait", f"--output={tmp_path}/%x-%j.out", f"--chdir={REPO}", script], timeout=115)
    log = (tmp_path / f"trkx-test-hvd-{job}.out").read_text()
    assert proc.returncode == 0, proc.stderr + log
    assert job_info(slurm, job)["JobState"] == "COMPLETED"
    pmix = "pmix" in subprocess.run(["srun", "--mpi=list"], env=slurm, capture_output=True, text=True).stdout
    expected = "srun --mpi=pmix" if launcher == "auto" and pmix else "mpirun -np 2"
    assert f"tasks: {expected}" in log
    ranks = ranks_output(log)
    assert [r["rank"] for r in ranks] == [0, 1], log
    assert all(r["size"] == 2 and r["sum"] == 3.0 and r["avg"] == [0.5] * 4 for r in ranks)
    assert "step finished with status 0" in log
    assert time.monotonic() - started < 115


def _requeue_job(slurm, tmp_path, time_limit, warn):
    step = tmp_path / "step.sh"
    step.write_text(STEP)
    step.chmod(0o755)
    script = tmp_path / "job.sh"
    script.write_text(REQUEUE_JOB.format(time=time_limit, warn=warn, step=step))
    job, proc = sbatch(slurm, [f"--output={tmp_path}/%x-%j.out", f"--chdir={tmp_path}", script])
    assert proc.returncode == 0, proc.stderr
    return job, tmp_path / f"trkx-test-requeue-{job}.out"


def _assert_requeued_and_finished(slurm, job, log_path, info):
    log = log_path.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, log)
    assert info["Restarts"] == "1", (info, log)
    assert "got SIGUSR1, forwarded to the job step" in log
    assert "step: USR1 in run 0, checkpointing" in log
    assert f"step exited 99 (checkpointed): requeueing job {job}" in log
    assert f"trkx: job {job} (restart 1)" in log and "step: resumed in run 1, done" in log
    assert "never signalled" not in log


def test_a_signalled_job_is_requeued_and_its_second_run_finishes(slurm, tmp_path):
    job, log = _requeue_job(slurm, tmp_path, "00:05:00", 60)
    wait_for_text(log, "step: working")
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=slurm, check=True)  # as --signal=B:USR1 does
    _assert_requeued_and_finished(slurm, job, log, wait_job(slurm, job, timeout=100))


def test_the_time_limit_signal_triggers_the_requeue(slurm, tmp_path):
    """--time=1 with --signal=B:USR1@50: SLURM itself sends USR1 (checked every 30 s) before the limit."""
    job, log = _requeue_job(slurm, tmp_path, "00:01:00", 50)
    _assert_requeued_and_finished(slurm, job, log, wait_job(slurm, job, timeout=110))
