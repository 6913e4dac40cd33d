"""Candidate-edge builders: edge efficiency, purity and edges per event, side by side in one run.

The module map is learned from simulated training events only, then measured on held-out simulated events and on
the real TrackML event 1000 (a test event: nothing is tuned on it). Efficiencies are over the truth graph's edges
(docs/graphs.md); the target is >= 99 % of the true edges of particles with pT > 0.5 GeV.

    trkx-simulate --events 200 --pileup 200 --seed 7 --out data/sim/train          # or any simulated events
    trkx-simulate --events 20 --pileup 200 --seed 7 --first-event 5000 --out data/sim/eval
    python benchmarks/graphs_builders.py --train data/sim/train --eval data/sim/eval --real ../shared/trackml

``--curve 25,50,100`` adds the same measurement for maps learned from fewer training events. The embedding builder
is measured with ``--embedding-model CKPT`` once a trained embedding exists (trkx_tf.models.embedding).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def row(name: str, data: str, m: dict) -> str:
    def pct(x):
        return "   n/a" if x is None else f"{100 * x:6.2f}"

    return (f"{name:<12} {data:<34} {m['events']:>6} {m['edges_per_event']:>12,.0f} "
            f"{m['true_edges_per_event']:>10,.0f} {pct(m['efficiency'])} % {pct(m['efficiency_pt'])} % "
            f"{pct(m['purity'])} % {m['seconds_per_event']:>7.2f}")


HEADER = (f"{'builder':<12} {'events':<34} {'n':>6} {'edges/event':>12} {'true/event':>10} "
          f"{'eff(all)':>8} {'eff(pT>0.5)':>11} {'purity':>8} {'s/event':>7}")


def main(argv=None) -> int:
    from trkx_tf.config import load_config
    from trkx_tf.graphs.build import builder_metrics, evaluate_module_map, learn_module_map
    from trkx_tf.trackml.io import list_events

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="simulated training events (the module map is learned here)")
    ap.add_argument("--eval", required=True, help="held-out simulated events")
    ap.add_argument("--real", default=str(REPO.parent / "shared" / "trackml"), help="folder with real event 1000")
    ap.add_argument("--config", help="YAML config (graph.module_map settings)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--n-train", type=int, default=0, help="learn from the first N training events (0: all)")
    ap.add_argument("--curve", default="", help="also learn from these numbers of training events, e.g. 25,50,100")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--save-map", help="keep the learned module map here (.npz)")
    args = ap.parse_args(argv)

    cfg = load_config(args.config, args.overrides)
    mc = cfg.graph.module_map
    train_ids = list_events(args.train)
    if args.n_train:
        train_ids = train_ids[: args.n_train]
    eval_ids = list_events(args.eval)
    overlap = set(train_ids) & set(eval_ids) if Path(args.train).resolve() == Path(args.eval).resolve() else set()
    if overlap:
        raise SystemExit("--train and --eval share events")
    real = Path(args.real)
    real_ids = [1000] if (real / "event000001000-hits.csv.gz").exists() else []

    print(f"module map settings: pt_min={mc.pt_min} connect_pt_min={mc.connect_pt_min} quantile={mc.quantile} "
          f"margin={mc.margin} rare_margin={mc.rare_margin} min_count={mc.min_count}")
    sizes = sorted({int(x) for x in args.curve.split(",") if x.strip()} | {len(train_ids)})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            t0 = time.perf_counter()
            mm = learn_module_map(args.train, train_ids[:n], mc, workers=args.workers)
            path = Path(args.save_map) if (args.save_map and n == len(train_ids)) else Path(tmp) / f"map{n}.npz"
            mm.save(path)
            print(f"learned from {n} simulated events: {mm.n_pairs:,} module pairs in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            m = builder_metrics(evaluate_module_map(cfg, args.eval, path, eval_ids, workers=args.workers))
            rows.append(row("module_map", f"sim mu=200 held-out (map: {n} ev)", m))
            if n == len(train_ids) and real_ids:
                m = builder_metrics(evaluate_module_map(cfg, real, path, real_ids, workers=1))
                rows.append(row("module_map", f"REAL event 1000 (map: {n} sim ev)", m))
    if not real_ids:
        rows.append(f"(real event 1000 not found in {real}: skipped)")
    rows.append("embedding    (no trained embedding model in this run: see trkx_tf.models.embedding)")
    print()
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
