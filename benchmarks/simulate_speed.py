"""Speed of the event simulator: seconds per μ=200 event on one core (simulation, then writing).

    python benchmarks/simulate_speed.py --events 3

Prints, per configuration, the mean and the range over the events; the issue's target is at most 5 s per event.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one core

ROOT = Path(__file__).resolve().parents[1]

import numpy as np

from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.io import write_event
from trkx_tf.trackml.simulate import event_rng, simulate_event


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default=str(ROOT.parent / "shared" / "trackml" / "detectors.csv.gz"))
    parser.add_argument("--events", type=int, default=3)
    parser.add_argument("--pileup", type=float, default=200.0)
    args = parser.parse_args(argv)
    if not Path(args.detector).exists():
        print(f"skipped: {args.detector} not found")
        return 0
    t0 = time.perf_counter()
    geometry = Geometry.load(args.detector)
    print(f"geometry: {time.perf_counter() - t0:.2f} s to load and index {geometry.n_modules} modules "
          "(once per worker)")
    simulate_event(geometry, 999, event_rng(0, 999), pileup=5)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        for cells in (False, True):
            sim_t, csv_t, gz_t, hits = [], [], [], []
            for i in range(args.events):
                t0 = time.perf_counter()
                ev = simulate_event(geometry, i, event_rng(0, i), pileup=args.pileup, cells=cells)
                sim_t.append(time.perf_counter() - t0)
                hits.append(len(ev.hits))
                t0 = time.perf_counter()
                write_event(tmp, ev, compress=False)
                csv_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                write_event(tmp, ev, compress=True)
                gz_t.append(time.perf_counter() - t0)
            fmt = lambda x: f"{np.mean(x):5.2f} s [{np.min(x):.2f}, {np.max(x):.2f}]"  # noqa: E731
            print(f"pileup {args.pileup:g}, cells {'on ' if cells else 'off'}: {np.mean(hits):,.0f} hits; "
                  f"simulate {fmt(sim_t)}; write .csv {fmt(csv_t)}; write .csv.gz {fmt(gz_t)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
