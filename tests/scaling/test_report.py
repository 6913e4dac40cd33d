"""The report of a study built from fixture records: markdown table rows, PNG plots, labelled projection."""

import pytest

from trkx_tf.cli.scaling import main
from trkx_tf.config import load_config
from trkx_tf.scaling.records import write_study
from trkx_tf.scaling.report import EFFICIENCY_PLOT, TIME_PLOT, write_report

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
    assert rows[0][-1] == "1.000" and 0.0 < float(rows[-1][-1]) < 1.0
    assert "gradient 4 MB" in text
    assert (study / EFFICIENCY_PLOT).read_bytes()[:8] == PNG


def test_trkx_scaling_report_cli_on_a_study_folder(study, capsys):
    assert main(["report", str(study)]) == 0
    out = capsys.readouterr().out
    assert "| 2 | 2 | 4 |" in out and f"report: {study / 'report.md'}" in out


def test_trkx_scaling_report_of_a_missing_study_is_one_line_and_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--name", "nothing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trkx-scaling: error:") and "run trkx-scaling run first" in err and "\n" not in err
