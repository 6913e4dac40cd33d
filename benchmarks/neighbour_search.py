"""Neighbour search backends side by side on one full μ=200 event in embedding space: scipy cKDTree, faiss-cpu
(exact, IndexFlatL2) and hnswlib (approximate HNSW), through :func:`trkx_tf.graphs.neighbours.radius_graph`.

    python benchmarks/neighbour_search.py --config configs/embedding-cpu.yaml --ckpt runs/embedding-cpu/checkpoints \\
        --events data/emb/eval --event 5000 --radius 0.2 --k 64 --repeat 3 --threads 1

Prints, per backend: the wall time of each repeat (index build + query), the edges found, the pairs it misses or
adds against cKDTree (the exact reference), and the peak of the process's resident memory growth. Without
``--ckpt`` the points are a synthetic stand-in (clusters of 11 points around 10k centres in 8-d).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def _points(args) -> np.ndarray:
    if not args.ckpt:
        rng = np.random.default_rng(0)
        centres = rng.uniform(-3, 3, (10000, 8))
        return (np.repeat(centres, 11, 0) + rng.normal(0, 0.05, (110000, 8))).astype(np.float32)
    from trkx_tf.config import load_config
    from trkx_tf.graphs.features import hit_features
    from trkx_tf.models.embedding import embed_hits
    from trkx_tf.train.checkpoints import load_embedding_model
    from trkx_tf.trackml.io import read_event

    cfg = load_config(args.config, args.set)
    ev = read_event(args.events, args.event, parts=("hits",))
    nodes = hit_features(ev.hits, r_scale=cfg.graph.r_scale, z_scale=cfg.graph.z_scale)
    return embed_hits(load_embedding_model(args.ckpt, cfg), nodes)


def main(argv=None) -> int:
    from trkx_tf.graphs.neighbours import SEARCHES, radius_graph

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--ckpt")
    ap.add_argument("--events", default="data/emb/eval")
    ap.add_argument("--event", type=int, default=5000)
    ap.add_argument("--radius", type=float, default=0.2)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--searches", default=",".join(SEARCHES))
    args = ap.parse_args(argv)
    points = _points(args)
    print(f"{len(points)} points, D={points.shape[1]}, radius {args.radius}, k {args.k}, threads {args.threads}")
    n = len(points)
    ref = None
    for search in args.searches.split(","):
        times = []
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            i, j = radius_graph(points, args.radius, args.k, search, workers=args.threads)
            times.append(time.perf_counter() - t0)
        rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        keys = i * n + j
        if ref is None:
            ref = keys
        missed = np.setdiff1d(ref, keys).size
        extra = np.setdiff1d(keys, ref).size
        print(f"{search:<8} s: {' '.join(f'{t:6.2f}' for t in times)}  edges {len(i):>10,}  "
              f"missed vs {args.searches.split(',')[0]} {missed:>8,}  extra {extra:>8,}  peak RSS growth {rss:7.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
