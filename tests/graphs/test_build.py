"""trkx-build end to end on toy events: shards, manifest, determinism, CLI, errors."""

import json
import shutil

import numpy as np
import pytest
import yaml

from toy import make_event, write_event_csv
from trkx_tf.cli.build import main
from trkx_tf.config import load_config
from trkx_tf.errors import DataError
from trkx_tf.graphs.build import build_shards
from trkx_tf.graphs.event_splits import split_events
from trkx_tf.graphs.module_map import ModuleMap
from trkx_tf.graphs.reader import ShardReader
from trkx_tf.graphs.shards import Shard


def cfg(*overrides):
    return load_config(None, ["data.val_fraction=0.34", "graph.graphs_per_shard=2", *overrides])


@pytest.fixture(scope="module")
def built(toy_events_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    summary = build_shards(cfg(), toy_events_dir, out, workers=1, progress=False)
    return out, summary


def test_split_events():
    assert split_events([5, 1, 3, 2, 4], 0.4) == {"train": [1, 2, 3], "val": [4, 5]}
    assert split_events([1], 0.2) == {"train": [1], "val": []}


def test_outputs_and_manifest(built, toy_events_dir):
    out, summary = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"] == {"train": [100, 101, 102, 103], "val": [104, 105]}
    assert manifest["feature_names"] == ["r", "phi", "z"] and manifest["n_features"] == 3
    assert (out / "module_map.npz").exists() and ModuleMap.load(out / "module_map.npz").n_events == 4
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["graph"]["graphs_per_shard"] == 2
    files = sorted(p.name for p in out.glob("*.h5"))
    assert files == sorted(s["file"] for s in manifest["shards"])
    events = sorted(e for s in manifest["shards"] for e in s["event_id"])
    assert events == list(range(100, 106))  # every event in exactly one graph (no sectors)
    for s in manifest["shards"]:
        assert len(s["n_node"]) <= 2
        with Shard(out / s["file"], expected_checksum=s["checksum"]) as shard:
            assert shard.split == s["split"] and (shard.node_budget, shard.edge_budget) == tuple(
                manifest["buckets"][s["bucket"]])
    assert summary.padding["elements"] <= 1.10
    assert summary.metrics["efficiency"] > 0.8 and 0 < summary.metrics["purity"] <= 1
    assert "padded/real elements" in summary.format()


def test_shard_graphs_match_the_events(built, toy_events_dir):
    out, _ = built
    from trkx_tf.graphs.truth import truth_graph
    from trkx_tf.trackml.io import read_event

    rd = ShardReader(out, "val", shuffle=False, extras=("hit_id", "event_id"))
    for i in range(rd.n_graphs):
        g = rd.read_graph(i)
        ev = read_event(toy_events_dir, int(g["event_id"]))
        n, e = int(g["n_node"]), int(g["n_edge"])
        assert n == len(ev.hits)
        np.testing.assert_array_equal(g["hit_id"][:n], ev.hits["hit_id"].to_numpy())
        tg = truth_graph(ev.hits, ev.particles, ev.truth)
        true_pairs = {frozenset(p) for p in zip(tg.senders.tolist(), tg.receivers.tolist())}
        pairs = [frozenset(p) for p in zip(g["senders"][:e].tolist(), g["receivers"][:e].tolist())]
        assert [int(p in true_pairs) for p in pairs] == g["edge_labels"][:e].tolist()


def test_build_is_deterministic_and_replaces_old_shards(built, toy_events_dir, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    again.mkdir()
    (again / "train-b07-00009.h5").write_bytes(b"stale shard of an older build")
    build_shards(cfg(), toy_events_dir, again, workers=1, progress=False)
    a = json.loads((out / "manifest.json").read_text())["shards"]
    b = json.loads((again / "manifest.json").read_text())["shards"]
    assert [(s["file"], s["checksum"]) for s in a] == [(s["file"], s["checksum"]) for s in b]
    assert not (again / "train-b07-00009.h5").exists()
    assert not list(again.glob(".tmp*"))


@pytest.mark.slow
def test_parallel_build_gives_the_same_shards(built, toy_events_dir, tmp_path):
    out, _ = built
    build_shards(cfg(), toy_events_dir, tmp_path, workers=2, progress=False)
    a = json.loads((out / "manifest.json").read_text())["shards"]
    b = json.loads((tmp_path / "manifest.json").read_text())["shards"]
    assert [s["checksum"] for s in a] == [s["checksum"] for s in b]


def test_fixed_buckets_oversize_and_sectors(toy_events_dir, tmp_path):
    c = cfg("graph.buckets=[[256, 256]]", "graph.sectors.phi=4", "graph.sectors.overlap=0.05",
            "graph.edge_weight=pt", "graph.pt_cut=0.5")
    summary = build_shards(c, toy_events_dir, tmp_path, workers=1, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    sectors = [x for s in manifest["shards"] if s["split"] == "train" for x in s["sector"]]
    assert sorted(set(sectors)) == [0, 1, 2, 3]
    assert all(x == -1 for s in manifest["shards"] if s["split"] == "val" for x in s["sector"])
    # the whole-event val graphs are too big for [256, 256]: own buckets, never dropped
    assert summary.oversize and len(manifest["buckets"]) > 1
    assert summary.n_graphs["val"] == 2
    rd = ShardReader(tmp_path, "train", shuffle=False, extras=("edge_pt",))
    for batch in rd.epoch(0, prefetch=0):
        real = batch["edge_mask"] == 1
        low = real & (batch["edge_labels"] == 1) & (batch["edge_pt"] < 0.5)
        assert np.all(batch["edge_weights"][low] == 0)  # neutral low-pT true edges


def test_module_map_from_a_file(built, toy_events_dir, tmp_path):
    out, _ = built
    summary = build_shards(cfg(f"graph.module_map.path={out / 'module_map.npz'}", "data.val_fraction=0"),
                           toy_events_dir, tmp_path, workers=1, progress=False)
    assert summary.n_graphs == {"train": 6, "val": 0}


def test_cells_in_some_events_only(tmp_path):
    write_event_csv(tmp_path, make_event(event_id=1, n_particles=20, seed=1, with_cells=True))
    write_event_csv(tmp_path, make_event(event_id=2, n_particles=20, seed=2, with_cells=False))
    with pytest.raises(DataError, match="cells"):
        build_shards(cfg(), tmp_path, tmp_path / "out", workers=1, progress=False)


def test_cell_features_when_every_event_has_cells(tmp_path):
    for i in range(3):
        write_event_csv(tmp_path / "ev", make_event(event_id=i, n_particles=30, seed=i, with_cells=True))
    build_shards(cfg(), tmp_path / "ev", tmp_path / "out", workers=1, progress=False)
    rd = ShardReader(tmp_path / "out", None)
    assert rd.n_features == 7 and rd.feature_names[3:] == ("cell_count", "cell_value", "cell_len0", "cell_len1")
    shutil.rmtree(tmp_path / "out")
    build_shards(cfg("graph.use_cells=false"), tmp_path / "ev", tmp_path / "out", workers=1, progress=False)
    assert ShardReader(tmp_path / "out", None).n_features == 3


def test_cli(toy_events_dir, tmp_path, capsys):
    code = main(["--input", str(toy_events_dir), "--out", str(tmp_path / "o"), "--workers", "1", "--no-progress",
                 "--set", "data.val_fraction=0.5"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "efficiency" in printed and "padded/real elements" in printed
    assert (tmp_path / "o" / "manifest.json").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--input", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "trkx-build: error:" in err and "missing" in err
    assert main(["--input", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "graph.bogus=1"]) == 2
    assert "unknown key 'graph.bogus'" in capsys.readouterr().err


@pytest.mark.parametrize("thresholds", [("infer.filter_threshold=0.45",),
                                        ("graph.filter_threshold=0.45", "infer.filter_threshold=0.1")])
def test_filtered_build_keeps_the_edges_the_filter_keeps(built, toy_events_dir, tmp_path, thresholds):
    """graph.filter_ckpt: every graph keeps exactly the edges scoring >= the threshold (graph.filter_threshold,
    else infer.filter_threshold), nodes unchanged."""
    from trkx_tf.errors import ConfigError

    out, _ = built

    def score(nodes, senders, receivers):  # a deterministic stand-in for the trained filter
        return ((senders * 7 + receivers * 3) % 10 / 10.0).astype(np.float32)

    asked = []

    def factory(n_features):
        asked.append(n_features)
        return score

    c = cfg(f"graph.module_map.path={out / 'module_map.npz'}", "graph.filter_ckpt=some/ckpt", *thresholds)
    summary = build_shards(c, toy_events_dir, tmp_path / "f", workers=1, progress=False, edge_filter=factory)
    assert asked == [3]
    full = ShardReader(out, None, shuffle=False)
    kept = ShardReader(tmp_path / "f", None, shuffle=False)
    assert kept.n_graphs == full.n_graphs
    by_event = {int(full.read_graph(i)["event_id"]): full.read_graph(i) for i in range(full.n_graphs)}
    n_all = n_kept = 0
    for i in range(kept.n_graphs):
        g = kept.read_graph(i)
        f = by_event[int(g["event_id"])]
        n, e, e_all = int(g["n_node"]), int(g["n_edge"]), int(f["n_edge"])
        assert n == int(f["n_node"])
        np.testing.assert_array_equal(g["nodes"][:n], f["nodes"][:n])
        keep = score(f["nodes"][:n], f["senders"][:e_all], f["receivers"][:e_all]) >= 0.45
        for name in ("senders", "receivers", "edge_labels", "edge_weights", "edge_pt", "edges"):
            np.testing.assert_array_equal(g[name][:e], f[name][:e_all][keep], err_msg=name)
        n_all, n_kept = n_all + e_all, n_kept + e
    assert 0 < n_kept < n_all
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["filter"]["checkpoint"] == "some/ckpt" and manifest["filter"]["threshold"] == 0.45
    assert manifest["filter"]["kept_per_graph"] * kept.n_graphs == pytest.approx(n_kept)
    assert summary.filter == manifest["filter"] and "edge filter (score >= 0.45)" in summary.format()
    with pytest.raises(ConfigError, match="no edge filter"):
        build_shards(c, toy_events_dir, tmp_path / "g", workers=1, progress=False)
    assert not (tmp_path / "g").exists()
