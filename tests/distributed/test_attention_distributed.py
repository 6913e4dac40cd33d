"""The attention GNN trains exactly under Horovod and tf.distribute, through the unchanged trainers: two ranks with
one graph each per step reproduce one rank with both graphs per step (as tests/distributed/test_correctness.py
checks for the Interaction Network)."""

import json
import subprocess
import sys

import pytest

from tests.distributed.test_correctness import (WORKER, _assert_matches_reference, _check, _env, _horovodrun,
                                                _load, _spec, _tfdist)

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]
AGNN = ["model.gnn.kind=attention", "model.gnn.attention_hidden=16", "model.gnn.attention_layers=2",
        "model.gnn.aggregation=both"]


@pytest.fixture(scope="module")
def agnn_reference(tiny_shards, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("agnn_ref")
    spec = _spec(tmp, "single", "single", tiny_shards, graphs_per_step=2, overrides=AGNN)
    _check(subprocess.run([sys.executable, str(WORKER), json.dumps(spec)], capture_output=True, text=True,
                          env=_env(), timeout=600))
    return _load(spec["out"], 1)[0]


def _agnn_variable_count():
    import tensorflow as tf

    from trkx_tf.config import load_config
    from trkx_tf.graphs.synthetic import random_graph
    from trkx_tf.models.attention import AttentionGNN
    from trkx_tf.models.registry import build_model

    model = build_model(load_config(None, AGNN).model, "gnn")
    assert isinstance(model, AttentionGNN)
    model({k: tf.constant(v) for k, v in random_graph(10, 20, 3).items()})
    return len(model.trainable_variables)


def test_horovod_two_ranks_match_one(tiny_shards, agnn_reference, tmp_path, venv_bin):
    spec = _spec(tmp_path, "gloo", "horovod", tiny_shards, graphs_per_step=1, overrides=AGNN)
    _check(_horovodrun(venv_bin, spec, "gloo"))
    _assert_matches_reference(_load(spec["out"], 2), agnn_reference)
    # the ranks trained the AGNN, not the IN: as many variables as the AGNN of this config has
    assert len([k for k in agnn_reference if k.startswith("var")]) == _agnn_variable_count()


def test_tfdist_two_workers_match_one(tiny_shards, agnn_reference, tmp_path):
    spec = _spec(tmp_path, "tfdist", "tfdist", tiny_shards, graphs_per_step=1, overrides=AGNN)
    for proc in _tfdist(spec):
        _check(proc)
    _assert_matches_reference(_load(spec["out"], 2), agnn_reference)
