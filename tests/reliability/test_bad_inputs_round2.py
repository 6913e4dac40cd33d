"""Bad inputs, round 2 (issue 19): each row of the issue's table, through the real console scripts.

Every case: exit status 2, one line on stderr naming the file (and the event or key where it applies), no
traceback, and nothing left behind (no output folder, no temporary file).
"""

import errno
import gzip
import json
import os
import shutil
import subprocess

import pandas as pd
import pytest

from rel_tools import EVENT0, build_args, copy_event, listing, one_error_line, run_cli

HITS = f"{EVENT0}-hits.csv"


# -------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model(tmp_path_factory, one_bucket_shards):
    """A GNN of width 8 trained one step: (config, checkpoints folder, module map)."""
    root = tmp_path_factory.mktemp("model")
    cfg = root / "train.yaml"
    cfg.write_text("run: {log_level: WARNING}\nmodel:\n  gnn: {hidden: 8, steps: 1}\n"
                   "train: {model: gnn, epochs: 1, max_steps_per_epoch: 1}\nbackend: {name: single}\n")
    proc = run_cli("trkx-train", "--config", cfg, "--set", f"data.shards_dir={one_bucket_shards}",
                   "--set", f"run.out_dir={root / 'runs'}", "--set", "run.name=r")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cfg, root / "runs" / "r" / "checkpoints", one_bucket_shards / "module_map.npz"


def infer_args(model, events, out, *more, ckpt=None, module_map=None):
    cfg, ckpts, mm = model
    return ["--config", cfg, "--input", events, "--out", out, "--no-progress",
            "--gnn-ckpt", ckpt or ckpts, "--module-map", module_map or mm, *more]


