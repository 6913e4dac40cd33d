"""The report of a scaling study: a markdown table of what was measured, PNG plots, and a labelled projection.

``write_report(folder)`` reads ``records.json`` and writes, beside it::

    report.md                 environment, measured tables, projection (when enabled), plots, commands
    time_vs_ranks.png         epoch time against ranks: measured points (min-max bars) and the ideal line
    efficiency_vs_ranks.png   efficiency against ranks: measured points, ideal (1.0), projected curves, the paper
    projection.png            projected epoch time against ranks with the ideal line and the paper (projection on)

Measured points are markers with error bars; projected values are dotted lines and separate tables, labelled
"projected (model)"; the Exa.TrkX paper's points are open squares. Plots use matplotlib's Agg canvas directly (no
pyplot, no global backend).
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from pathlib import Path
from statistics import fmean, stdev
from typing import Any, Optional, Sequence

from trkx_tf.files import write_text_atomic
from trkx_tf.scaling.checks import check_study
from trkx_tf.scaling.projection import PAPER_EFFICIENCY, PAPER_EPOCH_MIN, project_from_config, target_step_compute_s
from trkx_tf.scaling.records import load_study

TIME_PLOT = "time_vs_ranks.png"
EFFICIENCY_PLOT = "efficiency_vs_ranks.png"
PROJECTION_PLOT = "projection.png"


def _groups(summary: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in summary:
        groups[(row["mode"], row["backend"])].append(row)
    return dict(sorted(groups.items()))


@dataclasses.dataclass
class Projection:
    """A study's projection (:func:`projection_rows`).

    Attributes:
      rows: :func:`trkx_tf.scaling.projection.project_strong` rows with ``epoch_time_s`` (None when unknown).
      note: one line stating the inputs.
      unpadded: the same model with the load imbalance of unpadded graphs, or None.
      unpadded_note: where the unpadded loads came from.
      sensitivity: ``(what changed, efficiency at the largest N)`` pairs.
    """

    rows: list[dict[str, Any]]
    note: str
    unpadded: Optional[list[dict[str, Any]]] = None
    unpadded_note: str = ""
    sensitivity: list[tuple[str, float]] = dataclasses.field(default_factory=list)


def unpadded_loads(shards_dir: os.PathLike | str, unit: str = "graph") -> list[int]:
    """Per-rank step loads of unpadded training: the real edge count of each graph of a shards folder, or of each
    whole event (its graphs summed, ``unit="event"``).

    Raises:
      ShardError: the folder has no valid manifest.
    """
    from trkx_tf.graphs.shards import read_manifest

    per_event: dict[int, int] = defaultdict(int)
    per_graph = []
    for shard in read_manifest(shards_dir)["shards"]:
        for event, edges in zip(shard["event_id"], shard["n_edge"]):
            per_event[int(event)] += int(edges)
            per_graph.append(int(edges))
    return list(per_event.values()) if unit == "event" else per_graph


def _gradient_bytes(records: dict[str, Any], projection) -> tuple[int, str]:
    if projection.gradient_bytes:
        return int(projection.gradient_bytes), "set"
    if projection.gradient_from:
        from trkx_tf.scaling.model_size import GRADIENT_BYTES_PER_PARAMETER, gradient_bytes_of

        nbytes = gradient_bytes_of(projection.gradient_from)
        return nbytes, (f"{nbytes // GRADIENT_BYTES_PER_PARAMETER:,} float32 parameters of "
                        f"{projection.gradient_from}")
    params = [r["params"] for r in records["runs"] if "params" in r]
    return (4 * params[-1], "parameters logged by the trainer") if params else (0, "")


def _sensitivity(c: float, projection, base: Optional[dict[str, Any]] = None) -> list[tuple[str, float]]:
    """E at the largest N (equal loads) when one input changes, the others as stated; with a stated c and a
    measured 1-rank row ``base``, also c taken from that measurement (this machine's step)."""
    p = projection
    other_node = 8 if p.ranks_per_node != 8 else 4
    measured = []
    if base is not None and p.step_compute_s:
        per_graph = float(base["step_time_s"]) / max(int(base["global_batch"]), 1)
        measured = [(f"compute per step = this study's measured 1-rank step per graph ({per_graph:.3g} s, "
                     f"{base['backend']} on this machine)", {"step_compute_s": per_graph})]
    variants = [
        ("as stated", {}),
        *measured,
        ("compute per step / 4 (a 4x faster device)", {"step_compute_s": c / 4}),
        ("inter-node bandwidth / 2", {"inter_node_gb_s": p.inter_node_gb_s / 2}),
        ("inter-node bandwidth x 2", {"inter_node_gb_s": p.inter_node_gb_s * 2}),
        ("latency per hop x 4", {"latency_us": p.latency_us * 4}),
        (f"{other_node} ranks per node", {"ranks_per_node": other_node}),
        ("half of the allreduce overlapped" if p.overlap == 0 else "no overlap",
         {"overlap": 0.5 if p.overlap == 0 else 0.0}),
        ("gradient x 10 (a 10x larger model)", {"gradient_bytes": p.gradient_bytes * 10}),
    ]
    out = []
    for label, update in variants:
        varied = p.model_copy(update={"step_compute_s": c, **update})
        out.append((label, project_from_config(None, varied)[-1]["efficiency"]))
    return out


def projection_rows(records: dict[str, Any], projection) -> tuple[Optional[Projection], str]:
    """The projection of a study, or why there is none.

    Args:
      records: a loaded study (:func:`trkx_tf.scaling.records.load_study`).
      projection: a :class:`trkx_tf.config.ProjectionConfig`, or None.

    Returns:
      ``(Projection, note)``; ``(None, reason)`` when the projection is disabled or lacks its per-step compute (no
      ``step_compute_s`` and no measured 1-rank strong-scaling run) or the gradient size.

    Raises:
      ConfigError: ``gradient_from`` is not a readable config.
      ShardError: ``unpadded_from`` is not a shards folder.
    """
    if projection is None or not projection.enabled:
        return None, "projection disabled (set scaling.projection.enabled=true and its interconnect figures)"
    base = [r for r in records["summary"] if r["mode"] == "strong" and r["ranks"] == 1]
    base = sorted(base, key=lambda r: r["backend"] != "horovod")[0] if base else None  # Horovod's when several
    if base is None and not projection.step_compute_s:
        return None, ("no projection: it needs scaling.projection.step_compute_s or a measured 1-rank "
                      "strong-scaling run")
    nbytes, source = _gradient_bytes(records, projection)
    if not nbytes:
        return None, ("no projection: set scaling.projection.gradient_bytes or gradient_from (the trainer logs no "
                      "'params')")
    projection = projection.model_copy(update={"gradient_bytes": int(nbytes)})
    c = target_step_compute_s(base["step_time_s"] if base else None, projection)
    epoch_1 = projection.epoch_time_s or (base["epoch_time_s"] * projection.compute_scale if base else None)
    stated = projection.model_copy(update={"step_compute_s": c})
    rows = project_from_config(None, stated)
    for row in rows:
        row["epoch_time_s"] = epoch_1 / (row["ranks"] * row["efficiency"]) if epoch_1 else None
    if projection.step_compute_s:
        compute = f"compute per step c = {c:.4g} s (stated)"
    else:
        compute = (f"compute per step c = {base['step_time_s']:.4g} s measured at 1 rank ({base['backend']}) x "
                   f"compute_scale {projection.compute_scale:g}")
    batch = ("the global batch is fixed (each rank computes c/N)" if projection.batch == "global" else
             "the per-rank batch is fixed (each rank computes c per step; the epoch is split over the ranks)")
    note = (
        f"{compute}; {batch}; 1-rank epoch time {epoch_1:.4g} s; " if epoch_1 else f"{compute}; {batch}; "
    ) + (
        f"gradient {nbytes / 1e6:.4g} MB ({source}); ring allreduce with {projection.latency_us:g} us per hop, "
        f"{projection.intra_node_gb_s:g} GB/s within a node of {projection.ranks_per_node} ranks, "
        f"{projection.inter_node_gb_s:g} GB/s between nodes; {projection.overlap:.0%} of it overlapped with "
        f"compute; {projection.step_overhead_ms:g} ms fixed overhead per step at N > 1; equal loads on every rank "
        "(padded size buckets, the same bucket on every rank at a step)"
    )
    result = Projection(rows=rows, note=note, sensitivity=_sensitivity(c, stated, base))
    if projection.unpadded_from:
        loads = unpadded_loads(projection.unpadded_from, projection.unpadded_unit)
        result.unpadded = project_from_config(None, stated, loads)
        mean, std = fmean(loads), (stdev(loads) if len(loads) > 1 else 0.0)
        result.unpadded_note = (
            f"per-rank load of a step = the real edges of one {projection.unpadded_unit} of "
            f"{projection.unpadded_from} ({len(loads)} {projection.unpadded_unit}s, mean {mean:,.0f} edges, "
            f"coefficient of variation {std / mean:.2f}); I(N) = E[max of N draws] / mean"
        )
    return result, note


def _measured_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| ranks | repeats | global batch | epoch time [s] (mean ± std) | graphs/s | edges/s | "
        "step time [s] mean / slowest rank | imbalance | load | speedup | efficiency (min–max) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        load = f"{r['load']:.2f}" if r.get("load") is not None else "–"
        lines.append(
            f"| {r['ranks']} | {r['repeats']} | {r['global_batch']} "
            f"| {r['epoch_time_s']:.3f} ± {r['epoch_time_s_std']:.3f} "
            f"| {r['graphs_per_s']:.2f} | {r['edges_per_s']:.4g} | {r['step_time_s']:.4f} / {r['step_time_s_max']:.4f} "
            f"| {r['imbalance']:.3f} | {load} | {r['speedup']:.2f} | {r['efficiency']:.3f} "
            f"({r['efficiency_min']:.3f}–{r['efficiency_max']:.3f}) |"
        )
    return lines


def _axes(fig, ticks: Sequence[int], xlabel: str = "ranks (GPUs for the projection and the paper)"):
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(xlabel)
    ax.grid(True, which="both", alpha=0.3)
    return ax


def _save(fig, ax, path: Path) -> Path:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    return path


def plot_study(folder: Path, summary: Sequence[dict[str, Any]], projected: Optional[Projection] = None,
               paper: bool = False) -> list[Path]:
    """Draws the PNG plots of a study into its folder.

    Args:
      folder: the study folder.
      summary: the summary rows (:func:`trkx_tf.scaling.records.summarize`).
      projected: the projection (:func:`projection_rows`) or None.
      paper: also draw the Exa.TrkX paper's points (with a projection).

    Returns:
      The paths of the PNG files written (the measured epoch time only with runs, ``projection.png`` only with a
      projection that knows the 1-rank epoch time).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def figure():
        fig = Figure(figsize=(6.4, 4.4))
        FigureCanvasAgg(fig)
        return fig

    proj_ranks = [r["ranks"] for r in projected.rows] if projected else []
    measured_ticks = sorted({r["ranks"] for r in summary})
    paths = []

    fig = figure()  # measured epoch time with the ideal line
    ax = _axes(fig, measured_ticks, "ranks") if summary else None
    for (mode, backend), rows in _groups(summary).items() if summary else ():
        ranks = [r["ranks"] for r in rows]
        values = [r["epoch_time_s"] for r in rows]
        bars = [[r["epoch_time_s"] - r["epoch_time_s_min"] for r in rows],
                [r["epoch_time_s_max"] - r["epoch_time_s"] for r in rows]]
        line = ax.errorbar(ranks, values, yerr=bars, fmt="o-", capsize=3, label=f"measured: {mode}, {backend}")
        base = rows[0]
        ideal = [base["epoch_time_s"] * (base["ranks"] / n if mode == "strong" else 1.0) for n in measured_ticks]
        ax.plot(measured_ticks, ideal, "--", color=line[0].get_color(), alpha=0.6, label=f"ideal: {mode}, {backend}")
    if summary:
        ax.set_yscale("log")
        ax.set_ylabel("epoch time [s] (measured)")
        paths.append(_save(fig, ax, folder / TIME_PLOT))

    fig = figure()  # efficiency: measured, ideal, projected, paper
    ax = _axes(fig, sorted(set(measured_ticks) | set(proj_ranks)))
    for (mode, backend), rows in _groups(summary).items():
        ax.errorbar([r["ranks"] for r in rows], [r["efficiency"] for r in rows],
                    yerr=[[r["efficiency"] - r["efficiency_min"] for r in rows],
                          [r["efficiency_max"] - r["efficiency"] for r in rows]],
                    fmt="o-", capsize=3, label=f"measured: {mode}, {backend} (this machine)")
    if projected:
        ax.plot(proj_ranks, [r["efficiency"] for r in projected.rows], "x:", color="black",
                label="projected (model): size buckets, equal loads")
        if projected.unpadded:
            ax.plot(proj_ranks, [r["efficiency"] for r in projected.unpadded], "+:", color="tab:red",
                    label="projected (model): unpadded graphs, imbalance")
        if paper:
            ax.plot(list(PAPER_EFFICIENCY), list(PAPER_EFFICIENCY.values()), "s", mfc="none", color="tab:purple",
                    markersize=8, label="Exa.TrkX paper (Horovod, V100)")
    ax.axhline(1.0, linestyle="--", color="grey", label="ideal")
    ax.set_ylim(0.0, 1.15)
    ax.set_ylabel("efficiency")
    paths.append(_save(fig, ax, folder / EFFICIENCY_PLOT))

    if projected and projected.rows[0].get("epoch_time_s"):
        fig = figure()  # projected epoch time with the ideal line and the paper
        ax = _axes(fig, proj_ranks)
        t1 = projected.rows[0]["epoch_time_s"]
        ax.plot(proj_ranks, [t1 / n for n in proj_ranks], "--", color="grey", label="ideal")
        ax.plot(proj_ranks, [r["epoch_time_s"] for r in projected.rows], "x:", color="black",
                label="projected (model): size buckets, equal loads")
        if projected.unpadded:
            ax.plot(proj_ranks, [t1 / (r["ranks"] * r["efficiency"]) for r in projected.unpadded], "+:",
                    color="tab:red", label="projected (model): unpadded graphs, imbalance")
        if paper:
            ax.plot(list(PAPER_EPOCH_MIN), [60 * m for m in PAPER_EPOCH_MIN.values()], "s", mfc="none",
                    color="tab:purple", markersize=8, label="Exa.TrkX paper (Horovod, V100)")
        ax.set_yscale("log")
        ax.set_ylabel("epoch time [s] (projected)")
        paths.append(_save(fig, ax, folder / PROJECTION_PLOT))
    return paths


def _projection_lines(projected: Projection, paper: bool) -> list[str]:
    lines = [
        "## Projected (model, not measured)", "",
        "T(N) = I(N)·C(N) + (1 − overlap)·A(N) + overhead, C(N) = c/N (global batch fixed) or c (per-rank batch "
        "fixed), A(N) = 2(N−1)·latency + 2(N−1)/N·gradient/bandwidth, E(N) = C(N)/T(N); I(N) = E[max of N "
        "per-rank loads]/mean (1 with size buckets). It leaves out input and framework costs and the loss of device "
        "efficiency on smaller per-rank batches: an upper bound.",
        f"Inputs: {projected.note}.", "",
    ]
    unpadded = projected.unpadded or [{} for _ in projected.rows]
    lines += [
        "| ranks | compute/step [s] | allreduce [s] | step [s] | epoch time [s] | efficiency | unpadded: I(N) "
        "| unpadded: efficiency |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, u in zip(projected.rows, unpadded):
        epoch = f"{r['epoch_time_s']:.4g}" if r.get("epoch_time_s") else "–"
        lines.append(
            f"| {r['ranks']} | {r['compute_s']:.4g} | {r['allreduce_s']:.4g} | {r['step_time_s']:.4g} | {epoch} "
            f"| {r['efficiency']:.3f} | {u['imbalance']:.3f} | {u['efficiency']:.3f} |" if u else
            f"| {r['ranks']} | {r['compute_s']:.4g} | {r['allreduce_s']:.4g} | {r['step_time_s']:.4g} | {epoch} "
            f"| {r['efficiency']:.3f} | – | – |"
        )
    lines.append("")
    if projected.unpadded_note:
        lines += [f"Unpadded: {projected.unpadded_note}.", ""]
    if paper:
        by_n = {r["ranks"]: r for r in projected.rows}
        by_n_u = {r["ranks"]: r for r in projected.unpadded or []}
        lines += ["Against the Exa.TrkX paper (Horovod on V100 GPUs; E(64) from 22 → 0.5 min per epoch):", "",
                  "| GPUs | paper | projected: size buckets | projected: unpadded |", "|---:|---:|---:|---:|"]
        for n, e in PAPER_EFFICIENCY.items():
            proj = f"{by_n[n]['efficiency']:.3f}" if n in by_n else "–"
            unp = f"{by_n_u[n]['efficiency']:.3f}" if n in by_n_u else "–"
            lines.append(f"| {n} | {e:.3f} | {proj} | {unp} |")
        lines.append("")
    if projected.sensitivity:
        n = projected.rows[-1]["ranks"]
        lines += [f"Sensitivity: projected efficiency at {n} ranks (size buckets) when one input changes:", "",
                  "| input | efficiency |", "|---|---:|"]
        lines += [f"| {label} | {e:.3f} |" for label, e in projected.sensitivity] + [""]
    return lines


def write_report(folder: os.PathLike | str, projection=None) -> Path:
    """Writes ``report.md`` and the plots of a study.

    Args:
      folder: the study folder (with ``records.json``).
      projection: a :class:`trkx_tf.config.ProjectionConfig` or None (no projection).

    Returns:
      The path of ``report.md``.

    Raises:
      ConfigError: the folder holds no records, or the projection's inputs cannot be read.
    """
    folder = Path(folder)
    records = load_study(folder)
    study, env, summary = records.get("study", {}), records.get("environment", {}), records["summary"]
    stack = env.get("stack", {})
    hvd = stack.get("horovod", {})
    scaling = study.get("scaling", {})
    placement = env.get("placement", {})
    threads = placement.get("threads")
    place = (f"{threads or 'default'} TensorFlow thread(s) per rank"
             + (", each rank pinned to its own core(s)" if placement.get("pin_cores") else "")
             + "".join(f", {k}={v}" for k, v in placement.get("env", {}).items())) if placement else "not recorded"
    load = env.get("load_average")
    lines = [
        f"# Scaling study `{study.get('name', folder.name)}`",
        "",
        f"Measured on `{env.get('hostname', '?')}`: {env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} CPUs; "
        f"interconnect: {env.get('interconnect', '?')}; devices: {', '.join(stack.get('devices', [])) or '?'}.",
        f"Code: commit `{env.get('commit', '?')}`.",
        f"TensorFlow {stack.get('tensorflow', '?')} ({stack.get('tensorflow_build', '?')}), Horovod "
        f"{hvd.get('version', '?')}, {stack.get('mpi_library', '?')}.",
        f"Placement: {place}." + (f" Host load average (1, 5, 15 min) when the last sweep started: "
                                  f"{', '.join(f'{x:g}' for x in load)}." if load else ""),
        "",
        f"Every run: {scaling.get('warmup_epochs', '?')} warm-up epoch(s) left out, then {scaling.get('epochs', '?')} "
        f"measured epoch(s) of {scaling.get('steps_per_epoch', '?')} steps; strong scaling keeps the global batch, "
        "weak scaling the per-rank batch. Efficiency: strong E(N) = T1 / (N·TN) (T the epoch time), weak "
        "E(N) = XN / (N·X1) (X in graphs/s); its min–max is over repeats. Imbalance: slowest rank's mean step time "
        "/ mean over ranks - 1. Load: the host's 1-minute load average when the runs started (every process of the "
        "host counts).",
        "",
    ]
    if not summary:
        lines += ["No runs recorded yet.", ""]
    warnings = check_study(summary, env.get("cpu_count"))
    if warnings:
        lines += ["## Warnings: implausible measurements", "",
                  "These rows fail a plausibility check (`trkx_tf/scaling/checks.py`); read their numbers with the "
                  "stated causes in mind.", ""] + warnings + [""]
    if summary and not any(r["backend"] == "single" for r in summary):
        lines += ["_The 1-rank runs are not checked against a plain `trkx-train` on the same workload: add one with "
                  "`trkx-scaling run --name NAME --launcher plain --backend single --ranks 1`._", ""]
    for (mode, backend), rows in _groups(summary).items():
        launchers = sorted({r["launcher"] for r in records["runs"] if r["mode"] == mode and r["backend"] == backend})
        lines += [f"## Measured: {mode} scaling, {backend} ({', '.join(launchers)})", ""]
        lines += _measured_table(rows) + [""]
    projected, note = projection_rows(records, projection)
    paper = bool(projected) and projection.paper
    lines += _projection_lines(projected, paper) if projected else [f"_{note}._", ""]
    if summary or projected:
        paths = plot_study(folder, summary, projected, paper)
        lines += ["## Plots", ""] + [f"![{p.stem.replace('_', ' ')}]({p.name})\n" for p in paths]
    command = folder / "command.txt"
    if command.exists():
        lines += ["## Commands that made this study", "", "```", command.read_text().rstrip(), "```", ""]
    path = folder / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
