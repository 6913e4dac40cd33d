"""``trkx-build`` with a test hook inside the shard writer: ``python build_with_hook.py <trkx-build args>``.

Environment:
  TRKX_TEST_SIGNAL    KILL or INT: send this signal to the build itself while it writes shard number
                      TRKX_TEST_AT_SHARD (1-based, counted over the shards this process writes), after
                      TRKX_TEST_AT_DATASET datasets of that shard are in its temporary file (default 3), i.e. mid-write.
  TRKX_TEST_SLOW      seconds to sleep before writing each shard (keeps the build, and its lock, alive).

The hook wraps ``h5py.Group.create_dataset`` and ``trkx_tf.graphs.build.write_shard``; everything else is the
real console script (run with one worker so the shards are written in this process).
"""

import os
import signal
import sys
import time

import h5py

import trkx_tf.graphs.build as build
from trkx_tf.cli.build import main

SIGNAL = os.environ.get("TRKX_TEST_SIGNAL", "")
AT_SHARD = int(os.environ.get("TRKX_TEST_AT_SHARD", "0"))
AT_DATASET = int(os.environ.get("TRKX_TEST_AT_DATASET", "3"))
SLOW = float(os.environ.get("TRKX_TEST_SLOW", "0"))

_state = {"shard": 0, "dataset": 0}
_write_shard = build.write_shard
_create_dataset = h5py.Group.create_dataset


def write_shard(*args, **kwargs):
    _state["shard"] += 1
    _state["dataset"] = 0
    if SLOW:
        time.sleep(SLOW)
    return _write_shard(*args, **kwargs)


def create_dataset(self, *args, **kwargs):
    _state["dataset"] += 1
    if SIGNAL and _state["shard"] == AT_SHARD and _state["dataset"] == AT_DATASET + 1:
        self.file.flush()  # what is written so far is on disk, as it would be after a while
        print(f"hook: SIG{SIGNAL} in shard {AT_SHARD} after {AT_DATASET} datasets", file=sys.stderr, flush=True)
        os.kill(os.getpid(), getattr(signal, f"SIG{SIGNAL}"))
        time.sleep(5)  # SIGINT arrives as KeyboardInterrupt at the next bytecode; SIGKILL never returns
    return _create_dataset(self, *args, **kwargs)


build.write_shard = write_shard
h5py.Group.create_dataset = create_dataset

if __name__ == "__main__":
    # The hook simulates a Ctrl-C, so SIGINT must raise KeyboardInterrupt whatever disposition this process
    # inherited: a test run started in the background of a non-interactive shell (`pytest ... &` in a script,
    # CI runners) starts its children with SIGINT ignored (SIG_IGN), Python keeps that, and the self-sent SIGINT
    # would be dropped (the build then finishes with status 0). trkx-build itself keeps an inherited SIG_IGN on
    # purpose (nohup semantics), so this is restored here, in the test hook, not in the console script.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(sys.argv[1:]))
