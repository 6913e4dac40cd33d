"""The sweep harness: overrides per run, records, resume, interruption and failures.

A fake ``popen`` stands for the launcher in the fast tests (it writes the run's metrics.jsonl the way trkx-train
would); the multi-process tests launch tests/scaling/fake_trainer.py (trkx-train's contract double) through real
horovodrun, and the last one the real trkx-train once it is installed.
"""

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from metrics_files import epoch_line, write_metrics

from trkx_tf.config import load_config
from trkx_tf.errors import BackendError, ConfigError
from trkx_tf.scaling.harness import RunInterrupted, run_overrides, run_sweep

REPO = Path(__file__).resolve().parents[2]
ENV = {"hostname": "test"}


def _cfg(tmp_path, *overrides):
    return load_config(None, [f"scaling.out_dir={tmp_path}", "scaling.name=s", "scaling.repeats=2",
                              "scaling.global_batch=4", "scaling.ranks=[1,2,4]", *overrides])


class FakeLauncher:
    """Records the command lines; "runs" trkx-train by writing metrics with T_N = 12 / N^0.9 per epoch."""

    def __init__(self, exit_codes=None):
        self.calls = []
        self.exit_codes = exit_codes or {}

    def __call__(self, argv, env=None, stdout=None, stderr=None):
        self.calls.append(argv)
        sets = dict(a.split("=", 1) for a in argv[argv.index("--set") + 1::2])
        ranks = int(argv[argv.index("-np") + 1])
        run_dir = Path(sets["run.out_dir"]) / sets["run.name"]
        per_rank = int(sets["train.graphs_per_step"])
        lines = [epoch_line(e, 12.0 / ranks ** 0.9, ranks, global_batch=per_rank * ranks)
                 for e in range(int(sets["train.epochs"]))]
        write_metrics(run_dir / "metrics.jsonl", lines)
        code = self.exit_codes.get(len(self.calls), 0)
        return type("Done", (), {"returncode": code, "poll": lambda self: code, "wait": lambda self: code})()


def test_strong_overrides_split_the_global_batch_and_fix_the_steps(tmp_path):
    scaling = _cfg(tmp_path, "scaling.warmup_epochs=1", "scaling.epochs=3", "scaling.steps_per_epoch=7").scaling
    assert run_overrides(scaling, 4, 1, "/s/runs") == [
        "run.out_dir=/s/runs", "run.name=strong-horovod-n4-r1", "backend.name=horovod", "train.epochs=4",
        "train.max_steps_per_epoch=7", "train.graphs_per_step=1"]
    weak = _cfg(tmp_path, "scaling.mode=weak", "scaling.rank_batch=3").scaling
    assert run_overrides(weak, 4, 0, "r")[-1] == "train.graphs_per_step=3"


def test_a_sweep_runs_every_rank_count_and_repeat_interleaved_and_records_them(tmp_path):
    fake = FakeLauncher()
    records = run_sweep(_cfg(tmp_path), environment=ENV, trainer="/bin/trkx-train", popen=fake,
                        command_line="trkx-scaling run --ranks 1,2,4")
    order = [int(c[c.index("-np") + 1]) for c in fake.calls]
    assert order == [1, 2, 4, 1, 2, 4]
    assert [c[c.index("--set") + 11] for c in fake.calls[:3]] == [
        "train.graphs_per_step=4", "train.graphs_per_step=2", "train.graphs_per_step=1"]
    assert [r["ranks"] for r in records["summary"]] == [1, 2, 4]
    assert [r["efficiency"] for r in records["summary"]] == pytest.approx([1.0, 2 ** -0.1, 4 ** -0.1])
    assert all(r["global_batch"] == 4 for r in records["summary"])
    folder = tmp_path / "s"
    for name in ("records.json", "runs.csv", "summary.csv", "config.yaml", "command.txt"):
        assert (folder / name).exists(), name
    assert "trkx-scaling run --ranks 1,2,4" in (folder / "command.txt").read_text()
    saved = load_config(folder / "config.yaml")
    assert saved.scaling.ranks == (1, 2, 4)
    assert json.loads((folder / "records.json").read_text())["environment"] == ENV


