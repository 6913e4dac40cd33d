"""The evaluation's plots (matplotlib, Agg backend, PNG): track efficiency against pT and η from the full-truth
metrics (:mod:`trkx_tf.reco.evaluate`), and the restricted partial-truth metrics (:mod:`trkx_tf.reco.partial`).
``trkx-eval`` writes them under ``<out>/plots/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from trkx_tf.reco.partial import CLASSES, REGIONS
from trkx_tf.trackml.io import PT_MIN_CLASSES


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _errorbars(ax, h: dict, label: str, marker: str) -> None:
    """One efficiency histogram (:func:`trkx_tf.reco.metrics.efficiency_histogram`) as points with error bars."""
    edges = np.asarray(h["edges"])
    centre = 0.5 * (edges[1:] + edges[:-1])
    eff = np.array([np.nan if v is None else v for v in h["efficiency"]])
    ok = ~np.isnan(eff)
    ax.errorbar(centre[ok], eff[ok], yerr=np.asarray(h["error"])[ok], xerr=0.5 * (edges[1:] - edges[:-1])[ok],
                fmt=marker, ms=4, capsize=0, label=label)


def plot_efficiencies(summary: dict, folder: os.PathLike | str) -> list[str]:
    """Draws the efficiency-vs-pT and efficiency-vs-η plots (matplotlib, Agg backend, PNG).

    Args:
      summary: the output of :func:`trkx_tf.reco.evaluate.summarise`.
      folder: where the PNG files go (created).

    Returns:
      The paths written.
    """
    plt = _pyplot()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hist = summary["histograms"]
    n_events = len(summary["events"])
    paths = []

    def finish(fig, ax, xlabel, ylabel, legend_loc, title, filename) -> str:
        """Labels, saves and closes one efficiency plot; returns its path."""
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(loc=legend_loc)
        ax.set_title(f"{title} ({n_events} event{'s' if n_events != 1 else ''})")
        fig.tight_layout()
        path = str(folder / filename)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    fig, ax = plt.subplots(figsize=(6, 4.2))
    min_hits = summary["definitions"]["reconstructable_hits"]
    _errorbars(ax, hist["technical_efficiency_vs_pt"], f"technical (≥{min_hits} hits)", "o")
    _errorbars(ax, hist["physics_efficiency_vs_pt"], "physics (all particles with hits)", "s")
    ax.set_xscale("log")
    paths.append(finish(fig, ax, "particle $p_T$ [GeV]", "track efficiency", "lower right", "efficiency vs $p_T$",
                        "efficiency_vs_pt.png"))

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (sel, h), marker in zip(hist["technical_efficiency_vs_eta"].items(), "os^vD<>"):
        _errorbars(ax, h, sel, marker)
    paths.append(finish(fig, ax, "particle $\\eta$", "technical efficiency", "lower center", "technical efficiency vs $\\eta$",
                        "efficiency_vs_eta.png"))
    return paths


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def plot_partial(summary: dict, folder: os.PathLike | str) -> list[str]:
    """Draws the partial-truth metrics (matplotlib, Agg backend, PNG).

    ``partial_edges.png``: edge efficiency and purity per stage, class and region (when edges were evaluated);
    ``partial_efficiency_vs_eta.png``: track efficiency against η per class, barrel/endcap in the legend.

    Args:
      summary: the output of :func:`trkx_tf.reco.partial.summarise`.
      folder: where the PNG files go (created).

    Returns:
      The paths written.
    """
    plt = _pyplot()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_events = len(summary["events"])
    events = f"{n_events} event{'s' if n_events != 1 else ''}"
    paths = []
    rows = [(c, g) for c in CLASSES for g in REGIONS if not (CLASSES[c] == PT_MIN_CLASSES[0] and g == "endcap")]
    if summary.get("edges"):
        stages = list(summary["edges"])
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        width = 0.8 / len(rows)
        for ax, key in zip(axes, ("efficiency", "purity")):
            for i, (c, g) in enumerate(rows):
                vals = [summary["edges"][s][c][g][key] for s in stages]
                x = np.arange(len(stages)) + (i - (len(rows) - 1) / 2) * width
                ax.bar(x, [np.nan if v is None else v for v in vals], width, label=f"{c}, {g}")
            ax.set_xticks(np.arange(len(stages)), stages)
            ax.set_ylim(0, 1.05)
            ax.grid(alpha=0.3, axis="y")
            ax.set_title(f"labelled edge {key}")
        axes[0].set_ylabel("fraction")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="center right", title="class, region", title_fontsize=7)
        fig.suptitle(f"partial-truth edge metrics, restricted to labelled hits ({events})")
        fig.tight_layout(rect=(0, 0, 0.86, 1))
        path = str(folder / "partial_edges.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (cname, h), marker in zip(summary["histograms"]["efficiency_vs_eta"].items(), "os^"):
        t = summary["tracks"][cname]
        _errorbars(ax, h, cname + "".join(f", {g} {_pct(t[g]['efficiency'])}" for g in ("barrel", "endcap")), marker)
    ax.set_xlabel("labelled particle $\\eta$ (slope of its labelled hits)")
    ax.set_ylabel("labelled track efficiency")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", fontsize=8)
    ax.set_title(f"partial-truth track efficiency vs $\\eta$ ({events})")
    fig.tight_layout()
    path = str(folder / "partial_efficiency_vs_eta.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)
    return paths
