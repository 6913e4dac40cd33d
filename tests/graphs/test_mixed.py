"""The mixed sim/real reader: the ratio, the dealing (one bucket per step, the same steps on every rank), errors."""

import numpy as np
import pytest

from toy import make_event
from trkx_tf.config import load_config
from trkx_tf.errors import ShardError
from trkx_tf.graphs.build import build_shards
from trkx_tf.graphs.mixed import MixedReader, real_counts
from trkx_tf.graphs.epoch_plan import FILLER
from trkx_tf.graphs.reader import ShardReader
from trkx_tf.reco.build import build_real_graphs
from trkx_tf.trackml.io import Event, write_event
from trkx_tf.trackml.partial import partial_truth_from_full


def test_real_counts_by_hand():
    buckets = np.array([0, 0, 0, 1])  # 3 real graphs in bucket 0, 1 in bucket 1
    assert real_counts(buckets, n_sim=6, fraction=0.5) == {0: 5, 1: 1}  # 6 real: 4.5 / 1.5; a tie: the first
    assert real_counts(buckets, n_sim=6, fraction=0.25) == {0: 2, 1: 0}  # 2 real: 1.5 / 0.5 -> 2 + 0
    assert real_counts(buckets, n_sim=6, fraction=0.0) == {0: 0, 1: 0}
    assert real_counts(buckets, n_sim=6, fraction=1.0) == {0: 3, 1: 1}
    assert real_counts(buckets, n_sim=0, fraction=0.3) == {0: 3, 1: 1}
    with pytest.raises(ShardError, match="fraction"):
        real_counts(buckets, 6, 1.5)


def write_toy_sets(root, n_sim=4, n_real=5):
    """Simulated toy events with their truth, and 'real' toy events with a partial truth only."""
    for i in range(n_sim):
        ev = make_event(event_id=300 + i, n_particles=60, noise=15, seed=60 + i)
        write_event(root / "sim", Event(ev.event_id, ev.hits, ev.particles, ev.truth))
    for i in range(n_real):
        ev = make_event(event_id=1001 + i, n_particles=50 + 5 * i, noise=15, seed=80 + i)
        write_event(root / "real", Event(ev.event_id, ev.hits,
                                         partial_truth=partial_truth_from_full(ev.hits, ev.particles, ev.truth)))


def mixed_config(root, *more):
    return load_config(None, [
        "data.val_fraction=0.25", f"data.shards_dir={root / 'sim-shards'}", "graph.graphs_per_shard=2",
        "graph.max_buckets=2", "graph.sectors.phi=2",
        f"data.real={{events_dir: {root / 'real'}, shards_dir: {root / 'real-shards'}, train_events: 4, "
        f"val_events: 1, fraction: 0.5}}", *more])


@pytest.fixture(scope="session")
def mixed_shards(tmp_path_factory):
    """Simulated shards (3 train events x 2 sectors, 1 val) and masked-label real shards (4 train x 2, 1 val)."""
    root = tmp_path_factory.mktemp("mixed")
    write_toy_sets(root)
    cfg = mixed_config(root)
    build_shards(cfg, root / "sim", root / "sim-shards", workers=1, progress=False)
    cfg = mixed_config(root, f"graph.module_map.path={root / 'sim-shards' / 'module_map.npz'}")
    summary = build_real_graphs(cfg, workers=1, progress=False)
    assert summary.splits == {"train": [1001, 1002, 1003, 1004], "val": [1005]}
    return root


def test_epoch_mix_and_dealing(mixed_shards):
    sim, real = mixed_shards / "sim-shards", mixed_shards / "real-shards"
    with ShardReader(sim, "train") as s, ShardReader(real, "train") as r:
        n_sim, n_real = s.n_graphs, r.n_graphs
    assert (n_sim, n_real) == (6, 8)
    readers = [MixedReader(sim, real, "train", fraction=0.25, rank=k, size=2, graphs_per_step=2, seed=5)
               for k in range(2)]
    try:
        a = readers[0]
        assert a.n_real_per_epoch == 2 and a.n_graphs == 8  # 0.25 / 0.75 x 6
        per_epoch = []
        for epoch in range(3):
            plans = [rd.plan(epoch) for rd in readers]
            assert len(plans[0]) == len(plans[1]) == a.steps_per_epoch == a.num_batches(epoch)
            assert [s.bucket for s in plans[0]] == [s.bucket for s in plans[1]]  # every rank, the same bucket
            ids = np.concatenate([s.graphs.ravel() for s in plans[0]])
            ids = ids[ids != FILLER]
            assert sorted(ids[ids < n_sim].tolist()) == list(range(n_sim))  # every simulated graph once
            real_ids = ids[ids >= n_sim] - n_sim
            assert len(real_ids) == 2 and len(set(real_ids.tolist())) == 2
            per_epoch.append(sorted(real_ids.tolist()))
            for s in plans[0]:  # a step's graphs are all of its bucket: simulated or real, never both
                real_step = s.graphs[s.graphs != FILLER] >= n_sim
                assert real_step.all() or not real_step.any()
                assert (s.bucket >= a._offset) == bool(real_step.all())
            batch = readers[1].batch(plans[1][0])
            nb, eb = a.budgets[plans[1][0].bucket]
            assert batch["nodes"].shape == (2 * nb, 3) and batch["edge_labels"].shape == (2 * eb,)
        assert len({tuple(x) for x in per_epoch}) > 1  # another draw of real graphs each epoch
        # with fraction 0.75 the 8 real graphs are repeated: 18 per epoch, each read 2 or 3 times
        with MixedReader(sim, real, "train", fraction=0.75, seed=5) as m:
            ids = np.concatenate([s.graphs.ravel() for s in m.plan(0)])
            use = np.bincount(ids[ids >= n_sim] - n_sim, minlength=n_real)
            assert use.sum() == 18 and use.min() >= 2 and use.max() <= 3
            batches = list(m.batches(0))
            assert len(batches) == m.steps_per_epoch
            # masked real graphs keep their weight-0 edges: some real edge of the epoch weighs 0
            assert any(((b["edge_mask"] > 0) & (b["edge_weights"] == 0)).any() for b in batches)
    finally:
        for rd in readers:
            rd.close()


def test_mixed_reader_refuses_other_features(mixed_shards, tmp_path):
    cfg = mixed_config(mixed_shards, f"graph.module_map.path={mixed_shards / 'sim-shards' / 'module_map.npz'}",
                       "graph.r_scale=500")
    build_real_graphs(cfg, out_dir=tmp_path / "r500", workers=1, progress=False)
    with pytest.raises(ShardError, match="r_scale"):
        MixedReader(mixed_shards / "sim-shards", tmp_path / "r500", "train", fraction=0.5)
