"""Nearest-neighbour search in a learned embedding space: the embedding builder's radius graph and the hard
negatives of its training (:mod:`trkx_tf.train.pairs`).

One query, :func:`neighbours`: for every point, its at most ``k`` nearest other points closer than ``radius``. It
runs over the query points in chunks of ``chunk`` rows, so the memory is ``O(chunk * k)`` besides the index and
the result, on a full μ=200 event as on a toy. Three backends, measured side by side by
``benchmarks/neighbour_search.py`` (docs/graphs.md):

* ``kdtree``: scipy's ``cKDTree`` (exact; scipy is a dependency);
* ``faiss``: ``faiss.IndexFlatL2`` (exact brute force over BLAS; the optional ``faiss-cpu`` package);
* ``hnswlib``: an HNSW graph (approximate: it can miss neighbours; the optional ``hnswlib`` package).

Shapes: ``n`` points of dimension ``D``; pairs come back as int64 arrays ``(i, j)``.
"""

from __future__ import annotations

import numpy as np

from trkx_tf.errors import ConfigError

SEARCHES = ("kdtree", "faiss", "hnswlib")


def _kdtree(points: np.ndarray, k: int, radius: float, chunk: int, workers: int):
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    bound = np.nextafter(radius, np.inf)
    for lo in range(0, len(points), chunk):
        _, idx = tree.query(points[lo:lo + chunk], k=k, distance_upper_bound=bound, workers=workers)
        yield lo, np.asarray(idx, np.int64).reshape(-1, k)


def _faiss(points: np.ndarray, k: int, radius: float, chunk: int, workers: int):
    import faiss

    faiss.omp_set_num_threads(max(workers, 1))
    index = faiss.IndexFlatL2(points.shape[1])
    x = np.ascontiguousarray(points, np.float32)
    index.add(x)
    for lo in range(0, len(points), chunk):
        d2, idx = index.search(x[lo:lo + chunk], k)
        yield lo, np.where((idx >= 0) & (d2 <= radius * radius), idx, len(points)).astype(np.int64)


def _hnswlib(points: np.ndarray, k: int, radius: float, chunk: int, workers: int):
    import hnswlib

    x = np.ascontiguousarray(points, np.float32)
    index = hnswlib.Index(space="l2", dim=x.shape[1])
    index.init_index(max_elements=len(x), ef_construction=200, M=16, random_seed=0)
    index.add_items(x, num_threads=max(workers, 1))
    index.set_ef(max(2 * k, 64))
    for lo in range(0, len(points), chunk):
        idx, d2 = index.knn_query(x[lo:lo + chunk], k=k, num_threads=max(workers, 1))
        yield lo, np.where(d2 <= radius * radius, idx.astype(np.int64), len(points))


def neighbours(points: np.ndarray, k: int, radius: float, search: str = "kdtree", chunk: int = 1 << 15,
               workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Directed neighbour pairs: for each point ``i``, up to ``k`` nearest points ``j != i`` with
    ``|x_i - x_j| <= radius``.

    Args:
      points: [n, D] coordinates.
      k: neighbours per point (>= 1).
      radius: the distance cut (> 0; inclusive).
      search: ``"kdtree"``, ``"faiss"`` or ``"hnswlib"``.
      chunk: query points per step (bounds the memory; >= 1).
      workers: threads of the search.

    Returns:
      ``(i, j)``: [m] int64 each, grouped by ``i`` in increasing order.

    Raises:
      ConfigError: a bad ``k``, ``radius``, ``chunk`` or ``search``, or the backend's package is missing.
    """
    if k < 1 or not radius > 0 or chunk < 1:
        raise ConfigError(f"neighbour search: need k >= 1, radius > 0, chunk >= 1 (got {k}, {radius}, {chunk})")
    if search not in SEARCHES:
        raise ConfigError(f"neighbour search must be one of {', '.join(SEARCHES)} (got {search!r})")
    points = np.asarray(points, np.float32 if search != "kdtree" else np.float64)
    n = len(points)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    kk = min(k + 1, n)  # + the point itself
    run = {"kdtree": _kdtree, "faiss": _faiss, "hnswlib": _hnswlib}[search]
    out_i, out_j = [], []
    try:
        for lo, idx in run(points, kk, float(radius), int(chunk), int(workers)):
            src = np.arange(lo, lo + len(idx), dtype=np.int64)[:, None]
            ok = (idx < n) & (idx >= 0) & (idx != src)
            # at most k per point: the query asked k + 1 to make room for the point itself
            ok &= np.cumsum(ok, axis=1) <= k
            out_i.append(np.broadcast_to(src, idx.shape)[ok])
            out_j.append(idx[ok])
    except ImportError as exc:
        raise ConfigError(f"neighbour search {search!r} needs the optional package: {exc}") from None
    return np.concatenate(out_i), np.concatenate(out_j)


def radius_graph(points: np.ndarray, radius: float, max_neighbours: int, search: str = "kdtree",
                 chunk: int = 1 << 15, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of points closer than ``radius``, each point contributing its at most ``max_neighbours`` nearest.

    A pair is kept when either point has the other among its nearest (the union of the two directions).

    Args:
      points: [n, D] coordinates.
      radius: neighbourhood radius (Euclidean, inclusive).
      max_neighbours: neighbours per point (the nearest).
      search, chunk, workers: see :func:`neighbours`.

    Returns:
      ``(i, j)``: [m] int64 each, i < j, every unordered pair once, sorted.

    Raises:
      ConfigError: see :func:`neighbours`.
    """
    i, j = neighbours(points, max_neighbours, radius, search, chunk, workers)
    n = np.int64(max(len(points), 1))
    keys = np.unique(np.minimum(i, j) * n + np.maximum(i, j))
    return keys // n, keys % n
