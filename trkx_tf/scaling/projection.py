"""A stated model that projects strong scaling beyond the ranks that could be measured.

Data-parallel training at a fixed global batch B on N ranks: each step, every rank computes the gradient of
B / N graphs, then the ranks sum the gradient (``gradient_bytes``) with a ring allreduce. The model:

    T(N)      = c / N + (1 - overlap) * A(N)
    A(N)      = 2 (N - 1) * latency + 2 (N - 1) / N * gradient_bytes / bandwidth(N)       (A(1) = 0)
    E(N)      = T(1) / (N * T(N))

where c is the per-step compute of one rank on the whole global batch (measured at N = 1, optionally scaled to
another device by ``compute_scale``), and bandwidth(N) is the intra-node bandwidth while N fits on one node and
the inter-node bandwidth beyond (a flat ring runs at its slowest link). It assumes perfectly divisible compute
(no loss of device efficiency on smaller per-rank batches, no load imbalance) and no input-pipeline cost, so it is
an upper bound on the efficiency a real run reaches. With no communication (A = 0) it gives E(N) = 1.
"""

from __future__ import annotations

from typing import Any, Sequence

from trkx_tf.errors import ConfigError


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


def project_strong(
    step_compute_s: float, ranks: Sequence[int], *, gradient_bytes: float, latency_s: float,
    intra_node_bytes_s: float, inter_node_bytes_s: float, ranks_per_node: int, overlap: float = 0.0,
) -> list[dict[str, Any]]:
    """Projected step time, speedup and efficiency at each rank count (see the module docstring).

    Args:
      step_compute_s: c, the compute time of one step of the global batch on one rank, in seconds.
      ranks: the N to project.
      gradient_bytes: size of the gradient allreduced every step.
      latency_s: per-hop latency.
      intra_node_bytes_s: bandwidth between ranks of one node, bytes/s.
      inter_node_bytes_s: bandwidth between nodes, bytes/s.
      ranks_per_node: ranks that fit on one node.
      overlap: fraction of the allreduce hidden behind compute, in [0, 1].

    Returns:
      One dict per N: ``ranks, compute_s, allreduce_s, step_time_s, speedup, efficiency``.

    Raises:
      ConfigError: c <= 0, overlap outside [0, 1] or ranks_per_node < 1.
    """
    if step_compute_s <= 0:
        raise ConfigError(f"projection: the measured per-step compute must be > 0 s (got {step_compute_s})")
    if not 0.0 <= overlap <= 1.0:
        raise ConfigError(f"projection: overlap must be in [0, 1] (got {overlap})")
    if ranks_per_node < 1:
        raise ConfigError(f"projection: ranks_per_node must be >= 1 (got {ranks_per_node})")
    rows = []
    for n in ranks:
        bandwidth = intra_node_bytes_s if n <= ranks_per_node else inter_node_bytes_s
        allreduce = ring_allreduce_s(n, gradient_bytes, latency_s, bandwidth)
        compute = step_compute_s / n
        step = compute + (1.0 - overlap) * allreduce
        rows.append({
            "ranks": n, "compute_s": compute, "allreduce_s": allreduce, "step_time_s": step,
            "speedup": step_compute_s / step, "efficiency": step_compute_s / (n * step),
        })
    return rows


def project_from_config(step_compute_s: float, projection) -> list[dict[str, Any]]:
    """:func:`project_strong` with the parameters of a ``scaling.projection`` config section.

    Args:
      step_compute_s: the measured 1-rank per-step compute (seconds), before ``compute_scale``.
      projection: a :class:`trkx_tf.config.ProjectionConfig` (``gradient_bytes`` must be set by then).

    Returns:
      As :func:`project_strong`.
    """
    return project_strong(
        step_compute_s * projection.compute_scale, projection.ranks, gradient_bytes=projection.gradient_bytes,
        latency_s=projection.latency_us * 1e-6, intra_node_bytes_s=projection.intra_node_gb_s * 1e9,
        inter_node_bytes_s=projection.inter_node_gb_s * 1e9, ranks_per_node=projection.ranks_per_node,
        overlap=projection.overlap,
    )
