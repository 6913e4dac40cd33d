"""What two pinned processes cost each other on this machine's cores, with no communication at all.

Runs each probe on core A alone, then on cores A and B at once (one process per core, one thread each, pinned),
and prints the per-process rate together / alone: 1.0 means the cores do not slow each other.

* ``matmul``: a 1024x1024 float32 matmul loop (compute-bound, fits the caches);
* ``stream``: a 64 MiB streaming multiply (memory-bound, twice this VM's 32 MiB L3).

A ratio below 1 is a ceiling for data-parallel scaling of a workload of that kind on these cores, whatever the
distributed code does (scaling_studies/README.md).

    python benchmarks/cpu_sharing.py --seconds 8

Measured 2026-11-22 17:17-17:55 UTC on this AMD EPYC 2-vCPU VM, idle, 6 runs: matmul ratio 0.98-1.01 (~51/s
per process alone and together); stream 35-38 GB/s alone, ratio bimodal from run to run: 0.51-0.56 (three runs: one
core alone then saturates the VM's memory bandwidth) or 0.88-0.93 (three runs).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread per probe, set before numpy
    os.environ[_var] = "1"

import numpy as np  # noqa: E402


def probe(kind: str, core: int, seconds: float, out) -> None:
    os.sched_setaffinity(0, {core})
    if kind == "matmul":
        a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
        op, unit = (lambda: a @ a), 1.0
    else:
        a = np.ones(64 * 2**20 // 4, np.float32)
        b = np.empty_like(a)
        op, unit = (lambda: np.multiply(a, 1.0001, out=b)), 2 * a.nbytes / 1e9
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        op()
        n += 1
    out.put((core, n * unit / (time.perf_counter() - start)))


def run(kind: str, cores: list[int], seconds: float) -> dict[int, float]:
    queue = mp.Queue()
    procs = [mp.Process(target=probe, args=(kind, c, seconds, queue)) for c in cores]
    for p in procs:
        p.start()
    rates = dict(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--cores", type=int, nargs=2, default=sorted(os.sched_getaffinity(0))[:2])
    args = parser.parse_args()
    a, b = args.cores
    print(f"load average {os.getloadavg()[0]:.2f}")
    for kind, unit in (("matmul", "matmul/s"), ("stream", "GB/s")):
        alone = run(kind, [a], args.seconds)[a]
        together = run(kind, [a, b], args.seconds)
        ratio = np.mean(list(together.values())) / alone
        print(f"{kind:7s} alone {alone:7.2f} {unit}; together {together[a]:7.2f} + {together[b]:7.2f} {unit}: "
              f"ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
