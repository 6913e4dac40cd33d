"""Horovod strong scaling on one machine: 2 ranks against 1 rank on the same global batch, with a diagnosis.

Runs the real ``trkx-train`` under ``horovodrun`` on a fixed set of graphs (the same global steps in every
run: the shard reader deals the same plan for 1 rank × G=2 and 2 ranks × G=1), each rank pinned to its own core
with one TensorFlow thread (``--set backend.threads=1 --set backend.pin_cores=true``). Three configurations,
interleaved in every repeat (so that load from other jobs hits them alike):

* ``1x2``: 1 rank, 2 graphs per step (the baseline, T1);
* ``2x1``: 2 ranks, 1 graph per step each (T2);
* ``1x1``: 1 rank, 1 graph per step (diagnosis only: the per-rank work of ``2x1`` without a second rank).

The first ``--warmup`` epochs of every run (tracing, XLA compilation) are left out; a run's time is the sum of
its measured epochs' ``epoch_time_s`` (from ``metrics.jsonl``). Reported, as median and spread over repeats:

* strong-scaling efficiency ``T1 / (2 · T2)`` (target >= 0.95; the paper had 0.90 at 2 GPUs);
* its two factors: batch linearity ``T(1x2) / (2 · T(1x1))`` (is one step on 2 graphs twice a step on one?)
  and weak efficiency ``T(1x1) / T(2x1)`` (what a second rank costs: allreduce, waiting, shared memory bandwidth);
* with ``--timeline``, from a Horovod timeline of every ``2x1`` run (rank 0's): the time per step inside
  allreduce operations (``ALLREDUCE``, gradients included) and spent waiting for the other rank (the negotiation
  of the loss's weight-sum allreduce, which both ranks submit at the same point of a step), against the step
  time (:func:`timeline_split`).

Environment knobs of the ``2x1`` runs (``HOROVOD_FUSION_THRESHOLD``, ``HOROVOD_CYCLE_TIME``) pass with ``--env``.

The fixed set of graphs: the 16 η/φ sector graphs of one simulated μ=200 event (one size bucket, so both ranks
always run the same padded shape), whole epochs (so ``1x1`` reads the same graphs as the others)::

    trkx-simulate --config configs/scaling.yaml                       # 6 μ=200 events -> data/scaling/events
    mkdir -p data/bench/events1 && cp data/scaling/events/event000000000-* data/bench/events1/
    trkx-build --config configs/scaling.yaml --input data/bench/events1 --out data/bench/shards1 \\
        --set graph.max_buckets=1
    python benchmarks/distributed_horovod_scaling.py --config configs/scaling.yaml --shards data/bench/shards1 \\
        --repeats 3 --epochs 2 --warmup 1 --timeline

Measured with that command plus ``--set backend.gradient_groups=0`` (Horovod's default grouping, the behaviour
before ``gradient_groups: 1`` became the default), load average 17.7 -> 12.0 on the 2 shared cores: efficiency
T1/(2·T2) median 0.601 (min 0.371, max 0.935: the 1-rank time alone varied 2x between repeats with the load);
rank 0 spent 0.21-0.28 s per step (~10 %) in 6-8 separate gradient allreduces. With ``--configs 2x1 --repeats 1``:
``gradient_groups=0`` 0.242 s/step in allreduce (load 16.8 -> 19.5), ``gradient_groups=1`` 0.035 s/step (load
19.5 -> 15.7). Diagnosis and tables: docs/distributed.md.

Output: one line per run, then ``EFFICIENCY``, ``LINEARITY``, ``WEAK`` (and ``ALLREDUCE``) lines; ``--json PATH``
also writes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
CONFIGS = {"1x2": (1, 2), "2x1": (2, 1), "1x1": (1, 1)}  # name: (ranks, graphs per rank and step)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="trkx-train config (model, train sections)")
    p.add_argument("--shards", required=True, help="trkx-build output folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="epochs per run, warm-up included")
    p.add_argument("--warmup", type=int, default=1, help="first epochs of each run left out")
    p.add_argument("--steps-per-epoch", type=int, default=0, help="global steps per epoch (of 2 graphs); 0: all "
                   "(then 1x1 reads the same graphs as the others: give a shards folder of a few graphs)")
    p.add_argument("--controller", choices=["gloo", "mpi"], default="gloo")
    p.add_argument("--configs", default="1x2,2x1,1x1", help="comma list of 1x2, 2x1, 1x1 (run in this order)")
    p.add_argument("--timeline", action="store_true", help="record a Horovod timeline of every 2x1 run")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment of the 2-rank runs (e.g. HOROVOD_CYCLE_TIME=0.5)")
    p.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def run_once(args, name: str, repeat: int, out: Path) -> dict:
    """One ``horovodrun`` of ``trkx-train``; returns its measured epochs and, with a timeline, its split."""
    ranks, graphs = CONFIGS[name]
    run_name = f"{name}-r{repeat}"
    sets = [f"data.shards_dir={args.shards}", f"run.out_dir={out}", f"run.name={run_name}",
            f"train.graphs_per_step={graphs}", f"train.epochs={args.epochs}",
            f"train.max_steps_per_epoch={args.steps_per_epoch}", "train.warmup_epochs=0",
            "backend.name=horovod", "backend.threads=1", "backend.pin_cores=true", *args.set]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    timeline = out / f"{run_name}.timeline.json"
    if ranks > 1:
        env.update(kv.split("=", 1) for kv in args.env)
        if args.timeline:
            env["HOROVOD_TIMELINE"] = str(timeline)
    cmd = [str(BIN / "horovodrun"), "-np", str(ranks), "-H", f"localhost:{ranks}", f"--{args.controller}",
           str(BIN / "trkx-train"), "--config", args.config] + [a for s in sets for a in ("--set", s)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{run_name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    records = [json.loads(line) for line in (out / run_name / "metrics.jsonl").read_text().splitlines()]
    measured = [r for r in records if r.get("kind") == "epoch" and r["epoch"] >= args.warmup]
    result = {
        "name": name, "repeat": repeat, "ranks": ranks, "graphs_per_step": graphs,
        "epoch_time_s": [r["epoch_time_s"] for r in measured],
        "time_s": sum(r["epoch_time_s"] for r in measured),
        "steps": sum(r["steps"] for r in measured),
        "step_time_s": statistics.fmean(r["step_time_s"] for r in measured),
        "step_time_s_max": statistics.fmean(r["step_time_s_max"] for r in measured),
        "imbalance": statistics.fmean(r["imbalance"] for r in measured),
        "load_average": os.getloadavg(),
    }
    if ranks > 1 and args.timeline and timeline.exists():
        epochs = [r for r in records if r.get("kind") == "epoch"]
        result.update(timeline_split(timeline, first_step=sum(r["steps"] for r in epochs[:args.warmup]),
                                     steps=sum(r["steps"] for r in epochs)))
    return result


def _intervals(path: Path) -> dict:
    """``{(tensor name, activity): [(start_us, end_us), ...]}`` of one rank's Horovod timeline (Chrome trace)."""
    text = path.read_text().strip().rstrip(",")
    if not text.endswith("]"):
        text += "]"  # a timeline still open when the process ended
    events = json.loads(text)
    names = {e["pid"]: e.get("args", {}).get("name", "") for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    open_, out = {}, {}
    for e in events:
        if e.get("ph") == "B":
            open_.setdefault(e.get("pid"), []).append(e)
        elif e.get("ph") == "E" and open_.get(e.get("pid")):
            b = open_[e["pid"]].pop()
            out.setdefault((names.get(e["pid"], ""), b.get("name", "")), []).append((b["ts"], e["ts"]))
    return out


def _union(intervals) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def timeline_split(path: Path, first_step: int, steps: int) -> dict:
    """Rank 0's seconds per step spent in allreduce operations, and waiting for the other rank.

    Every training step allreduces the loss's weight sum (a scalar named ``HorovodAllreduce_Sum*``, needed before
    the loss, so submitted at the same point of the step on every rank) and then the (fused) gradients. The
    weight-sum allreduces mark the steps: the window starts at step ``first_step`` (after the warm-up epochs).

    Returns:
      ``allreduce_s_per_step``: the union of all ``ALLREDUCE`` activities (the data exchange, gradients included)
      per measured step; ``wait_s_per_step``: the weight sum's ``NEGOTIATE_ALLREDUCE`` time per step, i.e. how
      long this rank waited for the other to reach the same point (imbalance and jitter).
    """
    acts = _intervals(path)
    marks = sorted(s for (name, act), iv in acts.items() if name.startswith("HorovodAllreduce_Sum")
                   and act == "ALLREDUCE" for s, _ in iv)
    if len(marks) < steps:
        return {"timeline": str(path), "timeline_error": f"{len(marks)} weight-sum allreduces for {steps} steps"}
    cut = marks[first_step] if first_step < len(marks) else marks[-1]
    n = max(len(marks) - first_step, 1)

    def window(iv):
        return [(max(s, cut), e) for s, e in iv if e > cut]

    reduce_ = [iv for (name, act), ivs in acts.items() if act == "ALLREDUCE" for iv in ivs]
    wait = [iv for (name, act), ivs in acts.items() if act == "NEGOTIATE_ALLREDUCE"
            and name.startswith("HorovodAllreduce_Sum") for iv in ivs]
    return {"timeline": str(path), "allreduce_s_per_step": _union(window(reduce_)) / 1e6 / n,
            "wait_s_per_step": _union(window(wait)) / 1e6 / n}


def _stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="trkx-hvd-scaling-"))
    out.mkdir(parents=True, exist_ok=True)
    names = args.configs.split(",")
    runs = []
    for repeat in range(args.repeats):
        for name in names:  # interleaved: 1x2, 2x1, 1x1, 1x2, 2x1, ...
            r = run_once(args, name, repeat, out)
            runs.append(r)
            extra = (f"; rank 0 in allreduce {r['allreduce_s_per_step']:.4f} s/step, waiting for rank 1 "
                     f"{r['wait_s_per_step']:.4f} s/step" if "allreduce_s_per_step" in r else "")
            print(f"{name} repeat {repeat}: {r['time_s']:.2f} s for {r['steps']} steps, step {r['step_time_s']:.3f} s "
                  f"(max over ranks {r['step_time_s_max']:.3f}), imbalance {r['imbalance']:.4f}{extra}; "
                  f"load {' '.join(f'{x:.2f}' for x in r['load_average'])}", flush=True)

    def times(name):
        return [r["time_s"] for r in runs if r["name"] == name]

    result = {"runs": runs, "load_average_end": os.getloadavg(), "args": vars(args)}
    if "1x2" in names and "2x1" in names:
        result["efficiency"] = _stats([a / (2 * b) for a, b in zip(times("1x2"), times("2x1"))])
    if "1x2" in names and "1x1" in names:
        result["linearity"] = _stats([a / (2 * c) for a, c in zip(times("1x2"), times("1x1"))])
    if "1x1" in names and "2x1" in names:
        result["weak_efficiency"] = _stats([c / b for c, b in zip(times("1x1"), times("2x1"))])
    for key, label in (("efficiency", "EFFICIENCY T1/(2*T2)"), ("linearity", "LINEARITY T(1x2)/(2*T(1x1))"),
                       ("weak_efficiency", "WEAK T(1x1)/T(2x1)")):
        if key in result:
            s = result[key]
            print(f"{label}: median {s['median']:.3f} (min {s['min']:.3f}, max {s['max']:.3f}) over "
                  f"{len(s['values'])} repeats", flush=True)
    split = [r for r in runs if "allreduce_s_per_step" in r]
    if split:
        result["allreduce_share"] = _stats([r["allreduce_s_per_step"] / r["step_time_s"] for r in split])
        result["wait_share"] = _stats([r["wait_s_per_step"] / r["step_time_s"] for r in split])
        print(f"ALLREDUCE share of the 2-rank step time: median {result['allreduce_share']['median']:.4f}; waiting "
              f"for the other rank: {result['wait_share']['median']:.4f}", flush=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
