"""The data stages on MPI ranks (trkx_tf/ranks.py): ``mpirun -np 2 trkx-build | trkx-infer | trkx-simulate`` write the
same bytes as one process, and a rank that fails fails the whole step with its error, on one line, exit 2, with
the previous manifest untouched.

Real ``mpirun`` (Open MPI, ``--oversubscribe``: 2 ranks on however few cores) and the real console scripts.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trkx_tf.ranks import SINGLE, Ranks, ranks_from_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "graphs"))

from toy import make_event, write_event_csv  # noqa: E402

BUILD_SETS = ["--set", "data.val_fraction=0.34", "--set", "graph.graphs_per_shard=2", "--workers", "1",
              "--no-progress"]
MODEL_SETS = ["--set", "model.filter.hidden=8", "--set", "model.filter.layers=2", "--set", "model.gnn.hidden=8",
              "--set", "model.gnn.layers=2", "--set", "model.gnn.steps=2", "--set", "infer.filter_threshold=0.3",
              "--set", "infer.gnn_threshold=0.5"]
WALL_TIME_KEYS = {"seconds", "seconds_per_event"}


def _mpirun(np_, args, timeout=600):
    """``mpirun -np N <console script> args`` (as root where needed, ranks beyond the cores allowed)."""
    exe = str(Path(sys.executable).parent / args[0])
    cmd = [shutil.which("mpirun") or "mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(np_),
           "-x", "TF_CPP_MIN_LOG_LEVEL=2", exe, *map(str, args[1:])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _single(args, timeout=600):
    return subprocess.run([str(Path(sys.executable).parent / args[0]), *map(str, args[1:])], capture_output=True,
                          text=True, timeout=timeout)


def _ok(proc):
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def _without_wall_times(value):
    if isinstance(value, dict):
        return {k: _without_wall_times(v) for k, v in value.items() if k not in WALL_TIME_KEYS}
    if isinstance(value, list):
        return [_without_wall_times(v) for v in value]
    return value


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """7 toy events (an odd number: the ranks get 4 and 3)."""
    folder = tmp_path_factory.mktemp("events")
    for i in range(7):
        write_event_csv(folder, make_event(event_id=100 + i, n_particles=60 + 10 * i, noise=15, seed=20 + i))
    return folder


@pytest.fixture(scope="module")
def one_rank_build(events, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "shards"
    _ok(_single(["trkx-build", "--input", events, "--out", out, *BUILD_SETS]))
    return out


def test_ranks_alone_need_no_mpi():
    ranks = ranks_from_env({})
    assert ranks is SINGLE and ranks.comm is None and ranks.root
    assert ranks.map(lambda share: [x * 2 for x in share], [3, 1, 2]) == [6, 2, 4]
    assert Ranks(1, 3).share(list(range(8))) == [1, 4, 7]  # dealt round robin, whatever the content
    code = "import sys, trkx_tf.ranks; trkx_tf.ranks.ranks_from_env({}); print('mpi4py' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.multiproc
def test_build_on_two_ranks_writes_the_same_shards(events, one_rank_build, tmp_path):
    out = tmp_path / "shards"
    proc = _ok(_mpirun(2, ["trkx-build", "--input", events, "--out", out, *BUILD_SETS]))
    assert proc.stdout.count("trkx-build: 7 events") == 1  # rank 0 alone prints the summary
    one, two = _files(one_rank_build), _files(out)
    assert sorted(one) == sorted(two) and sum(n.endswith(".h5") for n in one) >= 3
    for name in one:
        if name != "manifest.json":
            assert one[name] == two[name], name  # shards, module map and config byte for byte
    m1, m2 = (json.loads(x["manifest.json"]) for x in (one, two))
    assert _without_wall_times(m1) == _without_wall_times(m2)
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.multiproc
def test_a_failing_rank_fails_the_build_with_its_error(events, one_rank_build, tmp_path):
    """Event 101 (the second: rank 1's) has a header-only hits file: rank 1 fails, both stop; rank 0 prints rank
    1's error on one line, exit 2; the earlier build's manifest and shards are untouched."""
    bad = tmp_path / "bad"
    shutil.copytree(events, bad)
    hits = bad / "event000000101-hits.csv"
    hits.write_text(hits.read_text().splitlines()[0] + "\n")
    out = tmp_path / "shards"
    shutil.copytree(one_rank_build, out)
    before = _files(out)
    proc = _mpirun(2, ["trkx-build", "--input", bad, "--out", out, *BUILD_SETS])
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    ours = [line for line in proc.stderr.splitlines() if line.startswith("trkx-build")]
    assert len(ours) == 1 and ours[0].startswith("trkx-build: error:") and "event 101" in ours[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)
    # a new folder is not left behind half made either
    proc = _mpirun(2, ["trkx-build", "--input", bad, "--out", tmp_path / "fresh", *BUILD_SETS])
    assert proc.returncode == 2 and not (tmp_path / "fresh").exists()


def _gnn_checkpoint(folder):
    """An untrained small GNN and filter (the architecture of MODEL_SETS), saved as checkpoints."""
    import tensorflow as tf

    from trkx_tf.config import load_config
    from trkx_tf.train.checkpoints import build_edge_model

    cfg = load_config(None, [s for s in MODEL_SETS if s != "--set"])
    prefixes = {}
    for kind in ("filter", "gnn"):
        tf.random.set_seed(7)
        model = build_edge_model(kind, cfg.model, 3)
        prefixes[kind] = tf.train.Checkpoint(model=model, step=tf.Variable(1)).save(str(folder / kind / "ckpt"))
    return prefixes


@pytest.mark.multiproc
def test_infer_on_two_ranks_writes_the_same_submissions(events, one_rank_build, tmp_path):
    ckpt = _gnn_checkpoint(tmp_path)
    args = ["--input", events, "--filter-ckpt", ckpt["filter"], "--gnn-ckpt", ckpt["gnn"], "--module-map",
            one_rank_build / "module_map.npz", "--no-progress", *MODEL_SETS]
    one = _ok(_single(["trkx-infer", "--out", tmp_path / "one", *args]))
    two = _ok(_mpirun(2, ["trkx-infer", "--out", tmp_path / "two", *args]))
    assert "trkx-infer: 7 events" in one.stdout and two.stdout.count("trkx-infer: 7 events") == 1
    f1, f2 = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(f1) == sorted(f2) and sum(n.endswith("-submission.csv") for n in f1) == 7
    for name in f1:
        if name != "timings.json":
            assert f1[name] == f2[name], name
    t1, t2 = (json.loads(f["timings.json"]) for f in (f1, f2))
    assert [e["event_id"] for e in t2["events"]] == [e["event_id"] for e in t1["events"]] == list(range(100, 107))
    assert [e["n_edges"] for e in t2["events"]] == [e["n_edges"] for e in t1["events"]]
    # a failing rank: event 104 (rank 0's, the fifth) unreadable; no timings.json
    bad = tmp_path / "bad"
    shutil.copytree(events, bad)
    hits = bad / "event000000104-hits.csv"
    hits.write_text(hits.read_text().splitlines()[0] + "\n")
    args[1] = bad
    proc = _mpirun(2, ["trkx-infer", "--out", tmp_path / "three", *args])
    ours = [line for line in proc.stderr.splitlines() if line.startswith("trkx-infer")]
    assert proc.returncode == 2 and len(ours) == 1 and "event000000104" in ours[0], proc.stderr[-2000:]
    assert not (tmp_path / "three" / "timings.json").exists()


@pytest.mark.multiproc
def test_simulate_on_two_ranks_writes_the_same_events(shared_trackml, tmp_path):
    sets = ["--detector", shared_trackml / "detectors.csv.gz", "--events", 3, "--pileup", 1, "--seed", 5,
            "--workers", 1, "--quiet", "--no-cells"]
    _ok(_single(["trkx-simulate", "--out", tmp_path / "one", *sets]))
    proc = _ok(_mpirun(2, ["trkx-simulate", "--out", tmp_path / "two", *sets]))
    assert proc.stdout.count("wrote 3 events") == 1
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert len(one) == 9 and one == two
