"""The doublet-level realism report: simulated events against the real labelled events, on the labelled hits.

Every event, simulated or real, is reduced to what the real labelled events know (``../shared/trackml/labelled``,
its README): the labelled hits of :func:`~trkx_tf.graphs.truth.event_partial_truth` (a real event's own partial
truth, a simulated event's full truth cut by the same rules). Per event (:func:`event_figures`):

* the labelled true doublets (consecutive labelled hits of one group, :func:`~trkx_tf.graphs.truth.partial_truth_graph`)
  and their Δφ (rad), Δz (mm, signed so that |z| grows outward), Δr (mm), z0 (mm) and Δφ/Δr (mrad/mm) per layer-pair
  class (:data:`CLASSES`);
* the labelled hits per particle and the particles' |η| (of their outermost labelled hit, seen from the origin), per
  ``pt_min`` class;
* the share of labelled particles that skip a layer they cross (two consecutive labelled hits in one volume with a
  layer of that volume between them: pixel barrel cylinders and end-cap disks are crossed in order) and the share
  of doublets that skip one;
* the share of labelled true doublets a module-map builder keeps (:meth:`ModuleMapBuilder.explain`);
* hit-level figures that need no labels (:func:`global_figures`): hit shares per volume and close pairs per hit.

:func:`compare` gives a distance for each distribution (Kolmogorov–Smirnov statistic and Wasserstein distance) of
every simulated event against the pooled real events, and the same distance of every real event against the other
real events pooled (leave one out): the real events' own spread, which a simulation as real as the data stays
within. Scalar figures are compared by value against the real events' range. :func:`write_report` writes the
markdown report and the PNG plots.

Shape vocabulary: ``n_node`` hits of an event, ``k`` labelled doublets.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.files import write_text_atomic
from trkx_tf.graphs.doublets import doublet_variables
from trkx_tf.graphs.features import cylindrical, hit_rows
from trkx_tf.graphs.truth import event_partial_truth, partial_truth_graph

#: Layer-pair classes of a labelled doublet: (name, inner volumes, outer volumes, pt_min or None for any).
CLASSES = (("barrel pT>1", (8,), (8,), 1.0), ("barrel 0.5-1", (8,), (8,), 0.5),
           ("barrel-endcap", (8,), (7, 9), None), ("endcap", (7, 9), (7, 9), None))
#: Doublet variables (name, unit).
VARIABLES = (("dphi", "rad"), ("dz", "mm"), ("dr", "mm"), ("z0", "mm"), ("dphi_dr", "mrad/mm"))
#: Histogram ranges of the plots (robust to far tails; the distances use every value).
PLOT_RANGE = {"dphi": (-0.06, 0.06), "dz": (-100.0, 800.0), "dr": (0.0, 120.0), "z0": (-150.0, 150.0),
              "dphi_dr": (-0.6, 0.6)}
#: Volumes whose hit shares are reported.
VOLUMES = (7, 8, 9, 12, 13, 14, 16, 17, 18)
#: Close hit pairs (a truth-free proxy of overlap duplicates): volumes and radius (mm) per detector part.
CLOSE = {"pixel": ((7, 8, 9), 3.0), "short strip": ((12, 13, 14), 6.0), "long strip": ((16, 17, 18), 15.0)}
#: ``pt_min`` classes of the labelled particles.
PT_CLASSES = (1.0, 0.5)


@dataclasses.dataclass
class EventFigures:
    """The realism figures of one event.

    Attributes:
      event_id: the event's id.
      doublets: ``{class: {variable: [k_class] float64}}`` labelled true doublets per layer-pair class.
      hits_per_particle: ``{"pt_min=1.0" | "pt_min=0.5": [groups] int64}`` labelled hits of each labelled particle.
      particle_eta: the same keys: [groups] float64 |η| of each labelled particle's outermost labelled hit.
      scalars: named per-event figures (shares, counts, hit-level figures).
    """

    event_id: int
    doublets: dict
    hits_per_particle: dict
    particle_eta: dict
    scalars: dict


def close_pairs(hits: pd.DataFrame, volumes: Sequence[int], radius: float) -> float:
    """Pairs of hits closer than ``radius`` (mm) in different modules of one layer, per hit of ``volumes``."""
    from scipy.spatial import cKDTree

    sel = hits[hits["volume_id"].isin(volumes)]
    n = 0
    for _, g in sel.groupby(["volume_id", "layer_id"]):
        pairs = cKDTree(g[["x", "y", "z"]].to_numpy(np.float64)).query_pairs(radius, output_type="ndarray")
        module = g["module_id"].to_numpy()
        n += int((module[pairs[:, 0]] != module[pairs[:, 1]]).sum())
    return n / max(len(sel), 1)


def global_figures(hits: pd.DataFrame) -> dict:
    """Label-free hit figures: ``close pairs/hit <part>`` (:data:`CLOSE`) and ``share vol <v>`` (:data:`VOLUMES`)."""
    out = {f"close pairs/hit {name}": close_pairs(hits, vols, radius) for name, (vols, radius) in CLOSE.items()}
    vol = hits["volume_id"].value_counts()
    out.update({f"share vol {v}": float(vol.get(v, 0) / max(len(hits), 1)) for v in VOLUMES})
    return out


def labelled_doublets(hits: pd.DataFrame, partial_truth: pd.DataFrame) -> pd.DataFrame:
    """The labelled true doublets of an event and their variables.

    Args:
      hits: ``[n_node]`` TrackML hits (``hit_id, x, y, z, volume_id, layer_id, module_id``).
      partial_truth: ``hit_id, group, pt_min`` rows (a read partial truth, or one made from a full truth).

    Returns:
      ``[k]`` rows: ``sender, receiver`` (hit rows, inner first), ``group``, ``pt_min``, ``cls`` (the
      :data:`CLASSES` name, "" for other pairs), ``skip`` (bool: a layer of the volume lies between the two hits),
      and the :data:`VARIABLES`.

    Raises:
      DataError: see :func:`~trkx_tf.graphs.truth.partial_truth_graph`.
    """
    g = partial_truth_graph(hits, partial_truth)
    s, r = g.senders, g.receivers
    rr, phi, z = cylindrical(hits)
    dphi, z0 = doublet_variables(rr, phi, z, s, r)
    vol = hits["volume_id"].to_numpy(np.int64)
    lay = hits["layer_id"].to_numpy(np.int64)
    dr = rr[r] - rr[s]
    pt_min = g.pt_min[s]
    cls = np.full(len(s), "", dtype=object)
    for name, inner, outer, pt in CLASSES:
        sel = np.isin(vol[s], inner) & np.isin(vol[r], outer) & (cls == "")
        if pt is not None:
            sel &= pt_min == pt
        cls[sel] = name
    with np.errstate(divide="ignore", invalid="ignore"):
        curv = np.where(dr != 0, 1e3 * dphi / np.where(dr != 0, dr, 1.0), np.nan)
    return pd.DataFrame({
        "sender": s, "receiver": r, "group": g.group[s], "pt_min": pt_min, "cls": cls.astype(str),
        "skip": (vol[s] == vol[r]) & (np.abs(lay[r] - lay[s]) > 2),
        "dphi": dphi, "dz": (z[r] - z[s]) * np.where(z[r] < 0, -1.0, 1.0), "dr": dr, "z0": z0, "dphi_dr": curv,
    })


def _share(flags: pd.Series) -> float:
    return float(flags.mean()) if len(flags) else np.nan


def event_figures(event, builder=None, with_globals: bool = True) -> EventFigures:
    """The realism figures of one event (module docstring).

    Args:
      event: a :class:`~trkx_tf.trackml.io.Event` with a partial truth, or a full truth and particles.
      builder: a :class:`~trkx_tf.graphs.candidates.ModuleMapBuilder` (None: no kept share).
      with_globals: also compute :func:`global_figures`.

    Returns:
      The :class:`EventFigures`.

    Raises:
      DataError: the event has neither a partial nor a full truth with particles.
    """
    partial = event_partial_truth(event)
    if partial is None:
        raise DataError(f"realism: event {event.event_id} has no partial truth and no full truth with particles")
    d = labelled_doublets(event.hits, partial)
    doublets = {name: {v: d.loc[d["cls"] == name, v].to_numpy(np.float64) for v, _ in VARIABLES}
                for name, *_ in CLASSES}
    rr, _, z = cylindrical(event.hits)
    row = hit_rows(event.hits["hit_id"].to_numpy(np.int64), partial["hit_id"].to_numpy(np.int64), "partial truth")
    lab = partial.assign(d=np.hypot(rr, z)[row], eta=np.abs(np.arcsinh(z / np.maximum(rr, 1e-9)))[row])
    sizes = lab.sort_values(["group", "d"]).groupby("group").agg(n=("hit_id", "size"), pt_min=("pt_min", "first"),
                                                                  eta=("eta", "last"))
    per = {f"pt_min={p}": sizes.loc[sizes["pt_min"] == p, "n"].to_numpy(np.int64) for p in PT_CLASSES}
    eta = {f"pt_min={p}": sizes.loc[sizes["pt_min"] == p, "eta"].to_numpy(np.float64) for p in PT_CLASSES}
    skipped = d.groupby("group")["skip"].any()
    scalars = {
        "labelled hits": int(len(partial)),
        "labelled particles": int(len(sizes)),
        "mean labelled hits/particle": float(sizes["n"].mean()) if len(sizes) else np.nan,
        "particles skipping a layer": _share(skipped),
        "doublets skipping a layer": _share(d["skip"]),
        "barrel doublets skipping a layer": _share(d["skip"][d["cls"].str.startswith("barrel ")]),
        "endcap doublets skipping a layer": _share(d["skip"][d["cls"] == "endcap"]),
        "doublets kept by the module map": np.nan,
    }
    if builder is not None and len(d):
        why = builder.explain(event.hits, d["sender"].to_numpy(), d["receiver"].to_numpy())
        scalars["doublets kept by the module map"] = float(np.mean(why == 0))
    if with_globals:
        scalars.update(global_figures(event.hits))
    return EventFigures(int(event.event_id), doublets, per, eta, scalars)


def fit_builder(events: Sequence, graph_cfg):
    """A module-map builder learned from the true edges of ``events`` (full truth), with ``graph_cfg``'s settings.

    Args:
      events: :class:`~trkx_tf.trackml.io.Event` objects with truth and particles (simulated training events).
      graph_cfg: the ``graph`` config section (:class:`trkx_tf.config.GraphConfig`): its ``module_map`` fit and
        window settings.

    Returns:
      The :class:`~trkx_tf.graphs.candidates.ModuleMapBuilder`.

    Raises:
      DataError: no event has true edges to learn from.
    """
    from trkx_tf.graphs.candidates import make_builder
    from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
    from trkx_tf.graphs.truth import truth_graph

    c = graph_cfg.module_map
    samples = [EdgeSample.from_truth(e.hits, truth_graph(e.hits, e.particles, e.truth), c.skip_layers)
               for e in events if e.truth is not None and e.particles is not None]
    module_map = ModuleMap.fit(samples, pt_min=c.pt_min, quantile=c.quantile, connect_pt_min=c.connect_pt_min,
                               skip_layers=c.skip_layers)
    return make_builder(graph_cfg.model_copy(update={"builder": "module_map"}), module_map)


def _samples(figs: Sequence[EventFigures], figure: str) -> list[np.ndarray]:
    """Per-event value arrays of a distribution figure ``"<class>:<variable>"``, ``"hits/particle <pt>"`` or
    ``"abs(eta) <pt>"``."""
    if figure.startswith("hits/particle "):
        key = figure[len("hits/particle "):]
        return [f.hits_per_particle[key].astype(np.float64) for f in figs]
    if figure.startswith("abs(eta) "):
        return [f.particle_eta[figure[len("abs(eta) "):]] for f in figs]
    cls, var = figure.split(":")
    return [f.doublets[cls][var][np.isfinite(f.doublets[cls][var])] for f in figs]


def distribution_figures() -> list[str]:
    """The names of the distribution figures, in report order."""
    return ([f"{c}:{v}" for c, *_ in CLASSES for v, _ in VARIABLES]
            + [f"{what} pt_min={p}" for what in ("hits/particle", "abs(eta)") for p in PT_CLASSES])


def distances(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(KS statistic, Wasserstein distance)`` of two samples (NaN when one is empty)."""
    from scipy.stats import ks_2samp, wasserstein_distance

    if len(a) == 0 or len(b) == 0:
        return np.nan, np.nan
    return float(ks_2samp(a, b).statistic), float(wasserstein_distance(a, b))


