"""Plausibility checks of a scaling study's measured rows, printed as warnings in its report.

A scaling measurement can be wrong in ways its own table does not show. Each check looks at the summary rows of
one (mode, backend) group (:func:`trkx_tf.scaling.records.summarize`) and returns warning lines with the likely
causes:

- **superlinear efficiency**: ``efficiency > max_efficiency`` (default 1.05). N ranks cannot do the same work more
  than N times faster unless the baseline was slowed by something that does not scale with the work.
- **per-graph cost depends on the per-rank batch**: the step time per graph of a rank (``step_time_s`` divided by
  the graphs a rank takes per step) at the baseline differs from that at N ranks by more than ``max_cost_ratio``
  (default 1.25x). In strong scaling the per-rank batch shrinks with N, so a per-graph cost that grows with the
  batch inflates the baseline and makes every efficiency look better than it is.
- **imbalance**: the slowest rank's mean step time is more than ``max_imbalance`` (default 0.10) above the mean.
- **loaded host**: the 1-minute load average when a run started was above the host's cores (other processes
  shared the cores the ranks were timed on).
- **1 rank far from plain trkx-train** (:func:`check_reference`): where the study holds runs of one plain
  ``trkx-train`` (launcher ``plain``, backend ``single``) on the same workload, a distributed backend's 1-rank step
  time per graph differs from it by more than ``max_cost_ratio``. A 1-rank run should cost what a plain training
  costs; when it does not, the launcher, the backend's own work or the rank's placement skews every efficiency.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence


def _graphs_per_rank(row: dict[str, Any]) -> float:
    """Graphs one rank takes per step: the global batch split over the ranks (strong), or the global batch over
    ranks as recorded for weak scaling (where it is the per-rank batch times the ranks)."""
    return max(float(row["global_batch"]) / float(row["ranks"]), 1e-12)


def check_group(rows: Sequence[dict[str, Any]], *, cpu_count: Optional[int] = None, max_efficiency: float = 1.05,
                max_cost_ratio: float = 1.25, max_imbalance: float = 0.10) -> list[str]:
    """Warnings for one (mode, backend) group of summary rows.

    Args:
      rows: summary rows of one group, any order (keys ``ranks``, ``efficiency``, ``global_batch``,
        ``step_time_s``, ``imbalance``, ``load``, ``baseline_ranks``).
      cpu_count: the host's CPUs; the load check is skipped when None.
      max_efficiency: efficiencies above it are flagged.
      max_cost_ratio: a baseline/N-rank per-graph step-time ratio outside ``[1/r, r]`` is flagged.
      max_imbalance: imbalances above it are flagged.

    Returns:
      Markdown bullet lines (empty when nothing is implausible).
    """
    rows = sorted(rows, key=lambda r: int(r["ranks"]))
    if not rows:
        return []
    base = next((r for r in rows if int(r["ranks"]) == int(r.get("baseline_ranks", rows[0]["ranks"]))), rows[0])
    base_cost = float(base["step_time_s"]) / _graphs_per_rank(base)
    out = []
    for r in rows:
        n = int(r["ranks"])
        if r is not base and float(r["efficiency"]) > max_efficiency:
            out.append(f"- **{n} ranks: efficiency {float(r['efficiency']):.2f} > {max_efficiency:g} (superlinear).** "
                       "Likely causes: the baseline was slowed by load on its cores, or a step's cost per graph "
                       "grows with the graphs per step (see the per-graph check; `benchmarks/train_batch_scaling.py` "
                       "measures it), or the ranks ran on different data or buckets.")
        cost = float(r["step_time_s"]) / _graphs_per_rank(r)
        ratio = base_cost / cost if cost > 0 else float("inf")
        if r is not base and not (1.0 / max_cost_ratio <= ratio <= max_cost_ratio):
            out.append(f"- **{n} ranks: step time per graph {cost:.3f} s against {base_cost:.3f} s at "
                       f"{int(base['ranks'])} rank(s) ({ratio:.2f}x).** A rank's cost per graph should not depend "
                       f"on how many graphs it takes per step ({_graphs_per_rank(base):g} vs "
                       f"{_graphs_per_rank(r):g}); likely causes: cache or memory effects of the larger batch, "
                       "load on the cores, retracing, or input reading that grows with the batch.")
        if float(r.get("imbalance", 0.0)) > max_imbalance:
            out.append(f"- **{n} ranks: imbalance {float(r['imbalance']):.2f} > {max_imbalance:g}.** Likely causes: "
                       "ranks sharing cores (check pinning and other processes), ranks on different buckets, or "
                       "a slow rank's input reading.")
        load = r.get("load")
        if cpu_count and load is not None and float(load) > cpu_count:
            out.append(f"- **{n} ranks: host load {float(load):.1f} above its {cpu_count} CPUs when the runs "
                       "started.** Other processes shared the timed cores; the times are upper bounds.")
    return out


def check_reference(summary: Sequence[dict[str, Any]], max_cost_ratio: float = 1.25) -> list[str]:
    """Each distributed backend's 1-rank row against the plain ``trkx-train`` row (backend ``single``) of the same
    mode: the step time per graph may differ by at most ``max_cost_ratio`` either way.

    Returns:
      Markdown bullet lines; none when the study has no plain run or no 1-rank run to compare.
    """
    plain = {r["mode"]: r for r in summary if r["backend"] == "single" and int(r["ranks"]) == 1}
    out = []
    for r in summary:
        ref = plain.get(r["mode"])
        if ref is None or r["backend"] == "single" or int(r["ranks"]) != 1:
            continue
        cost, ref_cost = (float(x["step_time_s"]) / _graphs_per_rank(x) for x in (r, ref))
        ratio = cost / ref_cost if ref_cost > 0 else float("inf")
        if not (1.0 / max_cost_ratio <= ratio <= max_cost_ratio):
            out.append(f"- {r['mode']}/{r['backend']}, **1 rank: step time per graph {cost:.3f} s against {ref_cost:.3f} "
                       f"s for plain trkx-train on the same workload ({ratio:.2f}x).** Likely causes: the launcher or "
                       "backend adds work per step (a busy-waiting controller, a collective on one rank), the rank's "
                       "placement differs (threads, pinning), or load on its core during one of the two runs.")
    return out


def check_study(summary: Sequence[dict[str, Any]], cpu_count: Optional[int] = None, **bounds) -> list[str]:
    """:func:`check_group` over every (mode, backend) group of a study's summary rows (bullets prefixed by the
    group), then :func:`check_reference`."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in summary:
        groups.setdefault((row["mode"], row["backend"]), []).append(row)
    out = []
    for (mode, backend), rows in sorted(groups.items()):
        out += [line.replace("- ", f"- {mode}/{backend}, ", 1) for line in check_group(rows, cpu_count=cpu_count,
                                                                                      **bounds)]
    reference = {k: v for k, v in bounds.items() if k == "max_cost_ratio"}
    return out + check_reference(summary, **reference)
