"""The report of a study built from fixture records: markdown table rows, PNG plots, labelled projection."""

from pathlib import Path

import pytest

from trkx_tf.cli.scaling import main
from trkx_tf.config import load_config
from trkx_tf.scaling.records import write_study
from trkx_tf.scaling.report import EFFICIENCY_PLOT, PROJECTION_PLOT, TIME_PLOT, write_report

REPO = Path(__file__).resolve().parents[2]

PNG = b"\x89PNG\r\n\x1a\n"
ENV = {"hostname": "testhost", "cpu_model": "Test CPU", "cpu_count": 2, "interconnect": "loopback/shared-memory",
       "stack": {"tensorflow": "2.18.1", "tensorflow_build": "cpu", "horovod": {"version": "0.28.1"},
                 "mpi_library": "Open MPI v4.1.4", "devices": ["CPU:/physical_device:CPU:0"]}}
STUDY = {"name": "fixture", "scaling": {"warmup_epochs": 1, "epochs": 2, "steps_per_epoch": 10}}


@pytest.fixture()
def study(tmp_path, strong_runs):
    folder = tmp_path / "fixture"
    write_study(folder, strong_runs, STUDY, ENV)
    (folder / "command.txt").write_text("trkx-scaling run --config configs/demo.yaml --ranks 1,2 --repeats 2\n")
    return folder


def _table_rows(text, header_start):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_report_has_the_measured_table_plots_and_the_command(study):
    report = write_report(study)
    text = report.read_text()
    assert "## Measured: strong scaling, horovod (horovodrun)" in text
    rows = _table_rows(text, "| ranks | repeats |")
    assert [r[0] for r in rows] == ["1", "2"]
    assert rows[0][-1].startswith("1.000") and rows[1][-1].startswith("0.900 (0.857–0.947)")
    assert rows[1][1] == "2" and rows[1][2] == "4" and rows[1][-2] == "1.80"
    assert "testhost" in text and "loopback/shared-memory" in text and "TensorFlow 2.18.1" in text
    assert "projection disabled" in text and "Projected" not in text
    assert "trkx-scaling run --config configs/demo.yaml --ranks 1,2 --repeats 2" in text
    for name in (TIME_PLOT, EFFICIENCY_PLOT):
        path = study / name
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000
        assert f"]({name})" in text


def test_report_adds_the_projection_labelled_apart_from_the_measurement(study):
    projection = load_config(None, ["scaling.projection.enabled=true", "scaling.projection.gradient_bytes=0",
                                    "scaling.projection.ranks=[1,2,4,8,16,32,64]"]).scaling.projection
    text = write_report(study, projection).read_text()
    assert "no projection: set scaling.projection.gradient_bytes" in text  # neither set nor logged by the trainer
    projection = projection.model_copy(update={"gradient_bytes": 4_000_000})
    text = write_report(study, projection).read_text()
    assert "## Projected (model, not measured)" in text
    rows = _table_rows(text, "| ranks | compute/step")
    assert [r[0] for r in rows] == ["1", "2", "4", "8", "16", "32", "64"]
    assert rows[0][5] == "1.000" and 0.0 < float(rows[-1][5]) < 1.0 and rows[0][-1] == "–"  # no unpadded model
    # measured 1-rank epoch time 10 s, step 1 s: the projected epoch time is T1 / (N E)
    assert float(rows[1][4]) == pytest.approx(10.0 / (2 * float(rows[1][5])), rel=1e-3)
    assert "gradient 4 MB (set)" in text
    paper = _table_rows(text, "| GPUs | paper |")
    assert [r[:2] for r in paper] == [["2", "0.900"], ["8", "0.750"], ["64", "0.688"]]
    assert paper[0][2] == rows[1][5]  # the same projection in both tables
    sens = dict(r for r in _table_rows(text, "| input | efficiency |"))
    assert sens["as stated"] == rows[-1][5]
    assert float(sens["inter-node bandwidth x 2"]) > float(sens["as stated"]) > float(sens["latency per hop x 4"])
    for name in (EFFICIENCY_PLOT, PROJECTION_PLOT):
        assert (study / name).read_bytes()[:8] == PNG and f"]({name})" in text


def test_a_stated_device_compute_and_model_need_no_measured_run(tmp_path):
    folder = tmp_path / "empty"
    write_study(folder, [], STUDY, ENV)
    projection = load_config(None, [
        "scaling.projection.enabled=true", "scaling.projection.batch=rank", "scaling.projection.step_compute_s=0.165",
        "scaling.projection.epoch_time_s=1320", f"scaling.projection.gradient_from={REPO / 'configs' / 'demo.yaml'}",
        "scaling.projection.latency_us=0", "scaling.projection.ranks=[1,64]"]).scaling.projection
    text = write_report(folder, projection).read_text()
    rows = _table_rows(text, "| ranks | compute/step")
    assert rows[0][1] == rows[1][1] == "0.165"  # per-rank batch fixed: the same compute per step at every N
    assert float(rows[0][4]) == 1320 and float(rows[1][4]) == pytest.approx(1320 / 64 / float(rows[1][5]), rel=1e-3)
    assert "parameters of" in text and "demo.yaml" in text and "No runs recorded yet." in text
    assert (folder / PROJECTION_PLOT).read_bytes()[:8] == PNG


def test_unpadded_loads_add_the_imbalance_curve(study, monkeypatch):
    from trkx_tf.scaling import report

    loads = [40_000.0, 60_000.0, 90_000.0, 50_000.0]
    monkeypatch.setattr(report, "unpadded_loads", lambda folder, unit: loads)
    projection = load_config(None, ["scaling.projection.enabled=true", "scaling.projection.gradient_bytes=1000",
                                    "scaling.projection.unpadded_from=shards", "scaling.projection.ranks=[1,2,8]",
                                    "scaling.projection.latency_us=0"]).scaling.projection
    text = write_report(study, projection).read_text()
    rows = _table_rows(text, "| ranks | compute/step")
    from trkx_tf.scaling.projection import imbalance_factor

    assert [float(r[6]) for r in rows] == pytest.approx([imbalance_factor(loads, n) for n in (1, 2, 8)], abs=1e-3)
    assert float(rows[2][7]) < float(rows[2][5])  # imbalance costs efficiency
    assert "4 graphs, mean 60,000 edges" in text


@pytest.mark.shared_data
def test_unpadded_loads_come_from_the_manifest_per_graph_or_per_event(tiny_shards):
    from trkx_tf.graphs.shards import read_manifest
    from trkx_tf.scaling.report import unpadded_loads

    shards = read_manifest(tiny_shards)["shards"]
    graphs = [e for s in shards for e in s["n_edge"]]
    assert unpadded_loads(tiny_shards) == graphs
    events = unpadded_loads(tiny_shards, "event")
    assert sum(events) == sum(graphs) and len(events) == len({e for s in shards for e in s["event_id"]})


def test_trkx_scaling_report_cli_on_a_study_folder(study, capsys):
    assert main(["report", str(study)]) == 0
    out = capsys.readouterr().out
    assert "| 2 | 2 | 4 |" in out and f"report: {study / 'report.md'}" in out


def test_trkx_scaling_report_of_a_missing_study_is_one_line_and_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--name", "nothing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trkx-scaling: error:") and "run trkx-scaling run first" in err and "\n" not in err
