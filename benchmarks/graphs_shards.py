"""Padding waste of the size buckets, and reader throughput against one Interaction Network training step.

In one run, on simulated mu=200 events:

1. ``trkx-build`` (the library function) writes the shards; printed: padded/real elements with the chosen
   buckets, next to padding every graph to ONE global maximum (what the paper's tf.distribute run did).
2. The reader reads every batch of an epoch (no prefetch: the worst case), timed per batch.
3. One IN training step (forward + backward, masked loss) on the largest bucket's batch shape, on this machine's
   TensorFlow device; the ratio reader time / step time must stay below 1 (with prefetch the reading then hides
   behind the step entirely).

    trkx-simulate --detector ../shared/trackml/detectors.csv.gz \\
        --events 50 --pileup 200 --seed 7 --first-event 6000 --out data/sim/pad50
    python benchmarks/graphs_shards.py --events data/sim/pad50 --module-map <map.npz> --out /tmp/shards50

The IN here is a stand-in written for this benchmark (edge and node MLPs, ``--in-steps`` message passing steps of
width ``--in-hidden``); it is smaller than the configured model by default, so its step time is a lower bound.
"""

from __future__ import annotations

import argparse
import statistics
import time


def in_step_seconds(batch: dict, hidden: int, steps: int, repeats: int = 3) -> float:
    """Median time of one training step of a minimal masked Interaction Network on a batch (after warm-up)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    def mlp(width_in, width_out, name):
        w1 = tf.Variable(tf.random.normal([width_in, hidden], stddev=0.1), name=f"{name}_w1")
        w2 = tf.Variable(tf.random.normal([hidden, width_out], stddev=0.1), name=f"{name}_w2")
        return (w1, w2), lambda x: tf.nn.relu(x @ w1) @ w2

    f = batch["nodes"].shape[1]
    enc_v, enc = mlp(f, hidden, "enc")
    edge_v, edge_fn = mlp(3 * hidden, hidden, "edge")
    node_v, node_fn = mlp(2 * hidden, hidden, "node")
    out_v, out_fn = mlp(3 * hidden, 1, "out")
    variables = [*enc_v, *edge_v, *node_v, *out_v]
    opt = tf.keras.optimizers.Adam(1e-3)
    data = {k: tf.constant(v) for k, v in batch.items()}

    @tf.function
    def train_step(d):
        with tf.GradientTape() as tape:
            x = enc(d["nodes"]) * d["node_mask"][:, None]
            e = tf.zeros([tf.shape(d["senders"])[0], hidden])
            for _ in range(steps):
                xs, xr = tf.gather(x, d["senders"]), tf.gather(x, d["receivers"])
                e = edge_fn(tf.concat([xs, xr, e], 1)) * d["edge_mask"][:, None]
                agg = tf.math.unsorted_segment_sum(e, d["receivers"], tf.shape(x)[0])
                x = node_fn(tf.concat([x, agg], 1)) * d["node_mask"][:, None]
            logits = out_fn(tf.concat([tf.gather(x, d["senders"]), tf.gather(x, d["receivers"]), e], 1))[:, 0]
            w = d["edge_weights"] * d["edge_mask"]
            loss = tf.reduce_sum(w * tf.nn.sigmoid_cross_entropy_with_logits(d["edge_labels"], logits))
            loss = loss / tf.maximum(tf.reduce_sum(w), 1.0)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    train_step(data).numpy()  # trace + warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        train_step(data).numpy()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    from trkx_tf.config import load_config
    from trkx_tf.graphs.buckets import padding_overhead, round_up
    from trkx_tf.graphs.build import build_shards
    from trkx_tf.graphs.reader import ShardReader

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", required=True, help="simulated events folder (e.g. 50 events at mu=200)")
    ap.add_argument("--module-map", required=True, help="module map learned on OTHER simulated events (.npz)")
    ap.add_argument("--out", required=True, help="shards output folder")
    ap.add_argument("--config", help="YAML config")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-hidden", type=int, default=32)
    ap.add_argument("--in-steps", type=int, default=2)
    ap.add_argument("--skip-build", action="store_true", help="reuse the shards already in --out")
    args = ap.parse_args(argv)

    cfg = load_config(args.config, ["data.val_fraction=0", f"graph.module_map.path={args.module_map}",
                                    *args.overrides])
    if not args.skip_build:
        t0 = time.perf_counter()
        summary = build_shards(cfg, args.events, args.out, workers=args.workers, progress=False)
        print(summary.format())
        print(f"build: {time.perf_counter() - t0:.0f} s for {sum(summary.n_graphs.values())} graphs")

    reader = ShardReader(args.out, "train", shuffle=True, seed=0)
    import numpy as np

    sizes = np.stack([reader.graph_n_node, reader.graph_n_edge], 1)
    one = np.array([[int(round_up(sizes[:, 0].max(), 8)), int(round_up(sizes[:, 1].max(), 8))]])
    buckets = np.array([reader.budgets[b] for b in sorted(reader.budgets)])
    pos = {b: i for i, b in enumerate(sorted(reader.budgets))}
    chosen = padding_overhead(sizes, buckets, np.array([pos[b] for b in reader.graph_bucket]))
    single = padding_overhead(sizes, one, np.zeros(len(sizes), np.int64))
    print(f"\npadding on {len(sizes)} graphs: buckets {len(buckets)} -> padded/real elements "
          f"{chosen['elements']:.3f} (nodes {chosen['nodes']:.3f}, edges {chosen['edges']:.3f}); "
          f"one global maximum -> {single['elements']:.3f}   [target <= {cfg.graph.bucket_overhead:.2f}]")

    times, largest = [], None
    t_all = time.perf_counter()
    for batch in reader.epoch(0, prefetch=0):
        times.append(time.perf_counter() - t_all)
        if largest is None or len(batch["edge_mask"]) > len(largest["edge_mask"]):
            largest = batch
        t_all = time.perf_counter()
    edges = float(reader.graph_n_edge.sum())
    print(f"reader: {len(times)} batches, median {statistics.median(times) * 1e3:.0f} ms/batch, "
          f"max {max(times) * 1e3:.0f} ms, {edges / sum(times) / 1e6:.1f} M real edges/s (no prefetch)")
    step = in_step_seconds(largest, args.in_hidden, args.in_steps)
    import tensorflow as tf
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(f"IN step ({device}, hidden {args.in_hidden}, {args.in_steps} message-passing steps) on the largest batch "
          f"({len(largest['node_mask']):,} nodes, {len(largest['edge_mask']):,} edges): {step * 1e3:.0f} ms")
    print(f"ratio reader/step (largest bucket): {max(times) / step:.3f}   [must be < 1: the reader is not the "
          f"bottleneck]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
