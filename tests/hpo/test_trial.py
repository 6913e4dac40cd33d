"""The trial machinery on real processes: following a growing metrics file, stopping a process tree."""

import dataclasses
import json
import sys
import time

import psutil
import pytest

from trkx_tf.errors import BackendError
from trkx_tf.hpo.study import StudyArgs, counted, trial_command, trial_value
from trkx_tf.hpo.space import StudySpec
from trkx_tf.hpo.trial import MetricsFollower, ObjectiveError, run_trial

# A stand-in for trkx-train's output side only (the real trkx-train runs in test_study.py): writes one epoch record
# per interval, then sleeps, and starts a grandchild in a session of its own (as launchers' ranks may be).
WRITER = """
import json, subprocess, sys, time
run_dir, n, metric = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if n > 5:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", run_dir], start_new_session=True)
for epoch in range(n):
    with open(run_dir + "/metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "epoch", "epoch": epoch, metric: 1.0 / (epoch + 1)}) + "\\n")
    time.sleep(0.3)
time.sleep(300 if n > 5 else 0)
"""


def test_follower_reads_only_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path)
    assert follower.new_records() == []  # no file yet
    path.write_text(json.dumps({"epoch": 0}) + "\n" + '{"epoch": ')
    assert follower.new_records() == [{"epoch": 0}]
    with open(path, "a") as f:
        f.write('1, "x": 2}\n')
    assert follower.new_records() == [{"epoch": 1, "x": 2}]
    assert follower.new_records() == []


def _descendants_of(run_dir):
    return [p for p in psutil.process_iter(["cmdline"]) if str(run_dir) in " ".join(p.info["cmdline"] or [])]


def test_run_trial_completes_and_reports(tmp_path):
    seen = []
    out = run_trial([sys.executable, "-c", WRITER, str(tmp_path), "3", "val_f1"], tmp_path, "val_f1",
                    lambda v, e: seen.append((e, v)) and False, poll_s=0.1)
    assert out.state == "complete" and out.returncode == 0
    assert seen == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert out.values == [v for _, v in seen]


def test_prune_stops_the_whole_tree(tmp_path):
    """Pruned at epoch 1: the writer and its grandchild in another session are both gone."""
    cmd = [sys.executable, "-c", WRITER, str(tmp_path), "100", "val_f1"]
    t0 = time.monotonic()
    out = run_trial(cmd, tmp_path, "val_f1", lambda v, e: e >= 1, poll_s=0.1, grace_s=2)
    assert out.state == "pruned" and out.values == [1.0, 0.5]
    assert time.monotonic() - t0 < 30
    time.sleep(0.5)
    assert not _descendants_of(tmp_path)


def test_failing_command_is_a_failed_trial(tmp_path):
    out = run_trial([sys.executable, "-c", "import sys; print('boom: bad shard'); sys.exit(3)"], tmp_path,
                    "val_f1", lambda v, e: False, poll_s=0.1)
    assert out.state == "fail" and out.returncode == 3 and "boom: bad shard" in out.error


def test_missing_metric_is_an_objective_error(tmp_path):
    with pytest.raises(ObjectiveError, match="'val_nope' is not in trkx-train's epoch records"):
        run_trial([sys.executable, "-c", WRITER, str(tmp_path), "100", "val_f1"], tmp_path, "val_nope",
                  lambda v, e: False, poll_s=0.1, grace_s=2)
    time.sleep(0.3)
    assert not _descendants_of(tmp_path)


def test_interrupt_by_on_poll(tmp_path):
    out = run_trial([sys.executable, "-c", WRITER, str(tmp_path), "100", "val_f1"], tmp_path, "val_f1",
                    lambda v, e: False, poll_s=0.1, grace_s=2, on_poll=lambda: (tmp_path / "metrics.jsonl").exists())
    assert out.state == "fail" and out.error == "interrupted"


def test_trial_command_and_value(tmp_path):
    args = StudyArgs(space="s.yaml", config=str(tmp_path / "base.yaml"), study="s", storage=str(tmp_path / "j"),
                     trials=2, overrides=("train.epochs=3",), launcher=("horovodrun", "-np", "2"))
    cmd = trial_command(args, {"train.lr": 0.001, "model.filter.hidden": 64, "train.lr_decay": "cosine"},
                        "trial-0007")
    assert cmd[0].endswith("/horovodrun") and cmd[1:3] == ["-np", "2"] and cmd[3].endswith("/trkx-train")
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
    assert sets == ["train.epochs=3", "train.lr=0.001", "model.filter.hidden=64", 'train.lr_decay="cosine"',
                    f'run.out_dir="{tmp_path / "j-s-trials"}"', 'run.name="trial-0007"']
    with pytest.raises(BackendError, match="no-such-launcher is not installed"):
        trial_command(dataclasses.replace(args, launcher=("no-such-launcher", "-n", "2")), {}, "trial-0008")
    spec = StudySpec.model_validate({"params": {"train.lr": {"uniform": [0.1, 0.2]}},
                                     "objective": {"direction": "minimize", "reduce": "best"}})
    assert trial_value([0.5, 0.2, float("nan"), 0.3], spec) == 0.2
    spec = StudySpec.model_validate({"params": {"train.lr": {"uniform": [0.1, 0.2]}}})
    assert trial_value([0.5, 0.2, 0.3], spec) == 0.3


def test_counted_ignores_waiting_and_interrupted():
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for state, interrupted in [(TrialState.COMPLETE, False), (TrialState.FAIL, True), (TrialState.FAIL, False),
                               (TrialState.PRUNED, False)]:
        t = study.ask()
        t.set_user_attr("interrupted", interrupted)
        t.report(1.0, 0)
        study.tell(t, 1.0 if state == TrialState.COMPLETE else None, state=None if state == TrialState.COMPLETE
                   else state)
    study.enqueue_trial({})
    study.ask()  # running (the enqueued one)
    study.enqueue_trial({})  # waiting
    assert counted(study.trials) == 4


def test_fail_stale_fails_trials_of_lost_workers():
    import optuna

    from trkx_tf.hpo.study import fail_stale

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    lost, alive = study.ask(), study.ask()
    lost.set_user_attr("heartbeat", time.time() - 700)
    alive.set_user_attr("heartbeat", time.time() - 5)
    assert fail_stale(study, stale_after_s=600) == [lost.number]
    t_lost, t_alive = study.trials
    assert t_lost.state.name == "FAIL" and t_lost.user_attrs["interrupted"]
    assert "worker lost" in t_lost.user_attrs["error"]
    assert t_alive.state.name == "RUNNING"
    assert counted(study.trials) == 1  # the interrupted trial does not use the budget
