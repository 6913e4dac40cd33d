"""The stage runner on small synthetic stages: real subprocesses (python -c) writing real files, in seconds."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError, PipelineError
from trkx_tf.pipeline.hashing import PathSpec, hash_spec
from trkx_tf.pipeline.report import format_plan
from trkx_tf.pipeline.runner import Pipeline
from trkx_tf.pipeline.stages import Stage

# copies its input file to its output file, appending the value of --tag
COPY = ("import sys, pathlib; src, dst, tag = sys.argv[1:4]; p = pathlib.Path(dst); p.parent.mkdir(parents=True, "
        "exist_ok=True); p.write_text(pathlib.Path(src).read_text() + tag + '\\n')")


def _stages(tmp: Path, epochs_key=("train.epochs",)) -> list[Stage]:
    src, a, b = tmp / "src.txt", tmp / "a" / "out.txt", tmp / "b" / "out.txt"
    return [
        Stage("first", (sys.executable, "-c", COPY, str(src), str(a), "A"), (), ("simulate.events",),
              (PathSpec(str(src)),), (PathSpec(str(tmp / "a")),), (str(tmp / "a"),), after=()),
        Stage("second", (sys.executable, "-c", COPY, str(a), str(b), "B"), (), epochs_key,
              (PathSpec(str(tmp / "a")),), (PathSpec(str(tmp / "b")),), (str(tmp / "b"),), after=("first",)),
    ]


def _pipe(tmp: Path, *overrides, stages=None) -> Pipeline:
    cfg = load_config(None, [f"pipeline.dir={tmp / 'run'}", *overrides])
    return Pipeline(cfg, stages if stages is not None else _stages(tmp))


def _actions(decisions):
    return {d.stage.name: d.action for d in decisions}


@pytest.fixture()
def tmp(tmp_path):
    (tmp_path / "src.txt").write_text("source\n")
    return tmp_path


def test_run_records_then_skips(tmp):
    done = _pipe(tmp).run(progress=False)
    assert _actions(done) == {"first": "run", "second": "run"}
    assert (tmp / "b" / "out.txt").read_text() == "source\nA\nB\n"
    rec = json.loads((tmp / "run" / "pipeline.json").read_text())
    second = rec["stages"]["second"]
    assert second["status"] == "done" and second["exit"] == 0 and second["wall_s"] > 0
    assert second["outputs"][str(tmp / "b")]["sha256"] == hash_spec(PathSpec(str(tmp / "b"))).sha256
    assert second["inputs"][str(tmp / "a")] == hash_spec(PathSpec(str(tmp / "a"))).sha256
    assert second["command"]["argv"][0] == sys.executable and second["config"] == {"train.epochs": 2}
    assert (tmp / "run" / "config.yaml").exists() and (tmp / "run" / "logs" / "first.log").exists()
    again = _pipe(tmp).run(progress=False)
    assert _actions(again) == {"first": "skip", "second": "skip"}
    assert json.loads((tmp / "run" / "pipeline.json").read_text())["stages"]["second"]["started"] == second["started"]


def test_changed_key_reruns_that_stage_and_downstream(tmp):
    _pipe(tmp).run(progress=False)
    plan = _pipe(tmp, "train.epochs=5").plan()
    assert _actions(plan) == {"first": "skip", "second": "run"}
    assert plan[1].reason == "config changed: train.epochs 2 -> 5"
    plan = _pipe(tmp, "simulate.events=3").plan()
    assert [(d.action, d.reason) for d in plan] == [("run", "config changed: simulate.events 8 -> 3"),
                                                    ("run", "upstream first reruns")]
    # an upstream rerun reruns the downstream stage even when the new output is byte-identical
    assert _actions(_pipe(tmp, "simulate.events=3").run(progress=False)) == {"first": "run", "second": "run"}


def test_input_and_output_changes_are_seen(tmp):
    _pipe(tmp).run(progress=False)
    (tmp / "b" / "out.txt").write_text("edited by hand\n")
    assert _pipe(tmp).plan()[1].reason == f"output changed since its run: {tmp / 'b'}"
    _pipe(tmp).run(progress=False)
    (tmp / "src.txt").write_text("new source\n")
    plan = _pipe(tmp).plan()
    assert [(d.action, d.reason) for d in plan] == [("run", f"input changed: {tmp / 'src.txt'}"),
                                                    ("run", "upstream first reruns")]
    _pipe(tmp).run(progress=False)
    shutil.rmtree(tmp / "b")
    assert [(d.action, d.reason) for d in _pipe(tmp).plan()] == [("skip", "up to date"),
                                                                 ("run", f"output missing: {tmp / 'b'}")]


def test_selection_and_force(tmp):
    _pipe(tmp).run(progress=False)
    assert _actions(_pipe(tmp).plan(only=["second"])) == {"first": "off", "second": "skip"}
    assert _actions(_pipe(tmp).plan(first="second", force=True)) == {"first": "off", "second": "run"}
    assert _actions(_pipe(tmp).plan(last="first", force=True)) == {"first": "run", "second": "off"}
    with pytest.raises(ConfigError, match="no stage named 'third'"):
        _pipe(tmp).plan(only=["third"])
    with pytest.raises(ConfigError, match="comes after"):
        _pipe(tmp).plan(first="second", last="first")


def test_missing_input_outside_the_selection(tmp):
    with pytest.raises(PipelineError, match=r"stage second needs .*/a, which does not exist \(made by first"):
        _pipe(tmp).run(only=["second"], progress=False)


def test_dry_run_table(tmp):
    _pipe(tmp).run(progress=False)
    text = format_plan(_pipe(tmp, "train.epochs=3").plan())
    lines = text.splitlines()
    assert lines[0].split() == ["stage", "action", "reason"]
    assert lines[1].split() == ["first", "skip", "up", "to", "date"]
    assert lines[2].split()[:2] == ["second", "run"] and "train.epochs 2 -> 3" in lines[2]
    assert lines[4] == "commands:" and lines[5].startswith(f"  second: {sys.executable} -c ")
    assert len(lines) == 6  # the skipped stage has no command


def test_failed_stage_names_its_error_and_log(tmp):
    fail = Stage("boom", (sys.executable, "-c", "import sys; print('trkx-x: error: bad thing', file=sys.stderr); "
                          "sys.exit(2)"), outputs=(PathSpec(str(tmp / "never")),), owns=(str(tmp / "never"),))
    with pytest.raises(PipelineError, match=r"stage boom failed \(exit 2\): trkx-x: error: bad thing; log: .*boom.log"):
        _pipe(tmp, stages=[fail]).run(progress=False)
    rec = json.loads((tmp / "run" / "pipeline.json").read_text())["stages"]["boom"]
    assert rec["status"] == "failed" and rec["exit"] == 2
    quiet = Stage("quiet", (sys.executable, "-c", "pass"), outputs=(PathSpec(str(tmp / "nothing")),),
                  owns=(str(tmp / "nothing"),))
    with pytest.raises(PipelineError, match="exited 0 but did not write"):
        _pipe(tmp, stages=[quiet]).run(progress=False)


def test_interrupted_stage_resumes_or_reruns_cleanly(tmp):
    """A ``running`` record (what a kill leaves): a resumable stage keeps its folder, another is cleaned first."""
    stages = _stages(tmp)
    pipe = _pipe(tmp, stages=stages)
    pipe.run(progress=False)
    d = pipe.plan()[1]
    for resumable, action in ((True, "resume"), (False, "run")):
        pipe.records.stages["second"].update(status="running", hash=d.hash)
        pipe.records.save()
        marker = tmp / "b" / "left-by-the-killed-run"
        marker.write_text("x")
        staged = [stages[0], Stage(**{**stages[1].__dict__, "resumable": resumable})]
        plan = _pipe(tmp, stages=staged).plan()
        assert plan[1].action == action, plan[1].reason
        assert plan[1].reason == ("running run: resumes from its checkpoints" if resumable
                                  else "running run: reruns cleanly")
        _pipe(tmp, stages=staged).run(progress=False)
        assert marker.exists() == resumable  # cleaned before a clean rerun
        assert json.loads((tmp / "run" / "pipeline.json").read_text())["stages"]["second"]["status"] == "done"


def test_never_removes_what_it_did_not_make(tmp):
    (tmp / "b").mkdir()
    (tmp / "b" / "precious.csv").write_text("data")
    with pytest.raises(PipelineError, match=r"b exists but .*pipeline.json has no record of this pipeline making it"):
        _pipe(tmp).run(progress=False)
    assert (tmp / "b" / "precious.csv").read_text() == "data"
    assert (tmp / "a" / "out.txt").exists()  # the first stage ran before the refusal


def test_second_pipeline_on_the_same_folder_refuses(tmp):
    import fcntl

    (tmp / "run").mkdir()
    fd = os.open(tmp / "run" / ".pipeline.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(PipelineError, match="another trkx-pipeline runs this pipeline"):
            _pipe(tmp).run(progress=False)
    finally:
        os.close(fd)
