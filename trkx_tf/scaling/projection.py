"""A stated model that projects data-parallel scaling beyond the ranks that could be measured.

Every step, each of N ranks computes the gradient of its share of the batch, then the ranks sum the gradient
(``gradient_bytes``) with a ring allreduce and all apply the same update. The model of one step:

    T(N)      = I(N) * C(N) + (1 - overlap) * A(N) + overhead        (overhead only at N > 1)
    C(N)      = c / N   (batch "global": the global batch B is fixed, each rank computes B / N graphs)
              = c       (batch "rank": each rank computes the same per-rank batch; an epoch of G graphs takes
                         G / (N * b) steps, i.e. the epoch is split over the ranks: the Exa.TrkX paper's setting)
    A(N)      = 2 (N - 1) * latency + 2 (N - 1) / N * gradient_bytes / bandwidth(N)       (A(1) = 0)
    E(N)      = C(N) / T(N)        (= epoch time at 1 rank / (N * epoch time at N) in both settings)

where c is one step's compute at N = 1 on the target device, bandwidth(N) the intra-node bandwidth while N fits
on one node and the inter-node bandwidth beyond (a flat ring runs at its slowest link, the network card of a node),
and I(N) the load imbalance: every step waits for the slowest rank, so with per-rank loads drawn independently
from a distribution X, ``I(N) = E[max of N draws of X] / E[X]`` (:func:`imbalance_factor`). The shard reader of
this toolkit pads every graph of a step to one bucket shape and deals the same bucket to every rank at a step, so
its ranks do equal work and I(N) = 1 (the padding costs the same at every N, so it does not change E); unpadded
graphs of varying size (as the paper trained) pay I(N) > 1.

``overhead`` is a fixed per-step cost of synchronising N > 1 ranks that no allreduce size explains (Horovod
negotiates which tensors are ready in cycles of ``HOROVOD_CYCLE_TIME``, 1 ms by default).

``overlap`` is the fraction of the allreduce hidden behind the backward pass. Horovod reduces a gradient as soon as
it is computed, but the Interaction Network applies the same edge and node networks at every message-passing step,
so their gradients (nearly all of the parameters) are complete only when the backward pass ends: for it, an
overlap of 0 is the honest assumption.

Not modelled, so the result is an upper bound: loss of device efficiency on smaller per-rank batches (batch
"global"), input-pipeline and per-step framework costs, and contention of several rings on one network card.
With no communication and equal loads (A = 0, I = 1) the model gives E(N) = 1.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from trkx_tf.errors import ConfigError

#: Exa.TrkX paper (Ju et al., Eur. Phys. J. C 81 (2021) 876), Horovod on V100 GPUs: strong-scaling efficiency
#: quoted at 2 and 8 GPUs, and the epoch time from 1 to 64 GPUs (22 -> 0.5 min, so E(64) = 22 / (64 * 0.5)).
PAPER_EFFICIENCY = {2: 0.90, 8: 0.75, 64: 22.0 / (64 * 0.5)}
PAPER_EPOCH_MIN = {1: 22.0, 64: 0.5}


def ring_allreduce_s(ranks: int, nbytes: float, latency_s: float, bandwidth_bytes_s: float) -> float:
    """Time of a ring allreduce of ``nbytes`` over ``ranks`` ranks (0 for one rank).

    Args:
      ranks: N >= 1.
      nbytes: size of the reduced buffer in bytes.
      latency_s: per-hop latency in seconds.
      bandwidth_bytes_s: link bandwidth in bytes/s.

    Returns:
      ``2 (N-1) latency + 2 (N-1)/N * nbytes / bandwidth`` seconds.

    Raises:
      ConfigError: N < 1 or a non-positive bandwidth.
    """
    if ranks < 1:
        raise ConfigError(f"projection: ranks must be >= 1 (got {ranks})")
    if bandwidth_bytes_s <= 0:
        raise ConfigError(f"projection: bandwidth must be > 0 (got {bandwidth_bytes_s})")
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * latency_s + 2 * (ranks - 1) / ranks * nbytes / bandwidth_bytes_s


def imbalance_factor(loads: Sequence[float], ranks: int) -> float:
    """``E[max of N independent draws] / mean`` for the empirical distribution of per-rank step loads.

    Exact for the sample (no Monte Carlo): with the m loads sorted, x_(1) <= ... <= x_(m), the maximum of N draws
    with replacement is x_(i) with probability (i/m)^N - ((i-1)/m)^N.

    Args:
      loads: [m] per-rank step loads (e.g. the real edges of the graph a rank gets), m >= 1, all >= 0, sum > 0.
      ranks: N >= 1.

    Returns:
      I(N) >= 1; exactly 1 at N = 1 or when every load is the same.

    Raises:
      ConfigError: no loads, a negative load, all loads zero, or N < 1.
    """
    x = np.sort(np.asarray(loads, np.float64))
    if x.size == 0 or x[0] < 0 or not np.isfinite(x).all() or x.sum() <= 0:
        raise ConfigError("projection: the per-rank loads must be a non-empty list of finite values >= 0, not all 0")
    if ranks < 1:
        raise ConfigError(f"projection: ranks must be >= 1 (got {ranks})")
    if ranks == 1 or x[0] == x[-1]:
        return 1.0
    cdf = np.arange(x.size + 1, dtype=np.float64) / x.size
    p_max = cdf[1:] ** ranks - cdf[:-1] ** ranks
    return max(1.0, float(p_max @ x) / float(x.mean()))


def project_strong(
    step_compute_s: float, ranks: Sequence[int], *, gradient_bytes: float, latency_s: float,
    intra_node_bytes_s: float, inter_node_bytes_s: float, ranks_per_node: int, overlap: float = 0.0,
    batch: str = "global", loads: Optional[Sequence[float]] = None, step_overhead_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Projected step time, speedup and efficiency at each rank count (see the module docstring).

    Args:
      step_compute_s: c, the compute time of one step at N = 1, in seconds.
      ranks: the N to project.
      gradient_bytes: size of the gradient allreduced every step.
      latency_s: per-hop latency.
      intra_node_bytes_s: bandwidth between ranks of one node, bytes/s.
      inter_node_bytes_s: bandwidth between nodes, bytes/s.
      ranks_per_node: ranks that fit on one node.
      overlap: fraction of the allreduce hidden behind compute, in [0, 1].
      batch: ``"global"`` (fixed global batch, per-rank compute c / N) or ``"rank"`` (fixed per-rank batch, c).
      loads: per-rank step loads for the imbalance I(N) (:func:`imbalance_factor`); None: equal loads, I = 1.
      step_overhead_s: fixed cost of every step at N > 1, seconds.

    Returns:
      One dict per N: ``ranks, compute_s, imbalance, allreduce_s, step_time_s, speedup, efficiency``
      (speedup = N * efficiency: the epoch-time ratio to one rank).

    Raises:
      ConfigError: c <= 0, overlap outside [0, 1], ranks_per_node < 1, a negative overhead or an unknown batch
        setting.
    """
    if step_overhead_s < 0:
        raise ConfigError(f"projection: the per-step overhead must be >= 0 s (got {step_overhead_s})")
    if step_compute_s <= 0:
        raise ConfigError(f"projection: the per-step compute must be > 0 s (got {step_compute_s})")
    if not 0.0 <= overlap <= 1.0:
        raise ConfigError(f"projection: overlap must be in [0, 1] (got {overlap})")
    if ranks_per_node < 1:
        raise ConfigError(f"projection: ranks_per_node must be >= 1 (got {ranks_per_node})")
    if batch not in ("global", "rank"):
        raise ConfigError(f"projection: batch must be 'global' or 'rank' (got {batch!r})")
    rows = []
    for n in ranks:
        bandwidth = intra_node_bytes_s if n <= ranks_per_node else inter_node_bytes_s
        allreduce = ring_allreduce_s(n, gradient_bytes, latency_s, bandwidth)
        compute = step_compute_s / n if batch == "global" else step_compute_s
        imbalance = 1.0 if loads is None else imbalance_factor(loads, n)
        step = imbalance * compute + (1.0 - overlap) * allreduce + (step_overhead_s if n > 1 else 0.0)
        efficiency = compute / step
        rows.append({"ranks": n, "compute_s": compute, "imbalance": imbalance, "allreduce_s": allreduce,
                     "step_time_s": step, "speedup": n * efficiency, "efficiency": efficiency})
    return rows


