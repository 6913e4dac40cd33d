"""The report of ``trkx-study systematics``: ``study.md`` with the tables in the Exa.TrkX paper's layout beside the
paper's numbers, and the PNG plots.

Files written into the study's ``out_dir``::

    study.md                              the tables (noise: the paper's Table 1; pile-up: its Figure 6 as numbers;
                                          misalignment, field, real-event variants: changes from the nominal point)
    plots/relative_efficiency_vs_pt.png   technical efficiency at each noise level / at 0 % noise, against pT, one
                                          panel per model (the paper's Figure 7)
    plots/efficiency_purity_vs_spacepoints.png  technical efficiency and purity (mean and standard deviation over
                                          events) against the number of spacepoints (the paper's Figure 6)

Efficiencies and purities are summed counts over a point's events; ``±`` is the binomial standard error
(√(p(1-p)/n)). Every simulated point uses the same seed and event ids, so all points generate the same particles. The
noise points also share every signal hit (noise is drawn last), and the real-event variants differ only in the added
or moved hits: their changes are known much better than the errors shown. A misalignment, field or pile-up point
changes the module crossings, after which the simulation's random draws (scattering, digitisation) differ: its change
from the nominal point carries about √2 times the error shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from trkx_tf.files import write_text_atomic

#: The Exa.TrkX paper's numbers (arXiv 2103.06995, section 4.1.2): Table 1 (technical efficiency, purity) at 0 and
#: 20 % noise, the pile-up and misalignment findings in words.
PAPER_NOISE = {0.0: (0.915, 0.593), 0.20: (0.899, 0.539)}
PAPER_PILEUP = "the degradation of technical efficiency and purity with the number of spacepoints is smooth and " \
               "relatively small (its Figure 6)"
PAPER_MISALIGNMENT = "shifting x of the innermost barrel layer, or of the four innermost layers, by up to 1 mm " \
                     "changes the efficiency by less than 0.1 %"


def _ratio(counts: dict, num: str, den: str) -> tuple[Optional[float], float]:
    n = counts[den]
    if not n:
        return None, 0.0
    p = counts[num] / n
    return p, float(np.sqrt(p * (1 - p) / n))


def _eff(rec: dict, sel: str):
    return _ratio(rec["metrics"]["tracks"][sel], "matched_reconstructable", "reconstructable")


def _pur(rec: dict, sel: str):
    return _ratio(rec["metrics"]["tracks"][sel], "matched_tracks", "tracks")


def _fmt(value_err) -> str:
    p, e = value_err
    return "n/a" if p is None else f"{100 * p:.2f} ± {100 * e:.2f}"


def _delta(a, b) -> str:
    if a[0] is None or b[0] is None:
        return "n/a"
    return f"{100 * (a[0] - b[0]):+.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|",
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def _selections(results: dict) -> list[str]:
    cuts = results["pt_cuts"]
    return ["all"] + ([f"pt>{float(cuts[0]):g}"] if cuts else [])


def _sel_name(sel: str) -> str:
    return "all particles" if sel == "all" else f"pT > {sel[3:]} GeV"


def _records(results: dict, study: str, model: Optional[str] = None) -> list[dict]:
    return [r for r in results["records"] if r["study"] == study and (model is None or r["model"] == model)]


def _change_table(recs: list[dict], sels: list[str], first_cols: list[str], cells) -> list[str]:
    """A table of points against the nominal one (the record with value 0 and label ``nominal``)."""
    ref = next((r for r in recs if r["label"] in ("nominal", "as recorded")), None)
    header = list(first_cols)
    for sel in sels:
        header += [f"tech. eff. % ({_sel_name(sel)})", "Δ", f"purity % ({_sel_name(sel)})", "Δ"]
    rows = []
    for r in recs:
        row = cells(r)
        for sel in sels:
            e, p = _eff(r, sel), _pur(r, sel)
            row += [_fmt(e), "" if r is ref or ref is None else _delta(e, _eff(ref, sel)),
                    _fmt(p), "" if r is ref or ref is None else _delta(p, _pur(ref, sel))]
        rows.append(row)
    return _table(header, rows)


def noise_section(results: dict) -> list[str]:
    recs = _records(results, "noise")
    if not recs:
        return []
    models = list(dict.fromkeys(r["model"] for r in recs))
    train = {m["name"]: m["training_noise_fraction"] for m in results["models"]}
    lines = ["## Noise (the paper's Table 1)", "",
             "The pipeline runs on the same collisions with noise hits making 0 … 20 % of the hits. The paper trains "
             "without noise; each model's training noise fraction is given in its column.", ""]
    for sel in _selections(results):
        header = ["noise"]
        for m in models:
            header += [f"{m} (trained at {100 * train[m]:g} % noise): tech. eff. %", "purity %"]
        header += ["paper: tech. eff. %", "paper: purity %"]
        rows = []
        for f in sorted({r["value"] for r in recs}):
            row = [f"{100 * f:g} %"]
            for m in models:
                r = next((x for x in recs if x["model"] == m and x["value"] == f), None)
                row += [_fmt(_eff(r, sel)), _fmt(_pur(r, sel))] if r else ["", ""]
            paper = PAPER_NOISE.get(round(f, 6)) if sel == "all" else None
            row += [f"{100 * paper[0]:.1f}", f"{100 * paper[1]:.1f}"] if paper else ["–", "–"]
            rows.append(row)
        lines += [f"**{_sel_name(sel)}**", ""] + _table(header, rows)
        lo, hi = min(r["value"] for r in recs), max(r["value"] for r in recs)
        if hi > lo:
            parts = []
            for m in models:
                a = next(x for x in recs if x["model"] == m and x["value"] == lo)
                b = next(x for x in recs if x["model"] == m and x["value"] == hi)
                parts.append(f"{m}: tech. eff. {_delta(_eff(b, sel), _eff(a, sel))}, purity "
                             f"{_delta(_pur(b, sel), _pur(a, sel))} points")
            paper = " (paper, 0 → 20 %: tech. eff. −1.6, purity −5.4 points)" if sel == "all" else ""
            lines += [f"Change from {100 * lo:g} % to {100 * hi:g} % noise: " + "; ".join(parts) + paper + ".", ""]
    lines += ["Relative efficiency against pT: `plots/relative_efficiency_vs_pt.png` (the paper's Figure 7: the "
              "loss is mostly below 0.5 GeV).", ""]
    return lines


def pileup_section(results: dict) -> list[str]:
    recs = _records(results, "pileup")
    if not recs:
        return []
    sels = _selections(results)
    header = ["μ", "events", "spacepoints (mean ± sd)"]
    for sel in sels:
        header += [f"tech. eff. % ({_sel_name(sel)}) mean ± sd", "purity % mean ± sd"]
    rows = []
    for r in sorted(recs, key=lambda x: x["value"]):
        ev = r["metrics"]["per_event"]
        hits = np.array([e["n_hits"] for e in ev], float)
        row = [f"{r['value']:g}", str(len(ev)), f"{hits.mean():,.0f} ± {hits.std():,.0f}"]
        for sel in sels:
            for key in ("technical_efficiency", "purity"):
                v = np.array([np.nan if e["tracks"][sel][key] is None else e["tracks"][sel][key] for e in ev])
                row.append("n/a" if np.all(np.isnan(v)) else f"{100 * np.nanmean(v):.2f} ± {100 * np.nanstd(v):.2f}")
        rows.append(row)
    return (["## Pile-up (the paper's Figure 6)", "",
             f"Per-event technical efficiency and purity against the event size. Paper: {PAPER_PILEUP}. Plot: "
             "`plots/efficiency_purity_vs_spacepoints.png`.", ""] + _table(header, rows))


def misalignment_section(results: dict) -> list[str]:
    recs = _records(results, "misalignment")
    if not recs:
        return []
    how = ("The nominal events with the hits of the layers moved by −shift in x (`systematics.misalignment: "
           "shift_hits`, as the paper and the real-event variant do): the same events, so Δ is the change itself, "
           "without simulation noise." if results["systematics"].get("misalignment") == "shift_hits" else
           "The layers are built the given distance along x from their nominal place; the hits are reported in the "
           "nominal geometry, which reconstruction assumes.")
    return (["## Misalignment", "",
             f"{how} Δ: points from the nominal detector. Paper: {PAPER_MISALIGNMENT}.", ""]
            + _change_table(recs, _selections(results), ["layers", "shift"],
                            lambda r: [r["group"] or "none", r["label"]]))


def field_section(results: dict) -> list[str]:
    recs = _records(results, "field")
    if not recs:
        return []
    return (["## Magnetic field", "",
             "Events simulated in a field off by the given fraction from the one the models and the module map were "
             "made with (reconstruction assumes the nominal field). Not in the paper.", ""]
            + _change_table(recs, _selections(results), ["simulated field − assumed"], lambda r: [r["label"]]))


def real_section(results: dict) -> list[str]:
    recs = _records(results, "real")
    if not recs:
        return []
    event = recs[0]["events"][0]
    return ([f"## Real event {event}", "",
             "The real test event as recorded, with synthetic noise hits added (one pixel each, spread over the layers "
             "like the event's own noise hits, uniform over the modules of a layer), and with the first layer group "
             "shifted (its hits moved by −shift in x). Only reconstructed and scored, never trained on.", ""]
            + _change_table(recs, _selections(results), ["variant", "hits", "noise fraction"],
                            lambda r: [r["label"], f"{r['real_facts']['hits']:,}",
                                       f"{100 * r['real_facts']['noise_fraction']:.1f} %"]))


def plot_relative_efficiency(results: dict, path: Path) -> Optional[Path]:
    """Technical efficiency per pT bin at each noise level divided by the one at the lowest noise, per model."""
    recs = _records(results, "noise")
    if not recs:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in recs))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False)
    for ax, m in zip(axes[0], models):
        mine = sorted((r for r in recs if r["model"] == m), key=lambda r: r["value"])
        ref = mine[0]["metrics"]["technical_efficiency_vs_pt"]
        edges = np.asarray(ref["edges"])
        centre = np.sqrt(edges[1:] * edges[:-1])
        t0, m0 = np.asarray(ref["total"], float), np.asarray(ref["matched"], float)
        e0 = np.divide(m0, t0, out=np.full(len(t0), np.nan), where=t0 > 0)
        plotted = False
        for r in mine[1:]:
            h = r["metrics"]["technical_efficiency_vs_pt"]
            t, k = np.asarray(h["total"], float), np.asarray(h["matched"], float)
            e = np.divide(k, t, out=np.full(len(t), np.nan), where=t > 0)
            rel = np.divide(e, e0, out=np.full(len(e), np.nan), where=e0 > 0)
            err = rel * np.sqrt(np.divide(1 - e, np.maximum(k, 1), out=np.zeros(len(e)), where=k > 0)
                                + np.divide(1 - e0, np.maximum(m0, 1), out=np.zeros(len(e)), where=m0 > 0))
            ok = np.isfinite(rel)
            ax.errorbar(centre[ok], rel[ok], yerr=err[ok], fmt="o-", ms=3, capsize=0, label=f"{100 * r['value']:g} %")
            plotted |= bool(ok.any())
        ax.axhline(1.0, color="grey", lw=0.8)
        if plotted:  # a log axis of no positive point cannot be drawn (e.g. untrained models: no track matched)
            ax.set_xscale("log")
        ax.set_xlabel("particle $p_T$ [GeV]")
        ax.set_ylabel(f"tech. efficiency / at {100 * mine[0]['value']:g} % noise")
        ax.set_title(f"{m}: noise hits")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", title="noise")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_vs_spacepoints(results: dict, path: Path) -> Optional[Path]:
    """Technical efficiency and purity (mean ± sd over events) against the mean spacepoints of each pile-up point."""
    recs = sorted(_records(results, "pileup"), key=lambda r: r["value"])
    if not recs:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    x = np.array([np.mean([e["n_hits"] for e in r["metrics"]["per_event"]]) for r in recs])
    xe = np.array([np.std([e["n_hits"] for e in r["metrics"]["per_event"]]) for r in recs])
    for sel, fill in zip(_selections(results), ("full", "none")):
        for key, marker, name in (("technical_efficiency", "o", "tech. efficiency"), ("purity", "s", "purity")):
            v = [[np.nan if e["tracks"][sel][key] is None else e["tracks"][sel][key]
                  for e in r["metrics"]["per_event"]] for r in recs]
            mean = np.array([np.nanmean(a) if np.any(np.isfinite(a)) else np.nan for a in v])
            sd = np.array([np.nanstd(a) if np.any(np.isfinite(a)) else np.nan for a in v])
            ax.errorbar(x, mean, xerr=xe, yerr=sd, fmt=marker + "-", ms=5, capsize=2, fillstyle=fill,
                        label=f"{name} ({_sel_name(sel)})")
    for xi, r in zip(x, recs):
        ax.annotate(f"μ={r['value']:g}", (xi, 0.02), fontsize=7, ha="center")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("spacepoints per event")
    ax.set_ylabel("mean over events")
    ax.set_title(f"{recs[0]['model']}: pile-up")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(results: dict, out_dir: os.PathLike | str) -> tuple[Path, list[Path]]:
    """Writes ``study.md`` and the plots.

    Args:
      results: the content of ``results.json`` (:func:`trkx_tf.study.systematics.run_systematics`).
      out_dir: the study's output folder.

    Returns:
      (the report's path, the plots' paths).
    """
    out = Path(out_dir)
    plots = [p for p in (plot_relative_efficiency(results, out / "plots" / "relative_efficiency_vs_pt.png"),
                         plot_vs_spacepoints(results, out / "plots" / "efficiency_purity_vs_spacepoints.png"))
             if p is not None]
    s = results["systematics"]
    n_sim = s["events"]
    lines = ["# Systematics study (Exa.TrkX robustness)", "",
             f"Command: `{results['command']}`" if results["command"] else "", "",
             f"Simulated test events per point: {n_sim} (ids {s['first_event']}…{s['first_event'] + n_sim - 1}, seed "
             f"{s['seed']}: the same generated particles at every point; the noise points also share every signal "
             + ("hit, and so do the misalignment points (moved hits), while field and pile-up points differ"
                if s.get("misalignment") == "shift_hits" else
                "hit, while misalignment, field and pile-up points differ")
             + " in the simulation's later random draws, so "
             "their changes from the nominal point carry about √2 times the ± shown). Efficiencies: technical "
             "efficiency (reconstructable "
             "particles, ≥ 5 hits, matched by double majority) and purity (matched tracks / tracks), summed counts "
             "over a point's events, ± the binomial standard error. The paper's numbers come from its own models "
             "(trained on 9,000 μ = 200 events) and are given for comparison of the *changes*, not of absolute "
             "values.",
             "", "Models:", ""]
    for m in results["models"]:
        lines.append(f"- **{m['name']}**: trained at noise fraction {m['training_noise_fraction']:g}, μ = "
                     f"{m['training_pileup']:g}; filter `{m['filter_ckpt']}`, GNN `{m['gnn_ckpt']}`, module map "
                     f"`{m['module_map']}`; thresholds filter {m['filter_threshold']:g}, GNN {m['gnn_threshold']:g}, "
                     f"labelling {m['labelling']}")
    lines.append("")
    for section in (noise_section, pileup_section, misalignment_section, field_section, real_section):
        lines += section(results)
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    path = out / "study.md"
    write_text_atomic(path, "\n".join(lines).rstrip() + "\n")
    return path, plots
