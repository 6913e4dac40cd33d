"""Run under horovodrun with 2 ranks: allreduce in a loop; rank 1 kills itself with SIGKILL after a few steps
(or sends itself TRKX_TEST_SIGNAL, e.g. STOP: it hangs instead of dying).

Each rank prints ``rank R step S`` after every allreduce, so a test can see where the job stopped. A rank that
survives the dead one must fail (not hang) in its next allreduce.
"""

import os
import signal
import sys
import time

import horovod.tensorflow as hvd
import tensorflow as tf

KILL_AFTER = int(os.environ.get("TRKX_TEST_KILL_AFTER", "3"))
STEPS = int(os.environ.get("TRKX_TEST_STEPS", "1000"))

hvd.init()
for step in range(STEPS):
    total = hvd.allreduce(tf.constant(float(hvd.rank() + 1)), op=hvd.Sum, name="loop")
    print(f"rank {hvd.rank()} step {step} sum {float(total)}", flush=True)
    if hvd.rank() == 1 and step + 1 == KILL_AFTER:
        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("TRKX_TEST_SIGNAL", "KILL")))
    time.sleep(0.05)
print(f"rank {hvd.rank()} finished all {STEPS} steps", flush=True)
sys.exit(0)
