"""Studies of real trkx-train trials on the tiny shards: concurrent workers, resume, pruning, failures, report."""

import json
from pathlib import Path

import psutil
import pytest
import yaml

from .conftest import run_tool, write_space

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def _study(storage, name):
    import optuna

    from trkx_tf.hpo.study import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def _epoch_records(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == "epoch"]


def _hpo(*args, cwd=None):
    return run_tool(["trkx-hpo", *args], cwd=cwd)


@pytest.mark.multiproc
def test_two_workers_resume_report_and_best_config(tmp_path, tiny_filter_config):
    """4 trials by 2 concurrent worker processes on one journal file: each recorded once; resumed to 5; the
    report's best config trains as is."""
    space = write_space(tmp_path, """
        objective: {metric: val_f1, direction: maximize}
        sampler: {name: random, seed: 1}
        pruner: {name: none}
        params:
          train.lr: {log_uniform: [1.0e-3, 3.0e-2]}
          model.filter.hidden: {choice: [8, 16]}
        """)
    storage = tmp_path / "hpo.journal"
    common = ["--space", space, "--config", tiny_filter_config, "--study", "tiny", "--storage", storage]
    proc = _hpo("run", *common, "--trials", 4, "--workers", 2, "--poll", 0.3)
    assert "4 complete" in proc.stdout

    study = _study(storage, "tiny")
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == 4
    for t in trials:  # every epoch record reported once, the value is the last epoch's
        records = _epoch_records(t.user_attrs["run_dir"])
        assert [r["epoch"] for r in records] == [0, 1]
        assert t.intermediate_values == {r["epoch"]: pytest.approx(r["val_f1"]) for r in records}
        assert t.value == pytest.approx(records[-1]["val_f1"])
        cfg = yaml.safe_load((Path(t.user_attrs["run_dir"]) / "config.yaml").read_text())
        assert cfg["train"]["lr"] == pytest.approx(t.params["train.lr"])
        assert cfg["model"]["filter"]["hidden"] == t.params["model.filter.hidden"]
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers  # both worker processes ran trials
    # the two workers' trials overlapped in time (they ran concurrently)
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))

    # resume: the same command with --trials 5 keeps the 4 trials and adds one; --trials 5 again adds none
    before = [(t.number, t.params, t.value, t.state) for t in trials]
    _hpo("run", *common, "--trials", 5, "--poll", 0.3)
    _hpo("run", *common, "--trials", 5, "--poll", 0.3)
    study = _study(storage, "tiny")
    assert [(t.number, t.params, t.value, t.state) for t in study.trials[:4]] == before
    assert len(study.trials) == 5 and study.trials[4].state.name == "COMPLETE"

    # a different space under the same name is refused (one line, exit 2)
    other = write_space(tmp_path, "params: {train.lr: {log_uniform: [1.0e-3, 2.0e-2]}}", "other.yaml")
    bad = run_tool(["trkx-hpo", "run", "--space", other, *common[2:], "--trials", 6], check=False)
    assert bad.returncode == 2 and "was made with another study file" in bad.stderr

    # the report
    out = tmp_path / "report"
    _hpo("report", "--study", "tiny", "--storage", storage, "--out", out)
    for name in ("report.md", "trials.csv", "best_config.yaml", "importances.json", "history.png",
                 "parallel_coordinate.png", "intermediate_values.png", "importances.png"):
        assert (out / name).stat().st_size > 0, name
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("number,state,value,epochs")
    best = study.best_trial
    assert set(json.loads((out / "importances.json").read_text())) == {"train.lr", "model.filter.hidden"}

    # the best config is the base config with the best parameters, and trkx-train trains it as is
    from trkx_tf.config import load_config

    cfg = load_config(out / "best_config.yaml")
    base = load_config(tiny_filter_config)
    assert cfg.train.lr == pytest.approx(best.params["train.lr"])
    assert cfg.model.filter.hidden == best.params["model.filter.hidden"]
    assert cfg.data == base.data and cfg.train.epochs == base.train.epochs and cfg.run.name == "tiny-best"
    run_tool(["trkx-train", "--config", out / "best_config.yaml"], cwd=tmp_path)
    records = _epoch_records(Path(cfg.run.out_dir) / cfg.run.name)
    assert len(records) == 2


