"""Attention GNN against the Interaction Network: training edges/s and peak memory per edge, side by side.

Both models train on the same batch in one process, each at its defaults (the IN: 128 hidden, 2-layer MLPs,
8 steps, the fused kernels; the AGNN: the paper's [64, 64, 64] MLPs, 8 steps), both with the same aggregation,
and the AGNN once more with gradient checkpointing of its steps (``recompute``: ``train.checkpoint_steps``).
Per model: the peak memory of one training step (TensorFlow's CPU allocator, bytes above what was allocated
before the step, divided by the real edges) and the median training step time over ``--repeats`` steps,
interleaved across the models so that background load hits all alike. Ratios are against the IN.

With ``--accuracy`` both also train (same epochs, same learning rate) on toy tracking events
(:func:`trkx_tf.graphs.synthetic.toy_tracking_graph`) and report validation efficiency and purity at 0.5.

    nice -n 10 python benchmarks/agnn_vs_in.py
    python benchmarks/agnn_vs_in.py --nodes 3000 --edges 30000 --repeats 3 --accuracy
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=15000)
    p.add_argument("--edges", type=int, default=150000)
    p.add_argument("--steps", type=int, default=8, help="message-passing steps of both models")
    p.add_argument("--aggregation", choices=["receivers", "both"], default="both")
    p.add_argument("--in-hidden", type=int, default=128)
    p.add_argument("--in-layers", type=int, default=2)
    p.add_argument("--agnn-hidden", type=int, default=64)
    p.add_argument("--agnn-layers", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="timed training steps per model")
    p.add_argument("--accuracy", action="store_true", help="also compare validation efficiency and purity")
    p.add_argument("--skip-speed", action="store_true", help="only the accuracy comparison")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def _models(args, steps=None, scale=1.0, with_checkpointing=False):
    from trkx_tf.models.attention import AttentionGNN
    from trkx_tf.models.interaction import InteractionNetwork

    t = steps or args.steps

    def agnn(recompute):
        return lambda: AttentionGNN(hidden=int(args.agnn_hidden * scale), layers=args.agnn_layers, steps=t,
                                    aggregation=args.aggregation, recompute=recompute,
                                    name="agnn_ckpt" if recompute else "agnn")

    models = {"IN": lambda: InteractionNetwork(hidden=int(args.in_hidden * scale), layers=args.in_layers, steps=t,
                                               aggregation=args.aggregation),
              "AGNN": agnn(False)}
    if with_checkpointing:
        models["AGNN+ckpt"] = agnn(True)
    return models


def speed_and_memory(args) -> dict:
    import numpy as np
    import tensorflow as tf

    from trkx_tf.graphs import synthetic
    from trkx_tf.train.backend import SingleBackend
    from trkx_tf.train.optim import Adam
    from trkx_tf.train.steps import StepFunctions
    from trkx_tf.train.tasks import EdgeTask

    batch = synthetic.random_graph(args.nodes, args.edges, 3, seed=0)
    runs = {}
    for name, make in _models(args, with_checkpointing=True).items():
        tf.random.set_seed(0)
        model = make()
        steps = StepFunctions(model, EdgeTask(), Adam(1e-4), SingleBackend())
        steps.build(batch)
        params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
        t0 = time.perf_counter()
        steps.train(batch)
        compile_s = time.perf_counter() - t0
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        out = steps.train(batch)
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - before
        steps.train(batch)  # one more untimed step
        if not np.isfinite(out["loss"]):
            raise SystemExit(f"{name}: non-finite loss")
        runs[name] = {"steps": steps, "peak": peak, "params": params, "compile_s": compile_s, "times": []}
        print(f"{name:>9}: {params} parameters, step peak memory {peak / 2 ** 20:7.0f} MiB "
              f"(first step {compile_s:.1f} s)", flush=True)
    for _ in range(args.repeats):
        for run in runs.values():
            t0 = time.perf_counter()
            run["steps"].train(batch)
            run["times"].append(time.perf_counter() - t0)
    out = {}
    for name, run in runs.items():
        med = statistics.median(run["times"])
        out[name] = {"params": run["params"], "step_s": med, "step_min_s": min(run["times"]),
                     "edges_per_s": args.edges / med, "peak_bytes_per_edge": run["peak"] / args.edges,
                     "step_times": run["times"]}
        print(f"{name:>9}: step {med:.3f} s (min {min(run['times']):.3f}), {args.edges / med:9.0f} edges/s, "
              f"{run['peak'] / args.edges:7.0f} bytes/edge peak  [{', '.join(f'{t:.2f}' for t in run['times'])}]",
              flush=True)
    for name in [k for k in runs if k != "IN"]:
        r = out[f"ratio_{name}_over_IN"] = {
            "edges_per_s": out[name]["edges_per_s"] / out["IN"]["edges_per_s"],
            "peak_memory_per_edge": out[name]["peak_bytes_per_edge"] / out["IN"]["peak_bytes_per_edge"]}
        print(f"{name} / IN: training edges/s x{r['edges_per_s']:.2f}, peak memory per edge "
              f"x{r['peak_memory_per_edge']:.2f}", flush=True)
    return out


def accuracy(args) -> list:
    import numpy as np
    import tensorflow as tf

    from trkx_tf.graphs import synthetic
    from trkx_tf.train.backend import SingleBackend
    from trkx_tf.train.loop import InMemorySource, evaluate, fit
    from trkx_tf.train.optim import Adam, WarmupSchedule
    from trkx_tf.train.steps import StepFunctions
    from trkx_tf.train.tasks import EdgeTask

    bucket = (1400, 4000)
    graphs = [synthetic.pad_batch(synthetic.toy_tracking_graph(150, n_layers=8, seed=s, phi_window=0.06,
                                                               max_edges=bucket[1]), *bucket) for s in range(24)]
    train, val = InMemorySource(graphs[:20], seed=0), InMemorySource(graphs[20:], shuffle=False)
    results = []
    for name, make in _models(args, steps=4, scale=0.5).items():
        tf.random.set_seed(0)
        model = make()
        task, opt = EdgeTask(), Adam(WarmupSchedule(2e-3, 20))
        fit(model, task, opt, train, epochs=15, seed=0)
        m = evaluate(StepFunctions(model, task, opt, SingleBackend()), val, SingleBackend())
        results.append({"model": name, **{k: float(m[k]) for k in ("loss", "efficiency", "purity")}})
        print(f"accuracy {name:>5}: val loss {m['loss']:.4f}  efficiency {m['efficiency']:.4f}  "
              f"purity {m['purity']:.4f}", flush=True)
    assert all(np.isfinite(r["loss"]) for r in results)
    return results


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    args = parse_args(argv)
    import tensorflow as tf

    load = os.getloadavg()
    print(f"TensorFlow {tf.__version__}; graph {args.nodes} nodes, {args.edges} edges, {args.steps} steps, "
          f"aggregation {args.aggregation}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    out = {"load_average": load, "args": vars(args)}
    if not args.skip_speed:
        out["speed_memory"] = speed_and_memory(args)
    if args.accuracy:
        out["accuracy"] = accuracy(args)
    out["load_average_after"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
