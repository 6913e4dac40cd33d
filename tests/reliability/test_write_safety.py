"""Atomic writes never follow a symlink and never leave a temporary file (issue 19 item 6), and one trkx-train
per run folder (the build's lock, issue 19 item 5).

* :func:`trkx_tf.files.write_text_atomic` / :func:`~trkx_tf.files.atomic_path` make their temporary file with
  :func:`tempfile.mkstemp` (``O_EXCL``, an unpredictable name) in the target folder: a symlink planted at the name
  the old code used (``.NAME.tmpPID``) is neither followed nor removed, and a symlink at the target itself is
  replaced, not written through.
* A write that fails (a full disk) leaves neither a temporary file nor a changed target.
* A second ``trkx-train`` into a run folder that a ``trkx-train`` is using stops at once with one line.
"""

import errno
import os
import signal
import subprocess
import time

import pytest

from rel_tools import BIN, cli_env, one_error_line, run_cli
from trkx_tf.files import atomic_path, write_bytes_atomic, write_text_atomic


def test_planted_symlink_at_the_predictable_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / "out" / "config.yaml"
    target.parent.mkdir()
    planted = target.with_name(f".{target.name}.tmp{os.getpid()}")  # the name the old write_text_atomic used
    planted.symlink_to(victim)
    write_text_atomic(target, "a: 1\n")
    assert victim.read_text() == "precious\n"
    assert target.read_text() == "a: 1\n" and not target.is_symlink()
    assert planted.is_symlink() and os.readlink(planted) == str(victim)  # not ours: left alone
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, planted.name])


def test_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / "metrics.json"
    target.symlink_to(victim)
    write_text_atomic(target, "{}\n")
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink() and target.read_text() == "{}\n"


def test_temporary_names_are_fresh_and_exclusive(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    for i in range(3):
        write_text_atomic(tmp_path / "t.json", f"{i}\n")
    assert len(set(seen)) == 3 and all(s.startswith(".t.json.tmp") for s in seen)
    assert f".t.json.tmp{os.getpid()}" not in seen  # not the predictable name
    assert os.listdir(tmp_path) == ["t.json"] and (tmp_path / "t.json").read_text() == "2\n"
    assert oct((tmp_path / "t.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    target.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # the disk fills up while the new file is written
    with pytest.raises(OSError) as info:
        write_bytes_atomic(target, b"new\n" * 1000)
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == ["manifest.json"] and target.read_text() == "old\n"


def test_atomic_path_removes_its_file_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.h5") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------ one trkx-train per run
@pytest.mark.slow
def test_second_trkx_train_into_the_same_run_is_refused(one_bucket_shards, tmp_path):
    from trkx_tf.train.session import LOCK_FILE

    cfg = tmp_path / "train.yaml"
    cfg.write_text("run: {log_level: WARNING}\nmodel:\n  gnn: {hidden: 8, steps: 1}\n"
                   "train: {model: gnn, epochs: 1000}\nbackend: {name: single}\n")
    args = ["--config", cfg, "--set", f"data.shards_dir={one_bucket_shards}", "--set",
            f"run.out_dir={tmp_path / 'runs'}", "--set", "run.name=r"]
    lock = tmp_path / "runs" / "r" / LOCK_FILE
    first = subprocess.Popen([str(BIN / "trkx-train"), *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        deadline = time.monotonic() + 240
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first trkx-train never took the run folder's lock"
            time.sleep(0.5)
        second = run_cli("trkx-train", *args)
        msg = one_error_line(second, "trkx-train")
        assert f"another trkx-train (pid {first.pid})" in msg and str(tmp_path / "runs" / "r") in msg, msg
        assert first.poll() is None  # the first one goes on
    finally:
        first.send_signal(signal.SIGTERM)  # preemption: checkpoint, exit 99
        out, err = first.communicate(timeout=240)
    assert first.returncode == 99, err[-3000:]
    assert not lock.exists()  # released (and removed) by the first one


def test_disk_full_while_writing_the_shard_manifest_keeps_the_previous_one(tmp_path, monkeypatch):
    """The manifest, a build's commit, is written whole or not at all (ENOSPC simulated at the final flush)."""
    from trkx_tf.graphs.shard_writer import write_manifest

    write_manifest(tmp_path, [], ("r", "phi", "z"))
    old = (tmp_path / "manifest.json").read_text()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        write_manifest(tmp_path, [], ("r", "phi", "z", "extra"))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "manifest.json")
    assert os.listdir(tmp_path) == ["manifest.json"] and (tmp_path / "manifest.json").read_text() == old
