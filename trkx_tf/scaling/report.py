"""The report of a scaling study: a markdown table of what was measured, PNG plots, and a labelled projection.

``write_report(folder)`` reads ``records.json`` and writes, beside it::

    report.md                 environment, measured tables, projection (when enabled), plots, commands
    time_vs_ranks.png         epoch time against ranks, measured points (min-max bars), ideal line, projection
    efficiency_vs_ranks.png   efficiency against ranks, measured points, ideal (1.0), projection

Measured points are markers with error bars; projected values are a dotted line and a separate table, both
labelled "projected (model)". Plots use matplotlib's Agg canvas directly (no pyplot, no global backend).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

from trkx_tf.scaling.projection import project_from_config
from trkx_tf.scaling.records import load_study

TIME_PLOT = "time_vs_ranks.png"
EFFICIENCY_PLOT = "efficiency_vs_ranks.png"


def _groups(summary: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in summary:
        groups[(row["mode"], row["backend"])].append(row)
    return dict(sorted(groups.items()))


def projection_rows(records: dict[str, Any], projection) -> tuple[Optional[list[dict[str, Any]]], str]:
    """The projection of a study's strong scaling, or why there is none.

    Args:
      records: a loaded study (:func:`trkx_tf.scaling.records.load_study`).
      projection: a :class:`trkx_tf.config.ProjectionConfig`, or None.

    Returns:
      ``(rows, note)``: rows of :func:`trkx_tf.scaling.projection.project_strong` with ``epoch_time_s`` added
      (the measured 1-rank epoch time divided by N * E), and a one-line statement of the inputs; ``(None, reason)``
      when the projection is disabled or lacks a measured 1-rank strong-scaling run or the gradient size.
    """
    if projection is None or not projection.enabled:
        return None, "projection disabled (set scaling.projection.enabled=true and its interconnect figures)"
    base = [r for r in records["summary"] if r["mode"] == "strong" and r["ranks"] == 1]
    if not base:
        return None, "no projection: it needs a measured 1-rank strong-scaling run"
    base = sorted(base, key=lambda r: r["backend"] != "horovod")[0]  # Horovod's when there are several
    nbytes = projection.gradient_bytes
    if not nbytes:
        params = [r["params"] for r in records["runs"] if "params" in r]
        nbytes = 4 * params[-1] if params else 0
    if not nbytes:
        return None, "no projection: set scaling.projection.gradient_bytes (the trainer logs no 'params')"
    projection = projection.model_copy(update={"gradient_bytes": int(nbytes)})
    rows = project_from_config(base["step_time_s"], projection)
    for row in rows:
        row["epoch_time_s"] = base["epoch_time_s"] * projection.compute_scale / (row["ranks"] * row["efficiency"])
    note = (
        f"compute per step c = {base['step_time_s']:.4g} s measured at 1 rank ({base['backend']}) x compute_scale "
        f"{projection.compute_scale:g}; gradient {nbytes / 1e6:.4g} MB; ring allreduce with "
        f"{projection.latency_us:g} us "
        f"per hop, {projection.intra_node_gb_s:g} GB/s within a node of {projection.ranks_per_node} ranks, "
        f"{projection.inter_node_gb_s:g} GB/s between nodes; {projection.overlap:.0%} of it overlapped with compute"
    )
    return rows, note


def _measured_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| ranks | repeats | global batch | epoch time [s] (mean ± std) | graphs/s | edges/s | "
        "step time [s] mean / slowest rank | imbalance | speedup | efficiency (min–max) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['ranks']} | {r['repeats']} | {r['global_batch']} "
            f"| {r['epoch_time_s']:.3f} ± {r['epoch_time_s_std']:.3f} "
            f"| {r['graphs_per_s']:.2f} | {r['edges_per_s']:.4g} | {r['step_time_s']:.4f} / {r['step_time_s_max']:.4f} "
            f"| {r['imbalance']:.3f} | {r['speedup']:.2f} | {r['efficiency']:.3f} "
            f"({r['efficiency_min']:.3f}–{r['efficiency_max']:.3f}) |"
        )
    return lines


def plot_study(
    folder: Path, summary: Sequence[dict[str, Any]], projected: Optional[list[dict[str, Any]]],
) -> list[Path]:
    """Draws the two PNG plots of a study into its folder.

    Args:
      folder: the study folder.
      summary: the summary rows (:func:`trkx_tf.scaling.records.summarize`).
      projected: projection rows (:func:`projection_rows`) or None.

    Returns:
      The paths of the PNG files written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = []
    for filename, key, ylabel in ((TIME_PLOT, "epoch_time_s", "epoch time [s]"),
                                  (EFFICIENCY_PLOT, "efficiency", "efficiency")):
        fig = Figure(figsize=(6.4, 4.4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ticks = sorted({r["ranks"] for r in summary} | {r["ranks"] for r in projected or []})
        for (mode, backend), rows in _groups(summary).items():
            ranks = [r["ranks"] for r in rows]
            values = [r[key] for r in rows]
            low = [r[key] - r[f"{key}_min"] for r in rows]
            high = [r[f"{key}_max"] - r[key] for r in rows]
            line = ax.errorbar(ranks, values, yerr=[low, high], fmt="o-", capsize=3,
                               label=f"measured: {mode}, {backend}")
            if key == "epoch_time_s":
                base = rows[0]
                ideal = [base["epoch_time_s"] * (base["ranks"] / n if mode == "strong" else 1.0) for n in ticks]
                ax.plot(ticks, ideal, "--", color=line[0].get_color(), alpha=0.6, label=f"ideal: {mode}, {backend}")
        if projected:
            ax.plot([r["ranks"] for r in projected], [r[key] for r in projected], "x:", color="black",
                    label="projected (model)")
        if key == "efficiency":
            ax.axhline(1.0, linestyle="--", color="grey", label="ideal")
            ax.set_ylim(0.0, 1.15)
        else:
            ax.set_yscale("log")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("ranks")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = folder / filename
        fig.savefig(path, format="png", dpi=110)
        paths.append(path)
    return paths


def write_report(folder: os.PathLike | str, projection=None) -> Path:
    """Writes ``report.md`` and the plots of a study.

    Args:
      folder: the study folder (with ``records.json``).
      projection: a :class:`trkx_tf.config.ProjectionConfig` or None (no projection).

    Returns:
      The path of ``report.md``.

    Raises:
      ConfigError: the folder holds no records.
    """
    folder = Path(folder)
    records = load_study(folder)
    study, env, summary = records.get("study", {}), records.get("environment", {}), records["summary"]
    stack = env.get("stack", {})
    hvd = stack.get("horovod", {})
    scaling = study.get("scaling", {})
    lines = [
        f"# Scaling study `{study.get('name', folder.name)}`",
        "",
        f"Measured on `{env.get('hostname', '?')}`: {env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} CPUs; "
        f"interconnect: {env.get('interconnect', '?')}; devices: {', '.join(stack.get('devices', [])) or '?'}.",
        f"TensorFlow {stack.get('tensorflow', '?')} ({stack.get('tensorflow_build', '?')}), Horovod "
        f"{hvd.get('version', '?')}, {stack.get('mpi_library', '?')}.",
        "",
        f"Every run: {scaling.get('warmup_epochs', '?')} warm-up epoch(s) left out, then {scaling.get('epochs', '?')} "
        f"measured epoch(s) of {scaling.get('steps_per_epoch', '?')} steps; strong scaling keeps the global batch, "
        "weak scaling the per-rank batch. Efficiency: strong E(N) = T1 / (N·TN) (T the epoch time), weak "
        "E(N) = XN / (N·X1) (X in graphs/s); its min–max is over repeats. Imbalance: slowest rank's mean step time "
        "/ mean over ranks - 1.",
        "",
    ]
    if not summary:
        lines += ["No runs recorded yet.", ""]
    for (mode, backend), rows in _groups(summary).items():
        launchers = sorted({r["launcher"] for r in records["runs"] if r["mode"] == mode and r["backend"] == backend})
        lines += [f"## Measured: {mode} scaling, {backend} ({', '.join(launchers)})", ""]
        lines += _measured_table(rows) + [""]
    projected, note = projection_rows(records, projection)
    if projected:
        lines += [
            "## Projected (model, not measured)", "",
            "T(N) = c/N + (1 - overlap)·A(N), A(N) = 2(N-1)·latency + 2(N-1)/N·gradient/bandwidth, "
            "E(N) = c / (N·T(N)). It assumes perfectly divisible compute and no input cost: an upper bound.",
            f"Inputs: {note}.", "",
            "| ranks | compute/step [s] | allreduce [s] | step [s] | epoch time [s] | efficiency |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['ranks']} | {r['compute_s']:.4g} | {r['allreduce_s']:.4g} | {r['step_time_s']:.4g} "
            f"| {r['epoch_time_s']:.4g} | {r['efficiency']:.3f} |" for r in projected
        ] + [""]
    else:
        lines += [f"_{note}._", ""]
    if summary:
        plot_study(folder, summary, projected)
        lines += ["## Plots", "", f"![epoch time against ranks]({TIME_PLOT})", "",
                  f"![efficiency against ranks]({EFFICIENCY_PLOT})", ""]
    command = folder / "command.txt"
    if command.exists():
        lines += ["## Commands that made this study", "", "```", command.read_text().rstrip(), "```", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
