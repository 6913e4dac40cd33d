"""Tails of the doublet variables of true edges: simulated events side by side with the real event 1000.

The module map (docs/graphs.md) keeps a true edge when its ``dphi`` and ``z0`` fall inside windows learned from
simulated events, so the simulator's tails of these variables set how many real true edges the map loses. This
prints, for the true edges of prompt primary particles with pT > 0.5 GeV (production vertex within 1 mm of the
beam line, low 36 bits of the particle id zero), grouped by the volume of the inner hit, the 50 / 90 / 99 / 99.9th
percentiles of |z0| (mm) and |dphi| (mrad) and the fraction of edges beyond fixed cuts, one row per folder::

    python benchmarks/simulate_tails.py --truth-events 10 --real ../shared/trackml

simulates 10 μ=200 events (seed 7, events 9000…) in this process with the non-Gaussian scattering off (the
Gaussian-only simulator, bit for bit) and on (the defaults); ``--sim LABEL=DIR`` adds folders of simulated events.

Event 1000 is the real test event: it is measured here, nothing is tuned on it.

The calibration events have no truth, so the tails are calibrated on a **truth-free** statistic
(:func:`doublet_tail`): in the pixel end-caps (volumes 7 and 9), every hit pair on consecutive disks with
|dphi| < 8 mrad (pT above about 0.5 GeV) and increasing r gives a z0; the same pairs with the outer disk rotated by
±0.06, ±0.09, ±0.12 rad give the combinatorial background, which is subtracted. What is left is the |z0| spectrum
of true doublets (plus a few chance coincidences); its tail fraction, the pairs at 30 <= |z0| < 150 mm over those
below 30 mm, is printed for the calibration events and for simulated events with the non-Gaussian scattering off,
on, and scaled (``--scales``), simulated in this process (seed 7, events 9000…)::

    python benchmarks/simulate_tails.py --calibration ../shared/trackml/calibration --scales 0,0.5,1,2 --events 8

Errors are the spread between events (sd / √n), which counts the correlated pairs of one kinked track.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from trkx_tf.graphs.doublets import doublet_variables, wrap_angle
from trkx_tf.graphs.features import cylindrical
from trkx_tf.graphs.truth import truth_graph
from trkx_tf.trackml.io import list_events, read_event

GROUPS = {"pixel endcap 7,9": (7, 9), "pixel barrel 8": (8,), "short-strip endcap 12,14": (12, 14),
          "short-strip barrel 13": (13,), "long strip 16,17,18": (16, 17, 18)}
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
Z0_CUT = 100.0  # mm
DPHI_CUT = 0.05  # rad


def prompt_edges(event) -> dict:
    """(volume of the inner hit, |z0|, |dphi|) of the prompt pT > 0.5 GeV true edges of one event, [k] each."""
    hits, parts = event.hits, event.particles
    tg = truth_graph(hits, parts, event.truth)
    p = parts.set_index("particle_id")
    rv = np.hypot(p["vx"].to_numpy(np.float64), p["vy"].to_numpy(np.float64))
    prompt_ids = p.index.to_numpy(np.int64)[(rv < 1.0) & ((p.index.to_numpy(np.int64) & ((1 << 36) - 1)) == 0)]
    sel = (tg.pt > 0.5) & np.isin(tg.particle_id, prompt_ids)
    r, phi, z = cylindrical(hits)
    dphi, z0 = doublet_variables(r, phi, z, tg.senders[sel], tg.receivers[sel])
    return {"volume": hits["volume_id"].to_numpy()[tg.senders[sel]], "z0": np.abs(z0), "dphi": np.abs(dphi)}


TAIL_BINS = np.array([0.0, 30.0, 150.0])  # mm: core, tail
TAIL_SHIFTS = (0.06, 0.09, 0.12, -0.06, -0.09, -0.12)  # rad: rotations of the outer disk (background)


def doublet_tail(hits, dphi_max: float = 0.008) -> tuple[np.ndarray, np.ndarray]:
    """Truth-free |z0| spectrum of pixel end-cap doublets (see the module docstring).

    Args:
      hits: one event's TrackML hits.
      dphi_max: rad, the |dphi| window of the pairs.

    Returns:
      ``(pairs, background)``: [2] counts at |z0| < 30 mm and 30 <= |z0| < 150 mm, of the pairs and of the
      rotated pairs (mean over the rotations).
    """
    r, phi, z = cylindrical(hits)
    vol, lay = hits["volume_id"].to_numpy(), hits["layer_id"].to_numpy()
    same = np.zeros(len(TAIL_BINS) - 1)
    bkg = np.zeros(len(TAIL_BINS) - 1)
    for v, step in ((9, 2), (7, -2)):  # disks numbered outwards in |z| (9) or inwards (7)
        layers = np.unique(lay[vol == v])
        for la in layers:
            a = np.flatnonzero((vol == v) & (lay == la))
            b = np.flatnonzero((vol == v) & (lay == la + step))
            if len(a) == 0 or len(b) == 0:
                continue
            for shift in (0.0,) + TAIL_SHIFTS:
                pb = wrap_angle(phi[b] + shift)
                o = np.argsort(pb)
                pbs = pb[o]
                lo = np.searchsorted(pbs, phi[a] - dphi_max)
                n = np.searchsorted(pbs, phi[a] + dphi_max) - lo
                ia = np.repeat(a, n)
                ib = b[o[np.repeat(lo, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]]
                dr = r[ib] - r[ia]
                ok = dr > 0
                z0 = (z[ia] * r[ib] - z[ib] * r[ia])[ok] / dr[ok]
                h = np.histogram(np.abs(z0), TAIL_BINS)[0]
                if shift == 0.0:
                    same += h
                else:
                    bkg += h / len(TAIL_SHIFTS)
    return same, bkg


def tail_fraction(spectra) -> tuple[float, float]:
    """Tail fraction (pairs at 30-150 mm over pairs below 30 mm, background subtracted) and its error.

    Args:
      spectra: one :func:`doublet_tail` result per event.

    Returns:
      ``(fraction, error)``: over the summed events; the error from the spread of the per-event excesses.
    """
    ex = np.array([s - b for s, b in spectra])  # [events, 2]
    frac = ex[:, 1].sum() / ex[:, 0].sum()
    n = len(ex)
    if n < 2:
        return float(frac), float("nan")
    # linearised error of a ratio of sums: spread of (tail_i - frac * core_i), scaled by the summed core
    resid = ex[:, 1] - frac * ex[:, 0]
    return float(frac), float(np.std(resid, ddof=1) * np.sqrt(n) / ex[:, 0].sum())


def calibration_table(calibration: Optional[Path], scales, n_events: int, detector: Path) -> str:
    """The truth-free tail fraction of the calibration events and of simulated events at each tail scale."""
    from trkx_tf.trackml.geometry import Geometry
    from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event

    lines = [f"{'events':<44} {'n':>3} {'tail fraction (30<=|z0|<150 mm / |z0|<30 mm)':>46}"]
    if calibration is not None:
        ids = list_events(calibration)
        spectra = [doublet_tail(read_event(calibration, e, parts=("hits",)).hits) for e in ids]
        f, e = tail_fraction(spectra)
        lines.append(f"{'REAL calibration events (no truth)':<44} {len(ids):>3} {100 * f:>39.2f} ± {100 * e:.2f} %")
    geometry = Geometry.load(detector)
    base = PhysicsModel()
    for scale in scales:
        model = dataclasses.replace(
            base, coulomb_tail_start=base.coulomb_tail_start if scale > 0 else 0.0,
            elastic_per_x0=scale * base.elastic_per_x0, quasi_elastic_per_x0=scale * base.quasi_elastic_per_x0)
        spectra = [doublet_tail(simulate_event(geometry, e, event_rng(7, e), 200.0, 0.146, False, model).hits)
                   for e in range(9000, 9000 + n_events)]
        f, e = tail_fraction(spectra)
        what = "Gaussian scattering only" if scale == 0 else f"nuclear scatter rates x{scale:g}"
        lines.append(f"{'sim mu=200, ' + what:<44} {n_events:>3} {100 * f:>39.2f} ± {100 * e:.2f} %")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def collect(folder: Path, ids) -> dict:
    parts = [prompt_edges(read_event(folder, e, parts=("hits", "particles", "truth"))) for e in ids]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("volume", "z0", "dphi")}


def table(samples: dict) -> str:
    head = (f"{'group':<26} {'events':<22} {'edges':>8} |z0| mm: " + " ".join(f"p{q:g}".rjust(7) for q in PERCENTILES)
            + f" >{Z0_CUT:g}mm  |dphi| mrad: " + " ".join(f"p{q:g}".rjust(6) for q in PERCENTILES)
            + f" >{DPHI_CUT * 1e3:g}mrad")
    lines = [head, "-" * len(head)]
    for gname, vols in GROUPS.items():
        for label, s in samples.items():
            m = np.isin(s["volume"], vols)
            z0, dphi = s["z0"][m], s["dphi"][m] * 1e3
            if not m.any():
                continue
            zq = np.percentile(z0, PERCENTILES)
            pq = np.percentile(dphi, PERCENTILES)
            lines.append(f"{gname:<26} {label:<22} {m.sum():>8,} {'':8} " + " ".join(f"{x:7.1f}" for x in zq)
                         + f" {100 * np.mean(z0 > Z0_CUT):6.3f}%  {'':12} " + " ".join(f"{x:6.1f}" for x in pq)
                         + f" {100 * np.mean(dphi > DPHI_CUT * 1e3):6.3f}%")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", action="append", default=[], metavar="LABEL=DIR", help="simulated events with truth")
    ap.add_argument("--real", default=str(ROOT.parent / "shared" / "trackml"), help="folder with real event 1000")
    ap.add_argument("--max-events", type=int, default=10, help="at most this many events per simulated folder")
    ap.add_argument("--calibration", help="real events without truth: print the truth-free tail statistic")
    ap.add_argument("--scales", default="", help="with --calibration: simulate at these nuclear-scatter scales")
    ap.add_argument("--events", type=int, default=8, help="simulated events per scale")
    ap.add_argument("--truth-events", type=int, default=0,
                    help="simulate this many events with the tails off and on, and compare their truth tails")
    ap.add_argument("--detector", default=str(ROOT.parent / "shared" / "trackml" / "detectors.csv.gz"))
    args = ap.parse_args(argv)
    if args.calibration or args.scales:
        scales = [float(x) for x in args.scales.split(",") if x.strip()]
        print(calibration_table(Path(args.calibration) if args.calibration else None, scales, args.events,
                                Path(args.detector)))
        if not (args.sim or args.truth_events):
            return 0
    samples = {}
    if args.truth_events:
        from trkx_tf.trackml.geometry import Geometry
        from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event

        geometry = Geometry.load(args.detector)
        off = PhysicsModel(coulomb_tail_start=0.0, elastic_per_x0=0.0, quasi_elastic_per_x0=0.0)
        for label, model in (("tails off", off), ("tails on", PhysicsModel())):
            parts = [prompt_edges(simulate_event(geometry, e, event_rng(7, e), 200.0, 0.146, False, model))
                     for e in range(9000, 9000 + args.truth_events)]
            samples[f"sim {label} ({args.truth_events} ev)"] = {
                k: np.concatenate([p[k] for p in parts]) for k in ("volume", "z0", "dphi")}
    for spec in args.sim:
        label, _, folder = spec.rpartition("=")
        ids = list_events(folder)[: args.max_events]
        samples[f"sim {label or folder} ({len(ids)} ev)"] = collect(Path(folder), ids)
    real = Path(args.real)
    if (real / "event000001000-hits.csv.gz").exists():
        samples["REAL event 1000"] = collect(real, [1000])
    else:
        print(f"(real event 1000 not found in {real}: skipped)")
    print(table(samples))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