@pytest.fixture(scope="module")
def tracks(model, events_dir, tmp_path_factory):
    """trkx-infer's output for the three test events: submissions and edges files."""
    out = tmp_path_factory.mktemp("tracks") / "out"
    proc = run_cli("trkx-infer", *infer_args(model, events_dir, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def copy_ckpts(model, tmp_path):
    folder = tmp_path / "ckpts"
    shutil.copytree(model[1], folder)
    prefix = sorted(folder.glob("ckpt-*.index"))[-1].with_suffix("")
    return folder, prefix


def assert_no_tmp(*folders):
    for folder in folders:
        left = [p for p in listing(folder) if ".tmp" in p]
        assert not left, left


# ------------------------------------------------------------------------------------------- damaged edges
def truncate_half(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def flip_data_bytes(path):
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 3  # inside an array's data (np.savez stores them uncompressed with a CRC-32)
    for k in range(4):
        raw[mid + k] ^= 0xFF
    path.write_bytes(bytes(raw))


def zero_length(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [truncate_half, flip_data_bytes, zero_length], ids=lambda f: f.__name__)
def test_damaged_edges_file_in_eval(damage, tracks, events_dir, tmp_path):
    subs = tmp_path / "subs"
    shutil.copytree(tracks, subs)
    edges = subs / f"{EVENT0}-edges.npz"
    damage(edges)
    out = tmp_path / "metrics"
    msg = one_error_line(run_cli("trkx-eval", "--input", events_dir, "--submissions", subs, "--out", out,
                                 "--no-progress"), "trkx-eval")
    assert str(edges) in msg and "edges file" in msg, msg
    assert not out.exists()


def test_eval_counts_a_repeated_event_once(tracks, events_dir, tmp_path):
    once = run_cli("trkx-eval", "--input", events_dir, "--submissions", tracks, "--out", tmp_path / "a",
                   "--events", "1", "--no-progress")
    twice = run_cli("trkx-eval", "--input", events_dir, "--submissions", tracks, "--out", tmp_path / "b",
                    "--events", "1", "1", "--no-progress")
    assert once.returncode == 0 and twice.returncode == 0, twice.stderr[-2000:]
    a = (tmp_path / "a" / "metrics.json").read_text()
    b = (tmp_path / "b" / "metrics.json").read_text()
    assert a.replace(str(tmp_path / "a"), "") == b.replace(str(tmp_path / "b"), "")
    assert '"event_id": 1' in b and b.count('"event_id": 1,') == a.count('"event_id": 1,')


def test_infer_runs_a_repeated_event_once(model, events_dir, tmp_path):
    proc = run_cli("trkx-infer", *infer_args(model, events_dir, tmp_path / "out", "--events", "1", "1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    timings = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert [e["event_id"] for e in timings["events"]] == [1]
    assert sorted(p.name for p in (tmp_path / "out").glob("*-submission.csv")) == ["event000000001-submission.csv"]


# --------------------------------------------------------------------------------------------- checkpoints
def test_truncated_checkpoint_data_in_infer(model, events_dir, tmp_path):
    folder, prefix = copy_ckpts(model, tmp_path)
    data = next(folder.glob(f"{prefix.name}.data-*"))
    truncate_half(data)
    out = tmp_path / "out"
    msg = one_error_line(run_cli("trkx-infer", *infer_args(model, events_dir, out, ckpt=folder)), "trkx-infer")
    assert str(prefix) in msg and ("truncated" in msg or "damaged" in msg), msg
    assert not out.exists()


def test_truncated_checkpoint_data_on_resume(model, one_bucket_shards, tmp_path):
    cfg, ckpts, _ = model
    run = tmp_path / "runs" / "r"
    shutil.copytree(ckpts.parent, run)
    prefix = sorted((run / "checkpoints").glob("ckpt-*.index"))[-1].with_suffix("")
    truncate_half(next((run / "checkpoints").glob(f"{prefix.name}.data-*")))
    before = listing(run)
    proc = run_cli("trkx-train", "--config", cfg, "--set", f"data.shards_dir={one_bucket_shards}",
                   "--set", f"run.out_dir={tmp_path / 'runs'}", "--set", "run.name=r", "--set", "train.epochs=2")
    msg = one_error_line(proc, "trkx-train")
    assert str(prefix) in msg and ("truncated" in msg or "damaged" in msg), msg
    after = listing(run)
    assert {k: v for k, v in after.items() if k != ".trkx-train.lock"} == before  # nothing written or removed


def test_deleted_checkpoint_index(model, events_dir, tmp_path):
    folder, prefix = copy_ckpts(model, tmp_path)
    prefix.with_suffix(".index").unlink()
    out = tmp_path / "out"
    msg = one_error_line(run_cli("trkx-infer", *infer_args(model, events_dir, out, ckpt=folder)), "trkx-infer")
    assert f"{prefix}.index" in msg and "missing" in msg, msg  # the file that is gone, not the folder's index
    assert not out.exists()


# -------------------------------------------------------------------------------------------- module maps
def test_truncated_module_map_in_infer(model, events_dir, tmp_path):
    mm = tmp_path / "module_map.npz"
    shutil.copy(model[2], mm)
    truncate_half(mm)
    out = tmp_path / "out"
    msg = one_error_line(run_cli("trkx-infer", *infer_args(model, events_dir, out, module_map=mm)), "trkx-infer")
    assert f"module map {mm}" in msg and "truncated" in msg, msg
    assert not out.exists()


def test_truncated_module_map_in_build(model, events_dir, tmp_path):
    mm = tmp_path / "module_map.npz"
    shutil.copy(model[2], mm)
    truncate_half(mm)
    out = tmp_path / "shards"
    msg = one_error_line(run_cli("trkx-build", *build_args(events_dir, out, "--module-map", mm)), "trkx-build")
    assert f"module map {mm}" in msg and "truncated" in msg, msg
    assert not out.exists()


# ------------------------------------------------------------------------------------- --out is not a folder
def test_out_is_a_file(model, tracks, events_dir, one_bucket_shards, tmp_path):
    afile = tmp_path / "taken"
    afile.write_text("mine\n")
    procs = {
        "trkx-infer": run_cli("trkx-infer", *infer_args(model, events_dir, afile)),
        "trkx-eval": run_cli("trkx-eval", "--input", events_dir, "--submissions", tracks, "--out", afile,
                             "--no-progress"),
        "trkx-train": run_cli("trkx-train", "--config", model[0], "--set", f"data.shards_dir={one_bucket_shards}",
                              "--set", f"run.out_dir={afile}", "--set", "run.name=r"),
    }
    for prog, proc in procs.items():
        msg = one_error_line(proc, prog)
        assert str(afile) in msg and "is a file" in msg, (prog, msg)
    assert afile.read_text() == "mine\n" and sorted(os.listdir(tmp_path)) == ["taken"]


# --------------------------------------------------------------------------------------------- bad events
def duplicate_hit_id(folder):
    hits = pd.read_csv(folder / HITS)
    hits.loc[40, "hit_id"] = hits.loc[39, "hit_id"]
    hits.to_csv(folder / HITS, index=False)


def header_only(folder):
    (folder / HITS).write_text((folder / HITS).read_text().splitlines()[0] + "\n")


@pytest.mark.parametrize("damage, words", [(duplicate_hit_id, ["'hit_id'", "duplicate", "first: 40"]),
                                           (header_only, ["empty event"])], ids=["duplicate_hit_id", "header_only"])
def test_infer_validates_hits_as_build_does(damage, words, model, events_dir, tmp_path):
    folder = copy_event(events_dir, tmp_path / "events")
    damage(folder)
    out = tmp_path / "out"
    msg = one_error_line(run_cli("trkx-infer", *infer_args(model, folder, out)), "trkx-infer")
    build = one_error_line(run_cli("trkx-build", *build_args(folder, tmp_path / "shards")), "trkx-build")
    assert msg.startswith(f"{HITS}: ") and all(w in msg for w in words), msg
    assert msg in build, (msg, build)  # the same check and the same words as trkx-build
    assert not out.exists()  # no empty output folder


def test_bad_later_event_keeps_the_complete_ones(model, events_dir, tmp_path):
    folder = tmp_path / "events"
    shutil.copytree(events_dir, folder)
    pd.read_csv(folder / "event000000002-hits.csv").iloc[:0].to_csv(folder / "event000000002-hits.csv", index=False)
    out = tmp_path / "out"
    msg = one_error_line(run_cli("trkx-infer", *infer_args(model, folder, out)), "trkx-infer")
    assert "event000000002-hits.csv" in msg, msg
    assert sorted(os.listdir(out)) == [f"event00000000{i}-{k}" for i in (0, 1) for k in ("edges.npz",
                                                                                           "submission.csv")]


# ------------------------------------------------------------------------------------------------ configs
def test_duplicate_top_level_section(events_dir, tmp_path):
    cfg = tmp_path / "twice.yaml"
    cfg.write_text("graph:\n  graphs_per_shard: 2\ntrain:\n  epochs: 3\ngraph:\n  max_buckets: 1\n")
    msg = one_error_line(run_cli("trkx-build", "--config", cfg, *build_args(events_dir, tmp_path / "out")),
                         "trkx-build")
    assert str(cfg) in msg and "'graph' appears twice" in msg and "lines 1 and 5" in msg, msg
    assert not (tmp_path / "out").exists()


def test_duplicate_nested_key(tmp_path):
    from trkx_tf.config import load_config
    from trkx_tf.errors import ConfigError

    cfg = tmp_path / "twice.yaml"
    cfg.write_text("train:\n  epochs: 3\n  lr: 0.1\n  epochs: 4\n")
    with pytest.raises(ConfigError, match=r"key 'train.epochs' appears twice \(lines 2 and 4\)"):
        load_config(cfg)


# ---------------------------------------------------------------------------------------------- detectors
def test_detectors_cut_at_a_line_end(shared_trackml, tmp_path):
    lines = gzip.decompress((shared_trackml / "detectors.csv.gz").read_bytes()).decode().splitlines(keepends=True)
    det = tmp_path / "detectors.csv"
    det.write_text("".join(lines[: len(lines) * 2 // 3]))  # a clean cut: every row parses
    out = tmp_path / "events"
    proc = run_cli("trkx-simulate", "--detector", det, "--events", "1", "--pileup", "1", "--out", out,
                   "--workers", "1", "--quiet")
    msg = one_error_line(proc, "trkx-simulate")
    assert str(det) in msg and "truncated" in msg and "18728" in msg, msg
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- disk full
@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs (needs root: skipped where ``mount`` is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mount -t tmpfs is not allowed here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_during_build(events_dir, small_tmpfs):
    (small_tmpfs / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 250 * 1024))  # the 3 shards need more
    out = small_tmpfs / "shards"
    proc = run_cli("trkx-build", *build_args(events_dir, out, "--set", "graph.compression=none"))
    msg = one_error_line(proc, "trkx-build")
    assert "no space left on device" in msg, msg
    assert_no_tmp(small_tmpfs)
    assert not out.exists() or not [p for p in os.listdir(out) if not p.endswith(".h5")], listing(out)


def test_disk_full_during_infer(model, events_dir, small_tmpfs):
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (2 * 1024 * 1024 - 300 * 1024))  # leave room for about one event's outputs
    out = small_tmpfs / "out"
    proc = run_cli("trkx-infer", *infer_args(model, events_dir, out))
    msg = one_error_line(proc, "trkx-infer")
    assert "no space left on device" in msg, msg
    assert_no_tmp(small_tmpfs)
    if out.exists():  # the events written before the disk filled up are complete: each with both of its files
        names = sorted(os.listdir(out))
        events = {n.split("-")[0] for n in names}
        assert names == sorted(f"{e}-{k}" for e in events for k in ("edges.npz", "submission.csv")), names


def test_disk_full_is_one_line_for_any_writer(tmp_path, monkeypatch, capsys):
    """The CLI rule for an OSError(ENOSPC) raised anywhere (without a tmpfs): one line, exit 2."""
    import argparse

    from trkx_tf.cli.common import command

    def run(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.h5"))

    code = command(lambda: argparse.ArgumentParser(prog="trkx-x"), run)([])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"trkx-x: error: {tmp_path / 'x.h5'}: no space")


# ------------------------------------------------------------------------------------------ unlabelled events
def test_build_refuses_an_event_without_truth(events_dir, tmp_path):
    folder = tmp_path / "events"
    shutil.copytree(events_dir, folder)
    (folder / "event000000001-truth.csv").unlink()
    out = tmp_path / "shards"
    msg = one_error_line(run_cli("trkx-build", *build_args(folder, out)), "trkx-build")
    assert "event 1 has no labels" in msg and "event000000001-truth.csv[.gz] is missing" in msg, msg
    assert "graph.unlabelled: skip" in msg and not out.exists()


def test_build_skips_unlabelled_events_when_asked(events_dir, tmp_path):
    import json

    folder = tmp_path / "events"
    shutil.copytree(events_dir, folder)
    (folder / "event000000001-particles.csv").unlink()
    out = tmp_path / "shards"
    proc = run_cli("trkx-build", *build_args(folder, out, "--set", "graph.unlabelled=skip",
                                             "--set", "run.log_level=WARNING"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dropped 1 event(s) without truth or partial truth: 1" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(e for s in manifest["shards"] for e in s["event_id"]) == [0, 2]
