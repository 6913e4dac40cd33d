"""A rank that hangs (SIGSTOP) instead of dying: with Horovod's stall check set to shut down, the job ends within
a stated time with a clear message, and no process is left behind (issue 19 item 5).

Without ``HOROVOD_STALL_SHUTDOWN_TIME_SECONDS`` a stopped rank stalls the others forever (Horovod only warns); the
launch scripts may set it (docs/reliability.md). Here: stall check after 2 s, shutdown after 10 s.
"""

import sys
import time

import pytest

from test_rank_failure import WORKER, Launch

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

STALL_SHUTDOWN_S = 10
END_WITHIN_S = 60


@pytest.mark.parametrize("controller", ["gloo"])
def test_stopped_rank_ends_the_job_through_the_stall_check(controller):
    run = Launch(controller, [sys.executable, WORKER], TRKX_TEST_KILL_AFTER="5", TRKX_TEST_SIGNAL="STOP",
                 HOROVOD_STALL_CHECK_TIME_SECONDS="2", HOROVOD_STALL_SHUTDOWN_TIME_SECONDS=str(STALL_SHUTDOWN_S))
    try:
        stopped_at = run.wait_for(r"rank 1 step 4\b", timeout=120)
        status = run.wait(timeout=END_WITHIN_S + 30)
        ended = time.monotonic()
        assert status is not None, f"still running {END_WITHIN_S + 30} s after the stop\n{run.output()}"
        assert status != 0, run.output()
        assert ended - stopped_at < END_WITHIN_S, f"took {ended - stopped_at:.1f} s to end"
        out = run.output()
        assert "finished all" not in out
        assert "stall" in out.lower() or "shut down" in out.lower(), out  # Horovod says why
    finally:
        run.cleanup()  # SIGKILL ends a stopped process too
    time.sleep(1)
    assert run.survivors() == [], run.survivors()
