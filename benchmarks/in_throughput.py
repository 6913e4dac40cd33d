"""Interaction Network training throughput (edges/s): trkx_tf's fused IN against plain graph_nets, one run.

Both models compute the same function: before timing, the graph_nets model gets a copy of the fused model's
weights and their logits are compared (the script fails if they differ). Both train with the same loss
(weighted BCE), the same Adam, on the same graphs, in the same process; their steps are interleaved
(baseline, ours, baseline, ours, ...) so that load from other processes hits both alike. Reported: the median
step time of each, edges/s, and the ratio.

    python benchmarks/in_throughput.py                       # 150k-edge graphs, 128 hidden, 8 steps
    python benchmarks/in_throughput.py --edges 20000 --nodes 2000 --repeats 2   # quick look

Output: one line per (graph, model) and a final ``RATIO`` line per graph; ``--json PATH`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=15000, help="nodes per graph (random graph)")
    p.add_argument("--edges", type=int, default=150000, help="edges per graph")
    p.add_argument("--features", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2, help="Linear layers per MLP")
    p.add_argument("--steps", type=int, default=8, help="message-passing steps")
    p.add_argument("--no-layernorm", action="store_true")
    p.add_argument("--graphs", default="random,toy", help="comma list of: random, toy (toy tracking event)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per model (after 2 warm-up steps)")
    p.add_argument("--extra", default="bfloat16", help="comma list of extra fused variants to time: "
                   "bfloat16, both (aggregation), recompute; empty for none")
    p.add_argument("--inter-op", type=int, default=0, help="TensorFlow inter-op threads for both models (0: default)")
    p.add_argument("--intra-op", type=int, default=0, help="TensorFlow intra-op threads for both models (0: default)")
    p.add_argument("--xla-legacy-runtime", action="store_true",
                   help="run XLA kernels on XLA:CPU's legacy runtime (sets XLA_FLAGS before TensorFlow starts; "
                        "only the fused IN uses XLA)")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def make_graph(kind: str, args):
    from trkx_tf.graphs import synthetic

    if kind == "random":
        return synthetic.random_graph(args.nodes, args.edges, args.features, seed=0)
    if kind == "toy":
        # a toy tracking event (features (r, phi, z): F = 3) with about the requested node and edge counts: 10
        # layers, 10% noise hits, and an azimuth window that gives ~``edges`` candidate edges (then subsampled)
        import math

        n_layers = 10
        n_particles = max(50, round(args.nodes / (n_layers * 1.1)))
        window = 1.3 * args.edges * math.pi / ((n_layers - 1) * (1.1 * n_particles) ** 2)
        return synthetic.toy_tracking_graph(n_particles, n_layers=n_layers, seed=0, phi_window=window,
                                            max_edges=args.edges)
    raise SystemExit(f"unknown graph kind {kind!r}")


def make_train_step(model, signature):
    import tensorflow as tf

    from trkx_tf.train.losses import weighted_bce
    from trkx_tf.train.optim import Adam

    opt = Adam(1e-4)

    @tf.function(input_signature=[signature])
    def step(batch):
        with tf.GradientTape() as tape:
            loss, _, _ = weighted_bce(model(batch), batch["edge_labels"], batch["edge_weights"], batch["edge_mask"])
        variables = model.trainable_variables
        opt.apply(tape.gradient(loss, variables), variables)
        return loss

    def build(batch):
        model(batch)
        opt.build(model.trainable_variables)

    return step, build


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.xla_legacy_runtime:  # must be in the environment before XLA reads its flags
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_thunk_runtime=false").strip()
    import numpy as np
    import tensorflow as tf

    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)

    from trkx_tf.graphs.batch import batch_signature
    from trkx_tf.models.interaction import InteractionNetwork
    from trkx_tf.models.reference import GraphNetsInteractionNetwork

    print(f"TensorFlow {tf.__version__}, intra-op threads {tf.config.threading.get_intra_op_parallelism_threads()}"
          f", inter-op threads {tf.config.threading.get_inter_op_parallelism_threads()} (0 = default), "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, load average {os.getloadavg()[0]:.1f}, hidden {args.hidden}, layers {args.layers}, steps {args.steps}, "
          f"layernorm {not args.no_layernorm}", flush=True)
    results = []
    for kind in [k for k in args.graphs.split(",") if k]:
        graph = make_graph(kind, args)
        n_edges = int(graph["senders"].shape[0])
        batch = {k: tf.constant(v) for k, v in graph.items()}
        sig = batch_signature(graph["nodes"].shape[0], n_edges, graph["nodes"].shape[1], 1)
        common = dict(hidden=args.hidden, layers=args.layers, steps=args.steps, layernorm=not args.no_layernorm)
        ours = InteractionNetwork(**common, name="ours")
        base = GraphNetsInteractionNetwork(**common, name="graph_nets")
        base.copy_from(ours, batch)
        diff = float(tf.reduce_max(tf.abs(ours(batch) - base(batch))))
        scale = float(tf.reduce_max(tf.abs(base(batch))))
        print(f"[{kind}] {graph['nodes'].shape[0]} nodes, {n_edges} edges; same weights: max |logit diff| "
              f"{diff:.2e} (max |logit| {scale:.2f})", flush=True)
        if not diff <= 1e-3 * max(1.0, scale):
            raise SystemExit("the fused IN and the graph_nets IN disagree: not the same function")
        variants = {"graph_nets": base, "fused": ours}
        for extra in [e for e in args.extra.split(",") if e]:
            kw = dict(common)
            if extra == "bfloat16":
                kw["compute_dtype"] = "bfloat16"
            elif extra == "both":
                kw["aggregation"] = "both"
            elif extra == "recompute":
                kw["recompute"] = True
            else:
                raise SystemExit(f"unknown extra variant {extra!r}")
            variants[f"fused_{extra}"] = InteractionNetwork(**kw, name=f"ours_{extra}")
        steps, times = {}, {name: [] for name in variants}
        for name, model in variants.items():
            step, build = make_train_step(model, sig)
            build(batch)
            t0 = time.perf_counter()
            step(batch).numpy()
            first = time.perf_counter() - t0
            step(batch).numpy()
            steps[name] = step
            print(f"[{kind}] {name}: trace+compile+first step {first:.1f}s", flush=True)
        for _ in range(args.repeats):
            for name, step in steps.items():
                t0 = time.perf_counter()
                loss = step(batch).numpy()
                times[name].append(time.perf_counter() - t0)
                if not np.isfinite(loss):
                    raise SystemExit(f"{name}: non-finite loss")
        base_t, base_min = statistics.median(times["graph_nets"]), min(times["graph_nets"])
        for name, ts in times.items():
            med = statistics.median(ts)
            rec = {"graph": kind, "model": name, "edges": n_edges, "step_s": med, "step_min_s": min(ts),
                   "edges_per_s": n_edges / med, "ratio_vs_graph_nets": base_t / med,
                   "ratio_of_min_step_times": base_min / min(ts), "step_times": ts}
            results.append(rec)
            print(f"[{kind}] {name:>18}: step {med:7.3f}s  {n_edges / med:9.0f} edges/s  "
                  f"x{base_t / med:5.2f} vs graph_nets (x{base_min / min(ts):5.2f} on fastest steps)   "
                  f"(steps: {', '.join(f'{t:.2f}' for t in ts)})", flush=True)
        print(f"RATIO [{kind}] fused/graph_nets edges/s = {base_t / statistics.median(times['fused']):.2f} "
              f"(median step times; {base_min / min(times['fused']):.2f} on the fastest steps); "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
