"""Total inference time on the real TrackML event 1000 on this machine's CPU, stage by stage (target <= 15 s).

Runs the whole pipeline (load → graph construction → filter → GNN → labelling → writing) on event 1000 from
``../shared/trackml`` ``--repeat`` times with the given models, prints each run's per-stage wall times and the
median, and compares the median total with the 15 s target and with the Exa.TrkX paper's Table 2 (202 s on one
Xeon core, 2.2 s on a V100). The event is only reconstructed and timed; ``--eval`` adds its metrics (report only:
never tune on this event).

    python benchmarks/infer_real_event.py --filter-ckpt M/filter/checkpoints --gnn-ckpt M/gnn/checkpoints \\
        --module-map S/module_map.npz --set model.filter.hidden=64 ... [--repeat 3] [--threads 2] [--eval]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from trkx_tf.cli.common import add_config_args, add_model_args

TARGET_S = 15.0
PAPER = {"one Xeon core": 202.0, "V100": 2.2}


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default=str(REPO.parent / "shared" / "trackml"), help="folder with event 1000")
    ap.add_argument("--event", type=int, default=1000)
    add_config_args(ap)
    add_model_args(ap)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    ap.add_argument("--out", help="keep the submission, edges and timings here (default: a temporary folder)")
    ap.add_argument("--eval", action="store_true", help="also print the event's metrics (report only)")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np

    from trkx_tf.config import load_config
    from trkx_tf.reco.pipeline import infer

    real = Path(args.real)
    from trkx_tf.trackml.io import list_events

    if not real.is_dir() or args.event not in list_events(real):
        print(f"skipped: event {args.event} not found in {real}")
        return 0
    overrides = list(args.overrides) + ([f"infer.threads={args.threads}"] if args.threads else [])
    cfg = load_config(args.config, overrides)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="infer_real_"))
    runs = []
    pipeline = None
    for i in range(args.repeat):
        if pipeline is None:  # the first run builds and warms the pipeline; later runs reuse it
            from trkx_tf.graphs.features import feature_names
            from trkx_tf.graphs.features import uses_cells
            from trkx_tf.reco.pipeline import make_pipeline, warm_up

            with_cells = uses_cells(real, [args.event], cfg.graph.use_cells)
            pipeline = make_pipeline(cfg, with_cells=with_cells, filter_ckpt=args.filter_ckpt,
                                     gnn_ckpt=args.gnn_ckpt, module_map=args.module_map)
            warm_up(pipeline, len(feature_names(with_cells)))
        summary = infer(cfg, real, out, events=[args.event], pipeline=pipeline, progress=False)
        rec = summary.events[0]
        runs.append(rec)
        print(f"run {i + 1}: " + "  ".join(f"{k} {v:.2f}" for k, v in rec["seconds"].items()))
    keys = list(runs[0]["seconds"])
    median = {k: float(np.median([r["seconds"][k] for r in runs])) for k in keys}
    rec = runs[0]
    print(f"\nevent {args.event}: {rec['n_hits']:,} hits, {rec['n_edges']['graph']:,} candidate edges, "
          f"{rec['n_edges'].get('filter', rec['n_edges']['graph']):,} after the filter, "
          f"{rec['n_edges']['gnn']:,} after the GNN, {rec['n_tracks_5']:,} tracks of >= 5 hits")
    print(f"CPU threads: {cfg.infer.threads or os.cpu_count()} (os.cpu_count() = {os.cpu_count()})")
    print(f"{'stage':<20} {'median s':>9}")
    for k in keys:
        print(f"{k:<20} {median[k]:9.2f}")
    print(f"total {median['total']:.2f} s against the target {TARGET_S:.0f} s: "
          f"{'MET' if median['total'] <= TARGET_S else 'MISSED'} ({median['total'] / TARGET_S:.2f}x the target); "
          + ", ".join(f"paper {k}: {v} s ({v / median['total']:.2f}x ours)" for k, v in PAPER.items()))
    result = {"event": args.event, "runs": runs, "median_seconds": median, "target_s": TARGET_S,
              "threads": cfg.infer.threads or os.cpu_count()}
    if args.eval:
        from trkx_tf.reco.evaluate import evaluate, format_summary

        m = evaluate(real, out, out / "eval", cfg.eval, events=[args.event], progress=False)
        print(format_summary(m))
        result["metrics"] = {"tracks": m["tracks"], "score": m["score"], "edges": m["edges"]}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"outputs: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
