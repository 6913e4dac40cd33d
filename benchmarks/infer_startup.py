"""Start-up and memory of a ``trkx-infer`` process on one real event: process wall time against the event's own time.

Starts ``trkx-infer --model NAME --input ../shared/trackml --events 1000`` as a fresh process ``--repeat`` times
per inference engine (alternating), and for each run prints the process wall time, the event's in-process time
(``total`` of its ``timings.json``: loading to writing), their ratio (target <= 1.5) and the process's peak
resident memory (``ru_maxrss`` of that child, target <= 2 GB). The event is only reconstructed, never scored.

    python benchmarks/infer_startup.py [--model demo-mu20] [--repeat 5] [--engines numpy tensorflow] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
TARGET_RSS_GB = 2.0


def run_once(model: str, real: Path, event: int, engine: str, out: Path) -> dict:
    """One ``trkx-infer`` process: its wall time, peak RSS and the event time it recorded."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(Path(sys.executable).with_name("trkx-infer")), "--model", model, "--input", str(real), "--events",
           str(event), "--out", str(out), "--no-progress", "--set", f"infer.engine={engine}"]
    log = out.with_name(out.name + ".log")
    with open(log, "w") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS and CPU time
        wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}): {log.read_text().strip().splitlines()[-1:]}")
    event_s = json.loads((out / "timings.json").read_text())["events"][0]["seconds"]["total"]
    return {"engine": engine, "process_s": wall, "event_s": event_s, "ratio": wall / event_s,
            "peak_rss_gb": usage.ru_maxrss / 2**20, "cpu_s": usage.ru_utime + usage.ru_stime}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default=str(REPO.parent / "shared" / "trackml"), help="folder with event 1000")
    ap.add_argument("--event", type=int, default=1000)
    ap.add_argument("--model", default="demo-mu20")
    ap.add_argument("--engines", nargs="+", default=["numpy", "tensorflow"], choices=["numpy", "tensorflow"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)
    real = Path(args.real)
    if not any(real.glob(f"event{args.event:09d}-hits.csv*")):
        print(f"skipped: event {args.event} not found in {real}")
        return 0
    runs = []
    with tempfile.TemporaryDirectory(prefix="infer_startup_") as tmp:
        for i in range(args.repeat):
            for engine in args.engines:
                r = run_once(args.model, real, args.event, engine, Path(tmp) / engine)
                runs.append(r)
                print(f"run {i + 1} {engine:<10} process {r['process_s']:6.2f} s  event {r['event_s']:5.2f} s  "
                      f"ratio {r['ratio']:4.2f}  peak RSS {r['peak_rss_gb']:.2f} GB  cpu {r['cpu_s']:.2f} s")
    summary = {}
    for engine in args.engines:
        mine = [r for r in runs if r["engine"] == engine]
        med = {k: statistics.median(r[k] for r in mine) for k in ("process_s", "event_s", "ratio", "peak_rss_gb")}
        summary[engine] = med
        print(f"{engine}: median process {med['process_s']:.2f} s, event {med['event_s']:.2f} s, ratio "
              f"{med['ratio']:.2f} (target <= {TARGET_RATIO}: {'MET' if med['ratio'] <= TARGET_RATIO else 'MISSED'}; "
              f"runs {min(r['ratio'] for r in mine):.2f}-{max(r['ratio'] for r in mine):.2f}), peak RSS "
              f"{med['peak_rss_gb']:.2f} GB (target <= {TARGET_RSS_GB}: "
              f"{'MET' if med['peak_rss_gb'] <= TARGET_RSS_GB else 'MISSED'})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "median": summary, "model": args.model,
                                               "load_average": os.getloadavg()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
