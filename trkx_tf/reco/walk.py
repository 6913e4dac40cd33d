"""The sequential part of the ``walk`` labelling (:mod:`trkx_tf.reco.labelling`), compiled by numba.

Both functions take the kept, outward-oriented edges as CSR arrays over the ``n_node`` hits of an event:
``succ[start[u]:start[u + 1]]`` are the outer hits of ``u``'s outgoing edges, best score first (ties: the smaller
hit), and ``pred[p_start[v]:p_start[v + 1]]`` the inner hits of ``v``'s incoming edges. The compiled code is cached
beside the module (numba's ``cache=True``), so only the first run of a fresh install compiles it.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def longest_paths(topo: np.ndarray, start: np.ndarray, succ: np.ndarray, n_node: int) -> np.ndarray:
    """[n_node] int64 hits on the longest outward path from every hit (1 for a hit without outgoing edges).

    Args:
      topo: the hits to compute, in reverse topological order (every successor before its predecessors).
      start, succ: the outgoing edges (CSR, see the module docstring).
      n_node: hits of the event.
    """
    longest = np.ones(n_node, np.int64)
    for u in topo:
        best = 0
        for j in range(start[u], start[u + 1]):
            best = max(best, longest[succ[j]])
        longest[u] = best + 1
    return longest


@numba.njit(cache=True, nogil=True)
def walk_paths(seeds: np.ndarray, start: np.ndarray, succ: np.ndarray, p_start: np.ndarray, pred: np.ndarray,
               n_node: int) -> tuple[np.ndarray, np.ndarray]:
    """Walks a track from every seed not yet on one (step 2 of ``walk``).

    From the seed the walk follows the first (best) outgoing edge to a hit not yet on a track, until there is none.
    Then the hits not yet on a track with an edge from the path's hit ``k-1`` and an edge to its hit ``k+1`` join
    the track as siblings of hit ``k``.

    Args:
      seeds: the hits in seeding order.
      start, succ, p_start, pred: the outgoing and incoming edges (CSR, see the module docstring).
      n_node: hits of the event.

    Returns:
      ``(senders, receivers)`` [k] int64: consecutive hits of every path, and (sibling, the path's first hit).
    """
    used = np.zeros(n_node, np.bool_)
    out_s = np.empty(n_node, np.int64)
    out_r = np.empty(n_node, np.int64)
    path = np.empty(n_node, np.int64)
    n_out = 0
    for seed in seeds:
        if used[seed]:
            continue
        used[seed] = True
        path[0] = seed
        n = 1
        u = seed
        while True:
            nxt = -1
            for j in range(start[u], start[u + 1]):
                if not used[succ[j]]:
                    nxt = succ[j]
                    break
            if nxt < 0:
                break
            used[nxt] = True
            out_s[n_out] = u
            out_r[n_out] = nxt
            n_out += 1
            path[n] = nxt
            n += 1
            u = nxt
        for k in range(1, n - 1):
            a, b = path[k - 1], path[k + 1]
            for i in range(p_start[b], p_start[b + 1]):
                v = pred[i]
                if used[v]:
                    continue
                for j in range(start[a], start[a + 1]):
                    if succ[j] == v:
                        used[v] = True
                        out_s[n_out] = v
                        out_r[n_out] = seed
                        n_out += 1
                        break
    return out_s[:n_out], out_r[:n_out]
