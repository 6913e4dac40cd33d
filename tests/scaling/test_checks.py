"""Plausibility checks of scaling rows: each implausible measurement is flagged, a plausible study is not."""

from trkx_tf.scaling.checks import check_group, check_study


def _row(ranks, efficiency, step, *, batch=2, imbalance=0.0, load=1.0, mode="strong", backend="horovod"):
    return {"mode": mode, "backend": backend, "ranks": ranks, "efficiency": efficiency, "global_batch": batch,
            "step_time_s": step, "imbalance": imbalance, "load": load, "baseline_ranks": 1}


def test_a_plausible_study_has_no_warning():
    # 2 graphs per step at 1 rank in 2.0 s, 1 graph per rank at 2 ranks in 1.1 s: cost per graph 1.0 vs 1.1
    assert check_group([_row(1, 1.0, 2.0), _row(2, 0.9, 1.1)], cpu_count=2) == []


def test_superlinear_efficiency_and_the_per_graph_cost_of_the_baseline_are_flagged():
    # the numbers: a 2-graph step 5.1 s at 1 rank, 1-graph steps 1.6 s at 2 ranks (E = 1.57)
    lines = check_group([_row(1, 1.0, 5.1), _row(2, 1.57, 1.6)], cpu_count=2)
    assert len(lines) == 2
    assert "efficiency 1.57 > 1.05" in lines[0]
    assert "2.550 s" in lines[1] and "1.600 s" in lines[1] and "1.59x" in lines[1]


def test_imbalance_and_a_loaded_host_are_flagged():
    lines = check_group([_row(1, 1.0, 2.0), _row(2, 0.9, 1.1, imbalance=0.3, load=5.0)], cpu_count=2)
    assert any("imbalance 0.30 > 0.1" in line for line in lines)
    assert any("host load 5.0 above its 2 CPUs" in line for line in lines)
    assert check_group([_row(1, 1.0, 2.0), _row(2, 0.9, 1.1, load=5.0)], cpu_count=None) == []


def test_check_study_prefixes_each_group():
    rows = [_row(1, 1.0, 5.1), _row(2, 1.57, 1.6), _row(1, 1.0, 2.0, backend="tfdist"),
            _row(2, 0.9, 1.1, backend="tfdist")]
    lines = check_study(rows, cpu_count=2)
    assert lines and all(line.startswith("- strong/horovod, ") for line in lines)


def test_the_report_prints_the_warnings(tmp_path, strong_runs):
    from trkx_tf.scaling.records import write_study
    from trkx_tf.scaling.report import write_report

    for run in strong_runs:  # make the 2-rank runs 3x faster than ideal: superlinear
        if run["ranks"] == 2:
            run["epoch_time_s"] /= 3.0
            run["step_time_s"] /= 3.0
    write_study(tmp_path / "s", strong_runs, {"name": "s"}, {"cpu_count": 2})
    text = write_report(tmp_path / "s").read_text()
    assert "## Warnings: implausible measurements" in text
    assert "superlinear" in text


def test_a_1_rank_run_far_from_plain_trkx_train_is_flagged():
    from trkx_tf.scaling.checks import check_reference

    plain = _row(1, 1.0, 2.0, backend="single")
    near, far = _row(1, 1.0, 2.2), _row(1, 1.0, 2.2 * 2, backend="tfdist")
    lines = check_reference([plain, near, far, _row(2, 0.9, 1.1)])
    assert len(lines) == 1 and lines[0].startswith("- strong/tfdist, **1 rank:")
    assert "2.200 s against 1.000 s for plain trkx-train" in lines[0] and "(2.20x)" in lines[0]
    assert check_reference([near, far]) == []  # no plain run: nothing to compare
    assert check_study([plain, near, far], cpu_count=2) == lines  # part of the study's checks
