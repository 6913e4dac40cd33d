"""tf.distribute training on bucketed padded shards against the same training on unpadded dynamic shapes.

Both variants train the same Interaction Network (same initial weights, same Adam) on the same graphs in the
same order, for the same number of steps, under one ``tf.distribute`` strategy (the tf.distribute backend,
:class:`~trkx_tf.train.tfdist_backend.TFDistBackend`, one replica) in one process:

* **padded**: the shard reader's batches, each graph padded to its size bucket; one ``tf.function`` per bucket
  shape (:class:`~trkx_tf.train.steps.StepFunctions`), as ``trkx-train`` runs;
* **unpadded**: every graph cut to its real size (``n_node`` nodes, ``n_edge`` edges), one ``tf.function``
  with relaxed (``None``) shapes (``StepFunctions(dynamic_shapes=True)``).

Before timing, the script checks that padding changes nothing: the first step's loss of both variants agrees.
Batches are read into memory first (reading is not timed). Epochs alternate padded/unpadded in ABBA order
(padded, unpadded, unpadded, padded, ...); the first ``--warmup`` epochs of each variant (tracing: once per
bucket padded, once unpadded; XLA compilations of the kernels where they are XLA's) are left out and reported
as the start-up cost. Each epoch is timed in wall seconds and in the process's CPU seconds (user + system,
``resource.getrusage``), which other processes' load disturbs less than wall time. Reported per measured epoch
pair: padded / unpadded, as median and spread, beside the padded / real ratio of the graphs' elements (nodes +
edges) and edges, which is what the padded work should cost (``excess``: the CPU ratio over the edge ratio).

    trkx-simulate --config configs/scaling.yaml                       # 6 μ=200 events -> data/scaling/events
    trkx-build --config configs/scaling.yaml --set graph.max_buckets=8 --out data/bench/shards
    python benchmarks/distributed_padding.py --shards data/bench/shards --config configs/scaling.yaml \\
        --graphs 16 --pairs 8 --threads 1 --pin

Measurements and the bucket settings compared: docs/performance.md ("Padding").

Output: one line per epoch and variant, ``RATIO`` lines (wall and CPU: median, min, max over the measured
pairs); ``--json PATH`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", required=True, help="trkx-build output folder")
    p.add_argument("--config", default=None, help="YAML config for the model section (default: built-in)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--model", default="gnn", choices=["gnn", "filter"])
    p.add_argument("--graphs", type=int, default=16, help="graphs per epoch (one per step), in the reader's "
                   "shuffled order (so from every bucket)")
    p.add_argument("--pairs", type=int, default=8, help="measured epoch pairs (padded + unpadded), after warm-up")
    p.add_argument("--warmup", type=int, default=1, help="epochs of each variant run first and left out")
    p.add_argument("--threads", type=int, default=1, help="TensorFlow intra/inter-op threads (0: default)")
    p.add_argument("--pin", action="store_true", help="pin the process to --threads cores")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def unpadded(batch: dict) -> dict:
    """One graph's batch (G = 1) cut to its real ``n_node`` nodes and ``n_edge`` edges."""
    import numpy as np

    n_pad, e_pad = batch["nodes"].shape[0], batch["senders"].shape[0]
    n, e = int(batch["n_node"][0]), int(batch["n_edge"][0])
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        out[k] = v[:n] if (v.ndim and v.shape[0] == n_pad and k not in ("n_node", "n_edge")) else \
            v[:e] if (v.ndim and v.shape[0] == e_pad) else v
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def spread(values: list) -> dict:
    """Median, min, max and the values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def main(argv=None) -> dict:
    from trkx_tf.placement import place_process, prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    args = parse_args(argv)
    if args.pairs < 1 or args.warmup < 0 or args.graphs < 1:
        raise SystemExit("need --pairs >= 1, --warmup >= 0, --graphs >= 1")

    placement = place_process(args.threads, args.pin)
    import numpy as np
    import tensorflow as tf

    from trkx_tf.config import load_config
    from trkx_tf.graphs.reader import ShardReader
    from trkx_tf.models.registry import build_model
    from trkx_tf.train.optim import Adam
    from trkx_tf.train.steps import StepFunctions
    from trkx_tf.train.tasks import EdgeTask
    from trkx_tf.train.tfdist_backend import TFDistBackend

    backend = TFDistBackend(local_replicas=1)
    cfg = load_config(args.config, args.set)
    reader = ShardReader(args.shards, "train", graphs_per_step=1, seed=args.seed, shuffle=True)
    task = EdgeTask()
    padded = [task.prepare(b) for _, b in zip(range(args.graphs), reader.epoch(0, prefetch=0))]
    reader.close()
    plain = [unpadded(b) for b in padded]
    real_e = sum(int(b["n_edge"][0]) for b in padded)
    real_n = sum(int(b["n_node"][0]) for b in padded)
    pad_e = sum(b["senders"].shape[0] for b in padded)
    pad_n = sum(b["nodes"].shape[0] for b in padded)
    shapes = {b["nodes"].shape[0]: b["senders"].shape[0] for b in padded}
    element_ratio, edge_ratio = (pad_n + pad_e) / (real_n + real_e), pad_e / real_e
    print(f"{len(padded)} graphs ({real_e / len(padded):,.0f} real edges each on average), {len(shapes)} bucket "
          f"shapes, padded/real elements {element_ratio:.3f}, edges {edge_ratio:.3f}, nodes {pad_n / real_n:.3f}; "
          f"{placement}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    variants = {}
    for name, dynamic in (("padded", False), ("unpadded", True)):
        tf.random.set_seed(args.seed)
        with backend.scope():
            model = build_model(cfg.model, args.model)
            optimizer = Adam(cfg.train.lr)
        steps = StepFunctions(model, task, optimizer, backend, dynamic_shapes=dynamic)
        steps.build(plain[0] if dynamic else padded[0])
        variants[name] = (steps, plain if dynamic else padded)

    # the same function: padding must change no loss (first step, same initial weights)
    first = {name: float(steps.evaluate(batches[0])["loss"]) for name, (steps, batches) in variants.items()}
    if not np.isclose(first["padded"], first["unpadded"], rtol=1e-4):
        raise SystemExit(f"padded and unpadded losses differ: {first}")

    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    losses = {name: [] for name in variants}
    for epoch in range(args.warmup + args.pairs):
        order = ("padded", "unpadded") if epoch % 2 == 0 else ("unpadded", "padded")
        for name in order:
            steps, batches = variants[name]
            c0, t0 = cpu_seconds(), time.perf_counter()
            for b in batches:
                out = steps.train(b)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds() - c0)
            losses[name].append(float(out["loss"]))
            print(f"epoch {epoch} {name:9s} {wall[name][-1]:8.2f} s wall {cpu[name][-1]:8.2f} s CPU  last loss "
                  f"{losses[name][-1]:.5f}", flush=True)

    measured = range(args.warmup, args.warmup + args.pairs)
    ratio_wall = spread([wall["padded"][e] / wall["unpadded"][e] for e in measured])
    ratio_cpu = spread([cpu["padded"][e] / cpu["unpadded"][e] for e in measured])
    result = {
        "graphs": len(padded), "bucket_shapes": len(shapes), "padded_over_real_elements": element_ratio,
        "padded_over_real_edges": edge_ratio, "padded_over_real_nodes": pad_n / real_n,
        "real_edges": real_e, "pairs": args.pairs, "warmup": args.warmup,
        "epoch_wall_s": wall, "epoch_cpu_s": cpu, "last_loss": losses, "first_loss": first,
        "warmup_wall_s": {name: wall[name][:args.warmup] for name in variants},
        "ratio_padded_over_unpadded": ratio_wall, "ratio_padded_over_unpadded_cpu": ratio_cpu,
        "cpu_ratio_over_edge_ratio": ratio_cpu["median"] / edge_ratio,
        "load_average_end": os.getloadavg(), "placement": placement,
    }
    for label, r in (("wall", ratio_wall), ("CPU", ratio_cpu)):
        print(f"RATIO padded/unpadded epoch {label:4s} time: median {r['median']:.3f} (min {r['min']:.3f}, "
              f"max {r['max']:.3f}) over {args.pairs} pairs", flush=True)
    print(f"padded/real edges {edge_ratio:.3f}, elements {element_ratio:.3f}; CPU ratio / edge ratio "
          f"{result['cpu_ratio_over_edge_ratio']:.3f}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
