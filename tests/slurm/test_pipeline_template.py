"""slurm/pipeline.sh submitted for real to the local SLURM: configs/trackml_full.yaml on simulated folders in the
TrackML challenge's layout (train_1/, train_2/ with cells), the training stage as Horovod ranks over the job's two
tasks; USR1 (what ``--signal`` sends before the time limit) requeues the job and the requeued run resumes.

The rest of the stages (thresholds, infer, eval) on the same layout: tests/pipeline/test_trackml_full_e2e.py.
"""

import json
import subprocess
from pathlib import Path

import pytest

from slurmjobs import epochs, sbatch, wait_for_epochs, wait_job
from trkx_tf.trackml.simulate.events import simulate_events

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.multiproc, pytest.mark.slow, pytest.mark.shared_data]
EPOCHS = 12
SETS = [
    "pipeline.events.dirs=[train_1, train_2]",
    "pipeline.validation={name: val, dir: train_1, ids: [1001]}",
    "pipeline.test=[{name: test, dir: train_1, ids: [1000]}]",
    f"pipeline.set={{build: [graph.sectors.overlap=0.0], train_filter: [train.epochs={EPOCHS}]}}",
    "data.val_fraction=0.25",
    "model.filter={hidden: 8, layers: 2, edge_features: true}",
    "train={max_steps_per_epoch: 2, mixed_precision: none, warmup_epochs: 0.0}",
    "graph.max_buckets=1",
    "graph.workers=1",
    "backend.threads=1",
]


def test_pipeline_template_runs_trackml_full_and_resumes_the_training_after_a_requeue(slurm, tmp_path,
                                                                                       shared_trackml):
    detector = shared_trackml / "detectors.csv.gz"
    simulate_events(tmp_path / "train_1", detector, 4, pileup=5, seed=3, workers=1, first_event=1000, progress=False)
    simulate_events(tmp_path / "train_2", detector, 2, pileup=5, seed=3, workers=1, first_event=21000, progress=False)
    args = [f"--output={tmp_path}/%x-%j.out", f"--chdir={tmp_path}", REPO / "slurm" / "pipeline.sh",
            REPO / "configs" / "trackml_full.yaml", *[a for s in SETS for a in ("--set", s)], "--to", "train_filter"]
    job, proc = sbatch(slurm, args)
    assert proc.returncode == 0, proc.stderr
    metrics = tmp_path / "runs" / "trackml_full-filter" / "metrics.jsonl"
    wait_for_epochs(metrics, 1, timeout=600, env=slurm, job=job)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=slurm, check=True)
    info = wait_job(slurm, job, timeout=900)
    log = (tmp_path / f"trkx-pipeline-{job}.out").read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, log[-3000:])
    assert ("trkx-pipeline: error: stage train_filter stopped by SIGUSR1 (exit 99); run again: it resumes from its "
            "checkpoint") in log
    assert "step exited 99 (checkpointed): requeueing job" in log
    second = log.split("(restart 1)")[1]
    assert "events: skipped (up to date)" in second and "build: skipped (up to date)" in second
    assert "train_filter: resuming (interrupted run: resumes from its checkpoints)" in second
    assert [r["epoch"] for r in epochs(metrics)][-1] == EPOCHS - 1
    assert all(r["ranks"] == 2 for r in epochs(metrics))
    rec = json.loads((tmp_path / "runs" / "trackml_full" / "pipeline.json").read_text())["stages"]
    assert rec["train_filter"]["status"] == "done"
    assert rec["train_filter"]["command"]["shell"].startswith(("srun --mpi=pmix -N 1 -n 2 trkx-train",
                                                               "mpirun -np 2 --bind-to none trkx-train"))
    assert "thresholds" not in rec  # --to train_filter
    train_log = (tmp_path / "runs" / "trackml_full" / "logs" / "train_filter.log").read_text()
    assert "resumed from" in train_log.split("=== ")[-1]
