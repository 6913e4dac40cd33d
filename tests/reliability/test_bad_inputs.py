"""Bad inputs through the real console scripts: one clear error line, exit status 2, no traceback, no partial output.

Inputs (TrackML CSV, configs) go through ``trkx-build``; shards and checkpoints through ``trkx-train`` (and
``trkx-infer`` for a missing checkpoint). Each case compares the output folder before and after.
"""

import gzip
import json
import shutil

import h5py
import pandas as pd
import pytest

from rel_tools import EVENT0, build_args, copy_event, listing, one_error_line, run_cli

HITS, TRUTH, PARTICLES = (f"{EVENT0}-{p}.csv" for p in ("hits", "truth", "particles"))


# ---------------------------------------------------------------------------------------- damaged TrackML events
def cut_mid_line(folder):
    raw = (folder / HITS).read_bytes()
    (folder / HITS).write_bytes(raw[: len(raw) // 2 + 7])  # mid-file, and not at a line end
    assert not (folder / HITS).read_bytes().endswith(b"\n")


def cut_at_line_end(folder):
    lines = (folder / HITS).read_text().splitlines(keepends=True)
    (folder / HITS).write_text("".join(lines[: len(lines) // 2]))  # a clean cut: hits lack their truth partners


def cut_gzip(folder):
    raw = gzip.compress((folder / HITS).read_bytes())
    (folder / HITS).unlink()
    (folder / (HITS + ".gz")).write_bytes(raw[: len(raw) // 2])


def drop_column(folder):
    pd.read_csv(folder / HITS).drop(columns=["z"]).to_csv(folder / HITS, index=False)


def nan_coordinate(folder):
    hits = pd.read_csv(folder / HITS)
    hits.loc[17, "x"] = float("nan")
    hits.to_csv(folder / HITS, index=False)


def duplicate_hit_id(folder):
    hits = pd.read_csv(folder / HITS)
    hits.loc[40, "hit_id"] = hits.loc[39, "hit_id"]
    hits.to_csv(folder / HITS, index=False)


def truth_hit_not_in_hits(folder):
    truth = pd.read_csv(folder / TRUTH)
    truth.loc[5, "hit_id"] = 10_000_000
    truth.to_csv(folder / TRUTH, index=False)


def empty_event(folder):
    for name in (HITS, TRUTH, PARTICLES):
        header = (folder / name).read_text().splitlines()[0]
        (folder / name).write_text(header + "\n")


def empty_file(folder):
    (folder / HITS).write_bytes(b"")


def binary_garbage(folder):
    (folder / HITS).write_bytes(bytes(range(256)) * 40)


def text_in_numbers(folder):
    hits = pd.read_csv(folder / HITS).astype({"y": object})
    hits.loc[3, "y"] = "12.5mm"
    hits.to_csv(folder / HITS, index=False)


EVENT_CASES = {
    # case: (damage, file named in the message, words in the message)
    "truncated_mid_line": (cut_mid_line, HITS, ["truncated"]),
    "truncated_at_line_end": (cut_at_line_end, TRUTH, ["values not in", HITS]),  # caught by the truth links
    "truncated_gzip": (cut_gzip, HITS + ".gz", ["truncated"]),
    "missing_column": (drop_column, HITS, ["missing column 'z'"]),
    "nan_coordinates": (nan_coordinate, HITS, ["'x'", "NaN", "first: 17"]),
    "duplicate_hit_id": (duplicate_hit_id, HITS, ["'hit_id'", "duplicate", "first: 40"]),
    "truth_hit_missing_from_hits": (truth_hit_not_in_hits, TRUTH, ["not in", HITS, "first: 5"]),
    "empty_event": (empty_event, HITS, ["empty event"]),
    "empty_file": (empty_file, HITS, ["empty"]),
    "binary_garbage": (binary_garbage, HITS, []),
    "text_in_numbers": (text_in_numbers, HITS, ["'y'", "not numeric"]),
}


@pytest.mark.parametrize("case", sorted(EVENT_CASES))
def test_bad_event_one_line_and_no_output(case, events_dir, tmp_path):
    damage, named, words = EVENT_CASES[case]
    folder = copy_event(events_dir, tmp_path / "events")
    damage(folder)
    inputs = listing(folder)
    out = tmp_path / "out" / "shards"  # neither folder exists yet
    proc = run_cli("trkx-build", *build_args(folder, out))
    msg = one_error_line(proc, "trkx-build")
    assert named in msg, msg
    for word in words:
        assert word in msg, msg
    assert "fix or remove event 0" in msg and str(folder) in msg, msg  # what to do, and where
    assert not (tmp_path / "out").exists(), listing(tmp_path / "out")  # no partial output, no empty folders
    assert listing(folder) == inputs  # the input is not touched


def test_bad_event_leaves_an_earlier_build_untouched(events_dir, tmp_path):
    folder = copy_event(events_dir, tmp_path / "events")
    out = tmp_path / "shards"
    assert run_cli("trkx-build", *build_args(folder, out)).returncode == 0
    before = listing(out)
    nan_coordinate(folder)
    one_error_line(run_cli("trkx-build", *build_args(folder, out)), "trkx-build")
    assert listing(out) == before  # same files, sizes, mtimes and inodes: nothing written, nothing left


# ------------------------------------------------------------------------------------------------------ configs
def test_unknown_config_key_in_file(events_dir, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("graph:\n  builder: module_map\n  bucket_overhed: 1.2\n")
    proc = run_cli("trkx-build", "--config", cfg, *build_args(events_dir, tmp_path / "out"))
    msg = one_error_line(proc, "trkx-build")
    assert str(cfg) in msg and "unknown key 'graph.bucket_overhed'" in msg
    assert not (tmp_path / "out").exists()


def test_wrong_type_in_file(events_dir, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("graph:\n  graphs_per_shard: many\n")
    msg = one_error_line(run_cli("trkx-build", "--config", cfg, "--input", events_dir, "--out", tmp_path / "o"),
                         "trkx-build")
    assert str(cfg) in msg and "graph.graphs_per_shard" in msg and "'many'" in msg
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override, key", [("graph.max_bucket=4", "graph.max_bucket"),
                                           ("data.val_fraction=half", "data.val_fraction"),
                                           ("graph=3", "graph")])
def test_bad_override(override, key, events_dir, tmp_path):
    proc = run_cli("trkx-build", *build_args(events_dir, tmp_path / "out", "--set", override))
    msg = one_error_line(proc, "trkx-build")
    assert f"--set {override}" in msg and key in msg
    assert not (tmp_path / "out").exists()


def test_unknown_backend_is_a_config_error(shards_dir, train_config, tmp_path):
    proc = run_cli("trkx-train", "--config", train_config, "--set", "backend.name=nccl",
                   "--set", f"data.shards_dir={shards_dir}", "--set", f"run.out_dir={tmp_path / 'runs'}")
    msg = one_error_line(proc, "trkx-train")
    assert "backend.name" in msg and "'nccl'" in msg and "horovod" in msg  # the key, the value, the choices
    assert not (tmp_path / "runs").exists()


def test_unknown_backend_in_the_library():
    from trkx_tf.errors import BackendError
    from trkx_tf.train.distributed import make_backend

    with pytest.raises(BackendError, match=r"unknown backend 'bogus': choose one of auto, single, horovod, tfdist"):
        make_backend("bogus")


# ------------------------------------------------------------------------------------------------------ buckets
def test_graph_larger_than_every_bucket_gets_its_own_and_is_reported(events_dir, tmp_path):
    from trkx_tf.graphs.reader import ShardReader

    out = tmp_path / "out"
    proc = run_cli("trkx-build", *build_args(events_dir, out, "--set", "graph.buckets=[[64, 64]]"))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    oversize = manifest["oversize"]
    assert len(oversize) == 3  # every whole event is larger than 64 x 64: none dropped
    line = next(x for x in proc.stdout.splitlines() if "oversize" in x)
    for o in oversize:  # the summary names each graph with its size
        assert f"event {o['event_id']} {o['n_node']}x{o['n_edge']}" in line, line
    reader = ShardReader(out, None, shuffle=False)
    assert reader.n_graphs == 3
    assert sorted(reader.graph_n_node.tolist()) == sorted(o["n_node"] for o in oversize)
    for i in range(reader.n_graphs):  # each one is readable, whole, within its own bucket's budget
        g = reader.read_graph(i)
        nb, eb = reader.budgets[int(reader.graph_bucket[i])]
        assert int(g["n_node"]) <= nb and int(g["n_edge"]) <= eb and (nb, eb) != (64, 64)


# ------------------------------------------------------------------------------------------------------- shards
def _shard_copy(shards_dir, tmp_path):
    folder = tmp_path / "shards"
    shutil.copytree(shards_dir, folder)
    return folder, sorted(folder.glob("train-*.h5"))[0]


def _train(train_config, shards, runs, *more):
    return run_cli("trkx-train", "--config", train_config, "--set", f"data.shards_dir={shards}",
                   "--set", f"run.out_dir={runs}", "--set", "run.name=r", *more)


def test_truncated_shard(shards_dir, train_config, tmp_path):
    folder, shard = _shard_copy(shards_dir, tmp_path)
    raw = shard.read_bytes()
    shard.write_bytes(raw[: len(raw) * 2 // 3])
    msg = one_error_line(_train(train_config, folder, tmp_path / "runs"), "trkx-train")
    assert str(shard) in msg and "trkx-build" in msg, msg
    assert not (tmp_path / "runs").exists()  # refused before the run folder is made


def test_shard_schema_version_mismatch(shards_dir, train_config, tmp_path):
    folder, shard = _shard_copy(shards_dir, tmp_path)
    with h5py.File(shard, "r+") as f:
        f.attrs["schema_version"] = 1  # an older schema (without the edges dataset)
    msg = one_error_line(_train(train_config, folder, tmp_path / "runs"), "trkx-train")
    assert str(shard) in msg and "schema version 1" in msg and "trkx-build" in msg, msg
    assert not (tmp_path / "runs").exists()


def test_flipped_bytes_in_shard_data(shards_dir, train_config, tmp_path):
    folder, shard = _shard_copy(shards_dir, tmp_path)
    with h5py.File(shard, "r") as f:
        chunk = f["nodes"].id.get_chunk_info(0)
    raw = bytearray(shard.read_bytes())
    for k in range(8):
        raw[chunk.byte_offset + chunk.size // 3 + k] ^= 0x5A
    shard.write_bytes(bytes(raw))
    runs = tmp_path / "runs"
    msg = one_error_line(_train(train_config, folder, runs), "trkx-train")
    assert str(shard) in msg and "corrupt" in msg, msg
    # the data of a graph is verified when it is read: the run folder may exist, but nothing was trained or saved
    assert not list((runs / "r" / "checkpoints").glob("*")) if (runs / "r").exists() else True
    assert not [p for p in listing(runs) if ".tmp" in p]


# -------------------------------------------------------------------------------------------------- checkpoints
def test_missing_checkpoint(events_dir, shards_dir, tmp_path):
    out = tmp_path / "tracks"
    proc = run_cli("trkx-infer", "--input", events_dir, "--out", out, "--no-progress",
                   "--module-map", shards_dir / "module_map.npz", "--gnn-ckpt", tmp_path / "nowhere" / "ckpt-3")
    msg = one_error_line(proc, "trkx-infer")
    assert str(tmp_path / "nowhere" / "ckpt-3") in msg and "checkpoint not found" in msg, msg
    assert not out.exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, one_bucket_shards):
    """A run folder holding the checkpoint of a GNN of width 8 (one short epoch)."""
    root = tmp_path_factory.mktemp("trained")
    cfg = root / "train.yaml"
    cfg.write_text("run: {log_level: WARNING}\nmodel:\n  gnn: {hidden: 8, steps: 1}\n"
                   "train: {model: gnn, epochs: 1, max_steps_per_epoch: 1}\nbackend: {name: single}\n")
    proc = _train(cfg, one_bucket_shards, root / "runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((root / "runs" / "r" / "checkpoints").glob("ckpt-*.index"))
    return cfg, root / "runs"


@pytest.fixture(scope="module")
def incompatible(trained_run, one_bucket_shards, tmp_path_factory):
    """trkx-train of a GNN of width 16 in a copy of the width-8 run: (process, run copy, original run, before)."""
    cfg, runs = trained_run
    work = tmp_path_factory.mktemp("incompatible") / "runs"
    shutil.copytree(runs, work)
    before = listing(work / "r" / "checkpoints")
    return _train(cfg, one_bucket_shards, work, "--set", "model.gnn.hidden=16"), work / "r", runs / "r", before


def test_incompatible_checkpoint(incompatible):
    proc, run, original, before = incompatible
    msg = one_error_line(proc, "trkx-train")
    assert str(run / "checkpoints" / "ckpt-") in msg and "does not fit" in msg, msg
    assert listing(run / "checkpoints") == before  # the checkpoint is neither replaced nor removed
    assert (run / "metrics.jsonl").read_text() == (original / "metrics.jsonl").read_text()


def test_incompatible_checkpoint_leaves_the_run_config(incompatible):
    proc, run, original, _ = incompatible
    assert proc.returncode == 2
    assert (run / "config.yaml").read_text() == (original / "config.yaml").read_text()
