"""Training the heads with the existing loop: a few steps on a tiny set; 2 Horovod ranks equal 1 rank."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from trkx_tf.config import config_to_dict

from .conftest import tiny_config


def _model_variables(run: Path) -> dict:
    reader = tf.train.load_checkpoint(str(run / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("model/") and "OPTIMIZER" not in n]
    assert names
    return {n: reader.get_tensor(n) for n in names}


@pytest.mark.slow
@pytest.mark.parametrize("head", ["reg", "cla"])
def test_a_few_steps_lower_the_loss(tiny_set, head):
    from trkx_tf.transformer.run import infer_events, train_tracker

    cfg = tiny_config(tiny_set, f"steps-{head}", f"transformer.head={head}", "train.epochs=6",
                      "transformer.events_per_step=1")
    result = train_tracker(cfg)
    losses = [r["loss"] for r in result.history]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert all(0.0 <= r["efficiency"] <= 1.0 for r in result.history)  # FitAccuracy, as the loop's efficiency
    run = tiny_set / "runs" / f"steps-{head}"
    assert (run / "bins.json").is_file() and (run / "metrics.jsonl").is_file()
    # inference: a submission per event and the metrics
    out = tiny_set / f"infer-{head}"
    summary = infer_events(cfg, run, tiny_set / "events", out, ids=[0, 1])
    assert summary["n_events"] == 2 and 0.0 <= summary["score"] <= 1.0 and 0.0 <= summary["fit_accuracy"] <= 1.0
    assert sorted(p.name for p in out.glob("*-submission.csv")) == ["event000000000-submission.csv",
                                                                    "event000000001-submission.csv"]
    assert json.loads((out / "metrics.json").read_text())["head"] == head


@pytest.mark.multiproc
@pytest.mark.slow
def test_two_horovod_ranks_equal_one_rank_on_the_same_global_batch(tiny_set):
    """1 rank x 2 events per step and 2 Gloo ranks x 1 event: the same global batches, the same weights after."""
    bin_dir = Path(sys.executable).parent
    runs = {}
    for name, ranks, per_rank, backend in (("one", 1, 2, "single"), ("two", 2, 1, "horovod")):
        cfg = tiny_config(tiny_set, f"hvd-{name}", f"transformer.events_per_step={per_rank}",
                          f"backend.name={backend}", "train.epochs=2", "train.max_steps_per_epoch=2")
        path = tiny_set / f"hvd-{name}.yaml"
        path.write_text(yaml.safe_dump(config_to_dict(cfg)))
        command = [str(bin_dir / "trkx-tracker"), "train", "--config", str(path)]
        if ranks > 1:
            command = [str(bin_dir / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[name] = tiny_set / "runs" / f"hvd-{name}"
    records = {k: [json.loads(x) for x in (v / "metrics.jsonl").read_text().splitlines()] for k, v in runs.items()}
    assert [r["ranks"] for r in records["two"]] == [2, 2] and records["one"][0]["ranks"] == 1
    for a, b in zip(records["one"], records["two"]):
        assert a["steps"] == b["steps"] == 2 and a["true"] == b["true"]  # the same hits were counted
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    one, two = _model_variables(runs["one"]), _model_variables(runs["two"])
    assert one.keys() == two.keys()
    for k in one:
        np.testing.assert_allclose(one[k], two[k], atol=2e-5, err_msg=k)


@pytest.mark.slow
def test_tf_distribute_backend_equals_single_process(tiny_set):
    """The tf.distribute backend (one replica) trains the same weights as the single-process loop."""
    from trkx_tf.train.tfdist_backend import TFDistBackend
    from trkx_tf.transformer.run import train_tracker

    runs = {}
    for name, backend in (("single", None), ("tfdist", TFDistBackend())):
        cfg = tiny_config(tiny_set, f"dist-{name}", "train.epochs=1", "train.max_steps_per_epoch=2")
        train_tracker(cfg, backend=backend)
        runs[name] = _model_variables(tiny_set / "runs" / f"dist-{name}")
    for k in runs["single"]:
        np.testing.assert_allclose(runs["single"][k], runs["tfdist"][k], atol=2e-5, err_msg=k)
