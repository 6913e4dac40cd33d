"""Distributed training is exact: real ranks over Gloo, MPI and tf.distribute agree with one process.

* After training, every rank holds the same weights.
* Two ranks with one graph each per step reproduce one rank with both graphs per step (same global batch):
  the same epoch losses and weights within float tolerance. This checks the summed gradients and the loss
  normalised by the global (allreduced) weight sum, on graphs of different sizes and with an odd graph count.
* One process with two tf.distribute replicas (MirroredStrategy over the CPU split into two logical devices)
  reproduces the same reference, and both replicas hold the same weights.
* Ranks with different numbers of batches agree on the step count and do not stall.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("worker.py")
pytestmark = [pytest.mark.multiproc, pytest.mark.slow]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def _check(proc):
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])


@pytest.fixture(scope="module")
def shards(tiny_shards):
    return tiny_shards


def _spec(tmp_path, name, backend, shards, graphs_per_step, **extra):
    return {"backend": backend, "shards": str(shards), "out": str(tmp_path / name),
            "graphs_per_step": graphs_per_step, "epochs": 2, "model": "gnn", **extra}


def _load(folder, size):
    return [dict(np.load(Path(folder) / f"rank{r}.npz")) for r in range(size)]


def _horovodrun(venv_bin, spec, controller, np_=2):
    cmd = [str(venv_bin / "horovodrun"), "-np", str(np_), "-H", f"localhost:{np_}", f"--{controller}",
           sys.executable, str(WORKER), json.dumps(spec)]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _tfdist(spec, n=2):
    workers = [f"localhost:{p}" for p in _free_ports(n)]
    procs = []
    for i in range(n):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=dict(_env(), TF_CONFIG=tf_config)))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


@pytest.fixture(scope="module")
def reference(shards, tmp_path_factory):
    """One process, two graphs per step: the global batch every 2-rank run must reproduce."""
    tmp = tmp_path_factory.mktemp("ref")
    spec = _spec(tmp, "single", "single", shards, graphs_per_step=2)
    _check(subprocess.run([sys.executable, str(WORKER), json.dumps(spec)], capture_output=True, text=True,
                          env=_env(), timeout=600))
    return _load(spec["out"], 1)[0]


def _assert_matches_reference(ranks, reference):
    names = [k for k in reference if k.startswith("var")]
    assert names
    for k in names:  # identical on every rank
        np.testing.assert_array_equal(ranks[0][k], ranks[1][k])
    assert int(ranks[0]["steps"]) == int(reference["steps"]) == 4  # 3 graphs -> 2 global steps x 2 epochs
    np.testing.assert_allclose(ranks[0]["epoch_losses"], reference["epoch_losses"], rtol=2e-5, atol=1e-6)
    for k in names:
        np.testing.assert_allclose(ranks[0][k], reference[k], rtol=1e-3, atol=2e-5)
    # training moved the weights (the comparison is not between two untouched initialisations)
    assert reference["epoch_losses"][1] != reference["epoch_losses"][0]


@pytest.mark.parametrize("controller", ["gloo", "mpi"])
def test_horovod_two_ranks_match_one(controller, shards, reference, tmp_path, venv_bin):
    spec = _spec(tmp_path, controller, "horovod", shards, graphs_per_step=1)
    _check(_horovodrun(venv_bin, spec, controller))
    _assert_matches_reference(_load(spec["out"], 2), reference)


def test_tfdist_two_workers_match_one(shards, reference, tmp_path):
    spec = _spec(tmp_path, "tfdist", "tfdist", shards, graphs_per_step=1)
    for proc in _tfdist(spec):
        _check(proc)
    _assert_matches_reference(_load(spec["out"], 2), reference)


def test_mirrored_two_replicas_in_one_process_match_one(shards, reference, tmp_path):
    """MirroredStrategy, 2 logical CPU devices: data ranks 0 and 1 are the process's two replicas."""
    spec = _spec(tmp_path, "mirrored", "tfdist", shards, graphs_per_step=1, local_replicas=2)
    proc = subprocess.run([sys.executable, str(WORKER), json.dumps(spec)], capture_output=True, text=True,
                          env=_env(), timeout=600)
    _check(proc)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rank": 0, "size": 1, "steps": 4}
    arrays = _load(spec["out"], 1)[0]
    names = [k for k in arrays if k.startswith("var")]
    for k in names:  # each replica's own copy of every variable (not one shared plain variable)
        np.testing.assert_array_equal(arrays[f"replica0_{k}"], arrays[f"replica1_{k}"])
        np.testing.assert_array_equal(arrays[f"replica0_{k}"], arrays[k])
    _assert_matches_reference([arrays, arrays], reference)


def test_uneven_batches_do_not_stall(tmp_path, venv_bin):
    """Rank 0 has 2 batches, rank 1 has 3: both run the agreed minimum (2 per epoch) and finish."""
    spec = _spec(tmp_path, "uneven", "horovod", None, graphs_per_step=1, uneven=True, model="filter")
    _check(_horovodrun(venv_bin, spec, "gloo"))
    ranks = _load(spec["out"], 2)
    assert int(ranks[0]["steps"]) == int(ranks[1]["steps"]) == 4
    for k in (k for k in ranks[0] if k.startswith("var")):
        np.testing.assert_array_equal(ranks[0][k], ranks[1][k])
