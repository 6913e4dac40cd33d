"""Realism report of the event simulator: simulated μ=200 events side by side with the real TrackML events.

Prints one table (simulated: mean ± sd over the events; the six calibration events: mean and range; the real
test event 1000) and saves a plot of the pT, η, hits-per-particle and hits-per-layer distributions.

The simulator's parameters were tuned against the calibration events only; event 1000 is shown for the record
(it is the test event: never tune on it)::

    python benchmarks/simulate_calibration.py --events 20 --seed 1 --plot simulate_calibration.png

Figures: hits; signal hits (Σ nhits); noise fraction (1 - Σ nhits / hits); particles; particles with hits;
mean hits per particle with hits; fraction of (particle, layer) pairs with more than one hit (needs truth:
simulated and event 1000 only); particles with pT > 0.5 and > 1 GeV (all particles, as the issue counts them);
median pT of particles with hits; close pairs per hit (hits closer than 3, 6, 15 mm in different modules of one
layer in the pixel, short-strip and long-strip volumes: a truth-free proxy of the overlap duplicates, which the
calibration events allow); share of hits per volume.

``--nhits`` adds the hits-per-particle table that calibrates ``PhysicsModel.hit_efficiency``: prompt primaries
(no secondary bits, production radius < 1 mm) with pT > 0.5 GeV, where loopers do not matter, in bins of |η| and
pT: the mean nhits of all of them, the mean of those with at least 4 hits (a track that leaves hits but loses a
few: what a per-crossing inefficiency does), the fraction with at most 3 hits (whole tracks lost, which an
inefficiency of a few per cent cannot do: every hit of a 10-hit track would have to go), and the ratio
calibration / simulated of the >= 4-hit mean; then ε fits (count-weighted ratios with their statistical errors) in
the central (|η| < 1) and the whole range, and the noise-subtracted signal hits per volume (noise spread over the
modules equally, as simulated) per particle with hits::

    python benchmarks/simulate_calibration.py --events 8 --seed 1 --plot '' --nhits
    python benchmarks/simulate_calibration.py --events 8 --seed 1 --plot '' --nhits --model hit_efficiency=0.95

``--realism DIR`` writes the doublet-level realism report instead (trkx_tf/study/realism.py, docs/trackml.md):
the simulated events against the real labelled events (``--labelled``, partial truth) on the labelled doublets
and particles, with a module map learned from ``--map-events`` further simulated events (ids from 100000)::

    python benchmarks/simulate_calibration.py --events 8 --seed 1 --realism results/realism/after
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]

from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.io import list_events, read_event
from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event
from trkx_tf.study.realism import VOLUMES, global_figures


def figures(event) -> dict:
    """The realism figures of one event (truth optional)."""
    hits, parts = event.hits, event.particles
    pt = np.hypot(parts["px"].to_numpy(np.float64), parts["py"].to_numpy(np.float64))
    nh = parts["nhits"].to_numpy()
    out = {
        "hits": len(hits),
        "signal hits (sum nhits)": int(nh.sum()),
        "noise fraction": 1.0 - nh.sum() / len(hits),
        "particles": len(parts),
        "particles with hits": int((nh > 0).sum()),
        "mean hits / particle": float(nh[nh > 0].mean()),
        "pairs with >1 hit": np.nan,
        "pT > 0.5 GeV": int((pt > 0.5).sum()),
        "pT > 1 GeV": int((pt > 1.0).sum()),
        "median pT (with hits)": float(np.median(pt[nh > 0])),
    }
    if event.truth is not None:
        t = event.truth.merge(hits, on="hit_id")
        t = t[t["particle_id"] != 0]
        counts = t.groupby(["particle_id", "volume_id", "layer_id"]).size()
        out["pairs with >1 hit"] = float((counts > 1).mean())
    out.update(global_figures(hits))
    return out


def distributions(event) -> dict:
    parts = event.particles
    pt = np.hypot(parts["px"], parts["py"]).to_numpy()
    eta = np.arcsinh(parts["pz"].to_numpy() / pt)
    nh = parts["nhits"].to_numpy()
    layer = (event.hits["volume_id"] * 100 + event.hits["layer_id"]).to_numpy()
    return {"pt": pt[nh > 0], "eta": eta[nh > 0], "nhits": nh[nh > 0], "layer": layer}


ETA_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
PT_BINS = (0.5, 1.0, 2.0, np.inf)


def particle_table(event):
    """pT, |η| and nhits of the prompt primaries (no secondary bits, production radius < 1 mm) with pT > 0.5."""
    import pandas as pd

    p = event.particles
    pt = np.hypot(p["px"].to_numpy(np.float64), p["py"].to_numpy(np.float64))
    eta = np.abs(np.arcsinh(p["pz"].to_numpy(np.float64) / np.maximum(pt, 1e-12)))
    prompt = ((p["particle_id"].to_numpy() & ((1 << 36) - 1)) == 0) & (np.hypot(p["vx"], p["vy"]).to_numpy() < 1.0)
    sel = prompt & (pt > PT_BINS[0])
    return pd.DataFrame({"pt": pt[sel], "eta": eta[sel], "nhits": p["nhits"].to_numpy()[sel]})


def signal_per_volume(event, modules_per_volume: dict) -> dict:
    """Noise-subtracted hits per volume (noise spread equally over the modules) per particle with hits."""
    nh = event.particles["nhits"].to_numpy()
    noise = len(event.hits) - nh.sum()
    total = sum(modules_per_volume.values())
    vol = event.hits["volume_id"].value_counts()
    return {v: (vol.get(v, 0) - noise * modules_per_volume[v] / total) / max((nh > 0).sum(), 1) for v in VOLUMES}


def _ratio_fit(rows) -> tuple[float, float]:
    """Count-weighted mean of the calibration / simulated ratios of ``rows`` and its statistical error."""
    w = np.array([r["n_cal"] for r in rows], np.float64)
    ratio = np.array([r["ratio"] for r in rows])
    err = np.array([r["ratio_err"] for r in rows])
    ok = w > 0
    w, ratio, err = w[ok], ratio[ok], err[ok]
    return float(np.sum(w * ratio) / w.sum()), float(np.sqrt(np.sum((w * err) ** 2)) / w.sum())


def nhits_report(sim_tables, cal_tables, sim_volumes, cal_volumes) -> None:
    """Prints the hits-per-particle table of ``--nhits`` (see the module docstring)."""
    import pandas as pd

    sim, cal = pd.concat(sim_tables), pd.concat(cal_tables)
    print("\nhits per particle: prompt primaries, pT > 0.5 GeV (cal = calibration events, sim = simulated)")
    head = (f"{'|eta|':>9} {'pT GeV':>9} {'n cal':>6} {'n sim':>6} {'mean cal':>9} {'mean sim':>9} "
            f"{'>=4 cal':>8} {'>=4 sim':>8} {'<=3 cal':>8} {'<=3 sim':>8} {'ratio >=4':>15}")
    print(head)
    print("-" * len(head))
    rows = []
    for e0, e1 in zip(ETA_BINS[:-1], ETA_BINS[1:]):
        for p0, p1 in zip(PT_BINS[:-1], PT_BINS[1:]):
            pick = [t[(t["eta"] >= e0) & (t["eta"] < e1) & (t["pt"] >= p0) & (t["pt"] < p1)]["nhits"].to_numpy()
                    for t in (cal, sim)]
            c, s = pick
            c4, s4 = c[c >= 4], s[s >= 4]
            if len(c4) < 2 or len(s4) < 2:
                continue
            ratio = c4.mean() / s4.mean()
            ratio_err = ratio * np.hypot(c4.std() / c4.mean() / np.sqrt(len(c4)),
                                         s4.std() / s4.mean() / np.sqrt(len(s4)))
            rows.append({"eta": e0, "n_cal": len(c4), "ratio": ratio, "ratio_err": ratio_err})
            pt_txt = f"{p0:g}-{p1:g}" if np.isfinite(p1) else f">{p0:g}"
            print(f"{e0:>4.1f}-{e1:<4.1f} {pt_txt:>9} {len(c):>6} {len(s):>6} {c.mean():>9.2f} {s.mean():>9.2f} "
                  f"{c4.mean():>8.2f} {s4.mean():>8.2f} {100 * (c <= 3).mean():>7.1f}% {100 * (s <= 3).mean():>7.1f}% "
                  f"{ratio:>8.3f} ± {ratio_err:.3f}")
    for name, pick in (("|eta| < 1", lambda r: r["eta"] < 1.0), ("1 <= |eta| < 2.5", lambda r: 1.0 <= r["eta"] < 2.5),
                       ("|eta| >= 2.5", lambda r: r["eta"] >= 2.5), ("all |eta|", lambda r: True)):
        m, e = _ratio_fit([r for r in rows if pick(r)])
        print(f"efficiency that closes the >=4-hit gap, {name:<17}: {m:.3f} ± {e:.3f}")
    print("\nnoise-subtracted signal hits per volume per particle with hits")
    print(f"{'volume':>8} {'calibration':>12} {'simulated':>10} {'cal/sim':>8}")
    for v in VOLUMES:
        c = np.mean([d[v] for d in cal_volumes])
        s = np.mean([d[v] for d in sim_volumes])
        print(f"{v:>8} {c:>12.3f} {s:>10.3f} {c / s:>8.3f}")


def _fmt(x) -> str:
    if isinstance(x, (int, np.integer)) or (isinstance(x, float) and abs(x) >= 100):
        return f"{x:,.0f}"
    if np.isnan(x):
        return "n/a"
    return f"{x:.3f}"


def realism(args, geometry, model, argv) -> int:
    """``--realism``: the doublet-level realism report (trkx_tf/study/realism.py) into ``args.realism``."""
    import shlex
    import subprocess

    from trkx_tf.config import Config
    from trkx_tf.study import realism as R

    labelled = Path(args.labelled)
    ids = list_events(labelled) if labelled.is_dir() else []
    ids = [e for e in ids if e != 1000]  # the test event is never compared against
    if args.real_events:
        ids = ids[: args.real_events]
    if len(ids) < 2:
        print(f"skipped: {labelled} has fewer than 2 labelled events (the real labelled events are needed)")
        return 0
    t0 = time.perf_counter()

    def sim(i):
        return simulate_event(geometry, i, event_rng(args.seed, i), args.pileup, args.noise_fraction, cells=False,
                              model=model)

    cfg = Config()
    builder = R.fit_builder([sim(100_000 + i) for i in range(args.map_events)], cfg.graph)
    sim_figs = [R.event_figures(sim(i), builder) for i in range(args.events)]
    real_figs = [R.event_figures(read_event(labelled, e, parts=("hits", "partial-truth")), builder) for e in ids]
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--", "trkx_tf/trackml/simulate", "trkx_tf/trackml/geometry.py",
                                  "trkx_tf/trackml/helix.py", "trkx_tf/trackml/partial.py", "trkx_tf/study/realism.py",
                                  "benchmarks/simulate_calibration.py"], capture_output=True, text=True).stdout
    commit += " with uncommitted changes to the simulator or the report" if dirty.strip() else ""
    changed = {k: getattr(model, k) for k in PhysicsModel.__dataclass_fields__
               if getattr(model, k) != getattr(PhysicsModel(), k)}
    command = "python benchmarks/simulate_calibration.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    header = "\n".join([
        "# Doublet-level realism report", "",
        f"Command: `{command}` (commit {commit}; {time.perf_counter() - t0:.0f} s).", "",
        f"- simulated: {args.events} events, pileup {args.pileup:g}, seed {args.seed}, noise fraction "
        f"{args.noise_fraction:g}, PhysicsModel defaults{' with ' + str(changed) if changed else ''};",
        f"- real: {len(ids)} labelled events of `{labelled.name}/` (ids {ids[0]}-{ids[-1]}; event 1000 never);",
        "- labels: each event reduced to the labelled events' rules (a simulated event's full truth cut by "
        "`partial_truth_from_full`);",
        f"- module map: learned from {args.map_events} further simulated events (ids 100000+) with the default "
        f"`graph.module_map` settings (pt_min {cfg.graph.module_map.pt_min}, quantile "
        f"{cfg.graph.module_map.quantile}, margin {cfg.graph.module_map.margin}).",
    ])
    report, plots = R.write_report(sim_figs, real_figs, args.realism, header)
    print(Path(report).read_text())
    for p in plots:
        print(f"plot: {p}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = ROOT.parent / "shared" / "trackml"
    parser.add_argument("--shared", default=str(shared), help="folder of the real TrackML files")
    parser.add_argument("--events", type=int, default=4, help="simulated events")
    parser.add_argument("--pileup", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise-fraction", type=float, default=0.175,
                        help="noise hits / all hits (default: the 48 labelled events' mean of 1 - sum nhits / hits)")
    parser.add_argument("--plot", default="simulate_calibration.png", help="PNG to save ('' for none)")
    parser.add_argument("--model", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a PhysicsModel field, e.g. --model multiplicity_mean=60 (repeatable)")
    parser.add_argument("--nhits", action="store_true",
                        help="also print the hits-per-particle table (hit_efficiency calibration)")
    parser.add_argument("--realism", metavar="DIR", help="write the doublet-level realism report into DIR instead")
    parser.add_argument("--labelled", default=str(shared / "labelled"),
                        help="folder of the real labelled events (partial truth) for --realism")
    parser.add_argument("--real-events", type=int, default=0, help="--realism: only the first N labelled events")
    parser.add_argument("--map-events", type=int, default=8,
                        help="--realism: simulated events the module map is learned from")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.model:
        key, _, raw = item.partition("=")
        if key not in PhysicsModel.__dataclass_fields__:
            parser.error(f"--model {item}: PhysicsModel has no field {key!r}")
        overrides[key] = yaml.safe_load(raw)
    model = dataclasses.replace(PhysicsModel(), **overrides)
    shared = Path(args.shared)
    if not (shared / "detectors.csv.gz").exists():
        print(f"skipped: {shared} has no detectors.csv.gz (the real TrackML files are needed)")
        return 0
    geometry = Geometry.load(shared / "detectors.csv.gz")
    if args.realism:
        return realism(args, geometry, model, argv)
    sim, sim_dist, times, sim_tables, sim_volumes = [], [], [], [], []
    modules = {v: int((geometry.volume_id == v).sum()) for v in VOLUMES}
    for i in range(args.events):
        t0 = time.perf_counter()
        ev = simulate_event(geometry, i, event_rng(args.seed, i), args.pileup, args.noise_fraction, cells=False,
                            model=model)
        times.append(time.perf_counter() - t0)
        sim.append(figures(ev))
        sim_dist.append(distributions(ev))
        if args.nhits:
            sim_tables.append(particle_table(ev))
            sim_volumes.append(signal_per_volume(ev, modules))
    cal_dir = shared / "calibration"
    cal = [read_event(cal_dir, e, parts=("hits", "particles")) for e in list_events(cal_dir)]
    cal_fig = [figures(e) for e in cal]
    cal_dist = [distributions(e) for e in cal]
    test = read_event(shared, 1000) if (shared / "event000001000-hits.csv.gz").exists() else None
    test_fig = figures(test) if test is not None else None

    keys = list(sim[0])
    head = (f"{'figure':<28}{'simulated (mean ± sd)':>24}{'calibration mean [min, max]':>34}{'event 1000':>12}"
            f"{'sim/1000':>10}")
    print(f"simulated: {args.events} events, pileup {args.pileup:g}, seed {args.seed}"
          f"{', model ' + ', '.join(args.model) if args.model else ''}; "
          f"calibration: events {', '.join(str(e.event_id) for e in cal)}")
    print(head)
    print("-" * len(head))
    for k in keys:
        s = np.array([f[k] for f in sim], np.float64)
        c = np.array([f[k] for f in cal_fig], np.float64)
        sim_txt = f"{_fmt(float(s.mean()))} ± {_fmt(float(s.std()))}"
        cal_txt = ("n/a" if np.isnan(c).all()
                   else f"{_fmt(float(c.mean()))} [{_fmt(float(c.min()))}, {_fmt(float(c.max()))}]")
        t = test_fig[k] if test_fig else np.nan
        ratio = s.mean() / t if test_fig and t else np.nan
        print(f"{k:<28}{sim_txt:>24}{cal_txt:>34}{_fmt(float(t)):>12}{_fmt(float(ratio)):>10}")
    print(f"simulation time per event (cells off, one core): {np.mean(times):.2f} s "
          f"(min {np.min(times):.2f}, max {np.max(times):.2f})")
    if args.nhits:
        nhits_report(sim_tables, [particle_table(e) for e in cal], sim_volumes,
                     [signal_per_volume(e, modules) for e in cal])

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        groups = [("simulated", sim_dist, "C0"), ("calibration", cal_dist, "C1")]
        if test is not None:
            groups.append(("event 1000", [distributions(test)], "C2"))
        specs = [("pt", np.geomspace(0.1, 100, 40), "pT of particles with hits [GeV]", True),
                 ("eta", np.linspace(-4, 4, 33), "η of particles with hits", False),
                 ("nhits", np.arange(0.5, 30.5), "hits per particle", False)]
        for ax, (key, bins, label, logx) in zip(axes.ravel(), specs):
            for name, dists, color in groups:
                h = np.mean([np.histogram(d[key], bins)[0] for d in dists], axis=0)
                ax.stairs(h, bins, label=name, color=color)
            ax.set_xlabel(label)
            ax.set_ylabel("per event")
            if logx:
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.legend()
        ax = axes[1, 1]
        layers = np.unique(np.concatenate([d["layer"] for _, ds, _ in groups for d in ds]))
        x = np.arange(len(layers))
        for j, (name, dists, color) in enumerate(groups):
            h = np.mean([np.array([(d["layer"] == l).sum() for l in layers]) for d in dists], axis=0)
            ax.bar(x + (j - 1) * 0.28, h, 0.28, label=name, color=color)
        ax.set_xticks(x[::4], [f"{l // 100}:{l % 100}" for l in layers[::4]], rotation=60, fontsize=7)
        ax.set_xlabel("volume:layer")
        ax.set_ylabel("hits per event")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"plot saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
