"""Masked labels: events with a partial truth in trkx-build (edges of unknown truth weigh 0), and the training
counts that must ignore them."""

import json

import numpy as np
import pandas as pd
import pytest

from toy import make_event
from trkx_tf.cli.build import main
from trkx_tf.config import load_config
from trkx_tf.errors import DataError
from trkx_tf.graphs.build import build_shards
from trkx_tf.graphs.event_splits import split_real_events
from trkx_tf.graphs.reader import ShardReader
from trkx_tf.graphs.truth import label_edges_partial, partial_truth_graph
from trkx_tf.trackml.io import Event, read_event, write_event
from trkx_tf.trackml.partial import partial_truth_from_full


def hand_event():
    """Six hits: group 1 on three barrel layers (hits 1, 2, 3), group 2 on two (hits 4, 5), hit 6 unlabelled."""
    hits = pd.DataFrame({
        "hit_id": [1, 2, 3, 4, 5, 6],
        "x": [30.0, 70.0, 110.0, -30.0, -70.0, 70.5],
        "y": [1.0, 2.0, 3.0, 1.0, 2.0, 2.0],
        "z": [5.0, 10.0, 15.0, -5.0, -10.0, 10.0],
        "volume_id": [8] * 6, "layer_id": [2, 4, 6, 2, 4, 4], "module_id": [1, 2, 3, 4, 5, 2],
    })
    partial = pd.DataFrame({"hit_id": [3, 1, 2, 4, 5], "group": [7, 7, 7, 9, 9],
                            "pt_min": [1.0, 1.0, 1.0, 0.5, 0.5]})
    return hits, partial


def test_hand_made_labels_and_weights():
    hits, partial = hand_event()
    g = partial_truth_graph(hits, partial)
    assert sorted(zip(g.senders.tolist(), g.receivers.tolist())) == [(0, 1), (1, 2), (3, 4)]  # hit rows
    # edges (rows): true 0-1, true reversed 2-1, skip 0-2 (same group), cross-group 1-4, unknown 1-5, 5-2, true 3-4
    s = np.array([0, 2, 0, 1, 1, 5, 3])
    r = np.array([1, 1, 2, 4, 5, 2, 4])
    labels, weights, pt = label_edges_partial(s, r, g)
    assert labels.tolist() == [1, 1, 0, 0, 0, 0, 1]
    assert weights.tolist() == [1, 1, 1, 1, 0, 0, 1]
    assert pt.tolist() == [1.0, 1.0, 0, 0, 0, 0, 0.5]
    # pT weights from the class's lower bound; a cut above pt_min makes a true edge neutral (weight 0, label 1)
    labels, weights, _ = label_edges_partial(s, r, g, mode="pt", pt_cut=0.7)
    assert labels.tolist() == [1, 1, 0, 0, 0, 0, 1]
    assert weights[:2] == pytest.approx([0.2 + 0.8 * 0.5 / 2.5] * 2) and weights[6] == 0.0
    assert weights[[2, 3]].tolist() == [1, 1] and weights[[4, 5]].tolist() == [0, 0]
    with pytest.raises(DataError, match="weight=hit"):
        label_edges_partial(s, r, g, mode="hit")


def test_partial_graph_errors():
    hits, partial = hand_event()
    with pytest.raises(DataError, match="hit_id 99"):
        partial_truth_graph(hits, pd.concat([partial, pd.DataFrame({"hit_id": [99], "group": [3],
                                                                    "pt_min": [1.0]})]))
    with pytest.raises(DataError, match="more than once"):
        partial_truth_graph(hits, pd.concat([partial, partial.iloc[:1]]))


def test_same_graph_as_the_partial_metrics(toy_event):
    """The training labels' true edges are the partial metrics' labelled truth graph."""
    from trkx_tf.reco.partial import labelled_hits, labelled_truth_graph

    partial = partial_truth_from_full(toy_event.hits, toy_event.particles, toy_event.truth)
    g = partial_truth_graph(toy_event.hits, partial)
    ms, mr = labelled_truth_graph(labelled_hits(toy_event.hits, partial))
    assert g.n_true > 50
    assert sorted(zip(g.senders.tolist(), g.receivers.tolist())) == sorted(zip(ms.tolist(), mr.tolist()))


def test_split_real_events():
    assert split_real_events([9, 3, 5, 7, 1], 3, 1) == {"train": [1, 3, 5], "val": [7]}
    with pytest.raises(DataError, match="fewer than"):
        split_real_events([1, 2], 2, 1)
    with pytest.raises(DataError, match="test event"):
        split_real_events([1000, 1001, 1002], 2, 1)


@pytest.fixture(scope="module")
def labelled_dirs(tmp_path_factory):
    """The same four toy events twice: with their full truth, and with a partial truth only (written with
    trkx_tf.trackml.io, as the real labelled events are stored)."""
    full = tmp_path_factory.mktemp("full")
    part = tmp_path_factory.mktemp("partial")
    for i in range(4):
        ev = make_event(event_id=200 + i, n_particles=70, noise=20, seed=40 + i)
        write_event(full, Event(ev.event_id, ev.hits, ev.particles, ev.truth))
        pt = partial_truth_from_full(ev.hits, ev.particles, ev.truth)
        write_event(part, Event(ev.event_id, ev.hits, partial_truth=pt))
    return full, part


