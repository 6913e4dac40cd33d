"""Inference time against the number of hits, on events simulated at pile-up μ = 50, 100, 150 and 200.

Simulates ``--events-per-mu`` events at each μ (on the real TrackML geometry, seeds apart from any training
events; kept in ``--work`` and reused), reconstructs each with the same pipeline (median of ``--repeat`` runs),
and prints the per-stage wall times against the hit count, a straight-line fit ``t = a + b·n_hits`` and the
power-law exponent ``k`` of ``t ∝ n_hits^k`` (k ≈ 1: linear, as the Exa.TrkX paper finds). Plots total and
per-stage time against hits to ``--plot``.

    python benchmarks/infer_scaling.py --filter-ckpt M/filter/checkpoints --gnn-ckpt M/gnn/checkpoints \\
        --module-map S/module_map.npz --set model.filter.hidden=64 ... --plot infer_scaling.png
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from trkx_tf.cli.common import add_config_args, add_model_args


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mu", default="50,100,150,200", help="pile-up values")
    ap.add_argument("--events-per-mu", type=int, default=2)
    ap.add_argument("--seed", type=int, default=4242, help="simulation seed (apart from the training events')")
    ap.add_argument("--work", default="/tmp/trkx_infer_scaling", help="simulated events are kept and reused here")
    ap.add_argument("--detector", default=str(REPO.parent / "shared" / "trackml" / "detectors.csv.gz"))
    add_config_args(ap)
    add_model_args(ap)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--plot", default="infer_scaling.png")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np

    from trkx_tf.config import load_config
    from trkx_tf.reco.pipeline import infer, make_pipeline, warm_up
    from trkx_tf.trackml.io import list_events
    from trkx_tf.trackml.simulate import simulate_events

    if not Path(args.detector).exists():
        print(f"skipped: detector geometry not found at {args.detector}")
        return 0
    cfg = load_config(args.config, args.overrides + ["graph.use_cells=false"])
    mus = [float(m) for m in args.mu.split(",")]
    work = Path(args.work)
    folders = {}
    for i, mu in enumerate(mus):
        folder = work / f"mu{mu:g}"
        first = 900_000 + 1000 * i
        if len(list_events(folder) if folder.is_dir() else []) < args.events_per_mu:
            simulate_events(folder, args.detector, args.events_per_mu, pileup=mu, seed=args.seed, workers=1,
                            first_event=first, cells=False, progress=False)
        folders[mu] = (folder, list_events(folder)[: args.events_per_mu])

    pipeline = make_pipeline(cfg, with_cells=False, filter_ckpt=args.filter_ckpt, gnn_ckpt=args.gnn_ckpt,
                             module_map=args.module_map)
    warm_up(pipeline, 3)
    rows = []
    out = work / "out"
    for mu, (folder, ids) in folders.items():
        for eid in ids:
            recs = [infer(cfg, folder, out, events=[eid], pipeline=pipeline, progress=False).events[0]
                    for _ in range(args.repeat)]
            sec = {k: float(np.median([r["seconds"][k] for r in recs])) for k in recs[0]["seconds"]}
            rows.append({"mu": mu, "event_id": eid, "n_hits": recs[0]["n_hits"], "n_edges": recs[0]["n_edges"],
                         "seconds": sec})
            print(f"mu {mu:5g} event {eid}: {recs[0]['n_hits']:>7,} hits, {recs[0]['n_edges']['graph']:>9,} edges  "
                  + "  ".join(f"{k} {v:.2f}" for k, v in sec.items()), flush=True)

    n = np.array([r["n_hits"] for r in rows], float)
    stages = [k for k in rows[0]["seconds"] if k != "writing"]
    fits = {}
    print(f"\n{'stage':<20} {'a (s)':>8} {'b (s/100k hits)':>16} {'exponent k':>11}")
    for k in stages:
        t = np.array([r["seconds"][k] for r in rows])
        b, a = np.polyfit(n, t, 1)
        kexp = float(np.polyfit(np.log(n), np.log(np.maximum(t, 1e-6)), 1)[0])
        fits[k] = {"a": float(a), "b_per_hit": float(b), "exponent": kexp}
        print(f"{k:<20} {a:8.3f} {b * 1e5:16.3f} {kexp:11.2f}")

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs = np.linspace(0, n.max() * 1.05, 50)
    for k, marker in zip(stages, "os^vDP*"):
        t = np.array([r["seconds"][k] for r in rows])
        ax.plot(n / 1e3, t, marker, label=f"{k} (k={fits[k]['exponent']:.2f})", ms=5)
        if k == "total":
            ax.plot(xs / 1e3, fits[k]["a"] + fits[k]["b_per_hit"] * xs, "k--", lw=1, label="linear fit (total)")
    for mu in mus:
        ax.axvline(np.mean([r["n_hits"] for r in rows if r["mu"] == mu]) / 1e3, color="0.85", lw=0.8, zorder=0)
    ax.set_xlabel("hits per event [thousands]  (grey lines: mean at μ = " + ", ".join(f"{m:g}" for m in mus) + ")")
    ax.set_ylabel("wall time [s]")
    ax.set_title("trkx-infer time per event vs hits (CPU)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "fits": fits}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
