"""Triplet seeding measured end to end: doublets scored by the GNN -> triplets -> triplet classifier -> seeds.

Input: TrackML events with truth and the edges files that ``trkx-infer`` wrote for them
(``event<ID>-edges.npz``: every candidate edge with its GNN score). Per event the doublets with GNN score
>= ``--doublet-threshold`` become the nodes of the triplet graph (:mod:`trkx_tf.graphs.triplets`), timed. The
triplet classifier is ``model.triplet`` (the edge-filter MLP, :class:`~trkx_tf.models.filter.EdgeFilter` with
edge features, built by the registry) on the triplet graph, trained with the toolkit's loop
(:func:`trkx_tf.train.loop.fit`: single, ``horovodrun`` or tf.distribute, as ``--backend`` says; each rank takes
every size-th chunk of triplets). The seed threshold is chosen on the validation events (the highest one whose
seed efficiency is >= ``--target``, or ``--target`` x the efficiency of every triplet with ``--relative``), then
the test events are scored at it (:mod:`trkx_tf.reco.seeds`). Labels: a doublet is true when its two hits belong
to one particle, a triplet when both doublets are true (then all three hits are one particle's: the seed purity's
definition).

Why the MLP and not a GNN on the triplet graph: a triplet's own features (curvature, d0, the kink between its
doublets, z0) and its two doublets' GNN scores, which already carry the hit graph's context, decide most triplets;
a per-triplet MLP is the cheapest model, scores triplets in independent chunks (bounded memory on a full event),
and is the model the toolkit already trains and tests. The triplet batch is an ordinary padded graph batch, so the
IN or the AGNN can train on it unchanged (``--model gnn``) where the MLP falls short. ``--run-dir`` keeps the
checkpoints that ``trkx-infer --seeds --seed-ckpt <run-dir>/checkpoints`` uses (with the same ``--set``).

    python benchmarks/triplet_seeding.py --events-dir data/seeds/mu200-train \
        --edges-dir runs/seeds-infer/mu200-train --train 300 301 302 --val 303 \
        --test-events-dir data/seeds/mu200-test --test-edges-dir runs/seeds-infer/mu200-test --test 310 311 \
        --extra ../shared/trackml runs/seeds-infer/event1000 1000 --doublet-threshold 0.1 --epochs 30 \
        --steps-per-epoch 24 --relative --run-dir runs/seeds-triplet      # docs/agnn_and_seeding.md
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

GRID = np.round(np.concatenate([np.linspace(0.0, 0.9, 19), [0.92, 0.94, 0.96, 0.98, 0.99]]), 4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events-dir", required=True)
    p.add_argument("--edges-dir", required=True)
    p.add_argument("--train", type=int, nargs="+", required=True)
    p.add_argument("--val", type=int, nargs="+", required=True)
    p.add_argument("--test-events-dir", default=None)
    p.add_argument("--test-edges-dir", default=None)
    p.add_argument("--test", type=int, nargs="*", default=[])
    p.add_argument("--extra", nargs=3, action="append", default=[], metavar=("EVENTS_DIR", "EDGES_DIR", "ID"),
                   help="also report this event at the chosen threshold (e.g. the real event 1000)")
    p.add_argument("--doublet-threshold", type=float, default=None,
                   help="GNN score a doublet needs (default: infer.seed_doublet_threshold)")
    p.add_argument("--pt-min", type=float, default=1.0)
    p.add_argument("--target", type=float, default=0.99, help="seed efficiency the threshold must keep")
    p.add_argument("--relative", action="store_true",
                   help="the target is a fraction of the validation efficiency with every triplet as a seed (the "
                        "ceiling the doublets leave)")
    p.add_argument("--model", choices=["triplet", "gnn"], default="triplet",
                   help="triplet: model.triplet (the filter MLP); gnn: model.gnn with edge features")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set model.triplet.hidden=128")
    p.add_argument("--run-dir", default=None, help="write checkpoints (for trkx-infer --seeds) and metrics here")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps-per-epoch", type=int, default=0, help="0: every chunk")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--chunk", type=int, default=65536, help="triplets per training step")
    p.add_argument("--backend", default="single", choices=["single", "auto", "horovod", "tfdist"])
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def load_event(events_dir, edges_dir, event_id, doublet_threshold, r_scale, z_scale):
    """One event's triplet batch, triplets, hit truth and timings."""
    from trkx_tf.graphs.features import hit_features, hit_rows
    from trkx_tf.graphs.triplets import doublets_to_triplets, orient_outwards, triplet_batch
    from trkx_tf.graphs.truth import hit_particle_ids
    from trkx_tf.reco.outputs import edges_path, read_edges
    from trkx_tf.trackml.io import read_event

    event = read_event(events_dir, event_id, parts=("hits", "particles", "truth"))
    hits = event.hits
    nodes = hit_features(hits, r_scale=r_scale, z_scale=z_scale)
    hit_id = hits["hit_id"].to_numpy(np.int64)
    edges = read_edges(edges_path(edges_dir, event_id))
    score = np.nan_to_num(edges.scores["gnn"], nan=-1.0)
    keep = score >= doublet_threshold
    s = hit_rows(hit_id, edges.senders[keep], "senders")
    r = hit_rows(hit_id, edges.receivers[keep], "receivers")
    pid = hit_particle_ids(hits, event.truth)
    labels = (pid[s] == pid[r]) & (pid[s] != 0)
    t0 = time.perf_counter()
    inner, outer = orient_outwards(s, r, nodes, r_scale, z_scale)
    conv = doublets_to_triplets(inner, outer, len(nodes))
    t_conv = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch, triplets = triplet_batch(nodes, s, r, score[keep], r_scale, z_scale, labels)
    t_all = time.perf_counter() - t0
    assert triplets.n_triplet == conv.n_triplet
    return {"id": event_id, "batch": batch, "triplets": triplets, "pid": pid, "hit_id": hit_id,
            "particles": event.particles, "n_hits": len(hits), "n_doublets": int(keep.sum()),
            "true_doublets": int(labels.sum()), "n_triplets": triplets.n_triplet,
            "true_triplets": int(batch["edge_labels"].sum()), "convert_s": t_conv, "features_s": t_all}


