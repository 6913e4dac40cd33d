"""The rank-sharded reader: per-rank dealing, equal steps, masks, determinism, errors."""

import numpy as np
import pytest

from helpers import random_graph
from trkx_tf.errors import ShardError
from trkx_tf.graphs.batch import BATCH_KEYS
from trkx_tf.graphs.epoch_plan import FILLER, assemble_batch, plan_epoch
from trkx_tf.graphs.reader import ShardReader
from trkx_tf.graphs.shard_writer import write_manifest, write_shard
from trkx_tf.graphs.shards import Shard

BUDGETS = {0: (40, 120), 1: (80, 300)}


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory):
    """13 train graphs in two buckets (3 shards) and 2 val graphs."""
    folder = tmp_path_factory.mktemp("shards")
    infos, seed = [], 0
    layout = [("train", 0, [(30, 100), (40, 120), (25, 90), (33, 110), (12, 50)]),
              ("train", 0, [(20, 60), (39, 119)]),
              ("train", 1, [(70, 250), (80, 300), (60, 200), (75, 290), (50, 180), (66, 222)]),
              ("val", 0, [(35, 100), (31, 111)])]
    for k, (split, bucket, sizes) in enumerate(layout):
        graphs = []
        for n, e in sizes:
            seed += 1
            graphs.append(random_graph(n, e, event_id=1000 + seed, seed=seed))
        infos.append(write_shard(folder / f"{split}-b{bucket:02d}-{k:05d}.h5", graphs, *BUDGETS[bucket],
                                 split=split, bucket=bucket, feature_names=("r", "phi", "z")))
    write_manifest(folder, infos, ("r", "phi", "z"), builder="test")
    return folder


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("graphs_per_step", [1, 2])
def test_every_graph_once_and_equal_steps(size, graphs_per_step):
    rng = np.random.default_rng(size)
    bucket = rng.integers(0, 3, 23)
    n_edge = rng.integers(1, 1000, 23)
    for epoch in range(3):
        steps = plan_epoch(bucket, n_edge, size=size, graphs_per_step=graphs_per_step, seed=5, epoch=epoch)
        seen = np.concatenate([s.graphs.reshape(-1) for s in steps])
        real = seen[seen != FILLER]
        assert sorted(real.tolist()) == list(range(23))  # no graph lost or duplicated
        for s in steps:
            assert s.graphs.shape == (size, graphs_per_step)  # every rank: one batch per step
            assert np.all(bucket[s.graphs[s.graphs != FILLER]] == s.bucket)  # one bucket per step
        per_step = size * graphs_per_step
        assert len(steps) == sum(-(-np.sum(bucket == b) // per_step) for b in range(3))


def test_plan_is_deterministic_and_reshuffled_per_epoch():
    bucket = np.zeros(40, np.int64)
    n_edge = np.arange(40)
    a = plan_epoch(bucket, n_edge, size=2, graphs_per_step=1, seed=1, epoch=0)
    b = plan_epoch(bucket, n_edge, size=2, graphs_per_step=1, seed=1, epoch=0)
    c = plan_epoch(bucket, n_edge, size=2, graphs_per_step=1, seed=1, epoch=1)
    d = plan_epoch(bucket, n_edge, size=2, graphs_per_step=1, seed=2, epoch=0)
    flat = lambda steps: np.concatenate([s.graphs.reshape(-1) for s in steps]).tolist()  # noqa: E731
    assert flat(a) == flat(b) and flat(a) != flat(c) and flat(a) != flat(d)
    ordered = plan_epoch(bucket, n_edge, size=1, graphs_per_step=1, seed=1, epoch=0, shuffle=False)
    assert flat(ordered) == list(range(40))


def test_graphs_of_a_step_are_dealt_by_size_and_the_remainder_is_filled():
    steps = plan_epoch(np.zeros(5, np.int64), np.array([5, 50, 7, 9, 100]), size=4, graphs_per_step=1, seed=0,
                       epoch=0, shuffle=False)
    assert steps[0].graphs[:, 0].tolist() == [1, 3, 2, 0]  # largest first
    assert steps[1].graphs[:, 0].tolist() == [4, FILLER, FILLER, FILLER]
    two = plan_epoch(np.zeros(5, np.int64), np.array([5, 50, 7, 9, 100]), size=2, graphs_per_step=2, seed=0,
                     epoch=0, shuffle=False)
    assert two[1].graphs.tolist() == [[4, FILLER], [FILLER, FILLER]]
    assert two[0].graphs.tolist() == [[1, 2], [3, 0]]  # round-robin: each rank one large, one small


def test_bad_plan_arguments():
    with pytest.raises(ShardError):
        plan_epoch(np.zeros(3), np.zeros(3), size=0, graphs_per_step=1, seed=0, epoch=0)


def check_batch(batch, shape):
    assert set(batch) >= set(BATCH_KEYS)
    n, e, g = shape.n_nodes, shape.n_edges, shape.n_graphs
    assert batch["nodes"].shape == (n, shape.n_features) and batch["nodes"].dtype == np.float32
    for k in ("senders", "receivers"):
        assert batch[k].shape == (e,) and batch[k].dtype == np.int32
        assert batch[k].min() >= 0 and batch[k].max() < n
    for k in ("edge_mask", "edge_labels", "edge_weights"):
        assert batch[k].shape == (e,) and batch[k].dtype == np.float32
    assert batch["node_mask"].shape == (n,)
    assert batch["n_node"].shape == (g,) and batch["n_node"].dtype == np.int32
    # masks agree with the counts, graph by graph
    nb, eb = n // g, e // g
    for i in range(g):
        nm = batch["node_mask"][i * nb:(i + 1) * nb]
        em = batch["edge_mask"][i * eb:(i + 1) * eb]
        assert nm.sum() == batch["n_node"][i] and np.all(nm[: batch["n_node"][i]] == 1)
        assert em.sum() == batch["n_edge"][i] and np.all(em[: batch["n_edge"][i]] == 1)
        s = batch["senders"][i * eb:(i + 1) * eb][: batch["n_edge"][i]]
        assert np.all((s >= i * nb) & (s < i * nb + batch["n_node"][i]))  # real edges stay in their graph
    pad_e = batch["edge_mask"] == 0
    assert np.all(batch["edge_labels"][pad_e] == 0) and np.all(batch["edge_weights"][pad_e] == 0)
    assert np.all(batch["nodes"][batch["node_mask"] == 0] == 0)
    if np.any(batch["node_mask"] == 0):  # padded edges point at a padded node
        assert np.all(batch["node_mask"][batch["senders"][pad_e]] == 0)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_reader_over_ranks(shard_folder, size):
    readers = [ShardReader(shard_folder, "train", rank=r, size=size, graphs_per_step=2, seed=3)
               for r in range(size)]
    steps = {rd.steps_per_epoch for rd in readers}
    assert len(steps) == 1
    seen = []
    for rd in readers:
        shapes = {(s.n_nodes, s.n_edges): s for s in rd.bucket_shapes}
        batches = list(rd.epoch(epoch=1, prefetch=2))
        assert len(batches) == rd.steps_per_epoch
        for b in batches:
            check_batch(b, shapes[(len(b["node_mask"]), len(b["edge_mask"]))])
            seen.extend((n, e) for n, e in zip(b["n_node"], b["n_edge"]) if n > 0)
        rd.close()
    all_sizes = sorted((int(n), int(e)) for rd in readers[:1] for n, e in zip(rd.graph_n_node, rd.graph_n_edge))
    assert sorted((int(n), int(e)) for n, e in seen) == all_sizes  # each real graph exactly once


def test_reader_shapes_and_content(shard_folder):
    rd = ShardReader(shard_folder, "val", shuffle=False, extras=("hit_id", "event_id"))
    assert rd.n_graphs == 2 and rd.steps_per_epoch == 2
    shape = rd.bucket_shapes
    assert [(s.bucket, s.n_nodes, s.n_edges, s.n_features, s.n_graphs) for s in shape] == [(0, 40, 120, 3, 1)]
    batches = list(rd.epoch(0, prefetch=0))
    with Shard(shard_folder / rd.shards[0].file) as shard:
        g = shard.unpadded(0)
    b = batches[0]
    np.testing.assert_array_equal(b["nodes"][: g.n_node], g.nodes)
    np.testing.assert_array_equal(b["senders"][: g.n_edge], g.senders)
    np.testing.assert_array_equal(b["edge_labels"][: g.n_edge], g.edge_labels.astype(np.float32))
    np.testing.assert_array_equal(b["hit_id"][: g.n_node], g.hit_id)
    assert b["event_id"].tolist() == [g.event_id]


def test_filler_graphs_are_empty():
    g = random_graph(10, 30, seed=4)
    from trkx_tf.graphs.shard_writer import pad_graphs
    padded = {k: v[0] for k, v in pad_graphs([g], 16, 32).items()}
    b = assemble_batch([padded, None], 16, 32, 3)
    assert b["n_node"].tolist() == [10, 0] and b["n_edge"].tolist() == [30, 0]
    assert b["node_mask"][16:].sum() == 0 and b["edge_mask"][32:].sum() == 0
    assert b["edge_weights"][32:].sum() == 0 and b["edge_labels"][32:].sum() == 0
    assert np.all(b["senders"][30:] == 10)  # first padded node of the batch


def test_corrupt_shard_found_by_reader(shard_folder, tmp_path):
    import shutil

    import h5py
    folder = tmp_path / "copy"
    shutil.copytree(shard_folder, folder)
    bad = sorted(folder.glob("train-b01-*.h5"))[0]
    with h5py.File(bad, "r+") as f:
        f["nodes"][0, 0, 0] += 1.0
    rd = ShardReader(folder, "train", shuffle=False)
    with pytest.raises(ShardError, match="checksum mismatch"):
        list(rd.epoch(0, prefetch=2))  # raised through the prefetch thread


def test_reader_errors(tmp_path, shard_folder):
    with pytest.raises(ShardError, match="no manifest"):
        ShardReader(tmp_path)
    with pytest.raises(ShardError, match="rank 2"):
        ShardReader(shard_folder, rank=2, size=2)
    with pytest.raises(ShardError, match="unknown extra"):
        ShardReader(shard_folder, extras=("bogus",))
    (tmp_path / "manifest.json").write_text('{"schema_version": 99, "shards": []}')
    with pytest.raises(ShardError, match="schema version 99"):
        ShardReader(tmp_path)


def test_batch_source_protocol_and_resume(shard_folder):
    rd = ShardReader(shard_folder, "train", rank=1, size=2, seed=9)
    full = list(rd.batches(epoch=4))
    assert rd.num_batches(4) == len(full) == rd.steps_per_epoch
    resumed = list(rd.batches(epoch=4, start=2))
    assert len(resumed) == len(full) - 2
    for a, b in zip(full[2:], resumed):
        for k in BATCH_KEYS:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.slow
def test_tf_dataset_has_each_buckets_static_shape(shard_folder):
    tf = pytest.importorskip("tensorflow")
    from trkx_tf.graphs.reader import to_tf_dataset

    rd = ShardReader(shard_folder, "train", size=1, graphs_per_step=2, seed=1)
    shapes = {(s.n_nodes, s.n_edges) for s in rd.bucket_shapes}
    seen = set()
    for batch in to_tf_dataset(rd, epoch=0):
        assert batch["senders"].dtype == tf.int32
        seen.add((int(batch["nodes"].shape[0]), int(batch["senders"].shape[0])))
    assert seen == shapes


def test_batches_carry_the_edge_features(shard_folder):
    from trkx_tf.graphs.features import EDGE_FEATURES, edge_features

    reader = ShardReader(shard_folder, "train", size=1, graphs_per_step=2, shuffle=False)
    step = reader.plan(0)[0]
    b = reader.batch(step)
    assert b["edges"].shape == (len(b["senders"]), len(EDGE_FEATURES)) and b["edges"].dtype == np.float32
    real = b["edge_mask"] > 0
    # the features of a batch's real edges are those of its (batch-indexed) nodes; padding is 0
    np.testing.assert_allclose(b["edges"][real], edge_features(b["nodes"], b["senders"][real],
                                                               b["receivers"][real]), rtol=1e-5, atol=1e-6)
    assert np.all(b["edges"][~real] == 0)
