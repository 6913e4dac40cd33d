"""Chooses the GNN threshold and the labelling method on simulated validation events, from saved edge scores.

``trkx-infer`` (with ``infer.save_edges``) stores every edge's GNN score, so the tracks for any other
``infer.gnn_threshold`` / ``infer.labelling`` can be rebuilt without running the models again. This script does
that for a grid of thresholds and both methods and prints the metrics of ``trkx-eval`` for each, side by side.
Use it on **simulated** events only (event 1000 is the test event: never choose settings on it).

    trkx-infer --input EVENTS --out OUT --events 90 91 ... (simulated validation events) ...
    python benchmarks/infer_tune_labelling.py --input EVENTS --infer-out OUT [--thresholds 0.3,0.5,0.7]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="simulated events with truth")
    ap.add_argument("--infer-out", required=True, help="trkx-infer output folder with event<ID>-edges.npz files")
    ap.add_argument("--thresholds", default="0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    ap.add_argument("--methods", default="cc,walk")
    ap.add_argument("--oracle", action="store_true",
                    help="replace the GNN scores by the truth (1: the edge is in the truth graph, 0: not) on the edges "
                         "that reached the GNN: the tracks a perfect GNN would give after this graph and filter")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)

    import numpy as np

    from trkx_tf.config import EvalConfig
    from trkx_tf.graphs.features import cylindrical, hit_rows
    from trkx_tf.graphs.truth import match_truth, truth_graph
    from trkx_tf.reco.evaluate import evaluate_event, summarise
    from trkx_tf.reco.labelling import label_tracks, submission_frame
    from trkx_tf.reco.outputs import edges_path, list_submissions, read_edges
    from trkx_tf.trackml.io import read_event

    ids = list_submissions(args.infer_out)
    if 1000 in ids:
        print("refusing: event 1000 is the real test event; tune on simulated events only")
        return 2
    events = {e: read_event(args.input, e, parts=("hits", "particles", "truth")) for e in ids}
    edges = {e: read_edges(edges_path(args.infer_out, e)) for e in ids}
    cfg = EvalConfig()
    rows = []
    print(f"{'method':<6} {'thr':>5} {'tech.eff(pT>0.5)':>17} {'purity(pT>0.5)':>15} {'purity(all)':>12} "
          f"{'score':>7} {'score(pT>0.5)':>14}")
    for method in args.methods.split(","):
        for thr in (float(t) for t in args.thresholds.split(",")):
            evals = []
            for e in ids:
                ev, ed = events[e], edges[e]
                hit_id = ev.hits["hit_id"].to_numpy(np.int64)
                s = hit_rows(hit_id, ed.senders, "edges")
                r = hit_rows(hit_id, ed.receivers, "edges")
                reached = ~np.isnan(ed.scores["gnn"])
                scores = ed.scores["gnn"][reached]
                if args.oracle:
                    tg = truth_graph(ev.hits, ev.particles, ev.truth)
                    scores = (match_truth(s[reached], r[reached], tg) >= 0).astype(np.float32)
                rr, _, z = cylindrical(ev.hits)
                labels = label_tracks(method, len(hit_id), s[reached], r[reached], scores, thr, np.hypot(rr, z))
                evals.append(evaluate_event(ev, submission_frame(e, hit_id, labels), cfg))
            m = summarise(evals, cfg)
            t5, ta = m["tracks"]["pt>0.5"], m["tracks"]["all"]
            rows.append({"method": method, "threshold": thr, "tracks": m["tracks"], "score": m["score"]})
            print(f"{method:<6} {thr:5.2f} {100 * t5['technical_efficiency']:16.2f}% {100 * t5['purity']:14.2f}% "
                  f"{100 * ta['purity']:11.2f}% {m['score']['all']:7.4f} {m['score']['pt>0.5']:14.4f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
