"""What a build reports: the candidate-edge builder's metrics over events and the :class:`BuildSummary` that
``trkx-build`` prints (its fields also go into the manifest, :mod:`trkx_tf.graphs.shards`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from trkx_tf.graphs.event_graphs import PT_REPORT, EventStats


def builder_metrics(stats: Sequence[EventStats]) -> dict:
    """Edge efficiency, purity and edges per event over events (ratios of summed counts).

    Returns:
      ``{"events", "edges_per_event", "efficiency", "efficiency_pt", "purity", "seconds_per_event"}``; the
      efficiency_pt is over true edges of particles with pT > 0.5 GeV; ratios are None without true edges.
    """
    n = len(stats)
    edges = sum(s.n_edges for s in stats)
    true = sum(s.n_true for s in stats)
    found = sum(s.n_true_found for s in stats)
    true_pt = sum(s.n_true_pt for s in stats)
    found_pt = sum(s.n_true_pt_found for s in stats)
    return {
        "events": n,
        "edges_per_event": edges / n if n else 0.0,
        "true_edges_per_event": true / n if n else 0.0,
        "efficiency": found / true if true else None,
        "efficiency_pt": found_pt / true_pt if true_pt else None,
        "purity": found / edges if edges and true else None,
        "seconds_per_event": sum(s.seconds for s in stats) / n if n else 0.0,
    }


@dataclasses.dataclass
class BuildSummary:
    """What one build produced (also stored in the manifest).

    Attributes:
      out_dir: the output folder.
      splits: split -> event ids.
      n_graphs: split -> graphs.
      buckets: [n_buckets, 2] budgets (nodes, edges).
      bucket_graphs: graphs per bucket.
      oversize: graphs that fitted no configured bucket (got their own).
      padding: padded/real element ratios (see :func:`trkx_tf.graphs.buckets.padding_overhead`).
      metrics: builder metrics over all events with truth (see :func:`builder_metrics`).
      n_shards: shards in the output (written or kept).
      seconds: wall time.
      kept_shards: shards already complete in out_dir (an interrupted or earlier build), verified and kept.
      filter: the edge filter's metrics (:func:`~trkx_tf.graphs.event_graphs.filter_graph_files`) when the graphs
        were filtered, else None.
    """

    out_dir: str
    splits: dict
    n_graphs: dict
    buckets: list
    bucket_graphs: list
    oversize: list
    padding: dict
    metrics: dict
    n_shards: int
    seconds: float
    kept_shards: int = 0
    filter: Optional[dict] = None

    def format(self) -> str:
        """A human-readable summary (what trkx-build prints)."""
        m, p = self.metrics, self.padding

        def pct(x):
            return "n/a" if x is None else f"{100 * x:.2f} %"

        lines = [
            f"trkx-build: {sum(len(v) for v in self.splits.values())} events "
            f"({', '.join(f'{k} {len(v)}' for k, v in self.splits.items())}) -> "
            f"{sum(self.n_graphs.values())} graphs in {self.n_shards} shards under {self.out_dir} "
            f"({self.seconds:.1f} s)",
            f"  candidate edges: {m['edges_per_event']:.0f} per event, efficiency {pct(m['efficiency'])}, "
            f"efficiency pT>{PT_REPORT} GeV {pct(m['efficiency_pt'])}, purity {pct(m['purity'])}, "
            f"{m['seconds_per_event']:.2f} s per event",
            "  buckets (nodes x edges: graphs): "
            + ", ".join(f"{n}x{e}: {c}" for (n, e), c in zip(self.buckets, self.bucket_graphs)),
            f"  padding: padded/real elements {p['elements']:.3f} (nodes {p['nodes']:.3f}, edges {p['edges']:.3f})",
        ]
        if self.filter:
            f = self.filter
            lines.insert(2, f"  edge filter (score >= {f['threshold']}): {f['kept_per_graph']:.0f} of "
                            f"{f['edges_per_graph']:.0f} edges per graph kept, efficiency {pct(f['efficiency'])}, "
                            f"efficiency pT>{PT_REPORT} GeV {pct(f['efficiency_pt'])}, purity {pct(f['purity'])}")
        if self.oversize:
            shown = ", ".join(f"event {o['event_id']}" + (f" sector {o['sector']}" if o["sector"] >= 0 else "")
                              + f" {o['n_node']}x{o['n_edge']}" for o in self.oversize[:5])
            more = f", ... ({len(self.oversize) - 5} more, all in manifest.json)" if len(self.oversize) > 5 else ""
            lines.append(f"  oversize graphs given their own bucket (nodes x edges): {len(self.oversize)}: "
                         f"{shown}{more}")
        if self.kept_shards:
            lines.append(f"  kept: {self.kept_shards} shards already complete (checksums verified), not rewritten")
        return "\n".join(lines)
