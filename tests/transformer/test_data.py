"""Reduced events on the real geometry and their hits-only shards."""

import h5py
import numpy as np
import pytest

from trkx_tf.errors import ConfigError, ShardError
from trkx_tf.trackml.io import list_events, read_event
from trkx_tf.transformer.data import TARGETS, hit_targets, real_subset, reduce_event
from trkx_tf.transformer.shards import HitBatchSource, read_hit_shards


def test_reduced_events_hold_the_asked_particles_and_their_hits_only(tiny_set):
    source = read_event(tiny_set / "source", 0)
    ids = list_events(tiny_set / "events")
    assert len(ids) == 12
    seen = set()
    for event_id in ids:
        event = read_event(tiny_set / "events", event_id)
        pid = event.truth["particle_id"].to_numpy()
        assert 10 <= len(np.unique(pid)) <= 20 and (pid != 0).all()  # no noise hits
        assert event.truth["particle_id"].value_counts().min() >= 3
        assert event.truth["weight"].sum() == pytest.approx(1.0, abs=1e-5)
        key = (event_id // 1000, frozenset(pid.tolist()))
        assert not any(k[0] == key[0] and k[1] & key[1] for k in seen)  # disjoint within a source event
        seen.add(key)
        if event_id // 1000 == 0:  # the hits are the source event's hits, unchanged
            src = source.hits.set_index("hit_id").loc[event.hits["hit_id"]]
            np.testing.assert_array_equal(src["x"].to_numpy(), event.hits["x"].to_numpy())
        targets, _ = hit_targets(event)
        assert targets.shape == (len(event.hits), len(TARGETS))
        np.testing.assert_allclose(targets[:, 0] ** 2 + targets[:, 1] ** 2, 1.0, rtol=1e-5)


def test_bad_ranges_are_refused(tiny_set):
    event = read_event(tiny_set / "source", 0)
    with pytest.raises(ConfigError, match="particles_min"):
        reduce_event(event, np.random.default_rng(0), 50, 10)
    assert reduce_event(event, np.random.default_rng(0), 10**6, 10**6) == []


def test_shards_round_trip_and_a_damaged_shard_is_refused(tiny_set, tmp_path):
    train = read_hit_shards(tiny_set / "shards", "train")
    val = read_hit_shards(tiny_set / "shards", "val")
    n_train = sum(len(s["n_hit"]) for s in train)
    assert n_train + sum(len(s["n_hit"]) for s in val) == 12
    for s in train:
        assert s["hits"].shape[1] % 32 == 0 and (s["n_hit"] <= s["hits"].shape[1]).all()
        for i, n in enumerate(s["n_hit"]):
            assert (s["hit_weights"][i, n:] == 0).all() and (s["hit_weights"][i, :n] == 1).all()
    # a flipped value: the checksum catches it
    import shutil

    shutil.copytree(tiny_set / "shards", tmp_path / "shards")
    first = sorted((tmp_path / "shards").glob("train-*.h5"))[0]
    with h5py.File(first, "r+") as f:
        f["targets"][0, 0, 0] += 1.0
    with pytest.raises(ShardError, match="checksum"):
        read_hit_shards(tmp_path / "shards", "train")
    with pytest.raises(ShardError, match="manifest"):
        read_hit_shards(tmp_path / "nothing", "train")


def test_two_ranks_see_the_global_batches_of_one(tiny_set):
    shards = read_hit_shards(tiny_set / "shards", "train")
    one = HitBatchSource(shards, 2, 0, 1, seed=3)
    ranks = [HitBatchSource(shards, 1, r, 2, seed=3) for r in range(2)]
    assert one.num_batches(1) == ranks[0].num_batches(1) == ranks[1].num_batches(1) > 0
    for whole, a, b in zip(one.batches(1), ranks[0].batches(1), ranks[1].batches(1)):
        for k in whole:
            np.testing.assert_array_equal(whole[k], np.concatenate([a[k], b[k]]))
    assert [b["mask"].sum() for b in one.batches(1, 1)] == [b["mask"].sum() for b in list(one.batches(1))[1:]]


def test_real_subset_keeps_the_labelled_hits(shared_trackml):
    folder = shared_trackml / "labelled"
    if not folder.is_dir():
        pytest.skip("no real labelled events")
    event = read_event(folder, list_events(folder)[0], parts=("hits", "partial-truth"))
    sub = real_subset(event)
    assert len(sub.hits) == len(event.partial_truth) < len(event.hits)
    assert set(sub.hits["hit_id"]) == set(event.partial_truth["hit_id"])


def test_real_subsets_refuse_the_test_event_and_unknown_ids_writing_nothing(shared_trackml, tmp_path):
    from trkx_tf.errors import DataError
    from trkx_tf.transformer.data import make_real_subsets

    folder = shared_trackml / "labelled"
    if not folder.is_dir():
        pytest.skip("no real labelled events")
    first = list_events(folder)[0]
    for ids in ([first, 1000], [first, 999999]):
        with pytest.raises(DataError):
            make_real_subsets(folder, tmp_path / "out", ids)
        assert not (tmp_path / "out").exists()
    assert make_real_subsets(folder, tmp_path / "out", [first]) == [first]
    assert read_event(tmp_path / "out", first, parts=("hits", "partial-truth")).partial_truth is not None
