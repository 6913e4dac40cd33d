"""Memory options of the Interaction Network: mixed precision (bfloat16) and gradient checkpointing.

Variants of the same IN (128 hidden, 8 steps by default) train on the same graph in one process: float32,
bfloat16, each with and without gradient checkpointing (``tf.recompute_grad`` of each message-passing step),
and, to show checkpointing where the fused edge step does not apply, float32 with 3-layer MLPs with and without
it. For each: the peak memory of one training step (TensorFlow's CPU allocator, bytes above what was allocated
before the step: activations kept for the backward pass and temporaries) and the median (and minimum) step time,
steps interleaved across variants so that background load hits all alike. Ratios are against the float32
variant with the same MLP depth.

With ``--accuracy`` it also trains small float32 and bfloat16 INs on toy tracking events
(:func:`trkx_tf.graphs.synthetic.toy_tracking_graph`) and reports validation efficiency and purity, to show
whether reduced precision costs physics performance.

    python benchmarks/memory_options.py
    python benchmarks/memory_options.py --edges 30000 --nodes 3000 --accuracy
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

VARIANTS = {  # name: (MLP layers, compute dtype, gradient checkpointing)
    "float32": (2, "float32", False),
    "bfloat16": (2, "bfloat16", False),
    "float32+checkpointing": (2, "float32", True),
    "bfloat16+checkpointing": (2, "bfloat16", True),
    # a deeper edge MLP takes the generic (unfused) path, which keeps more activations per step
    "float32/3-layer-MLPs": (3, "float32", False),
    "float32/3-layer-MLPs+checkpointing": (3, "float32", True),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=15000)
    p.add_argument("--edges", type=int, default=150000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=8, help="message-passing steps")
    p.add_argument("--repeats", type=int, default=3, help="timed training steps per variant")
    p.add_argument("--accuracy", action="store_true", help="also compare float32 and bfloat16 training quality")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def _mib(n: float) -> float:
    return n / 2 ** 20


def memory_and_speed(args) -> list:
    import numpy as np
    import tensorflow as tf

    from trkx_tf.graphs import synthetic
    from trkx_tf.models.interaction import InteractionNetwork
    from trkx_tf.train.backend import SingleBackend
    from trkx_tf.train.optim import Adam
    from trkx_tf.train.steps import StepFunctions
    from trkx_tf.train.tasks import EdgeTask

    batch = synthetic.random_graph(args.nodes, args.edges, 3, seed=0)
    runs = {}
    for name, (layers, dtype, recompute) in VARIANTS.items():
        tf.random.set_seed(0)
        model = InteractionNetwork(hidden=args.hidden, layers=layers, steps=args.steps, compute_dtype=dtype,
                                   recompute=recompute, name="in_" + "".join(c if c.isalnum() else "_" for c in name))
        steps = StepFunctions(model, EdgeTask(), Adam(1e-4), SingleBackend())
        steps.build(batch)
        t0 = time.perf_counter()
        steps.train(batch)
        compile_s = time.perf_counter() - t0
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        out = steps.train(batch)
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
        steps.train(batch)  # one more untimed step: the first steps still allocate
        runs[name] = dict(steps=steps, peak=peak - before, compile_s=compile_s, times=[],
                          loss=float(out["loss"]), base="float32" if layers == 2 else "float32/3-layer-MLPs")
        print(f"{name:>34}: step peak memory {_mib(peak - before):8.0f} MiB  (first step {compile_s:.1f}s)",
              flush=True)
    for _ in range(args.repeats):
        for run in runs.values():
            t0 = time.perf_counter()
            run["steps"].train(batch)
            run["times"].append(time.perf_counter() - t0)
    results = []
    for name, run in runs.items():
        base = runs[run["base"]]
        med = statistics.median(run["times"])
        rec = {"variant": name, "edges": args.edges, "step_peak_mib": _mib(run["peak"]),
               "memory_vs_float32": run["peak"] / base["peak"], "step_s": med, "step_min_s": min(run["times"]),
               "edges_per_s": args.edges / med, "time_vs_float32": med / statistics.median(base["times"]),
               "step_times": run["times"]}
        results.append(rec)
        print(f"{name:>34}: {rec['step_peak_mib']:7.0f} MiB (x{rec['memory_vs_float32']:.2f})   step {med:6.3f}s "
              f"(x{rec['time_vs_float32']:.2f}, min {min(run['times']):.3f}s)   {rec['edges_per_s']:7.0f} edges/s   "
              f"[{', '.join(f'{t:.2f}' for t in run['times'])}]", flush=True)
        if not np.isfinite(run["loss"]):
            raise SystemExit(f"{name}: non-finite loss")
    return results


def accuracy(args) -> list:
    import numpy as np
    import tensorflow as tf

    from trkx_tf.graphs import synthetic
    from trkx_tf.models.interaction import InteractionNetwork
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
    for dtype in ("float32", "bfloat16"):
        for seed in (0, 1):
            tf.random.set_seed(seed)
            model = InteractionNetwork(hidden=64, layers=2, steps=4, compute_dtype=dtype)
            task, opt = EdgeTask(), Adam(WarmupSchedule(2e-3, 20))
            fit(model, task, opt, train, epochs=15, seed=seed)
            steps = StepFunctions(model, task, opt, SingleBackend())
            val_metrics = evaluate(steps, val, SingleBackend())
            rec = {"dtype": dtype, "seed": seed, **{k: val_metrics[k] for k in ("loss", "efficiency", "purity")}}
            results.append(rec)
            print(f"accuracy {dtype:>9} seed {seed}: val loss {rec['loss']:.4f}  efficiency {rec['efficiency']:.4f}  "
                  f"purity {rec['purity']:.4f}", flush=True)
    for dtype in ("float32", "bfloat16"):
        sel = [r for r in results if r["dtype"] == dtype]
        print(f"accuracy {dtype:>9} mean: efficiency {np.mean([r['efficiency'] for r in sel]):.4f}  "
              f"purity {np.mean([r['purity'] for r in sel]):.4f}", flush=True)
    return results


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    args = parse_args(argv)
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}; IN {args.hidden} hidden, {args.steps} steps; graph {args.nodes} nodes, "
          f"{args.edges} edges", flush=True)
    out = {"memory_speed": memory_and_speed(args)}
    if args.accuracy:
        out["accuracy"] = accuracy(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
