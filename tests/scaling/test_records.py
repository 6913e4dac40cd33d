"""Run records, warm-up exclusion and the efficiency arithmetic on hand-made metrics.jsonl files."""

import csv
import json

import pytest
from metrics_files import epoch_line, write_metrics

from trkx_tf.errors import BackendError, ConfigError
from trkx_tf.scaling.records import load_study, read_epochs, run_record, summarize, write_study


def test_read_epochs_keeps_epoch_lines_in_order_and_the_last_copy_of_a_resumed_epoch(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [
        epoch_line(0, 5.0, 1), {"kind": "eval", "epoch": 0, "loss": 1.0}, epoch_line(1, 4.0, 1),
        epoch_line(1, 3.0, 1),  # epoch 1 again after a restart
    ])
    epochs = read_epochs(path)
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert epochs[1]["epoch_time_s"] == 3.0


def test_read_epochs_names_the_file_and_line_of_a_bad_record(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(epoch_line(0, 1.0, 1)) + "\n{not json\n")
    with pytest.raises(BackendError, match=r"metrics.jsonl:2: not a JSON line"):
        read_epochs(path)
    with pytest.raises(BackendError, match="cannot read the run's metrics"):
        read_epochs(tmp_path / "missing.jsonl")


def test_metrics_without_epoch_records_or_with_missing_keys_are_named(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [{"epoch": 0, "step_time": 1.0, "ranks": 1}])
    with pytest.raises(BackendError, match='no \\{"kind": "epoch", ...\\} lines'):
        read_epochs(path)
    line = epoch_line(0, 1.0, 1)
    del line["epoch_time_s"], line["global_batch"]
    with pytest.raises(BackendError, match="epoch records lack epoch_time_s, global_batch"):
        run_record([line], warmup_epochs=0, ranks=1, repeat=0, mode="strong", launcher="horovodrun")


def test_run_record_drops_the_warm_up_epochs_and_averages_the_rest():
    epochs = [epoch_line(0, 100.0, 2), epoch_line(1, 4.0, 2, imbalance=0.1), epoch_line(2, 6.0, 2, imbalance=0.3)]
    record = run_record(epochs, warmup_epochs=1, ranks=2, repeat=0, mode="strong", launcher="mpirun", wall_s=1.0)
    assert record["epochs_measured"] == 2
    assert record["epoch_time_s"] == pytest.approx(5.0)
    assert record["imbalance"] == pytest.approx(0.2)
    assert record["graphs_per_s"] == pytest.approx((40 / 4 + 40 / 6) / 2)
    assert record["step_time_s"] == pytest.approx(0.5)
    assert record["loss"] == epochs[-1]["loss"]
    assert (record["backend"], record["global_batch"]) == ("horovod", 4)
    assert (record["launcher"], record["wall_s"]) == ("mpirun", 1.0)


def test_run_record_refuses_runs_with_nothing_measured_or_the_wrong_rank_count():
    with pytest.raises(BackendError, match="none after 2 warm-up epochs"):
        run_record([epoch_line(0, 1.0, 1), epoch_line(1, 1.0, 1)], warmup_epochs=2, ranks=1, repeat=0,
                   mode="strong", launcher="horovodrun")
    with pytest.raises(BackendError, match="launched with 2 ranks reports ranks=\\[1\\]"):
        run_record([epoch_line(0, 1.0, 1)], warmup_epochs=0, ranks=2, repeat=0, mode="strong", launcher="srun")


def test_strong_efficiency_is_one_at_one_rank_and_0_9_when_two_ranks_take_t1_over_1_8(strong_runs):
    rows = summarize(strong_runs)
    assert [r["ranks"] for r in rows] == [1, 2]
    one, two = rows
    assert one["efficiency"] == pytest.approx(1.0) and one["speedup"] == pytest.approx(1.0)
    assert one["efficiency_min"] == one["efficiency_max"] == pytest.approx(1.0) and one["efficiency_std"] == 0.0
    assert two["epoch_time_s"] == pytest.approx(10.0 / 1.8)
    assert two["efficiency"] == pytest.approx(0.9)
    assert two["speedup"] == pytest.approx(1.8)
    # spread over the two repeats: T2 was 5 % below and 5 % above the mean
    assert two["efficiency_min"] == pytest.approx(0.9 / 1.05)
    assert two["efficiency_max"] == pytest.approx(0.9 / 0.95)
    assert two["efficiency_std"] > 0
    assert two["epoch_time_s_min"] == pytest.approx(10.0 / 1.8 * 0.95)
    assert two["imbalance"] == pytest.approx(0.02)
    assert (two["repeats"], two["baseline_ranks"], two["global_batch"]) == (2, 1, 4)


def test_weak_efficiency_compares_per_rank_throughput():
    runs = []
    for n, rate in ((1, 10.0), (2, 18.0), (4, 32.0)):
        graphs = 40 * n  # fixed per-rank batch: the global workload grows with N
        runs.append({"mode": "weak", "backend": "horovod", "ranks": n, "repeat": 0, "global_batch": 4 * n,
                     "epoch_time_s": graphs / rate, "graphs_per_s": rate, "edges_per_s": rate * 500,
                     "step_time_s": 0.1, "step_time_s_max": 0.1, "imbalance": 0.0})
    rows = summarize(runs)
    assert [r["efficiency"] for r in rows] == pytest.approx([1.0, 0.9, 0.8])


def test_the_baseline_is_the_smallest_rank_count_of_each_backend():
    runs = [{"mode": "strong", "backend": b, "ranks": n, "repeat": 0, "global_batch": 8, "epoch_time_s": t,
             "graphs_per_s": 80 / t, "edges_per_s": 1.0, "step_time_s": 1.0, "step_time_s_max": 1.0, "imbalance": 0.0}
            for b, n, t in (("horovod", 2, 8.0), ("horovod", 4, 5.0), ("tfdist", 1, 10.0), ("tfdist", 2, 6.25))]
    rows = {(r["backend"], r["ranks"]): r for r in summarize(runs)}
    assert rows[("horovod", 4)]["efficiency"] == pytest.approx(2 * 8.0 / (4 * 5.0))
    assert rows[("horovod", 4)]["baseline_ranks"] == 2
    assert rows[("tfdist", 2)]["efficiency"] == pytest.approx(0.8)


def test_write_study_writes_json_and_csv_records_that_load_back(tmp_path, strong_runs):
    env = {"hostname": "test", "interconnect": "loopback/shared-memory", "stack": {"tensorflow": "2.18.1"}}
    write_study(tmp_path, strong_runs, {"name": "t"}, env)
    with open(tmp_path / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [row["ranks"] for row in summary] == ["1", "2"]
    assert float(summary[1]["efficiency"]) == pytest.approx(0.9)
    with open(tmp_path / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    loaded = load_study(tmp_path)
    assert loaded["environment"] == env and loaded["study"] == {"name": "t"}
    assert loaded["summary"][1]["efficiency"] == pytest.approx(0.9)


def test_load_study_of_a_folder_without_records_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="run trkx-scaling run first"):
        load_study(tmp_path)
