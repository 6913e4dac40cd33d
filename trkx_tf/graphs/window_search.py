"""The module-map builder's inner loop, compiled by numba: the hit pairs of connected module pairs inside windows.

The hits come sorted by module and, inside a module, by ``local`` (φ about the module centre), so the outer hits
that can fall into a pair's dphi window are one run of the outer module, found by binary search. Each candidate then gets the exact cuts of :func:`trkx_tf.graphs.doublets.doublet_variables` (the same
arithmetic, so the same edges as forming every pair with numpy). Module pairs are spread over the cores; a first
pass counts each pair's edges, a second writes them, so the output order is fixed whatever the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np

from trkx_tf.graphs.doublets import Z0_CLIP


@numba.njit(cache=True, inline="always")
def _wrap(d):
    if d >= np.pi:
        return d - 2 * np.pi
    if d < -np.pi:
        return d + 2 * np.pi
    return d


@numba.njit(cache=True, inline="always")
def _pair_edges(p, write, out_a, out_b, at, a_start, a_count, b_start, b_count, b_centre, narrow, search_lo,
                search_hi, window, local, r, phi, z):
    """The edges of live module pair ``p`` (counted; written from ``at`` when ``write``). Returns their number."""
    n = 0
    b0, b1 = b_start[p], b_start[p] + b_count[p]
    for i in range(a_start[p], a_start[p] + a_count[p]):
        j0, j1 = b0, b1
        if narrow[p]:
            d = _wrap(b_centre[p] - phi[i])
            j0 = b0 + np.searchsorted(local[b0:b1], search_lo[p] - d)
            j1 = b0 + np.searchsorted(local[b0:b1], search_hi[p] - d, side="right")
        for j in range(j0, j1):
            dphi = _wrap(phi[j] - phi[i])
            if dphi < window[p, 0] or dphi > window[p, 1]:
                continue
            dr = r[j] - r[i]
            num = z[i] * r[j] - z[j] * r[i]
            if dr != 0:
                z0 = num / dr
            else:
                z0 = np.sign(num) * Z0_CLIP
            z0 = min(max(z0, -Z0_CLIP), Z0_CLIP)
            if z0 < window[p, 2] or z0 > window[p, 3]:
                continue
            if write:
                out_a[at + n] = i
                out_b[at + n] = j
            n += 1
    return n


@numba.njit(parallel=True, cache=True)
def window_pairs(a_start, a_count, b_start, b_count, b_centre, narrow, search_lo, search_hi, window, local, r, phi,
                 z):
    """Every (inner, outer) pair of sorted hit positions of the live module pairs that passes its pair's windows.

    Args (``P`` live module pairs, ``n`` hits in sorted order):
      a_start, a_count, b_start, b_count: [P] int64 the inner and outer modules' runs of sorted hits.
      b_centre: [P] float64 the outer module's φ centre.
      narrow: [P] bool binary-search the outer run (else take all of it, and the search window is not read).
      search_lo, search_hi: [P] float64 the dphi window widened for the search.
      window: [P, 4] float64 the exact windows: dphi lo, hi, z0 lo, hi.
      local, r, phi, z: [n] float64 the sorted hits (``local``: φ about their module's centre).

    Returns:
      ``(inner, outer)``: [k] int64 sorted positions of the pairs, module pair by module pair.
    """
    n_pairs = len(a_start)
    counts = np.zeros(n_pairs, np.int64)
    dummy = np.zeros(0, np.int64)
    for p in numba.prange(n_pairs):
        counts[p] = _pair_edges(p, False, dummy, dummy, 0, a_start, a_count, b_start, b_count, b_centre, narrow,
                                search_lo, search_hi, window, local, r, phi, z)
    offsets = np.zeros(n_pairs + 1, np.int64)
    offsets[1:] = np.cumsum(counts)
    out_a = np.empty(offsets[-1], np.int64)
    out_b = np.empty(offsets[-1], np.int64)
    for p in numba.prange(n_pairs):
        _pair_edges(p, True, out_a, out_b, offsets[p], a_start, a_count, b_start, b_count, b_centre, narrow,
                    search_lo, search_hi, window, local, r, phi, z)
    return out_a, out_b
