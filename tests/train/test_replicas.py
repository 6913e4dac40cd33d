"""Stacked replica batches, the zipped replica source, and which backend runs several replicas per process."""

import numpy as np
import pytest

from trkx_tf.errors import BackendError, ConfigError
from trkx_tf.train.distributed import detect_backend, make_backend
from trkx_tf.train.loop import InMemorySource
from trkx_tf.train.replicas import ReplicaSource, split_replicas, stack_replicas

from .conftest import toy_batch


def test_stack_and_split_are_inverse():
    parts = [toy_batch(1), toy_batch(2)]
    stacked = stack_replicas(parts)
    assert stacked["nodes"].shape == (2,) + parts[0]["nodes"].shape
    back = split_replicas(stacked, 2)
    for a, b in zip(parts, back):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert split_replicas(parts[0], 1) == [parts[0]]


def test_replicas_of_one_step_must_share_the_bucket():
    small = toy_batch(1, bucket=(200, 600))
    with pytest.raises(ConfigError, match="same bucket"):
        stack_replicas([toy_batch(1), small])


def test_replica_source_zips_the_replicas_sources():
    a = InMemorySource([toy_batch(s) for s in (0, 1, 2)], shuffle=False)
    b = InMemorySource([toy_batch(s) for s in (3, 4)], shuffle=False)
    source = ReplicaSource([a, b])
    assert source.replicas == 2 and source.num_batches(0) == 2
    got = list(source.batches(0, start=1))
    assert len(got) == 1
    np.testing.assert_array_equal(got[0]["nodes"][0], toy_batch(1)["nodes"])
    np.testing.assert_array_equal(got[0]["nodes"][1], toy_batch(4)["nodes"])
    assert source.shuffle is False  # other attributes come from the first source
    with pytest.raises(ConfigError):
        ReplicaSource([])


def test_several_replicas_per_process_choose_tfdist():
    assert detect_backend({}, local_replicas=2) == "tfdist"
    assert detect_backend({}, local_replicas=1) == "single"
    assert detect_backend({"OMPI_COMM_WORLD_SIZE": "2"}, local_replicas=2) == "horovod"
    for name in ("single", "horovod"):
        with pytest.raises(BackendError, match="one replica per process"):
            make_backend(name, local_replicas=2)
