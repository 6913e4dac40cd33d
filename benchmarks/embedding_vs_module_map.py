"""Module map against the learned embedding, side by side: pT > 0.5 GeV edge efficiency against edges per hit, and
build time, on held-out simulated events and the real event 1000 (test only: nothing is chosen on it), plus the
restricted partial-truth edge efficiency on real labelled events (:mod:`trkx_tf.reco.partial`).

    python benchmarks/embedding_vs_module_map.py --config configs/embedding-cpu.yaml \\
        --ckpt runs/embedding-cpu/checkpoints --module-map data/emb/shards/module_map.npz \\
        --sim data/emb/eval --real ../shared/trackml --labelled ../shared/trackml/labelled --n-labelled 3 \\
        --radii 0.05,0.1,0.2,0.3,0.5 --max-neighbours 64 --out results/embedding/benchmark.json

For the embedding, one row per radius of ``--radii`` (hits embedded once per event; the build time is the
embedding plus that radius query). ``--diagnose`` also prints, per event set, the embedding distances of the pT > 0.5
true pairs against random hit pairs, and the hits within the margin of a hit (why a radius graph does or does not
work). Efficiency = true edges of particles with pT > 0.5 GeV in the candidate edges / such edges of the truth
graph (either direction).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

PT = 0.5


def _builders(cfg, ckpt, map_path):
    from trkx_tf.graphs.candidates import ModuleMapBuilder
    from trkx_tf.graphs.module_map import ModuleMap
    from trkx_tf.models.embedding import embed_hits
    from trkx_tf.train.checkpoints import load_embedding_model

    mm = None
    if map_path:
        c = cfg.graph.module_map
        mm = ModuleMapBuilder(ModuleMap.load(map_path), c.margin, c.rare_margin, c.min_count, c.neighbours)
    model = load_embedding_model(ckpt, cfg) if ckpt else None
    return mm, (lambda x: embed_hits(model, x)) if model is not None else None


def _found(s, r, tg, hi):
    from trkx_tf.graphs.truth import match_truth

    idx = match_truth(s, r, tg)
    return int(np.unique(idx[idx >= 0][hi[idx[idx >= 0]]]).size)


def diagnose(points: np.ndarray, tg, margin: float, rng) -> dict:
    """Distances of the pT > 0.5 true pairs and of random pairs, and hits within ``margin`` of a hit."""
    from trkx_tf.graphs.neighbours import neighbours

    hi = tg.pt > PT
    d_true = np.linalg.norm(points[tg.senders[hi]] - points[tg.receivers[hi]], axis=1)
    a, b = rng.integers(0, len(points), (2, 200000))
    d_rand = np.linalg.norm(points[a] - points[b], axis=1)
    q = [0.5, 0.9, 0.99, 0.995, 0.999]
    i, _ = neighbours(points, 256, margin)
    per_hit = np.bincount(i, minlength=len(points))
    return {"true_quantiles": dict(zip(map(str, q), np.quantile(d_true, q).round(4).tolist())),
            "random_quantiles": dict(zip(["0.0001", "0.001", "0.01", "0.5"],
                                         np.quantile(d_rand, [1e-4, 1e-3, 1e-2, 0.5]).round(4).tolist())),
            "feature_std": points.std(0).round(3).tolist(),
            "hits_within_margin_mean": float(per_hit.mean()),
            "hits_within_margin_p99": float(np.quantile(per_hit, .99)),
            "share_capped_at_256": float((per_hit >= 256).mean())}


def full_truth_rows(folder, ids, cfg, mm, embed, radii, k, do_diagnose) -> dict:
    from trkx_tf.graphs.candidates import EmbeddingBuilder
    from trkx_tf.graphs.features import hit_features
    from trkx_tf.graphs.neighbours import radius_graph
    from trkx_tf.graphs.truth import truth_graph
    from trkx_tf.trackml.io import read_event

    rows: dict = {}
    diag = []
    rng = np.random.default_rng(0)
    for e in ids:
        ev = read_event(folder, e, parts=("hits", "particles", "truth"))
        tg = truth_graph(ev.hits, ev.particles, ev.truth)
        hi = tg.pt > PT
        n_hit = len(ev.hits)
        base = {"hits": n_hit, "true_pt": int(hi.sum())}
        if mm is not None:
            t0 = time.perf_counter()
            s, r = mm.build(ev.hits)
            sec = time.perf_counter() - t0
            rows.setdefault("module_map", []).append({**base, "edges": len(s), "found_pt": _found(s, r, tg, hi),
                                                       "seconds": sec})
        if embed is not None:
            nodes = hit_features(ev.hits, r_scale=cfg.graph.r_scale, z_scale=cfg.graph.z_scale)
            t0 = time.perf_counter()
            points = embed(nodes)
            t_embed = time.perf_counter() - t0
            if do_diagnose:
                diag.append(diagnose(points, tg, cfg.model.embedding.margin, rng))
            for radius in radii:
                t0 = time.perf_counter()
                i, j = radius_graph(points, radius, k, cfg.graph.embedding.search)
                sec = t_embed + time.perf_counter() - t0
                rows.setdefault(f"embedding r={radius:g} k={k}", []).append(
                    {**base, "edges": len(i), "found_pt": _found(i, j, tg, hi), "seconds": sec})
            # the builder itself (orientation, sorting) at the first radius: its time is what trkx-build pays
            t0 = time.perf_counter()
            EmbeddingBuilder(lambda x: points, radii[0], k, cfg.graph.embedding.search).build(ev.hits, nodes)
            rows.setdefault("embedding builder (query+orient) s", []).append(time.perf_counter() - t0)
    out = {}
    for name, evs in rows.items():
        if name.endswith(" s"):
            out[name] = {"seconds": [round(x, 3) for x in evs]}
            continue
        tot = {key: sum(x[key] for x in evs) for key in ("hits", "true_pt", "edges", "found_pt")}
        out[name] = {"events": len(evs), "edges_per_event": tot["edges"] / len(evs),
                     "edges_per_hit": tot["edges"] / tot["hits"], "efficiency_pt": tot["found_pt"] / tot["true_pt"],
                     "seconds": [round(x["seconds"], 3) for x in evs]}
    if diag:
        out["diagnose"] = diag
    return out


def partial_rows(folder, n, cfg, mm, embed, radii, k) -> dict:
    from trkx_tf.graphs.features import hit_features
    from trkx_tf.graphs.neighbours import radius_graph
    from trkx_tf.reco.partial import edge_counts, edge_ratios, labelled_hits
    from trkx_tf.trackml.io import list_events, read_event

    sums: dict = {}
    for e in list_events(folder)[:n]:
        ev = read_event(folder, e, parts=("hits", "partial-truth"))
        lab = labelled_hits(ev.hits, ev.partial_truth)
        graphs = {}
        if mm is not None:
            graphs["module_map"] = mm.build(ev.hits)
        if embed is not None:
            points = embed(hit_features(ev.hits, r_scale=cfg.graph.r_scale, z_scale=cfg.graph.z_scale))
            for radius in radii:
                graphs[f"embedding r={radius:g} k={k}"] = radius_graph(points, radius, k, cfg.graph.embedding.search)
        for name, (s, r) in graphs.items():
            c = edge_counts(lab, s, r, {"graph": np.ones(len(s), bool)})["graph"]
            acc = sums.setdefault(name, {"edges": 0, "hits": 0, "events": 0})
            acc["edges"] += len(s)
            acc["hits"] += len(ev.hits)
            acc["events"] += 1
            for cls in ("all", "pt_min=1.0", "pt_min=0.5"):
                for key, v in c[cls]["all"].items():
                    acc.setdefault(cls, {}).setdefault(key, 0)
                    acc[cls][key] += v
    return {name: {"events": a["events"], "edges_per_hit": a["edges"] / a["hits"],
                   **{cls: edge_ratios(a[cls]) for cls in ("all", "pt_min=1.0", "pt_min=0.5")}}
            for name, a in sums.items()}


def main(argv=None) -> int:
    from trkx_tf.config import load_config
    from trkx_tf.trackml.io import list_events

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", action="append", default=[], help="config overrides KEY=VALUE")
    ap.add_argument("--ckpt", help="the embedding checkpoint (omit: module map only)")
    ap.add_argument("--module-map", help="a module map .npz (omit: embedding only)")
    ap.add_argument("--sim", help="held-out simulated events folder")
    ap.add_argument("--n-sim", type=int, default=4)
    ap.add_argument("--real", help="folder of event 1000 (test only)")
    ap.add_argument("--labelled", help="real labelled events folder (partial truth)")
    ap.add_argument("--n-labelled", type=int, default=3)
    ap.add_argument("--radii", default="0.1,0.2,0.3")
    ap.add_argument("--max-neighbours", type=int, default=64)
    ap.add_argument("--diagnose", action="store_true")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.set)
    radii = [float(x) for x in args.radii.split(",")]
    mm, embed = _builders(cfg, args.ckpt, args.module_map)
    result = {"config": args.config, "set": args.set, "ckpt": args.ckpt, "module_map": args.module_map}
    if args.sim:
        ids = list_events(args.sim)[:args.n_sim]
        result["sim"] = full_truth_rows(args.sim, ids, cfg, mm, embed, radii, args.max_neighbours, args.diagnose)
    if args.real:
        result["event1000"] = full_truth_rows(args.real, [1000], cfg, mm, embed, radii, args.max_neighbours,
                                              args.diagnose)
    if args.labelled:
        result["labelled"] = partial_rows(args.labelled, args.n_labelled, cfg, mm, embed, radii, args.max_neighbours)
    for where in ("sim", "event1000"):
        for name, m in result.get(where, {}).items():
            if "efficiency_pt" in m:
                print(f"{where:<10} {name:<28} {m['events']:>2} ev  {m['edges_per_event']:>11,.0f} edges/ev "
                      f"{m['edges_per_hit']:>7.2f} /hit  eff(pT>0.5) {100 * m['efficiency_pt']:6.2f} %  "
                      f"s/ev {np.median(m['seconds']):6.2f} {m['seconds']}")
            elif name == "diagnose":
                for d in m:
                    print(f"{where:<10} diagnose {json.dumps(d)}")
            else:
                print(f"{where:<10} {name} {m['seconds']}")
    for name, m in result.get("labelled", {}).items():
        eff = {cls: m[cls]["efficiency"] for cls in ("all", "pt_min=1.0", "pt_min=0.5")}
        print(f"labelled   {name:<28} {m['events']:>2} ev  {m['edges_per_hit']:7.2f} /hit  restricted efficiency "
              + "  ".join(f"{c} {100 * v:6.2f} %" for c, v in eff.items() if v is not None))
    if args.out:
        from trkx_tf.files import write_text_atomic

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
