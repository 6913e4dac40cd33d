"""Fixtures of the scaling tests: run records built from hand-made metrics."""

import pytest
from metrics_files import epoch_line


@pytest.fixture()
def strong_runs():
    """Run records of a strong-scaling study: T1 = 10 s, T2 = T1/1.8, two repeats each (spread 10 % at N=2)."""
    from trkx_tf.scaling.records import run_record

    runs = []
    for repeat, (t1, t2) in enumerate([(10.0, 10.0 / 1.8 * 0.95), (10.0, 10.0 / 1.8 * 1.05)]):
        for n, t in ((1, t1), (2, t2)):
            epochs = [epoch_line(0, 30.0, n), epoch_line(1, t, n, imbalance=0.02 * (n - 1)),
                      epoch_line(2, t, n, imbalance=0.02 * (n - 1))]
            runs.append(run_record(epochs, warmup_epochs=1, ranks=n, repeat=repeat, mode="strong",
                                   launcher="horovodrun", wall_s=40.0, hostname="test", run_dir=f"runs/n{n}"))
    return runs