def test_set_overrides_reach_every_launched_trainer_and_the_placement_is_recorded(tmp_path, monkeypatch):
    from trkx_tf.scaling import harness

    seen = {}
    monkeypatch.setattr(harness, "collect_environment",
                        lambda placement: seen.setdefault("env", {"placement": placement}))
    monkeypatch.setattr(harness, "load_average", lambda: [1.5, 1.0, 0.5])
    fake = FakeLauncher()
    records = run_sweep(_cfg(tmp_path, "backend.threads=1", "backend.pin_cores=true", "scaling.repeats=1"),
                        trainer="t", popen=fake)
    config_path = str(tmp_path / "s" / "config.yaml")
    for argv in fake.calls:  # every trkx-train reads the study's resolved config, which holds the overrides
        assert argv[argv.index("--config") + 1] == config_path
    backend = load_config(config_path).backend
    assert (backend.threads, backend.pin_cores) == (1, True)
    assert records["environment"]["placement"] == {"threads": 1, "pin_cores": True}
    assert all(r["load_start"] == 1.5 and r["load_end"] == 1.5 for r in records["runs"])
    assert all(r["load"] == 1.5 for r in records["summary"])


def test_a_rerun_skips_recorded_runs_and_an_interrupted_sweep_continues(tmp_path):
    interrupted = FakeLauncher(exit_codes={3: 99})  # the third run is stopped by SIGUSR1
    with pytest.raises(RunInterrupted, match="strong-horovod-n4-r0 was interrupted"):
        run_sweep(_cfg(tmp_path), environment=ENV, trainer="t", popen=interrupted)
    assert len(json.loads((tmp_path / "s" / "records.json").read_text())["runs"]) == 2
    resumed = FakeLauncher()
    records = run_sweep(_cfg(tmp_path), environment=ENV, trainer="t", popen=resumed)
    assert [int(c[c.index("-np") + 1]) for c in resumed.calls] == [4, 1, 2, 4]
    assert len(records["runs"]) == 6
    again = FakeLauncher()
    run_sweep(_cfg(tmp_path), environment=ENV, trainer="t", popen=again)
    assert again.calls == []


def test_a_signal_between_runs_stops_the_sweep_after_the_current_run(tmp_path):
    class SignalledDuringFirstRun(FakeLauncher):
        def __call__(self, argv, **kwargs):
            if not self.calls:
                os.kill(os.getpid(), signal.SIGUSR1)  # as the sweep template forwards USR1 near the time limit
            return super().__call__(argv, **kwargs)

    before = signal.getsignal(signal.SIGUSR1)
    fake = SignalledDuringFirstRun()
    with pytest.raises(RunInterrupted, match="SIGUSR1 received: the sweep stopped before run strong-horovod-n2-r0"):
        run_sweep(_cfg(tmp_path), environment=ENV, trainer="t", popen=fake)
    assert len(fake.calls) == 1
    assert [r["ranks"] for r in json.loads((tmp_path / "s" / "records.json").read_text())["runs"]] == [1]
    assert signal.getsignal(signal.SIGUSR1) is before  # the handler is restored


def test_a_failed_run_names_its_log(tmp_path):
    with pytest.raises(BackendError, match=r"run strong-horovod-n2-r0 failed \(exit status \[1\]\); see .*n2-r0.log"):
        run_sweep(_cfg(tmp_path), environment=ENV, trainer="t", popen=FakeLauncher(exit_codes={2: 1}))


