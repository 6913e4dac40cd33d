"""Trains the edge filter and the Interaction Network that the inference benchmarks run, on simulated shards only.

Until ``trkx-train`` is wired this script drives the library's training loop (:func:`trkx_tf.train.loop.train`)
directly, the Exa.TrkX way:

1. the **filter** on the candidate-edge shards of ``trkx-build`` (train split, each graph's edges in
   ``--filter-chunks`` random parts per epoch, see :class:`EdgeChunkSource`; val split for the epoch metrics);
2. the filter scores every training and validation graph; edges with score >= ``infer.filter_threshold`` are kept,
   and the **GNN** trains on these filtered whole-event graphs (padded to one bucket), as it sees them at
   inference.

Outputs ``<out>/filter/`` and ``<out>/gnn/`` run folders (checkpoints/, tensorboard/, metrics.jsonl, config.yaml),
and prints the filter's edge efficiency/purity on the validation graphs for a few thresholds; with
``--filter-target F`` the largest threshold that keeps a fraction F of the true edges of pT > 0.5 GeV is used for
the GNN's graphs (and written to ``<out>/filter_thresholds.json``: pass it as ``infer.filter_threshold``). Only
simulated events are used; real event 1000 is never read here.

    trkx-simulate --events 100 --pileup 200 --seed 11 --out /tmp/reco/train --no-cells
    trkx-build --input /tmp/reco/train --out /tmp/reco/shards --set graph.use_cells=false --set data.val_fraction=0.1
    python benchmarks/infer_models.py --shards /tmp/reco/shards --out /tmp/reco/models \\
        --set model.filter.hidden=64 --set model.gnn.hidden=64 --set model.gnn.steps=6 \\
        --filter-epochs 4 --gnn-epochs 8

Then ``trkx-infer --filter-ckpt <out>/filter/checkpoints --gnn-ckpt <out>/gnn/checkpoints --module-map
<shards>/module_map.npz`` with the same ``--set`` options (the model shapes must match).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class EdgeChunkSource:
    """Batches of the filter: each training graph's edges in ``chunks`` random parts, every part with all nodes.

    The filter scores each edge alone, so a random part of a graph's edges is as good a batch as the whole graph,
    and ``chunks`` times more (and cheaper) optimizer steps per epoch converge much faster than one step per
    1.7 M-edge event graph. Every batch is padded to one shape (the largest graph's nodes, its edges / chunks),
    so one step function serves them all. The order is a deterministic function of the epoch (resumable).
    """

    def __init__(self, reader, chunks: int, seed: int = 0):
        from trkx_tf.graphs.synthetic import graph_batch, pad_batch

        self.reader, self.chunks, self.seed = reader, int(chunks), int(seed)
        self._graph_batch, self._pad = graph_batch, pad_batch
        self.n_budget = int(reader.graph_n_node.max()) + 1
        self.e_budget = -(-int(reader.graph_n_edge.max()) // self.chunks)

    def num_batches(self, epoch: int) -> int:
        return self.reader.n_graphs * self.chunks

    def batches(self, epoch: int, start: int = 0):
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.reader.n_graphs)
        k = 0
        for gi in order:
            perm_seed = int(rng.integers(2**31))
            if k + self.chunks <= start:
                k += self.chunks
                continue
            g = self.reader.read_graph(int(gi))
            n, e = int(g["n_node"]), int(g["n_edge"])
            perm = np.random.default_rng(perm_seed).permutation(e)
            for part in np.array_split(perm, self.chunks):
                if k >= start:
                    b = self._graph_batch(g["nodes"][:n], g["senders"][part], g["receivers"][part],
                                          g["edge_labels"][part], g["edge_weights"][part])
                    yield self._pad(b, self.n_budget, self.e_budget)
                k += 1


THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)


def score_graphs(reader, scorer):
    """Yields every graph of a reader (unpadded) with the filter's scores."""
    for i in range(reader.n_graphs):
        g = reader.read_graph(i)
        n, e = int(g["n_node"]), int(g["n_edge"])
        yield {"nodes": g["nodes"][:n], "senders": g["senders"][:e], "receivers": g["receivers"][:e],
               "labels": g["edge_labels"][:e], "weights": g["edge_weights"][:e], "pt": g["edge_pt"][:e],
               "scores": scorer(g["nodes"][:n], g["senders"][:e], g["receivers"][:e])}


def threshold_table(graphs: list[dict]) -> list[dict]:
    """Edges kept per graph, efficiency (all true edges and pT > 0.5 GeV) and purity at each threshold."""
    rows = []
    for t in THRESHOLDS:
        kept = tk = tt = tk5 = tt5 = 0
        for g in graphs:
            k = g["scores"] >= t
            true = g["labels"] > 0
            hi = true & (g["pt"] > 0.5)
            kept += int(k.sum())
            tk += int((k & true).sum())
            tt += int(true.sum())
            tk5 += int((k & hi).sum())
            tt5 += int(hi.sum())
        rows.append({"threshold": t, "kept_per_graph": kept / max(len(graphs), 1), "efficiency": tk / max(tt, 1),
                     "efficiency_pt05": tk5 / max(tt5, 1), "purity": tk / max(kept, 1)})
    return rows


def cut_batches(graphs, threshold: float, sectors: int = 1) -> list[dict]:
    """One-graph batches of the edges scoring at least ``threshold``, optionally cut into φ sectors.

    With ``sectors > 1`` each filtered graph becomes ``sectors`` graphs: the hits of one φ slice (node feature 1 is
    φ/π) and the edges between them (edges across a slice boundary are left out of training only; inference always
    runs on whole events). More, smaller steps per epoch make the GNN converge faster per second of CPU.
    """
    from trkx_tf.graphs.synthetic import graph_batch

    out = []
    for g in graphs:
        k = g["scores"] >= threshold
        nodes, s, r = g["nodes"], g["senders"][k], g["receivers"][k]
        labels, weights = g["labels"][k], g["weights"][k]
        if sectors <= 1:
            out.append(graph_batch(nodes, s, r, labels, weights))
            continue
        sector = np.minimum(((nodes[:, 1] + 1.0) * 0.5 * sectors).astype(np.int64), sectors - 1)
        for j in range(sectors):
            keep_n = np.flatnonzero(sector == j)
            remap = np.full(len(nodes), -1, np.int64)
            remap[keep_n] = np.arange(len(keep_n))
            e = (sector[s] == j) & (sector[r] == j)
            out.append(graph_batch(nodes[keep_n], remap[s[e]], remap[r[e]], labels[e], weights[e]))
    return out


def pad_all(batches: list[dict], quantum: int = 4096) -> list[dict]:
    """Pads every one-graph batch to one shared budget (the largest, rounded up), so one step function serves."""
    from trkx_tf.graphs.synthetic import pad_batch

    nn = max(b["nodes"].shape[0] for b in batches) + 1
    ne = max(b["senders"].shape[0] for b in batches)
    nn, ne = -(-nn // quantum) * quantum, -(-ne // quantum) * quantum
    return [pad_batch(b, nn, ne) for b in batches]


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    from trkx_tf.config import load_config
    from trkx_tf.graphs.reader import ShardReader
    from trkx_tf.logs import setup_logging
    from trkx_tf.reco.pipeline import ModelScorer, build_model, restore_model
    from trkx_tf.rundir import RunDir
    from trkx_tf.train.loop import InMemorySource, train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, help="trkx-build output folder (simulated events only)")
    ap.add_argument("--out", required=True, help="folder for the filter/ and gnn/ run folders")
    ap.add_argument("--config", help="YAML config (model, train and infer sections)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--filter-epochs", type=int, default=4)
    ap.add_argument("--filter-chunks", type=int, default=8, help="filter batches per training graph (edge parts)")
    ap.add_argument("--gnn-epochs", type=int, default=8)
    ap.add_argument("--gnn-sectors", type=int, default=1, help="train the GNN on this many phi slices per event")
    ap.add_argument("--skip-filter", action="store_true", help="reuse <out>/filter (train only the GNN)")
    ap.add_argument("--filter-target", type=float, default=None,
                    help="choose the largest threshold keeping this fraction of the validation graphs' true edges "
                         "of pT > 0.5 GeV (default: infer.filter_threshold)")
    args = ap.parse_args(argv)
    setup_logging()
    out = Path(args.out)
    base = load_config(args.config, args.overrides)
    t0 = time.perf_counter()

    # 1. the filter, on the candidate-edge shards
    fcfg = load_config(args.config, args.overrides + ["train.model=filter", f"train.epochs={args.filter_epochs}",
                                                      "train.threshold=0.5"])
    if not args.skip_filter:
        tr = EdgeChunkSource(ShardReader(args.shards, "train", shuffle=False), args.filter_chunks, base.run.seed)
        va = ShardReader(args.shards, "val", shuffle=False)
        res = train(fcfg, tr, va if va.n_graphs else None, run_dir=RunDir(out / "filter"))
        print(f"filter: {res.steps} steps, last epoch {json.dumps(res.history[-1]) if res.history else '-'}")
    n_features = ShardReader(args.shards, "train").n_features
    fmodel = build_model("filter", base.model, n_features)
    restore_model(fmodel, out / "filter" / "checkpoints")
    scorer = ModelScorer(fmodel, n_features, chunk_edges=base.infer.filter_chunk_edges)
    t1 = time.perf_counter()

    # 2. the filter threshold, chosen on the validation graphs (simulated); 3. the GNN on the filtered graphs
    val_graphs = list(score_graphs(ShardReader(args.shards, "val", shuffle=False), scorer))
    table = threshold_table(val_graphs)
    thr = base.infer.filter_threshold
    if args.filter_target is not None:
        ok = [r["threshold"] for r in table if r["efficiency_pt05"] >= args.filter_target]
        thr = max(ok) if ok else min(THRESHOLDS)
    print("filter on the validation graphs:  threshold  kept/graph  eff(all true)  eff(pT>0.5)  purity")
    for r in table:
        print(f"    {r['threshold']:9.3f}  {r['kept_per_graph']:10,.0f}  {r['efficiency']:13.4f}  "
              f"{r['efficiency_pt05']:11.4f}  {r['purity']:7.4f}" + ("   <- used" if r["threshold"] == thr else ""))
    print(f"filter threshold: {thr}  (use --set infer.filter_threshold={thr} at inference)")
    (out / "filter_thresholds.json").write_text(json.dumps({"chosen": thr, "table": table}, indent=1) + "\n")
    val_b = cut_batches(val_graphs, thr)
    del val_graphs
    train_b = cut_batches(score_graphs(ShardReader(args.shards, "train", shuffle=False), scorer), thr,
                          args.gnn_sectors)
    train_b, val_b = pad_all(train_b), (pad_all(val_b) if val_b else [])
    print(f"gnn graphs: {len(train_b)} training ({train_b[0]['senders'].shape[0]:,} edge budget), "
          f"{len(val_b)} validation", flush=True)
    gcfg = load_config(args.config, args.overrides + ["train.model=gnn", f"train.epochs={args.gnn_epochs}"])
    res = train(gcfg, InMemorySource(train_b, seed=base.run.seed),
                InMemorySource(val_b, shuffle=False) if val_b else None, run_dir=RunDir(out / "gnn"))
    print(f"gnn: {res.steps} steps, last epoch {json.dumps(res.history[-1]) if res.history else '-'}")
    print(f"seconds: filter {t1 - t0:.0f}, gnn {time.perf_counter() - t1:.0f}")
    print(f"checkpoints: {out / 'filter' / 'checkpoints'}  {out / 'gnn' / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
