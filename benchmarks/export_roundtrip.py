"""Exported models against the toolkit: score difference and time per event, SavedModel vs ONNX Runtime vs trkx-infer.

On one simulated μ=200 event (real TrackML geometry; simulated once into ``--work`` and reused), the candidate edges
of the module-map builder are scored three ways, side by side in one process:

* **toolkit**: the scorer ``trkx-infer`` uses (:func:`trkx_tf.reco.scorers.load_scorer`: native CPU kernels where
  they build, the filter over ``infer.filter_chunk_edges`` edges at a time);
* **SavedModel**: ``trkx-export``'s SavedModel, loaded with ``tf.saved_model.load`` (XLA kernels);
* **onnxruntime**: ``trkx-export``'s ONNX file in an ONNX Runtime CPU session (default threads).

The filter scores all candidate edges (chunked alike in all three: it is a per-edge model), the GNN the edges the
toolkit's filter keeps at ``infer.filter_threshold``, whole, as in ``trkx-infer``. Per model and way it prints the
first call (the SavedModel's XLA kernels compile for each new shape there), the median of ``--repeat`` further
calls, and the largest |score - toolkit score|. Edge features, where the models use them, are computed once and
not timed. Without checkpoints, models of the config's shape are seeded (untrained): time and agreement do not
depend on training.

    nice -n 10 python benchmarks/export_roundtrip.py --config configs/demo.yaml --module-map S/module_map.npz \\
        [--filter-ckpt F --gnn-ckpt G]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from trkx_tf.cli.common import add_config_args  # noqa: E402


def _timed(fn, repeat: int):
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return out, first, statistics.median(times)


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap)
    ap.add_argument("--filter-ckpt", help="edge-filter checkpoint (default: a seeded model of the config's shape)")
    ap.add_argument("--gnn-ckpt", help="GNN checkpoint (default: a seeded model of the config's shape)")
    ap.add_argument("--module-map", required=True, help="module map (.npz) of the candidate-edge builder")
    ap.add_argument("--detector", default=str(REPO.parent / "shared" / "trackml" / "detectors.csv.gz"))
    ap.add_argument("--work", default="/tmp/trkx_export_roundtrip", help="the simulated event is kept here")
    ap.add_argument("--mu", type=float, default=200.0)
    ap.add_argument("--seed", type=int, default=5151, help="simulation seed (apart from any training events')")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    from trkx_tf.config import load_config
    from trkx_tf.export.serving import SIGNATURE_KEY
    from trkx_tf.export.writer import ONNX_FILE, SAVED_MODEL, export_models
    from trkx_tf.graphs.candidates import make_builder
    from trkx_tf.graphs.features import edge_features, hit_features
    from trkx_tf.graphs.module_map import ModuleMap
    from trkx_tf.reco.scorers import load_scorer
    from trkx_tf.trackml.io import list_events, read_event
    from trkx_tf.trackml.simulate import simulate_events
    from trkx_tf.train.checkpoints import build_edge_model

    if not Path(args.detector).exists():
        print(f"skipped: detector geometry not found at {args.detector}")
        return 0
    cfg = load_config(args.config, args.overrides + ["graph.use_cells=false"])
    work = Path(args.work)
    events = work / f"mu{args.mu:g}"
    if not (events.is_dir() and list_events(events)):
        simulate_events(events, args.detector, 1, pileup=args.mu, seed=args.seed, workers=1, first_event=800_000,
                        cells=False, progress=False)
    event = read_event(events, list_events(events)[0], parts=("hits",))
    nodes = hit_features(event.hits, r_scale=cfg.graph.r_scale, z_scale=cfg.graph.z_scale)
    senders, receivers = make_builder(cfg.graph, module_map=ModuleMap.load(args.module_map)).build(event.hits, nodes)
    senders, receivers = senders.astype(np.int32), receivers.astype(np.int32)

    tmp = Path(tempfile.mkdtemp(prefix="export-", dir=work))
    ckpts = {"filter": args.filter_ckpt, "gnn": args.gnn_ckpt}
    for seed, kind in enumerate(ckpts):
        if not ckpts[kind]:
            model = build_edge_model(kind, cfg.model, nodes.shape[1])
            rng = np.random.default_rng(seed)
            for v in model.trainable_variables:
                v.assign(v + rng.normal(0, 0.1, v.shape).astype(np.float32))
            ckpts[kind] = tf.train.Checkpoint(model=model, step=tf.Variable(0)).save(str(tmp / kind / "ckpt"))
    t = time.perf_counter()
    export_models(cfg, tmp / "out", ckpts)
    export_seconds = time.perf_counter() - t

    load = os.getloadavg()
    print(f"event {event.event_id} (mu={args.mu:g}): {len(nodes):,} hits, {len(senders):,} candidate edges; "
          f"export {export_seconds:.1f} s; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'model':<7} {'way':<12} {'edges':>10} {'first (s)':>10} {'median (s)':>11} {'max |diff|':>11}")
    chunk = cfg.infer.filter_chunk_edges
    kept = None
    for kind in ("filter", "gnn"):
        s, r = (senders, receivers) if kind == "filter" else (senders[kept], receivers[kept])
        uses_edges = getattr(cfg.model, kind).edge_features
        edges = edge_features(nodes, s, r, cfg.graph.r_scale, cfg.graph.z_scale) if uses_edges else None
        step = chunk if kind == "filter" else len(s)

        def feeds(i):
            f = {"nodes": nodes, "senders": s[i:i + step], "receivers": r[i:i + step]}
            if uses_edges:
                f["edges"] = edges[i:i + step]
            return f

        scorer = load_scorer(cfg, kind, ckpts[kind], nodes.shape[1])
        signature = tf.saved_model.load(str(tmp / "out" / kind / SAVED_MODEL)).signatures[SIGNATURE_KEY]
        session = ort.InferenceSession(str(tmp / "out" / kind / ONNX_FILE), providers=["CPUExecutionProvider"])
        starts = range(0, len(s), step)
        ways = {
            "toolkit": lambda: scorer(nodes, s, r),
            "SavedModel": lambda: np.concatenate([signature(**{k: tf.constant(v) for k, v in feeds(i).items()})
                                                  ["scores"].numpy() for i in starts]),
            "onnxruntime": lambda: np.concatenate([session.run(["scores"], feeds(i))[0] for i in starts]),
        }
        reference = None
        for way, fn in ways.items():
            scores, first, median = _timed(fn, args.repeat)
            if reference is None:
                reference = scores
            diff = float(np.max(np.abs(scores - reference))) if len(scores) else 0.0
            print(f"{kind:<7} {way:<12} {len(s):>10,} {first:>10.2f} {median:>11.2f} {diff:>11.1e}", flush=True)
        if kind == "filter":
            kept = np.flatnonzero(reference >= cfg.infer.filter_threshold)
    shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