def _graphs(folder):
    with ShardReader(folder, None, shuffle=False, extras=("event_id", "hit_id")) as reader:
        return {int(np.ravel(g["event_id"])[0]): g for g in (reader.read_graph(i) for i in range(reader.n_graphs))}


def test_masked_label_shard_build(labelled_dirs, tmp_path):
    """A build of events with a partial truth only: unknown edges weigh 0; every edge of known truth has the label
    the full truth gives it; the summary's efficiency is restricted and has no purity."""
    full_dir, part_dir = labelled_dirs
    cfg = load_config(None, ["data.val_fraction=0.25", "graph.graphs_per_shard=2"])
    build_shards(cfg, full_dir, tmp_path / "full", workers=1, progress=False)
    mm = str(tmp_path / "full" / "module_map.npz")
    cfg_m = load_config(None, ["data.val_fraction=0.25", "graph.graphs_per_shard=2", f"graph.module_map.path={mm}"])
    summary = build_shards(cfg_m, part_dir, tmp_path / "masked", workers=1, progress=False)
    assert summary.metrics["labels"] == "masked" and summary.metrics["purity"] is None
    assert 0.5 < summary.metrics["efficiency"] <= 1.0
    manifest = json.loads((tmp_path / "masked" / "manifest.json").read_text())
    assert {e["labels"] for e in manifest["events"]} == {"masked"}

    full, masked = _graphs(tmp_path / "full"), _graphs(tmp_path / "masked")
    assert sorted(full) == sorted(masked) == [200, 201, 202, 203]
    n_known = n_unknown = 0
    for e in full:
        f, m = full[e], masked[e]
        ne = int(m["n_edge"])
        assert int(f["n_edge"]) == ne  # the same graph stage
        np.testing.assert_array_equal(f["senders"][:ne], m["senders"][:ne])
        ev = read_event(part_dir, e)
        labelled = np.isin(m["hit_id"][: int(m["n_node"])], ev.partial_truth["hit_id"].to_numpy())
        s, r = m["senders"][:ne], m["receivers"][:ne]
        known = labelled[s] & labelled[r]
        w, lab = m["edge_weights"][:ne], m["edge_labels"][:ne]
        assert np.all(w[~known] == 0) and np.all(lab[~known] == 0)  # unknown: masked, never false
        assert np.all(w[known] == 1)
        np.testing.assert_array_equal(lab[known], f["edge_labels"][:ne][known])
        assert lab[known].sum() > 0 and (lab[known] == 0).sum() > 0
        n_known, n_unknown = n_known + known.sum(), n_unknown + (~known).sum()
    assert n_known > 0 and n_unknown > 0

    # graph.labels=masked cuts the full truth by the labelled rules: the same labels as the partial-truth events
    build_shards(load_config(None, ["data.val_fraction=0.25", "graph.graphs_per_shard=2",
                                    f"graph.module_map.path={mm}", "graph.labels=masked"]),
                 full_dir, tmp_path / "cut", workers=1, progress=False)
    cut = _graphs(tmp_path / "cut")
    for e in cut:
        for k in ("edge_labels", "edge_weights", "edge_pt"):
            np.testing.assert_array_equal(cut[e][k], masked[e][k])


def test_edge_counts_ignore_masked_edges():
    """Weight-0 edges are in no loss, no count: whatever the model says of them, nothing changes."""
    import tensorflow as tf

    from trkx_tf.train.tasks import EdgeTask

    labels = np.array([1, 0, 0, 0, 1], np.float32)
    weights = np.array([1, 1, 0, 0, 1], np.float32)  # edges 2, 3: unknown truth
    batch = {"edge_labels": tf.constant(labels), "edge_weights": tf.constant(weights),
             "edge_mask": tf.ones(5)}
    task = EdgeTask()
    outs = []
    for masked_logits in ([-5.0, -5.0], [5.0, 5.0]):
        logits = tf.constant([3.0, -2.0, *masked_logits, 1.0])
        loss, loss_sum, w_sum, counts = task.forward(lambda b, logits=logits: logits, batch)
        outs.append((float(loss), float(w_sum), np.asarray(counts)))
    assert outs[0][0] == pytest.approx(outs[1][0]) and outs[0][1] == outs[1][1] == 3.0
    np.testing.assert_array_equal(outs[0][2], outs[1][2])
    np.testing.assert_array_equal(outs[1][2], [2, 2, 2, 3])  # TP, true, predicted (no false positive), total


def test_cli_real_build_errors(tmp_path, labelled_dirs, capsys):
    full_dir, part_dir = labelled_dirs
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  real: {{events_dir: {part_dir}, shards_dir: {tmp_path / 'r'}, train_events: 3, "
                   f"val_events: 1}}\n")
    assert main(["--config", str(cfg), "--real", "--no-progress"]) == 2
    assert "module map" in capsys.readouterr().err
    assert main(["--real", "--no-progress"]) == 2
    assert "data.real" in capsys.readouterr().err
    assert main(["--config", str(cfg), "--real", "--no-progress", "--module-map", "x.npz",
                 "--set", "data.real.train_events=4"]) == 2
    assert "fewer than" in capsys.readouterr().err