def chunks(batch, size, whole=False):
    """Training batches of few shapes: the doublet table padded to a multiple of ``size``, triplets ``size`` at a
    time (the last chunk padded), so the step functions compile once; ``whole``: one batch per event (a GNN must
    see every triplet of the graph), padded to multiples of ``size``."""
    from trkx_tf.graphs.synthetic import pad_batch

    n, e = batch["nodes"].shape[0], batch["senders"].shape[0]
    n_pad = -(-(n + 1) // size) * size
    step = -(-max(e, 1) // size) * size if whole else size
    out = []
    for lo in range(0, e, step):
        hi = min(lo + step, e)
        part = {k: batch[k] for k in ("nodes", "node_mask", "n_node")}
        part.update({k: batch[k][lo:hi] for k in ("senders", "receivers", "edge_mask", "edge_labels",
                                                  "edge_weights")})
        part["n_edge"] = np.array([hi - lo], np.int32)
        padded = pad_batch(part, n_pad, step)
        padded["edges"] = np.concatenate([batch["edges"][lo:hi],
                                          np.zeros((step - (hi - lo), batch["edges"].shape[1]), np.float32)])
        out.append(padded)
    return out


def _pct(x):
    return "   n/a" if x is None else f"{x:.4f}"


def sweep(events, scores, pt_min, grid=GRID):
    from trkx_tf.reco.seeds import seed_metrics, seed_ratios

    rows = []
    for thr in grid:
        total = {"seeds": 0, "true_seeds": 0, "particles": 0, "seeded": 0}
        for ev, sc in zip(events, scores):
            m = seed_metrics(ev["triplets"].hits[sc >= thr], ev["pid"], ev["particles"], pt_min)
            for k in total:
                total[k] += m[k]
        rows.append({"threshold": float(thr), **total, **seed_ratios(total)})
    return rows


def at_threshold(events, scores, thr, pt_min):
    return sweep(events, scores, pt_min, [thr])[0]


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()
    args = parse_args(argv)
    import tensorflow as tf

    from trkx_tf.config import load_config
    from trkx_tf.models.registry import build_model
    from trkx_tf.rundir import RunDir
    from trkx_tf.train.distributed import make_backend
    from trkx_tf.train.loop import InMemorySource, fit
    from trkx_tf.train.optim import Adam, WarmupSchedule
    from trkx_tf.train.tasks import EdgeTask

    backend = make_backend(args.backend, 0)
    cfg = load_config(None, args.overrides + (["model.gnn.edge_features=true"] if args.model == "gnn" else []))
    if args.doublet_threshold is None:
        args.doublet_threshold = cfg.infer.seed_doublet_threshold
    load = os.getloadavg()
    log = print if backend.is_writer else (lambda *a, **k: None)
    log(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; doublet threshold {args.doublet_threshold}",
        flush=True)
    scales = (cfg.graph.r_scale, cfg.graph.z_scale)
    ev_train = [load_event(args.events_dir, args.edges_dir, e, args.doublet_threshold, *scales) for e in args.train]
    ev_val = [load_event(args.events_dir, args.edges_dir, e, args.doublet_threshold, *scales) for e in args.val]
    ev_test = [load_event(args.test_events_dir or args.events_dir, args.test_edges_dir or args.edges_dir, e,
                          args.doublet_threshold, *scales) for e in args.test]
    ev_extra = [load_event(d, g, int(i), args.doublet_threshold, *scales) for d, g, i in args.extra]
    for ev in ev_train + ev_val + ev_test + ev_extra:
        log(f"event {ev['id']}: {ev['n_hits']} hits, {ev['n_doublets']} doublets ({ev['true_doublets']} true) -> "
            f"{ev['n_triplets']} triplets ({ev['true_triplets']} true); conversion {ev['convert_s']:.3f} s, "
            f"with features {ev['features_s']:.3f} s", flush=True)

    whole = args.model == "gnn"  # message passing needs the whole triplet graph of an event in one batch
    train_chunks = [c for ev in ev_train for c in chunks(ev["batch"], args.chunk, whole)]
    val_chunks = [c for ev in ev_val for c in chunks(ev["batch"], args.chunk, whole)]
    mine = train_chunks[backend.rank::backend.size]
    tf.random.set_seed(0)
    with backend.scope():
        model = build_model(cfg.model, args.model)
        opt = Adam(WarmupSchedule(args.lr, max(1, len(mine) // 2)))
    # absolute: the checkpoint index records the prefixes as given, and a reader resolves them against its folder
    run_dir = RunDir(Path(args.run_dir).resolve(), is_writer=backend.is_writer).create(cfg) if args.run_dir else None
    t0 = time.perf_counter()
    result = fit(model, EdgeTask(), opt, InMemorySource(mine, seed=0),
                 val_source=InMemorySource(val_chunks[backend.rank::backend.size], shuffle=False),
                 backend=backend, epochs=args.epochs, run_dir=run_dir, max_steps_per_epoch=args.steps_per_epoch)
    train_s = time.perf_counter() - t0
    for h in result.history:
        log(f"epoch {h.get('epoch')}: loss {h.get('loss'):.4f} val_loss {h.get('val_loss', float('nan')):.4f} "
            f"val efficiency {h.get('val_efficiency', float('nan')):.4f} "
            f"purity {h.get('val_purity', float('nan')):.4f}", flush=True)
    if not backend.is_writer:
        return 0
    what = "whole-event batches" if whole else f"chunks of {args.chunk} triplets"
    log(f"training: {result.steps} steps in {train_s:.0f} s ({len(train_chunks)} {what})")

    out = {"args": vars(args), "load_average": load, "events": [
        {k: ev[k] for k in ("id", "n_hits", "n_doublets", "true_doublets", "n_triplets", "true_triplets",
                            "convert_s", "features_s")} for ev in ev_train + ev_val + ev_test + ev_extra]}
    from trkx_tf.reco.seeds import SeedFinder

    finder = SeedFinder(model, 0.0, 0.0, cfg.graph.r_scale, cfg.graph.z_scale)  # its scoring: one trace, any size
    val_scores = [finder.score(ev["batch"]) for ev in ev_val]
    base_val = [np.minimum(ev["batch"]["nodes"][ev["batch"]["senders"], 0],
                           ev["batch"]["nodes"][ev["batch"]["receivers"], 0]) for ev in ev_val]
    for name, scores in (("classifier", val_scores), ("min doublet score", base_val)):
        rows = sweep(ev_val, scores, args.pt_min)
        out[f"val_sweep_{name}"] = rows
        log(f"validation sweep ({name}): threshold efficiency purity seeds")
        for r in rows:
            log(f"  {r['threshold']:.2f}  {_pct(r['efficiency'])}  {_pct(r['purity'])}  {r['seeds']}")
    ceiling = out["val_sweep_classifier"][0]["efficiency"] or 0.0  # threshold 0: every triplet
    target = args.target * ceiling if args.relative else args.target
    ok = [r for r in out["val_sweep_classifier"] if (r["efficiency"] or 0) >= target]
    thr = max(r["threshold"] for r in ok) if ok else 0.0
    out["threshold"], out["target_efficiency"] = thr, target
    log(f"chosen on validation: seed threshold {thr} (highest with efficiency >= {target:.4f}; every triplet "
        f"{ceiling:.4f})")
    for name, evs in (("test", ev_test), ("extra", ev_extra)):
        if not evs:
            continue
        scores = [finder.score(ev["batch"]) for ev in evs]
        res = at_threshold(evs, scores, thr, args.pt_min)
        ceiling = at_threshold(evs, [np.ones(ev["n_triplets"], np.float32) for ev in evs], 0.5, args.pt_min)
        out[name] = {"at_threshold": res, "all_triplets": ceiling, "events": [ev["id"] for ev in evs],
                     "sweep": sweep(evs, scores, args.pt_min)}
        log(f"{name} events {[ev['id'] for ev in evs]}: at {thr}: efficiency {_pct(res['efficiency'])}, purity "
            f"{_pct(res['purity'])}, {res['seeds']} seeds ({res['particles']} particles pT>{args.pt_min}); every "
            f"triplet as a seed: efficiency {_pct(ceiling['efficiency'])}, purity {_pct(ceiling['purity'])}",
            flush=True)
    out["load_average_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
