"""Mixed sim/real training (data.real): the filter and the GNN train a few steps on simulated + masked-label real
shards, validate on the real validation events, in one process and on two Horovod ranks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "graphs"))  # the toy events (tests/graphs/toy.py)

from tests.graphs.test_mixed import mixed_config, write_toy_sets  # noqa: E402
from trkx_tf.config import config_to_dict  # noqa: E402
from trkx_tf.graphs.build import build_shards  # noqa: E402
from trkx_tf.graphs.mixed import MixedReader  # noqa: E402
from trkx_tf.graphs.reader import ShardReader  # noqa: E402
from trkx_tf.reco.build import build_real_graphs  # noqa: E402
from trkx_tf.train.session import run_training  # noqa: E402


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixedtrain")
    write_toy_sets(root)
    build_shards(mixed_config(root), root / "sim", root / "sim-shards", workers=1, progress=False)
    build_real_graphs(mixed_config(root, f"graph.module_map.path={root / 'sim-shards' / 'module_map.npz'}"),
                      workers=1, progress=False)
    return root


def train_config(root, model, name, *more):
    return mixed_config(root, f"run.out_dir={root / 'runs'}", f"run.name={name}", f"train.model={model}",
                        "train.epochs=2", "train.warmup_epochs=0", "model.gnn.hidden=8", "model.gnn.steps=2",
                        "model.filter.hidden=8", "model.filter.layers=2", *more)


def known_edges(folder, split):
    """(edges of positive weight, true edges among them) of a split's shards."""
    with ShardReader(folder, split, shuffle=False) as r:
        graphs = [r.read_graph(i) for i in range(r.n_graphs)]
    w = np.concatenate([g["edge_weights"][: int(g["n_edge"])] for g in graphs])
    lab = np.concatenate([g["edge_labels"][: int(g["n_edge"])] for g in graphs])
    return int((w > 0).sum()), int(((w > 0) & (lab == 1)).sum())


def history(root, name):
    return [json.loads(line) for line in (root / "runs" / name / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model", ["filter", "gnn"])
def test_mixed_training_steps(shards, model):
    cfg = train_config(shards, model, f"mixed-{model}")
    with MixedReader(shards / "sim-shards", shards / "real-shards", "train", fraction=0.5) as m:
        n_graphs, n_steps = m.n_graphs, m.steps_per_epoch
    assert n_graphs == 12  # 6 simulated + 6 of the 8 real training graphs
    result = run_training(cfg)
    assert result.epoch == 2 and np.isfinite(result.step_losses).all()
    recs = history(shards, f"mixed-{model}")
    assert [r["graphs"] for r in recs] == [n_graphs] * 2 and [r["steps"] for r in recs] == [n_steps] * 2
    # validation ran on the real validation event's masked shards: exactly its edges of known truth are counted
    total, true = known_edges(shards / "real-shards", "val")
    assert recs[-1]["val_total"] == total and recs[-1]["val_true"] == true

    # validation on the simulated events instead, and real graphs only
    run_training(train_config(shards, model, f"sim-val-{model}", "data.real.validation=sim",
                              "data.real.fraction=1.0", "train.epochs=1"))
    rec = history(shards, f"sim-val-{model}")[0]
    assert rec["graphs"] == 8 and rec["val_total"] == known_edges(shards / "sim-shards", "val")[0]


@pytest.mark.multiproc
@pytest.mark.slow
def test_mixed_training_on_two_horovod_ranks(shards, tmp_path):
    """The same mix dealt to two ranks: every epoch's graphs once over both, validation counted once."""
    cfg = train_config(shards, "gnn", "mixed-hvd", "backend.name=horovod", "train.epochs=1")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo",
                           str(bin_dir / "trkx-train"), "--config", str(path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rec = history(shards, "mixed-hvd")[0]
    with MixedReader(shards / "sim-shards", shards / "real-shards", "train", fraction=0.5, size=2) as m:
        assert rec["ranks"] == 2 and rec["graphs"] == m.n_graphs == 12 and rec["steps"] == m.steps_per_epoch
    total, true = known_edges(shards / "real-shards", "val")
    assert rec["val_total"] == total and rec["val_true"] == true
