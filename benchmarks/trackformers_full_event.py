"""Time per event and peak memory of a trained hit transformer on full events, with local attention.

Runs ``trkx-tracker infer --local`` (the library call) ``--repeats`` times over the given events and writes the
per-event times of every repeat, the peak resident memory and the machine load (``os.getloadavg``) to
``--out/benchmark.json``; the metrics of the last repeat are in ``--out/metrics.json``. Example::

    nice -n 10 .venv/bin/python benchmarks/trackformers_full_event.py --config configs/trackformers_10_50.yaml \
        --events data/trackformers/mu200 --out results/trackformers/mu200 --repeats 2

Event 1000 may be given (``--events ../shared/trackml --ids 1000``): it is only reconstructed and scored.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--run", help="training run folder (default run.out_dir/run.name)")
    parser.add_argument("--events", required=True)
    parser.add_argument("--ids", type=int, nargs="*", default=[])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dense", action="store_true", help="one dense attention over the event (no sectors)")
    args = parser.parse_args()

    from trkx_tf.config import load_config
    from trkx_tf.transformer.run import infer_events

    cfg = load_config(args.config, args.overrides)
    run = args.run or str(Path(cfg.run.out_dir) / cfg.run.name)
    repeats = []
    for _ in range(args.repeats):
        load = os.getloadavg()
        t0 = time.perf_counter()
        summary = infer_events(cfg, run, args.events, args.out, args.ids, local=not args.dense)
        repeats.append({"wall_s": time.perf_counter() - t0, "load_before": load, "load_after": os.getloadavg(),
                        "events": [{k: e[k] for k in ("event_id", "hits", "model_s", "total_s") if k in e}
                                   for e in summary["events"]]})
    record = {"config": args.config, "overrides": args.overrides, "run": run, "events_dir": args.events,
              "local": not args.dense, "cpus": os.cpu_count(),
              "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, "repeats": repeats,
              "metrics": {k: v for k, v in summary.items() if k != "events"}}
    Path(args.out, "benchmark.json").write_text(json.dumps(record, indent=1))
    print(json.dumps({"peak_rss_gb": record["peak_rss_gb"],
                      "time_per_event_s": [[e["total_s"] for e in r["events"]] for r in repeats],
                      **{k: record["metrics"][k] for k in ("score", "dm_efficiency", "fit_accuracy")}}))


if __name__ == "__main__":
    main()
