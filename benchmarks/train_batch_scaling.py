"""Training time per graph against graphs per step (1, 2, 4), side by side in one run.

Each configuration (kernel family x graphs per step) runs in its own fresh process (the kernel family is fixed
when a process starts), on the same shards, with the same model as
``--config`` (default ``configs/scaling.yaml``: the IN of the scaling study). A process builds the model, warms up
``--warmup`` steps (tracing and first-touch allocations), then times ``--steps`` train steps; per step it records
wall seconds and process CPU seconds (user + system, less sensitive to other processes' load), and the minor page
faults. The rounds are interleaved (every configuration once per round, ``--rounds`` rounds) so load from other
processes hits all alike. Reported per configuration: the median seconds per graph (wall and CPU), its ratio to
the 1-graph step of the same kernel family, and minor page faults per step (a storm of them would mean large
buffers are mapped and unmapped every step).

    python benchmarks/train_batch_scaling.py --shards data/scaling/shards                 # 1 pinned thread
    python benchmarks/train_batch_scaling.py --shards data/scaling/shards --threads 0     # default threads

Results: ``docs/distributed.md`` ("Time per graph against graphs per step").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/scaling.yaml", help="the model (model.gnn) and train settings")
    p.add_argument("--shards", required=True, help="a shard folder made by trkx-build (its first bucket is used)")
    p.add_argument("--graphs", default="1,2,4", help="graphs per step to compare")
    p.add_argument("--kernels", default="native,xla", help="kernel families: native, xla (TRKX_NATIVE_OPS=0)")
    p.add_argument("--threads", type=int, default=1, help="TensorFlow threads (0: default); 1 also pins a core")
    p.add_argument("--steps", type=int, default=4, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (a fresh process each)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one configuration, JSON out
    return p.parse_args(argv)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def worker(args) -> dict:
    """Times train steps of one configuration in this process; returns per-step lists."""
    spec = json.loads(args.worker)
    from trkx_tf import placement

    placement.prefer_legacy_xla_cpu_runtime()
    placement.place_process(args.threads, pin=args.threads == 1)

    from trkx_tf.config import load_config
    from trkx_tf.graphs.epoch_plan import assemble_batch
    from trkx_tf.graphs.reader import ShardReader
    from trkx_tf.models.registry import build_model
    from trkx_tf.train.backend import SingleBackend
    from trkx_tf.train.optim import Adam
    from trkx_tf.train.steps import StepFunctions
    from trkx_tf.train.tasks import EdgeTask

    cfg = load_config(args.config)
    g = spec["graphs"]
    with ShardReader(args.shards, split="train", graphs_per_step=g, shuffle=False) as reader:
        bucket = min(reader.budgets)
        nb, eb = reader.budgets[bucket]
        index = [i for i in range(reader.n_graphs) if reader.graph_bucket[i] == bucket]
        need = (args.warmup + args.steps) * g
        graphs = [reader.read_graph(index[i % len(index)]) for i in range(need)]
        batches = [assemble_batch(graphs[i * g:(i + 1) * g], nb, eb, reader.n_features)
                   for i in range(args.warmup + args.steps)]
    dtype = {"none": "float32", "bf16": "bfloat16", "fp16": "float16"}[cfg.train.mixed_precision]
    model = build_model(cfg.model, "gnn", compute_dtype=dtype)
    steps = StepFunctions(model, EdgeTask(cfg.train.true_weight), Adam(cfg.train.lr), SingleBackend())
    steps.build(batches[0])
    for b in batches[:args.warmup]:
        steps.train(b)
    wall, cpu, faults = [], [], []
    for b in batches[args.warmup:]:
        w0, c0, f0 = time.perf_counter(), _cpu(), _faults()
        steps.train(b)
        wall.append(time.perf_counter() - w0)
        cpu.append(_cpu() - c0)
        faults.append(_faults() - f0)
    return {**spec, "wall": wall, "cpu": cpu, "faults": faults, "traces": dict(steps.trace_counts),
            "edge_budget": int(eb), "node_budget": int(nb)}


def run_one(args, spec: dict) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["TRKX_NATIVE_OPS"] = "0" if spec["kernels"] == "xla" else "1"
    cmd = [sys.executable, __file__, "--config", args.config, "--shards", args.shards, "--threads",
           str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup), "--worker", json.dumps(spec)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"worker {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    specs = [{"kernels": k, "graphs": int(g)} for k in args.kernels.split(",") for g in args.graphs.split(",")]
    results = {json.dumps(s, sort_keys=True): {"wall": [], "cpu": [], "faults": []} for s in specs}
    load = []
    for _ in range(args.rounds):
        for s in specs:
            load.append(os.getloadavg()[0])
            r = run_one(args, s)
            for k in ("wall", "cpu", "faults"):
                results[json.dumps(s, sort_keys=True)][k] += r[k]
            results[json.dumps(s, sort_keys=True)]["budget"] = (r["node_budget"], r["edge_budget"])
    rows = []
    print(f"threads={args.threads or 'default'} steps={args.steps}x{args.rounds} load(1 min) "
          f"{min(load):.1f}-{max(load):.1f}; time per graph, ratio to 1 graph per step (same kernels)")
    print(f"{'kernels':8} {'G':>2} {'wall/graph':>11} {'cpu/graph':>10} {'x1 wall':>8} "
          f"{'x1 cpu':>7} {'faults/step':>12}")
    base = {}
    for s in specs:
        r = results[json.dumps(s, sort_keys=True)]
        wall = statistics.median(r["wall"]) / s["graphs"]
        cpu = statistics.median(r["cpu"]) / s["graphs"]
        key = s["kernels"]
        base.setdefault(key, (wall, cpu))
        row = {**s, "wall_per_graph": wall, "cpu_per_graph": cpu, "wall_ratio": wall / base[key][0],
               "cpu_ratio": cpu / base[key][1], "faults_per_step": statistics.median(r["faults"]),
               "wall_min_max": [min(r["wall"]) / s["graphs"], max(r["wall"]) / s["graphs"]], "budget": r["budget"]}
        rows.append(row)
        print(f"{s['kernels']:8} {s['graphs']:2d} {wall:10.3f}s {cpu:9.3f}s "
              f"{row['wall_ratio']:8.2f} {row['cpu_ratio']:7.2f} {row['faults_per_step']:12.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "load": [min(load), max(load)], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
