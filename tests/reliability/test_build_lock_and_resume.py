"""Concurrent and interrupted ``trkx-build`` runs into one output folder.

* A second build into a folder that a build is writing refuses at once with one line; the first finishes intact.
* A build killed (SIGKILL) or interrupted (SIGINT) in the middle of writing a shard leaves no half-written shard
  under a shard's name; the re-run keeps the complete shards (same inode and mtime: not rewritten), writes the
  rest, and ends with the manifest of an uninterrupted build.
"""

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rel_tools import build_args, cli_env, listing, one_error_line, run_cli
from trkx_tf.graphs.build import LOCK_FILE
from trkx_tf.graphs.shards import Shard

HOOK = Path(__file__).with_name("build_with_hook.py")
TIMING_KEYS = {"seconds", "seconds_per_event"}


def start_hooked(events, out, **hook_env):
    args = [str(a) for a in build_args(events, out)]
    env = cli_env(**{f"TRKX_TEST_{k.upper()}": str(v) for k, v in hook_env.items()})
    return subprocess.Popen([sys.executable, str(HOOK), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def without_timings(data):
    """The manifest without its wall-time fields (the only ones two builds of the same input may differ in)."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k not in TIMING_KEYS}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


def manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def shards(folder):
    return sorted(p.name for p in folder.glob("*.h5") if not p.name.startswith("."))


@pytest.fixture(scope="module")
def reference(events_dir, tmp_path_factory):
    """An uninterrupted build of the three events (3 shards)."""
    out = tmp_path_factory.mktemp("reference") / "shards"
    proc = run_cli("trkx-build", *build_args(events_dir, out))
    assert proc.returncode == 0, proc.stderr
    assert len(shards(out)) == 3
    return out


def assert_same_build(out, reference):
    assert without_timings(manifest(out)) == without_timings(manifest(reference))
    assert shards(out) == shards(reference)
    for name in shards(out):
        with Shard(out / name, verify=True):  # complete and its checksum verifies
            pass
    hidden = sorted(p for p in listing(out) if Path(p).name.startswith("."))
    assert hidden == [], hidden  # no temporary files, no lock file


def test_second_build_into_the_same_folder_refuses(events_dir, tmp_path, reference):
    out = tmp_path / "shards"
    first = start_hooked(events_dir, out, slow=1.5)
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until the first build holds the lock
            assert first.poll() is None, first.communicate()
            if (out / LOCK_FILE).exists():
                fd = os.open(out / LOCK_FILE, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                except BlockingIOError:
                    break
                finally:
                    os.close(fd)
            assert time.monotonic() < deadline, "the first build never took the lock"
            time.sleep(0.05)
        second = run_cli("trkx-build", *build_args(events_dir, out))
        msg = one_error_line(second, "trkx-build")
        assert str(out) in msg and f"another trkx-build (pid {first.pid})" in msg and "wait for it" in msg, msg
        assert first.poll() is None  # the refusal was immediate, the first build is still running
    finally:
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert_same_build(out, reference)


@pytest.mark.parametrize("sig", ["KILL", "INT"])
def test_interrupted_build_leaves_no_half_shard_and_resumes(sig, events_dir, tmp_path, reference):
    out = tmp_path / "shards"
    proc = start_hooked(events_dir, out, signal=sig, at_shard=2, at_dataset=4)
    stdout, stderr = proc.communicate(timeout=120)
    if sig == "KILL":
        assert proc.returncode == -signal.SIGKILL, stderr
    else:
        assert proc.returncode == 130, stderr
        lines = [x for x in stderr.splitlines() if x.strip() and not x.startswith("hook:")]
        assert lines == ["trkx-build: interrupted"], stderr
        assert "Traceback" not in stderr
    # shard 1 is complete; shard 2 was cut mid-write: at most a temporary file, never under a shard's name
    assert shards(out) == shards(reference)[:1]
    with Shard(out / shards(out)[0], verify=True):
        pass
    assert not (out / "manifest.json").exists()
    left = sorted(p for p in listing(out) if Path(p).name.startswith("."))
    if sig == "KILL":  # nothing could clean up: the temporary shard and work folder are left, under temporary names
        assert any(re.fullmatch(r"\..+\.h5\.tmp\w+", Path(p).name) for p in left), left
    else:  # an exception unwinds: every temporary file is removed, the lock too
        assert left == [], left
    kept = {name: (out / name).stat() for name in shards(out)}

    again = run_cli("trkx-build", *build_args(events_dir, out))
    assert again.returncode == 0, again.stderr
    assert "kept: 1 shards already complete" in again.stdout, again.stdout
    for name, st in kept.items():  # verified and kept, not rewritten
        now = (out / name).stat()
        assert (now.st_ino, now.st_mtime_ns, now.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)
    assert_same_build(out, reference)


def test_kill_at_an_arbitrary_moment_then_resume(events_dir, tmp_path, reference):
    out = tmp_path / "shards"
    proc = start_hooked(events_dir, out, slow=0.3)
    deadline = time.monotonic() + 60
    while not shards(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.15)  # somewhere in the middle of the next shards
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    for name in shards(out):  # whatever was done is complete
        with Shard(out / name, verify=True):
            pass
    again = run_cli("trkx-build", *build_args(events_dir, out))
    assert again.returncode == 0, again.stderr
    assert_same_build(out, reference)
