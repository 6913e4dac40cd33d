"""Peak memory of one GNN training step on a whole μ=200 event, with and without gradient checkpointing.

Each variant runs in a process of its own (so no variant inherits another's allocator high-water mark): the
GNN of ``--config`` (``model.gnn``; the whole-event IN 128 × 8 of ``configs/gnn.yaml`` by default) trains
``--steps`` steps (forward, backward, Adam update; the first one traces) on one whole-event graph of a trkx-build
folder (no sectors), with ``train.checkpoint_steps`` off or on (``tf.recompute_grad`` around each
message-passing step, :mod:`trkx_tf.models.interaction`). Reported per variant:

* ``peak_rss``: the process's peak resident memory (``VmHWM``), and ``step_rss``: that minus the resident memory
  just before the first step (the graph, the model and TensorFlow itself are then loaded);
* ``step_alloc``: TensorFlow's CPU allocator, peak minus current bytes around the last step (what the step
  allocated on top of what it kept: activations kept for the backward pass and temporaries);
* the step times.

The ratio of the variant without checkpointing to the one with it is the saving; the Exa.TrkX paper (Ju et al.
2021) reports 4× less memory for an 8-step GNN with checkpointing on a GPU.

The GNN trains on the filter's kept edges, not on the candidate graph: ``--max-edges`` keeps every true edge
and random fake edges up to that many edges (every hit stays), 590,000 by default (the edges the filter keeps on
real event 1000, README). 0 keeps the whole candidate graph.

    trkx-simulate --config configs/scaling.yaml           # 6 μ=200 events -> data/scaling/events
    trkx-build --config configs/scaling.yaml --set graph.sectors.phi=1 --set graph.sectors.eta=1 \\
        --set graph.max_buckets=1 --out data/bench/whole  # 6 whole-event graphs
    python benchmarks/train_memory.py --shards data/bench/whole --config configs/gnn.yaml --json OUT.json

Measured: docs/performance.md ("Training memory").

Output: one line per variant, a ``RATIO`` line per MLP depth; ``--json PATH`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = ("plain", "checkpointing")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", required=True, help="trkx-build output folder of whole-event graphs")
    p.add_argument("--config", default="configs/gnn.yaml", help="YAML config for the model section")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--graph", type=int, default=0, help="which graph of the folder (all splits, manifest order)")
    p.add_argument("--max-edges", type=int, default=590_000, help="keep every true edge and random fakes up to "
                   "this many edges (0: all candidate edges)")
    p.add_argument("--layers", default="2,3", help="MLP depths to measure (model.gnn.layers), comma-separated")
    p.add_argument("--steps", type=int, default=2, help="training steps per variant (the first one traces)")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow intra/inter-op threads (0: default)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # "<variant>:<layers>": run one variant
    return p.parse_args(argv)


def proc_status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmHWM``, ``VmRSS``) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def whole_event_batch(shards: str, index: int, max_edges: int, seed: int = 0) -> dict:
    """One graph of a trkx-build folder, cut to its real size, with at most ``max_edges`` edges (true first)."""
    import numpy as np

    from trkx_tf.graphs.epoch_plan import assemble_batch
    from trkx_tf.graphs.reader import ShardReader

    with ShardReader(shards, None, shuffle=False) as reader:
        d = reader.read_graph(index)
        n, e = int(d["n_node"]), int(d["n_edge"])
        keep = np.arange(e)
        if 0 < max_edges < e:
            true = np.flatnonzero(d["edge_labels"][:e] > 0)
            fake = np.flatnonzero(d["edge_labels"][:e] <= 0)
            rng = np.random.default_rng(seed)
            n_fake = max(0, max_edges - len(true))
            keep = np.sort(np.concatenate([true[:max_edges], rng.choice(fake, min(n_fake, len(fake)), False)]))
        graph = {"n_node": n, "n_edge": len(keep), "nodes": d["nodes"][:n]}
        for k in ("senders", "receivers", "edge_labels", "edge_weights", "edges"):
            graph[k] = d[k][keep]
        return assemble_batch([graph], n, len(keep), reader.n_features)


def run_child(args) -> dict:
    """One variant in this process; returns its measurements."""
    from trkx_tf.placement import place_process, prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()
    variant, layers = args.child.split(":")
    placement = place_process(args.threads, False)
    import numpy as np
    import tensorflow as tf

    from trkx_tf.config import load_config
    from trkx_tf.models.registry import build_model
    from trkx_tf.train.backend import SingleBackend
    from trkx_tf.train.optim import Adam
    from trkx_tf.train.steps import StepFunctions
    from trkx_tf.train.tasks import EdgeTask

    checkpoint = variant == "checkpointing"
    cfg = load_config(args.config, [*args.set, f"model.gnn.layers={layers}", f"train.checkpoint_steps={checkpoint}"])
    batch = EdgeTask().prepare(whole_event_batch(args.shards, args.graph, args.max_edges))
    tf.random.set_seed(0)
    model = build_model(cfg.model, "gnn", recompute=cfg.train.checkpoint_steps)
    steps = StepFunctions(model, EdgeTask(cfg.train.true_weight), Adam(cfg.train.lr), SingleBackend())
    steps.build(batch)
    rss_before = proc_status_bytes("VmRSS")
    times, alloc = [], None
    for i in range(args.steps):
        if i == args.steps - 1:
            tf.config.experimental.reset_memory_stats("CPU:0")
            before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        t0 = time.perf_counter()
        out = steps.train(batch)
        times.append(time.perf_counter() - t0)
        if i == args.steps - 1:
            alloc = tf.config.experimental.get_memory_info("CPU:0")["peak"] - before
    if not np.isfinite(out["loss"]):
        raise SystemExit(f"{args.child}: non-finite loss")
    hwm = proc_status_bytes("VmHWM")
    return {"variant": variant, "layers": int(layers), "nodes": int(batch["nodes"].shape[0]),
            "edges": int(batch["senders"].shape[0]), "true_edges": int((batch["edge_labels"] > 0).sum()),
            "hidden": cfg.model.gnn.hidden, "mp_steps": cfg.model.gnn.steps, "aggregation": cfg.model.gnn.aggregation,
            "edge_features": cfg.model.gnn.edge_features, "peak_rss_mib": hwm / 2 ** 20,
            "rss_before_step_mib": rss_before / 2 ** 20, "step_rss_mib": (hwm - rss_before) / 2 ** 20,
            "step_alloc_mib": alloc / 2 ** 20, "step_s": times, "loss": float(out["loss"]), "placement": placement,
            "native_ops": os.environ.get("TRKX_NATIVE_OPS", "default")}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(run_child(args)), flush=True)
        return {}
    results = []
    for layers in [int(x) for x in args.layers.split(",")]:
        for variant in VARIANTS:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", f"{variant}:{layers}",
                   *sum((["--set", s] for s in args.set), []), "--shards", args.shards, "--config", args.config,
                   "--graph", str(args.graph), "--max-edges", str(args.max_edges), "--steps", str(args.steps),
                   "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"variant {variant} (layers {layers}) failed with exit {proc.returncode}")
            r = json.loads(lines[-1][len("RESULT "):])
            r["load_average"] = os.getloadavg()
            results.append(r)
            print(f"layers {layers} {variant:>13}: {r['nodes']:,} nodes, {r['edges']:,} edges; peak RSS "
                  f"{r['peak_rss_mib']:8.0f} MiB (step {r['step_rss_mib']:8.0f} MiB), allocator step peak "
                  f"{r['step_alloc_mib']:8.0f} MiB; steps {', '.join(f'{t:.1f}' for t in r['step_s'])} s; load "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    ratios = {}
    for layers in sorted({r["layers"] for r in results}):
        plain, ckpt = (next(r for r in results if r["layers"] == layers and r["variant"] == v) for v in VARIANTS)
        ratios[layers] = {k: plain[k] / ckpt[k] for k in ("peak_rss_mib", "step_rss_mib", "step_alloc_mib")}
        r = ratios[layers]
        r["step_time_with_over_without"] = ckpt["step_s"][-1] / plain["step_s"][-1]
        print(f"RATIO layers {layers}: without / with checkpointing: peak RSS x{r['peak_rss_mib']:.2f}, "
              f"step RSS x{r['step_rss_mib']:.2f}, allocator x{r['step_alloc_mib']:.2f}; "
              f"step time with / without x{r['step_time_with_over_without']:.2f} (paper: 4x less memory)", flush=True)
    out = {"results": results, "ratios": ratios}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
