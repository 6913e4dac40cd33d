"""The templates in slurm/ submitted for real to the local SLURM.

Until trkx-train exists, the templates run a contract double of it (tests/scaling/fake_trainer.py: same options,
metrics.jsonl lines, exit 99 on SIGUSR1 and resume), put first on PATH by the templates' own environment hook.
The tests at the end run the real trkx-train on configs/demo.yaml and skip while it is not installed.
"""

import json
import subprocess
from pathlib import Path

import pytest

from slurmjobs import epochs, sbatch, wait_for_epochs, wait_job

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.multiproc, pytest.mark.slow]


def _config(tmp_path, name, epochs_=2, steps=4):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"run: {{out_dir: {tmp_path}/runs, name: {name}}}\n"
                    f"train: {{epochs: {epochs_}, max_steps_per_epoch: {steps}, graphs_per_step: 1}}\n")
    return path


def _submit(env, tmp_path, template, *args):
    job, proc = sbatch(env, [f"--output={tmp_path}/%x-%j.out", REPO / "slurm" / template, *args])
    assert proc.returncode == 0, proc.stderr
    return job, next(tmp_path.glob(f"*-{job}.out"), tmp_path / f"missing-{job}.out")


def _log(tmp_path, job):
    return next(tmp_path.glob(f"*-{job}.out")).read_text()


@pytest.mark.parametrize("template, backend", [("train_horovod.sh", "horovod"), ("train_tfdist.sh", "tfdist")])
def test_template_trains_two_ranks_with_the_contract_double(fake_trkx_train, tmp_path, template, backend):
    job, _ = _submit(fake_trkx_train, tmp_path, template, _config(tmp_path, backend))
    info = wait_job(fake_trkx_train, job, timeout=110)
    log = _log(tmp_path, job)
    assert info["JobState"] == "COMPLETED", (info, log)
    records = epochs(tmp_path / "runs" / backend / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [0, 1]
    assert all(r["ranks"] == 2 and r["backend"] == backend and r["global_batch"] == 2 for r in records)
    assert "rank 0/2" in log and "rank 1/2" in log
    if backend == "horovod":
        assert "srun --mpi=pmix" in log or "mpirun -np 2" in log


def _usr1_after_two_epochs(env, tmp_path, name, epochs_):
    """Submits the Horovod template for ``epochs_`` epochs, sends the batch shell SIGUSR1 (what SLURM sends near the
    time limit) once two epochs are recorded, and waits for the job. Returns (job id, job info, log, metrics path)."""
    job, _ = _submit(env, tmp_path, "train_horovod.sh", _config(tmp_path, name, epochs_=epochs_, steps=2))
    metrics = tmp_path / "runs" / name / "metrics.jsonl"
    wait_for_epochs(metrics, 2, timeout=60, env=env, job=job)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=env, check=True)
    info = wait_job(env, job, timeout=110)
    return job, info, _log(tmp_path, job), metrics


def test_horovod_template_requeues_on_usr1_and_resumes_from_the_checkpoint(fake_trkx_train, tmp_path):
    job, info, log, metrics = _usr1_after_two_epochs(fake_trkx_train, tmp_path, "rq", 60)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, log)
    assert "requeueing job" in log and f"job {job} (restart 1)" in log
    resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "restart 1 resumed from epoch" in line]
    assert resumed and all(k >= 1 for k in resumed), log
    assert [r["epoch"] for r in epochs(metrics)] == list(range(60))  # nothing lost, nothing repeated


def test_requeue_does_not_depend_on_which_rank_exits_first(fake_trkx_train, tmp_path):
    """The race of a real job, replayed: on USR1 rank 1 exits 99 as soon as the checkpoint is written, while rank 0
    still tears down (no longer catching SIGTERM, as a finalizing Python process). srun --kill-on-bad-exit=1 then
    terminates rank 0 and the step's status is 143, not 99; the requeue marker rank 0 wrote after its checkpoint
    still gets the job requeued (before the marker: FAILED, ExitCode 143)."""
    env = dict(fake_trkx_train, TRKX_FAKE_RACE="late:20", TRKX_REQUEUE_MARK_DIR=str(tmp_path))
    job, info, log, metrics = _usr1_after_two_epochs(env, tmp_path, "race", 20)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, log)
    stopped = [line for line in log.splitlines() if "requeueing job" in line]
    assert len(stopped) == 1 and "after SIGUSR1, checkpointed" in stopped[0], log  # status 143 + the marker
    assert "rank 1: checkpoint at epoch" in log and "rank 0: checkpoint at epoch" not in log, log
    resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "restart 1 resumed from epoch" in line]
    assert resumed and all(k >= 1 for k in resumed), log
    assert [r["epoch"] for r in epochs(metrics)] == list(range(20))  # nothing lost, nothing repeated
    assert not list(tmp_path.glob(".trkx-requeue-*"))  # the marker was read and removed