def compare_distribution(sim: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> dict:
    """Distances of each simulated event to the pooled real events, and of each real event to the others.

    Args:
      sim: per simulated event, the values of one figure.
      real: per real event, the values (at least 2 events).

    Returns:
      ``{"n_sim", "n_real"}`` (values per event, mean), ``ks_sim`` / ``w_sim`` [n_sim events] and ``ks_real`` /
      ``w_real`` [n_real events] (leave one out) arrays.

    Raises:
      DataError: fewer than 2 real events.
    """
    if len(real) < 2:
        raise DataError(f"realism: the real events' spread needs at least 2 real events, got {len(real)}")
    pooled = np.concatenate(real)
    ds = np.array([distances(s, pooled) for s in sim]).reshape(-1, 2)
    dr = np.array([distances(real[i], np.concatenate(real[:i] + real[i + 1:])) for i in range(len(real))])
    return {"n_sim": float(np.mean([len(s) for s in sim])) if len(sim) else 0.0,
            "n_real": float(np.mean([len(r) for r in real])),
            "ks_sim": ds[:, 0], "w_sim": ds[:, 1], "ks_real": dr[:, 0], "w_real": dr[:, 1]}


def verdict(sim_value: float, real_values: np.ndarray) -> str:
    """``inside`` when ``sim_value`` lies within [min, max] of ``real_values``, else ``above`` / ``below``."""
    real_values = real_values[np.isfinite(real_values)]
    if not np.isfinite(sim_value) or len(real_values) == 0:
        return "n/a"
    if sim_value > real_values.max():
        return "above"
    return "below" if sim_value < real_values.min() else "inside"


def compare(sim: Sequence[EventFigures], real: Sequence[EventFigures]) -> dict:
    """The report's tables.

    Returns:
      ``{"distributions": [row], "scalars": [row]}``; a distribution row: ``figure``, values per event ``n_sim``
      / ``n_real``, the median sim KS and Wasserstein distances, the real events' median and max of each (leave
      one out), and ``verdict`` (the median sim KS against the real KS range); a scalar row: ``figure``, sim mean
      and sd, real mean, min and max, ``rel`` (sim mean / real mean - 1) and ``verdict`` (sim mean in the real
      range).
    """
    rows = []
    for name in distribution_figures():
        c = compare_distribution(_samples(sim, name), _samples(real, name))
        ks = float(np.nanmedian(c["ks_sim"])) if np.isfinite(c["ks_sim"]).any() else np.nan
        rows.append({"figure": name, "n_sim": c["n_sim"], "n_real": c["n_real"],
                     "ks_sim": ks, "w_sim": float(np.nanmedian(c["w_sim"])) if np.isfinite(ks) else np.nan,
                     "ks_real_median": float(np.nanmedian(c["ks_real"])), "ks_real_max": float(np.nanmax(c["ks_real"])),
                     "w_real_median": float(np.nanmedian(c["w_real"])), "w_real_max": float(np.nanmax(c["w_real"])),
                     "verdict": verdict(ks, c["ks_real"])})
    scal = []
    for key in sim[0].scalars if sim else ():
        s = np.array([f.scalars.get(key, np.nan) for f in sim], np.float64)
        r = np.array([f.scalars.get(key, np.nan) for f in real], np.float64)
        if not np.isfinite(r).any() or not np.isfinite(s).any():
            continue
        sm, rm = float(np.nanmean(s)), float(np.nanmean(r))
        scal.append({"figure": key, "sim_mean": sm, "sim_sd": float(np.nanstd(s)), "real_mean": rm,
                     "real_min": float(np.nanmin(r)), "real_max": float(np.nanmax(r)),
                     "rel": sm / rm - 1.0 if rm else np.nan, "verdict": verdict(sm, r)})
    return {"distributions": rows, "scalars": scal}


def _num(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"


def markdown(tables: dict, header: str) -> str:
    """The report as markdown: ``header`` (what was compared, the command), then the two tables."""
    lines = [header, "", "## Distributions (labelled doublets and particles)", "",
             "KS and W: the median over simulated events of each event's distance to the pooled real events; real: "
             "each real event against the other real events pooled (median, max). `inside`: the simulation's KS "
             "is within the real events' own range.", "",
             "| figure | values/event sim | real | KS sim | KS real median | KS real max | W sim | W real median "
             "| W real max | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in tables["distributions"]:
        lines.append(f"| {r['figure']} | {_num(r['n_sim'])} | {_num(r['n_real'])} | {r['ks_sim']:.3f} | "
                     f"{r['ks_real_median']:.3f} | {r['ks_real_max']:.3f} | {_num(r['w_sim'])} | "
                     f"{_num(r['w_real_median'])} | {_num(r['w_real_max'])} | {r['verdict']} |")
    lines += ["", "## Scalar figures (per event)", "",
              "| figure | sim mean ± sd | real mean [min, max] | sim/real − 1 | verdict |", "|---|---|---|---|---|"]
    for r in tables["scalars"]:
        lines.append(f"| {r['figure']} | {_num(r['sim_mean'])} ± {_num(r['sim_sd'])} | {_num(r['real_mean'])} "
                     f"[{_num(r['real_min'])}, {_num(r['real_max'])}] | {100 * r['rel']:+.1f} % | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def plot(sim: Sequence[EventFigures], real: Sequence[EventFigures], folder: os.PathLike | str) -> list[str]:
    """``doublets.png`` (the doublet variables per class) and ``particles.png`` (hits per particle, scalar
    figures against the real range) in ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    fig, axes = plt.subplots(len(CLASSES), len(VARIABLES), figsize=(15, 10))
    for i, (cls, *_) in enumerate(CLASSES):
        for j, (var, unit) in enumerate(VARIABLES):
            ax = axes[i, j]
            bins = np.linspace(*PLOT_RANGE[var], 61)
            for name, figs, color in (("real", real, "C1"), ("sim", sim, "C0")):
                vals = np.concatenate(_samples(figs, f"{cls}:{var}") or [np.zeros(0)])
                if len(vals):
                    ax.hist(np.clip(vals, bins[0], bins[-1]), bins, density=True, histtype="step", color=color,
                            label=name)
            ax.set_yscale("log")
            ax.tick_params(labelsize=7)
            if i == len(CLASSES) - 1:
                ax.set_xlabel(f"{var} [{unit}]", fontsize=8)
            if j == 0:
                ax.set_ylabel(cls, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    paths = [folder / "doublets.png"]
    fig.savefig(paths[0], dpi=60)
    plt.close(fig)

    keys = ["mean labelled hits/particle", "particles skipping a layer", "doublets skipping a layer",
            "doublets kept by the module map", "share vol 17", "close pairs/hit short strip"]
    fig, axes = plt.subplots(2, 5, figsize=(17, 6))
    hists = [(f"{what} pt_min={p}", bins) for what, bins in (("hits/particle", np.arange(0.5, 12.5)),
                                                             ("abs(eta)", np.linspace(0, 4, 17))) for p in PT_CLASSES]
    for ax, (name_fig, bins) in zip(axes[0, :4], hists):
        for name, figs, color in (("real", real, "C1"), ("sim", sim, "C0")):
            vals = np.concatenate(_samples(figs, name_fig))
            ax.hist(vals, bins, density=name_fig.startswith("hits"), histtype="step", color=color, label=name,
                    weights=None if name_fig.startswith("hits") else np.full(len(vals), 1.0 / max(len(figs), 1)))
        ax.set_xlabel(f"labelled {name_fig}" + ("" if name_fig.startswith("hits") else " (per event)"), fontsize=8)
        ax.legend(fontsize=7)
    for ax, key in zip([axes[0, 4]] + list(axes[1]), keys):
        for x, (figs, color) in enumerate(((real, "C1"), (sim, "C0"))):
            v = np.array([f.scalars.get(key, np.nan) for f in figs], np.float64)
            ax.plot(np.full(len(v), x) + np.linspace(-0.15, 0.15, len(v)), v, ".", color=color)
        ax.set_xticks([0, 1], ["real", "sim"])
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    paths.append(folder / "particles.png")
    fig.savefig(paths[1], dpi=60)
    plt.close(fig)
    return [str(p) for p in paths]


def write_report(sim: Sequence[EventFigures], real: Sequence[EventFigures], folder: os.PathLike | str,
                 header: str) -> tuple[str, list[str]]:
    """Writes ``realism.md`` and the plots into ``folder`` (created); returns the report's and the plots' paths.

    Raises:
      DataError: no simulated events, or fewer than 2 real events.
    """
    if not sim:
        raise DataError("realism: no simulated events to compare")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = compare(sim, real)
    report = folder / "realism.md"
    write_text_atomic(report, markdown(tables, header))
    return str(report), plot(sim, real, folder)
