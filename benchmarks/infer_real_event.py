"""Whole-event inference on the real TrackML event 1000, the numpy engine against the TensorFlow engine (target 3 s).

Runs a released model (``--model``, default ``demo-mu20``) on event 1000 from ``../shared/trackml`` with both
inference engines in one process (``infer.engine=numpy``: the fused numba kernels, no TensorFlow;
``infer.engine=tensorflow``: the Sonnet models), alternating ``--repeat`` times, and prints each run's per-stage
wall times and CPU seconds, the per-stage medians, and the median total against the 3 s target and the Exa.TrkX
paper's Table 2 (202 s on one Xeon core, 2.2 s on a V100). Both engines share the graph construction and the
labelling, whose outputs are identical. With ``--eval`` it also scores both submissions (report only: the event is
never used to tune anything) and prints the differences of the technical efficiency and the TrackML score.

    python benchmarks/infer_real_event.py [--model demo-mu20] [--repeat 5] [--threads 2] [--eval] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 3.0
PAPER = {"one Xeon core": 202.0, "V100": 2.2}
ENGINES = ("numpy", "tensorflow")


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default=str(REPO.parent / "shared" / "trackml"), help="folder with event 1000")
    ap.add_argument("--event", type=int, default=1000)
    ap.add_argument("--model", default="demo-mu20", help="a released model (models/NAME)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--repeat", type=int, default=5, help="runs per engine (alternating)")
    ap.add_argument("--threads", type=int, default=0, help="model threads (0: all cores)")
    ap.add_argument("--out", help="keep the submissions, edges and timings here (default: a temporary folder)")
    ap.add_argument("--eval", action="store_true", help="also score both submissions (report only)")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np

    from trkx_tf.reco.pipeline import infer
    from trkx_tf.release import release_config, release_pipeline, resolve_release
    from trkx_tf.trackml.io import list_events

    real = Path(args.real)
    if not real.is_dir() or args.event not in list_events(real):
        print(f"skipped: event {args.event} not found in {real}")
        return 0
    release = resolve_release(args.model)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="infer_real_"))
    setups = {}
    for engine in ENGINES:
        overrides = [*args.overrides, f"infer.engine={engine}"] + ([f"infer.threads={args.threads}"]
                                                                  if args.threads else [])
        cfg = release_config(release, overrides)
        t = time.perf_counter()
        setups[engine] = (cfg, release_pipeline(cfg, release))
        print(f"{engine}: models loaded and warmed up in {time.perf_counter() - t:.2f} s")
    runs = {e: [] for e in ENGINES}
    for i in range(args.repeat):
        for engine in ENGINES:
            cfg, pipeline = setups[engine]
            cpu = time.process_time()
            summary = infer(cfg, real, out / engine, events=[args.event], pipeline=pipeline, progress=False)
            rec = summary.events[0]
            rec["cpu_seconds"] = time.process_time() - cpu
            runs[engine].append(rec)
            print(f"run {i + 1} {engine:<10} " + "  ".join(f"{k} {v:.2f}" for k, v in rec["seconds"].items())
                  + f"  (cpu {rec['cpu_seconds']:.2f})")
    rec = runs["numpy"][0]
    print(f"\nevent {args.event}: {rec['n_hits']:,} hits, {rec['n_edges']['graph']:,} candidate edges, "
          f"{rec['n_edges'].get('filter', rec['n_edges']['graph']):,} after the filter, "
          f"{rec['n_edges']['gnn']:,} after the GNN, {rec['n_tracks_5']:,} tracks of >= 5 hits; "
          f"model threads: {args.threads or os.cpu_count()}; load average at the end: {os.getloadavg()[0]:.1f}")
    keys = list(rec["seconds"])
    median = {e: {k: float(np.median([r["seconds"].get(k, 0.0) for r in runs[e]])) for k in keys} for e in ENGINES}
    spread = {e: (min(r["seconds"]["total"] for r in runs[e]), max(r["seconds"]["total"] for r in runs[e]))
              for e in ENGINES}
    print(f"{'stage (median s)':<20} " + " ".join(f"{e:>11}" for e in ENGINES))
    for k in keys:
        print(f"{k:<20} " + " ".join(f"{median[e][k]:11.3f}" for e in ENGINES))
    for e in ENGINES:
        total = median[e]["total"]
        print(f"{e}: total {total:.2f} s (runs {spread[e][0]:.2f}-{spread[e][1]:.2f}) against the target "
              f"{TARGET_S:.0f} s: {'MET' if total <= TARGET_S else 'MISSED'}; "
              + ", ".join(f"paper {k}: {v} s ({v / total:.2f}x ours)" for k, v in PAPER.items()))
    result = {"event": args.event, "model": args.model, "runs": runs, "median_seconds": median,
              "target_s": TARGET_S, "threads": args.threads or os.cpu_count(), "load_average": os.getloadavg()}
    if args.eval:
        from trkx_tf.reco.evaluate import evaluate

        metrics = {}
        for e in ENGINES:
            m = evaluate(real, out / e, out / e / "eval", setups[e][0].eval, events=[args.event], progress=False)
            metrics[e] = {"technical_efficiency": m["tracks"]["pt>0.5"]["technical_efficiency"],
                          "purity": m["tracks"]["pt>0.5"]["purity"], "score": m["score"]["all"],
                          "throughput": m.get("throughput")}
            print(f"{e}: technical efficiency (pT > 0.5 GeV) {100 * metrics[e]['technical_efficiency']:.2f} %, "
                  f"purity {100 * metrics[e]['purity']:.2f} %, TrackML score {metrics[e]['score']:.4f}")
        d_eff = 100 * (metrics["numpy"]["technical_efficiency"] - metrics["tensorflow"]["technical_efficiency"])
        d_score = metrics["numpy"]["score"] - metrics["tensorflow"]["score"]
        print(f"numpy - tensorflow: technical efficiency {d_eff:+.3f} points (allowed 0.2), "
              f"TrackML score {d_score:+.4f} (allowed 0.005)")
        result["metrics"] = metrics
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"outputs: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