def target_step_compute_s(measured_step_s: Optional[float], projection) -> float:
    """c for the projection: ``projection.step_compute_s`` when set, else the measured 1-rank step time times
    ``projection.compute_scale``.

    Raises:
      ConfigError: neither is available.
    """
    if projection.step_compute_s > 0:
        return float(projection.step_compute_s)
    if not measured_step_s:
        raise ConfigError("projection: set scaling.projection.step_compute_s or measure a 1-rank run")
    return float(measured_step_s) * projection.compute_scale


def project_from_config(measured_step_s: Optional[float], projection, loads: Optional[Sequence[float]] = None
                        ) -> list[dict[str, Any]]:
    """:func:`project_strong` with the parameters of a ``scaling.projection`` config section.

    Args:
      measured_step_s: the measured 1-rank step time (seconds), used when ``step_compute_s`` is 0 (times
        ``compute_scale``); None when nothing was measured.
      projection: a :class:`trkx_tf.config.ProjectionConfig` (``gradient_bytes`` must be set by then).
      loads: per-rank step loads for the imbalance, or None (equal loads).

    Returns:
      As :func:`project_strong`.

    Raises:
      ConfigError: no per-step compute (see :func:`target_step_compute_s`) or a bad model input.
    """
    return project_strong(
        target_step_compute_s(measured_step_s, projection), projection.ranks,
        gradient_bytes=projection.gradient_bytes, latency_s=projection.latency_us * 1e-6,
        intra_node_bytes_s=projection.intra_node_gb_s * 1e9, inter_node_bytes_s=projection.inter_node_gb_s * 1e9,
        ranks_per_node=projection.ranks_per_node, overlap=projection.overlap, batch=projection.batch, loads=loads,
        step_overhead_s=projection.step_overhead_ms * 1e-3,
    )
