"""Faults, round 2 (issue 19 item 5).

* SIGTERM during ``trkx-infer`` over many events: the finished events' submissions are complete (every hit of the
  event once) and each has its edges file; the event being written when the signal came is removed whole; no
  temporary file is left; exit status 130.
* ``kill -9`` during a checkpoint save (as it starts writing, or after its files are written but before the
  ``checkpoint`` state file names it): the state still names the last complete checkpoint, and the same command
  resumes from it and finishes.
* A full disk during training (a real 4 MiB tmpfs, skipped without mount rights): one line, exit 2, the last
  complete checkpoint and whole ``metrics.jsonl`` lines kept, no temporary files; with space again the same command
  resumes.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rel_tools import BIN, cli_env

N_EVENTS = 24


@pytest.fixture(scope="module")
def many_events(events_dir, tmp_path_factory):
    """The three test events copied under 24 ids."""
    folder = tmp_path_factory.mktemp("many")
    for i in range(N_EVENTS):
        for f in events_dir.glob(f"event00000000{i % 3}-*"):
            shutil.copy(f, folder / f.name.replace(f"event00000000{i % 3}", f"event{i:09d}"))
    return folder


@pytest.fixture(scope="module")
def gnn(tmp_path_factory, one_bucket_shards):
    """(config, checkpoints folder, module map) of a GNN of width 8 trained one step."""
    root = tmp_path_factory.mktemp("gnn")
    cfg = root / "train.yaml"
    cfg.write_text("run: {log_level: WARNING}\nmodel:\n  gnn: {hidden: 8, steps: 1}\n"
                   "train: {model: gnn, epochs: 1, max_steps_per_epoch: 1}\nbackend: {name: single}\n")
    proc = subprocess.run([str(BIN / "trkx-train"), "--config", str(cfg), "--set",
                           f"data.shards_dir={one_bucket_shards}", "--set", f"run.out_dir={root / 'runs'}",
                           "--set", "run.name=r"], capture_output=True, text=True, env=cli_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cfg, root / "runs" / "r" / "checkpoints", one_bucket_shards / "module_map.npz"


@pytest.mark.slow
def test_sigterm_during_infer_keeps_only_complete_events(gnn, many_events, tmp_path):
    cfg, ckpts, mm = gnn
    out = tmp_path / "out"
    proc = subprocess.Popen([str(BIN / "trkx-infer"), "--config", str(cfg), "--input", str(many_events), "--out",
                             str(out), "--no-progress", "--gnn-ckpt", str(ckpts), "--module-map", str(mm)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    deadline = time.monotonic() + 300
    while not (out.exists() and len(list(out.glob("*-edges.npz"))) >= 2):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "trkx-infer: interrupted" in err and "Traceback" not in err, err[-3000:]
    names = sorted(os.listdir(out))
    assert not [n for n in names if n.startswith(".") or "tmp" in n], names  # nothing half-written
    done = sorted({n.split("-")[0] for n in names})
    assert 2 <= len(done) < N_EVENTS, names  # stopped part-way
    assert names == sorted(f"{e}-{k}" for e in done for k in ("edges.npz", "submission.csv")), names
    for e in done:  # each finished submission holds every hit of its event exactly once
        sub = pd.read_csv(out / f"{e}-submission.csv")
        hits = pd.read_csv(many_events / f"{e}-hits.csv")
        assert sorted(sub["hit_id"]) == sorted(hits["hit_id"])
    assert not (out / "timings.json").exists()


# --------------------------------------------------------------------------- kill -9 during a checkpoint save
HOOK = Path(__file__).with_name("train_with_hook.py")


@pytest.mark.slow
@pytest.mark.parametrize("at", ["data", "state"])
def test_kill_during_checkpoint_save_resumes_from_the_last_complete(at, one_bucket_shards, tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("run: {log_level: INFO}\nmodel:\n  gnn: {hidden: 8, steps: 1}\n"
                   "train: {model: gnn, epochs: 3, max_steps_per_epoch: 1, checkpoint_every: 1}\n"
                   "backend: {name: single}\n")
    args = ["--config", str(cfg), "--set", f"data.shards_dir={one_bucket_shards}", "--set",
            f"run.out_dir={tmp_path / 'runs'}", "--set", "run.name=r"]
    ckpts = tmp_path / "runs" / "r" / "checkpoints"
    killed = subprocess.run([sys.executable, str(HOOK), *args], capture_output=True, text=True, timeout=600,
                            env=cli_env(TRKX_TEST_KILL_SAVE="2", TRKX_TEST_KILL_AT=at))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    state = (ckpts / "checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-1"' in state, state  # the commit names the last complete save only
    resumed = subprocess.run([str(BIN / "trkx-train"), *args], capture_output=True, text=True, timeout=600,
                             env=cli_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {ckpts / 'ckpt-1'} (epoch 1" in resumed.stderr, resumed.stderr[-3000:]
    assert 'model_checkpoint_path: "ckpt-3"' in (ckpts / "checkpoint").read_text()


# ------------------------------------------------------------------------------ disk full during a checkpoint
@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs (needs root: skipped where ``mount`` is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mount -t tmpfs is not allowed here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_disk_full_during_training_keeps_the_previous_checkpoint(one_bucket_shards, small_tmpfs, tmp_path):
    import json

    from rel_tools import one_error_line

    cfg = tmp_path / "train.yaml"
    cfg.write_text("run: {log_level: WARNING}\nmodel:\n  gnn: {hidden: 8, steps: 1}\n"
                   "train: {model: gnn, epochs: 1, max_steps_per_epoch: 1, checkpoint_every: 1}\n"
                   "backend: {name: single}\n")
    args = [str(BIN / "trkx-train"), "--config", str(cfg), "--set", f"data.shards_dir={one_bucket_shards}",
            "--set", f"run.out_dir={small_tmpfs / 'runs'}", "--set", "run.name=r"]
    first = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    run = small_tmpfs / "runs" / "r"
    with open(small_tmpfs / "filler", "wb", buffering=0) as f:  # fill the disk up, then free a few pages
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    os.truncate(small_tmpfs / "filler", max(0, (small_tmpfs / "filler").stat().st_size - 2 * 4096))
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    full = subprocess.run(args + ["--set", "train.epochs=3"], capture_output=True, text=True, env=cli_env(),
                          timeout=600)
    msg = one_error_line(full, "trkx-train")
    assert "no space left on device" in msg and str(run) in msg, msg
    after = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    named = re.search(r'model_checkpoint_path: "([^"]+)"', after["checkpoint"].decode()).group(1)
    assert f"{named}.index" in after, sorted(after)  # the state names a checkpoint whose files are there
    assert not [n for n in after if "_temp" in n or ".tmp" in n], sorted(after)
    for name in before:  # the complete checkpoints already there are untouched
        if name != "checkpoint":
            assert after[name] == before[name], name
    for line in (run / "metrics.jsonl").read_text().splitlines():  # whole lines only
        json.loads(line)
    os.unlink(small_tmpfs / "filler")  # space again: the same command resumes from the checkpoint the state names
    resumed = subprocess.run(args + ["--set", "train.epochs=3", "--set", "run.log_level=INFO"],
                             capture_output=True, text=True, env=cli_env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {run / 'checkpoints' / named}" in resumed.stderr, (named, resumed.stderr[-3000:])
    print(f"disk full: {msg}; state named {named}")
