"""Shard schema round trip, atomic write, and one clear error for corrupt or wrong-version shards."""

import h5py
import numpy as np
import pytest

from helpers import random_graph
from trkx_tf.errors import ShardError
from trkx_tf.graphs.shard_writer import write_shard
from trkx_tf.graphs.shards import DATASETS, SCHEMA_VERSION, Shard, ShardInfo


def write(path, graphs=None, budget=(64, 256), **kw):
    graphs = graphs or [random_graph(50, 200, event_id=7, seed=1), random_graph(64, 131, event_id=8, sector=2,
                                                                                 seed=2)]
    return write_shard(path, graphs, *budget, split="train", bucket=3, feature_names=("r", "phi", "z"),
                       builder="module_map", **kw), graphs


@pytest.mark.parametrize("compression", ["lzf", "none", "gzip"])
def test_round_trip(tmp_path, compression):
    info, graphs = write(tmp_path / "s.h5", compression=compression)
    assert info.n_graphs == 2 and info.n_node == (50, 64) and info.event_id == (7, 8) and info.sector == (-1, 2)
    with Shard(tmp_path / "s.h5", expected_checksum=info.checksum) as shard:
        assert (shard.node_budget, shard.edge_budget, shard.n_features) == (64, 256, 3)
        assert shard.feature_names == ("r", "phi", "z") and shard.split == "train"
        for i, g in enumerate(graphs):
            back = shard.unpadded(i)
            for name in ("nodes", "senders", "receivers", "edge_labels", "edge_weights", "edge_pt", "hit_id"):
                np.testing.assert_array_equal(getattr(back, name), getattr(g, name), err_msg=name)
            assert (back.event_id, back.sector) == (g.event_id, g.sector)
        padded = shard.graph(0)
        assert padded["nodes"].shape == (64, 3) and padded["senders"].shape == (256,)
        # padding: zero features and labels, padded edges point at the first padded node
        assert np.all(padded["nodes"][50:] == 0) and np.all(padded["edge_weights"][200:] == 0)
        assert np.all(padded["senders"][200:] == 50) and np.all(padded["receivers"][200:] == 50)
        full = shard.graph(1)  # a graph that fills the node budget: padded edges point at node 0
        assert np.all(full["senders"][131:] == 0)
    with h5py.File(tmp_path / "s.h5") as f:
        assert set(f.keys()) == set(DATASETS) | {"graph_sha256"} and f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["n_node"].dtype == np.int32 and f["n_edge"][()].tolist() == [200, 131]


def test_info_json_round_trip(tmp_path):
    info, _ = write(tmp_path / "s.h5")
    assert ShardInfo.from_json(info.to_json()) == info


def test_graph_over_budget_is_refused(tmp_path):
    with pytest.raises(ShardError, match="exceed the bucket budget"):
        write(tmp_path / "s.h5", budget=(32, 256))
    assert list(tmp_path.iterdir()) == []


def test_exception_mid_write_leaves_no_shard(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = h5py.Group.create_dataset

    def flaky(self, name, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full (simulated)")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path / "s.h5")
    assert calls["n"] == 4
    assert list(tmp_path.iterdir()) == []  # neither the shard nor its temporary file


def test_rewrite_replaces_atomically(tmp_path):
    write(tmp_path / "s.h5")
    info2, _ = write(tmp_path / "s.h5", graphs=[random_graph(10, 20, seed=5)])
    with Shard(tmp_path / "s.h5") as shard:
        assert shard.n_graphs == 1 and shard.checksum == info2.checksum


def one_line_error(path, **kw):
    with pytest.raises(ShardError) as exc:
        Shard(path, **kw)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_corrupt_data_gives_one_clear_error(tmp_path):
    write(tmp_path / "s.h5", compression="none")
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["edge_labels"][0, 5] = 1 - f["edge_labels"][0, 5]
    assert "checksum mismatch" in one_line_error(tmp_path / "s.h5")


@pytest.mark.parametrize("compression", ["none", "lzf"])
def test_corrupt_bytes_on_disk(tmp_path, compression):
    write(tmp_path / "s.h5", compression=compression)
    with h5py.File(tmp_path / "s.h5") as f:
        chunk = f["edge_weights"].id.get_chunk_info(0)
    raw = bytearray((tmp_path / "s.h5").read_bytes())
    raw[chunk.byte_offset + chunk.size // 2] ^= 0xFF  # one flipped byte inside the edge weights
    (tmp_path / "s.h5").write_bytes(bytes(raw))
    msg = one_line_error(tmp_path / "s.h5")
    assert "checksum mismatch" in msg or "cannot read" in msg
    with Shard(tmp_path / "s.h5", verify=False):  # schema checks alone do not read the data
        pass


def test_each_graph_is_verified_when_read(tmp_path):
    write(tmp_path / "s.h5", compression="none")
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["edge_pt"][1, 3] += 1.0  # corrupt graph 1 only
    with Shard(tmp_path / "s.h5", verify=False) as shard:
        shard.graph(0)  # intact
        with pytest.raises(ShardError) as exc:
            shard.graph(1)
        msg = str(exc.value)
        assert "graph 1 (event 8): checksum mismatch" in msg and "\n" not in msg and "s.h5" in msg
        shard.graph(1, verify=False)  # readable when asked not to check


def test_wrong_schema_version(tmp_path):
    write(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    assert f"schema version {SCHEMA_VERSION + 1}" in one_line_error(tmp_path / "s.h5")


def test_checksum_differs_from_manifest(tmp_path):
    write(tmp_path / "s.h5")
    assert "manifest" in one_line_error(tmp_path / "s.h5", expected_checksum="sha256:" + "0" * 64)


def test_not_hdf5_and_missing(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    assert "not a readable HDF5" in one_line_error(tmp_path / "x.h5")
    assert "not found" in one_line_error(tmp_path / "nope.h5")


def test_missing_dataset(tmp_path):
    write(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        del f["edge_pt"]
    assert "missing dataset 'edge_pt'" in one_line_error(tmp_path / "s.h5", verify=False)


def test_shards_carry_the_edge_features(tmp_path):
    from trkx_tf.graphs.features import EDGE_FEATURES, edge_features

    info, graphs = write(tmp_path / "s.h5", scales=(1000.0, 500.0))
    with Shard(tmp_path / "s.h5", expected_checksum=info.checksum) as shard:
        assert shard.n_edge_features == len(EDGE_FEATURES)
        for i, g in enumerate(graphs):
            padded = shard.graph(i)
            assert padded["edges"].shape == (256, len(EDGE_FEATURES))
            np.testing.assert_array_equal(padded["edges"][:g.n_edge],
                                          edge_features(g.nodes, g.senders, g.receivers, 1000.0, 500.0))
            assert np.all(padded["edges"][g.n_edge:] == 0)
    # other scales give other edge features, hence another checksum
    other, _ = write(tmp_path / "t.h5", scales=(1000.0, 1000.0))
    assert other.checksum != info.checksum


def test_shard_without_edge_features_is_refused(tmp_path):
    write(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "a") as f:
        del f["edges"]
    assert "missing dataset 'edges'" in one_line_error(tmp_path / "s.h5")
