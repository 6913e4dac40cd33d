"""``trkx-train`` that kills itself (SIGKILL) at a chosen point of a chosen checkpoint save, for the fault tests.

TRKX_TEST_KILL_SAVE=N: the N-th save of the run is killed; TRKX_TEST_KILL_AT=data: as the save starts writing
(nothing of it on disk yet), state: once its data and index files are written, before the ``checkpoint`` state
file names it (the save's commit).
"""

import os
import signal
import sys

import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management

from trkx_tf.cli.train import main

SAVE = int(os.environ["TRKX_TEST_KILL_SAVE"])
AT = os.environ["TRKX_TEST_KILL_AT"]
calls = {"write": 0, "state": 0}


def _count(kind):
    calls[kind] += 1
    if calls[kind] == SAVE and AT == kind.replace("write", "data"):
        os.kill(os.getpid(), signal.SIGKILL)


_write = tf.train.Checkpoint._write
_state = checkpoint_management.update_checkpoint_state_internal


def write(self, *args, **kwargs):
    _count("write")
    return _write(self, *args, **kwargs)


def state(*args, **kwargs):
    _count("state")
    return _state(*args, **kwargs)


tf.train.Checkpoint._write = write
checkpoint_management.update_checkpoint_state_internal = state

if __name__ == "__main__":
    sys.exit(main())
