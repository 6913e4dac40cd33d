"""Chooses ``infer.filter_threshold`` on the validation graphs of a trkx-build folder (simulated events only).

The trained edge filter (restored as ``trkx-infer`` restores it, :func:`trkx_tf.reco.scorers.load_scorer`) scores
every edge of the ``val`` split (whole events), and for a grid of thresholds the script prints the edges kept per
graph, the edge efficiency over all true edges and over those of particles with pT > 0.5 GeV, and the purity, for
the whole detector and for the barrel region (sender |η| < 1.5, where the node-feature-only filter failed). With
``--target F`` it names the largest threshold keeping a fraction F of the pT > 0.5 GeV true edges: pass it as
``--set infer.filter_threshold=T`` to ``trkx-build --filter-ckpt`` (the GNN's training graphs) and to ``trkx-infer``.
Refuses a shards folder built from the real event 1000 (never tune on it).

With ``--gnn-ckpt`` instead it scores the graphs of a filtered-shards folder (``graph.filter_ckpt``) with a trained
Interaction Network, the same table. Either way it also prints the working points of the training's validation
records (:func:`trkx_tf.train.metrics.working_points`, over the edges of non-zero loss weight): the efficiency at
``train.target_purity`` and the purity at ``train.target_efficiency``.

    python benchmarks/infer_filter_thresholds.py --config configs/filter.yaml \\
        --filter-ckpt runs/sim200-filter/checkpoints --target 0.99 [--json thresholds.json]
    python benchmarks/infer_filter_thresholds.py --config configs/gnn.yaml --gnn-ckpt runs/sim200-gnn/checkpoints
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)
PT = 0.5


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML config (model, graph, infer sections; data.shards_dir)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--shards", help="trkx-build folder (default: data.shards_dir)")
    model = ap.add_mutually_exclusive_group(required=True)
    model.add_argument("--filter-ckpt", help="edge filter checkpoint or release folder")
    model.add_argument("--gnn-ckpt", help="Interaction Network checkpoint or release folder (filtered shards)")
    ap.add_argument("--target", type=float, help="fraction of pT > 0.5 GeV true edges to keep")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)

    import numpy as np

    from trkx_tf.config import load_config
    from trkx_tf.graphs.reader import ShardReader
    from trkx_tf.reco.scorers import load_scorer
    from trkx_tf.train.metrics import score_histogram, working_points

    cfg = load_config(args.config, args.overrides)
    reader = ShardReader(args.shards or cfg.data.shards_dir, "val", shuffle=False)
    if not reader.n_graphs:
        print("no validation graphs (build with data.val_fraction > 0)")
        return 2
    kind = "filter" if args.filter_ckpt else "gnn"
    scorer = load_scorer(cfg, kind, args.filter_ckpt or args.gnn_ckpt, reader.n_features)
    counts = np.zeros((2, len(THRESHOLDS), 5), np.int64)  # [all, barrel] x (kept, true kept, true, hi kept, hi)
    histogram = 0.0
    for i in range(reader.n_graphs):
        g = reader.read_graph(i)
        if int(g["event_id"]) == 1000:
            print("refusing: event 1000 is the real test event; tune on simulated events only")
            return 2
        n, e = int(g["n_node"]), int(g["n_edge"])
        scores = scorer(g["nodes"][:n], g["senders"][:e], g["receivers"][:e])
        true = g["edge_labels"][:e] == 1
        logits = np.log(np.clip(scores, 1e-12, None)) - np.log(np.clip(1.0 - scores, 1e-12, None))
        histogram = histogram + score_histogram(logits, g["edge_labels"][:e], g["edge_weights"][:e],
                                                np.ones(e, np.float32)).numpy()
        hi = true & (g["edge_pt"][:e] > PT)
        r_hit, z_hit = g["nodes"][:n, 0] * cfg.graph.r_scale, g["nodes"][:n, 2] * cfg.graph.z_scale
        barrel = np.abs(np.arcsinh(z_hit / np.maximum(r_hit, 1e-6)))[g["senders"][:e]] < 1.5
        for region, sel in enumerate((np.ones(e, bool), barrel)):
            for k, t in enumerate(THRESHOLDS):
                keep = (scores >= t) & sel
                counts[region, k] += (keep.sum(), (keep & true).sum(), (true & sel).sum(), (keep & hi).sum(),
                                      (hi & sel).sum())

    def row(t, c):
        return {"threshold": t, "kept_per_graph": c[0] / reader.n_graphs, "efficiency": c[1] / max(c[2], 1),
                "efficiency_pt05": c[3] / max(c[4], 1), "purity": c[1] / max(c[0], 1)}

    rows = [row(t, c) for t, c in zip(THRESHOLDS, counts[0])]
    barrel_rows = [row(t, c) for t, c in zip(THRESHOLDS, counts[1])]
    chosen = None
    if args.target is not None:
        ok = [r["threshold"] for r in rows if r["efficiency_pt05"] >= args.target]
        chosen = max(ok) if ok else min(THRESHOLDS)
    print(f"{kind} on {reader.n_graphs} validation graphs:  threshold  kept/graph  eff(all true)  eff(pT>0.5)  purity")
    for r, b in zip(rows, barrel_rows):
        print(f"    {r['threshold']:9.3f}  {r['kept_per_graph']:10,.0f}  {r['efficiency']:13.4f}  "
              f"{r['efficiency_pt05']:11.4f}  {r['purity']:7.4f}   barrel: kept {b['kept_per_graph']:9,.0f}  "
              f"eff(pT>0.5) {b['efficiency_pt05']:.4f}  purity {b['purity']:.4f}"
              + ("   <- chosen" if r["threshold"] == chosen else ""))
    if chosen is not None:
        print(f"{kind} threshold: {chosen}  (--set infer.{kind}_threshold={chosen})")
    tc = cfg.train
    points = working_points(histogram, tc.target_purity, tc.target_efficiency)
    print(f"weighted edges: efficiency {points['efficiency_at_purity']:.4f} at purity {tc.target_purity} (threshold "
          f"{points['threshold_at_purity']:.4f}), purity {points['purity_at_efficiency']:.4f} at efficiency "
          f"{tc.target_efficiency} (threshold {points['threshold_at_efficiency']:.4f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"kind": kind, "chosen": chosen, "table": rows, "barrel": barrel_rows,
                                               "working_points": {"target_purity": tc.target_purity,
                                                                  "target_efficiency": tc.target_efficiency,
                                                                  **points}}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
