"""One way to run a function over many items in worker processes, with a progress bar.

Used by the graph stage (:mod:`trkx_tf.graphs.build`) and the simulator (:mod:`trkx_tf.trackml.simulate`). Workers
are started with ``spawn`` (no TensorFlow or thread state is inherited), each runs ``initializer(*initargs)`` once;
with one worker, or one item, everything runs in this process (the initializer too), which keeps tests and
test hooks in one process.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from typing import Callable, Optional, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(n: int) -> int:
    """``n`` worker processes, or one per CPU core for ``n <= 0``."""
    return n if n > 0 else max(1, os.cpu_count() or 1)


def map_in_processes(fn: Callable[[T], R], items: Sequence[T], workers: int, *,
                     initializer: Optional[Callable[..., None]] = None, initargs: tuple = (),
                     progress: bool = False, desc: str = "", unit: str = "it", leave: bool = True) -> list[R]:
    """``[fn(item) for item in items]``, computed in up to ``workers`` processes.

    Args:
      fn: a module-level function of one argument (it is pickled into the workers).
      items: its arguments (picklable).
      workers: processes (<= 1: in this process).
      initializer: called with ``initargs`` once in every worker (and here, before the items, with one worker).
      initargs: its arguments.
      progress: show a tqdm progress bar on stderr, advanced as items complete.
      desc, unit, leave: the bar's label, unit and whether it stays after the end.

    Returns:
      The results in the order of ``items``.

    Raises:
      Whatever ``fn`` or ``initializer`` raises (the first failure seen); the other workers are stopped.
    """
    from tqdm import tqdm

    items = list(items)
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, dynamic_ncols=True, leave=leave)
    try:
        if workers <= 1 or len(items) <= 1:
            if initializer is not None:
                initializer(*initargs)
            out = []
            for item in items:
                out.append(fn(item))
                bar.update()
            return out
        results: dict[int, R] = {}
        with cf.ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("spawn"),
                                    initializer=initializer, initargs=initargs) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            try:
                for fut in cf.as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        return [results[i] for i in range(len(items))]
    finally:
        bar.close()