def test_pruning_stops_a_poor_trial(tmp_path, tiny_filter_config):
    """Trial 0 learns (lr 3e-2); trial 1 (lr 1e-7, same seed: the same initial model) reports a worse validation
    loss after its first epoch than trial 0 did and is pruned there: its trkx-train is stopped (SQLite storage)."""
    EPOCHS = 20  # tiny epochs: enough of them that the pruned trial cannot finish between two polls
    space = write_space(tmp_path, """
        objective: {metric: val_loss, direction: minimize}
        sampler: {name: random, seed: 0}
        pruner: {name: median, startup_trials: 1, warmup_epochs: 0}
        params:
          train.lr: {choice: [3.0e-2, 1.0e-7]}
        enqueue:
          - {train.lr: 3.0e-2}
          - {train.lr: 1.0e-7}
        """)
    storage = tmp_path / "hpo.db"
    _hpo("run", "--space", space, "--config", tiny_filter_config, "--set", f"train.epochs={EPOCHS}", "--study", "prune",
         "--storage", storage, "--trials", 2, "--poll", 0.2)
    t0, t1 = _study(storage, "prune").trials
    assert t0.params["train.lr"] == 3.0e-2 and t0.state.name == "COMPLETE" and len(t0.intermediate_values) == EPOCHS
    assert t1.params["train.lr"] == 1.0e-7 and t1.state.name == "PRUNED"
    assert t1.intermediate_values[0] > t0.intermediate_values[0]
    assert len(t1.intermediate_values) < EPOCHS
    assert len(_epoch_records(t1.user_attrs["run_dir"])) < EPOCHS  # stopped before its last epoch
    assert not [p for p in psutil.process_iter(["cmdline"])
                if t1.user_attrs["run_dir"] in " ".join(p.info["cmdline"] or [])]


def test_crashing_trial_fails_and_the_study_goes_on(tmp_path, tiny_filter_config, tiny_shards):
    """Trial 0 trains on a shards folder that does not exist: trkx-train exits 2, the trial is FAIL with that
    line, and trial 1 still runs and completes."""
    missing = tmp_path / "no-shards"
    space = write_space(tmp_path, f"""
        params:
          data.shards_dir: {{choice: ["{missing}", "{tiny_shards}"]}}
        enqueue:
          - {{data.shards_dir: "{missing}"}}
          - {{data.shards_dir: "{tiny_shards}"}}
        """)
    storage = tmp_path / "hpo.journal"
    proc = _hpo("run", "--space", space, "--config", tiny_filter_config, "--study", "crash", "--storage", storage,
                "--trials", 2, "--poll", 0.2)
    assert "1 complete, 1 fail" in proc.stdout
    t0, t1 = _study(storage, "crash").trials
    assert t0.state.name == "FAIL" and t0.user_attrs["returncode"] == 2
    assert t0.user_attrs["error"].startswith("exit status 2: ") and "no-shards" in t0.user_attrs["error"]
    assert t1.state.name == "COMPLETE" and t1.params["data.shards_dir"] == str(tiny_shards)


@pytest.mark.multiproc
def test_a_trial_on_two_horovod_ranks(tmp_path, tiny_filter_config):
    """A trial is a real multi-rank trkx-train: horovodrun starts 2 ranks over Gloo, the worker follows rank 0's
    epoch records (which say ranks=2) and records the trial once with its per-epoch values."""
    space = write_space(tmp_path, """
        objective: {metric: val_f1, direction: maximize}
        sampler: {name: random, seed: 3}
        pruner: {name: none}
        params:
          train.lr: {log_uniform: [1.0e-3, 3.0e-2]}
        """)
    storage = tmp_path / "hpo.journal"
    proc = _hpo("run", "--space", space, "--config", tiny_filter_config, "--study", "hvd", "--storage", storage,
                "--trials", 1, "--poll", 0.3, "--launcher", "horovodrun -np 2 -H localhost:2 --gloo",
                "--set", "backend.name=horovod")
    assert "1 complete" in proc.stdout
    (trial,) = _study(storage, "hvd").trials
    records = _epoch_records(trial.user_attrs["run_dir"])
    assert [(r["epoch"], r["ranks"], r["backend"]) for r in records] == [(0, 2, "horovod"), (1, 2, "horovod")]
    assert trial.intermediate_values == {r["epoch"]: pytest.approx(r["val_f1"]) for r in records}