def test_a_job_whose_rank_0_dies_before_its_checkpoint_fails_instead_of_requeueing(fake_trkx_train, tmp_path):
    """On USR1 rank 1 exits 99 at once; rank 0 is terminated by srun before it writes its checkpoint: no marker,
    so the job fails (it claims no checkpoint it does not have; submitting it again resumes from the last one)."""
    env = dict(fake_trkx_train, TRKX_FAKE_RACE="early:20", TRKX_REQUEUE_MARK_DIR=str(tmp_path))
    _, info, log, _ = _usr1_after_two_epochs(env, tmp_path, "early", 20)
    assert info["JobState"] == "FAILED" and info["Restarts"] == "0", (info, log)
    assert "requeueing" not in log and "step finished with status 143" in log, log
    assert not (tmp_path / "runs" / "early" / "checkpoint.json").exists()
    assert not list(tmp_path.glob(".trkx-requeue-*"))


def test_scaling_sweep_template_records_one_and_two_ranks(fake_trkx_train, tmp_path):
    overrides = [f"scaling.out_dir={tmp_path}/studies", "scaling.name=sweep", "scaling.repeats=1",
                 "scaling.warmup_epochs=1", "scaling.epochs=1", "scaling.steps_per_epoch=4", "scaling.global_batch=2"]
    args = [a for o in overrides for a in ("--set", o)]
    job, _ = _submit(fake_trkx_train, tmp_path, "scaling_sweep.sh", _config(tmp_path, "sweep"), *args)
    info = wait_job(fake_trkx_train, job, timeout=115)
    log = _log(tmp_path, job)
    assert info["JobState"] == "COMPLETED", (info, log)
    study = tmp_path / "studies" / "sweep"
    records = json.loads((study / "records.json").read_text())
    assert sorted((r["ranks"], r["launcher"], r["backend"]) for r in records["runs"]) == [
        (1, "srun", "horovod"), (2, "srun", "horovod")]
    assert [r["ranks"] for r in records["summary"]] == [1, 2] and records["summary"][0]["efficiency"] == 1.0
    assert (study / "report.md").exists() and (study / "efficiency_vs_ranks.png").exists()
    assert "trkx-scaling run --config" in (study / "command.txt").read_text()


def test_harness_sbatch_launcher_submits_the_horovod_template(fake_trkx_train, tmp_path, monkeypatch):
    from trkx_tf.config import load_config
    from trkx_tf.scaling.harness import run_sweep

    for key, value in fake_trkx_train.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(REPO)
    cfg = load_config(_config(tmp_path, "unused"), [
        f"scaling.out_dir={tmp_path}/studies", "scaling.name=jobs", "scaling.ranks=[2]", "scaling.repeats=1",
        "scaling.warmup_epochs=1", "scaling.epochs=1", "scaling.steps_per_epoch=4", "scaling.launcher=sbatch",
        "scaling.timeout_s=110"])
    records = run_sweep(cfg, repo=REPO, environment={"hostname": "test"})
    assert [(r["ranks"], r["launcher"], r["backend"]) for r in records["runs"]] == [(2, "sbatch", "horovod")]
    job_logs = list((tmp_path / "studies" / "jobs" / "logs").glob("strong-horovod-n2-r0-*.out"))
    assert len(job_logs) == 1 and "slurm/train_horovod.sh" not in job_logs[0].name
    assert "rank 1/2 backend horovod" in job_logs[0].read_text()


# ----------------------------------------------------------------------------- the real trainer
def _demo_overrides(tmp_path, name, shards, epochs_=1, steps=4):
    return ["--set", f"run.out_dir={tmp_path}/runs", "--set", f"run.name={name}", "--set", f"train.epochs={epochs_}",
            "--set", f"train.max_steps_per_epoch={steps}", "--set", f"data.shards_dir={shards}"]


@pytest.mark.parametrize("template, backend", [("train_horovod.sh", "horovod"), ("train_tfdist.sh", "tfdist")])
def test_template_trains_demo_with_trkx_train(slurm, tmp_path, template, backend, tiny_shards):
    args = ["--wait", f"--output={tmp_path}/%x-%j.out", f"--chdir={REPO}", REPO / "slurm" / template,
            REPO / "configs" / "demo.yaml", *_demo_overrides(tmp_path, backend, tiny_shards)]
    job, proc = sbatch(slurm, args, timeout=600)
    log = _log(tmp_path, job)
    assert proc.returncode == 0, log[-3000:]
    records = epochs(tmp_path / "runs" / backend / "metrics.jsonl")
    assert records and all(r["ranks"] == 2 and r["backend"] == backend for r in records)


def test_horovod_template_requeue_resumes_trkx_train(slurm, tmp_path, tiny_shards):
    args = [f"--output={tmp_path}/%x-%j.out", f"--chdir={REPO}", REPO / "slurm" / "train_horovod.sh",
            REPO / "configs" / "demo.yaml", *_demo_overrides(tmp_path, "rq", tiny_shards, epochs_=40, steps=20)]
    job, proc = sbatch(slurm, args)
    assert proc.returncode == 0, proc.stderr
    metrics = tmp_path / "runs" / "rq" / "metrics.jsonl"
    wait_for_epochs(metrics, 1, timeout=400, env=slurm, job=job)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=slurm, check=True)
    info = wait_job(slurm, job, timeout=600)
    log = _log(tmp_path, job)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, log[-3000:])
    assert "requeueing job" in log
    assert [r["epoch"] for r in epochs(metrics)] == list(range(40))