@pytest.mark.parametrize("overrides, message", [
    (["scaling.global_batch=3"], "cannot be split evenly over \\[2, 4\\] ranks"),
    (["scaling.ranks=[]"], "at least one rank count"),
    (["scaling.ranks=[2,2]"], "distinct and >= 1"),
    (["scaling.name=a/b"], "plain folder name"),
    (["scaling.backend=single", "scaling.launcher=plain"], "backend=single runs one plain trkx-train"),
])
def test_bad_studies_are_config_errors(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_sweep(_cfg(tmp_path, *overrides), environment=ENV, trainer="t", popen=FakeLauncher())


def test_the_sbatch_launcher_needs_the_templates_folder(tmp_path, capsys):
    """The sbatch templates are found in --repo (default: the working directory), not beside the package."""
    from trkx_tf.cli.scaling import main

    with pytest.raises(ConfigError, match="has no slurm/ folder"):
        run_sweep(_cfg(tmp_path, "scaling.launcher=sbatch"), repo=tmp_path, environment=ENV, popen=FakeLauncher())
    argv = ["run", "--launcher", "sbatch", "--name", "s", "--set", f"scaling.out_dir={tmp_path}", "--repo",
            str(tmp_path)]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_trkx_scaling_run_rejects_a_bad_rank_list_in_one_line(tmp_path, capsys):
    from trkx_tf.cli.scaling import main

    assert main(["run", "--ranks", "1,x", "--name", "bad", "--set", f"scaling.out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trkx-scaling: error: --set scaling.ranks=[1,x]") and "\n" not in err


# ------------------------------------------------------------------------------------------ real processes
def _fake_trainer(tmp_path):
    script = tmp_path / "trkx-train"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests" / "scaling" / "fake_trainer.py"}" "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.mark.multiproc
@pytest.mark.slow
@pytest.mark.parametrize("launcher, backend", [("horovodrun", "horovod"), ("tfconfig", "tfdist")])
def test_sweep_through_real_launchers_with_the_contract_double(tmp_path, monkeypatch, launcher, backend):
    monkeypatch.setenv("TRKX_FAKE_GRAPH_S", "0.05")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    cfg = _cfg(tmp_path, "scaling.ranks=[1,2]", "scaling.repeats=1", "scaling.steps_per_epoch=4",
               "scaling.epochs=1", f"scaling.launcher={launcher}", f"scaling.backend={backend}",
               "scaling.timeout_s=120")
    records = run_sweep(cfg, environment=ENV, trainer=_fake_trainer(tmp_path))
    rows = records["summary"]
    assert [(r["ranks"], r["backend"]) for r in rows] == [(1, backend), (2, backend)]
    assert rows[0]["efficiency"] == 1.0 and 0.0 < rows[1]["efficiency"] < 1.5
    assert all(r["launcher"] == launcher and r["epochs_measured"] == 1 for r in records["runs"])


@pytest.mark.multiproc
@pytest.mark.slow
def test_sweep_of_the_demo_with_trkx_train(tmp_path, monkeypatch, tiny_shards):
    monkeypatch.chdir(REPO)
    cfg = load_config(REPO / "configs" / "demo.yaml", [
        f"scaling.out_dir={tmp_path}", "scaling.name=demo", "scaling.ranks=[1,2]", "scaling.repeats=1",
        "scaling.steps_per_epoch=4", "scaling.epochs=1", "scaling.global_batch=2", "scaling.timeout_s=600",
        f"run.out_dir={tmp_path}/runs", f"data.shards_dir={tiny_shards}"])
    records = run_sweep(cfg)
    assert [r["ranks"] for r in records["summary"]] == [1, 2]
    assert records["summary"][0]["efficiency"] == 1.0
    # the reference: one plain trkx-train (no launcher, backend single) on the same workload, into the same study
    records = run_sweep(cfg, ranks=[1], backend="single", launcher="plain")
    assert [(r["backend"], r["ranks"]) for r in records["summary"]] == [("horovod", 1), ("horovod", 2),
                                                                        ("single", 1)]
    plain = records["summary"][2]
    assert plain["global_batch"] == 2 and plain["step_time_s"] > 0
