"""Scaling records: one record per training run, one summary row per rank count, and the efficiency arithmetic.

A *run* is one ``trkx-train`` launch at N ranks (one repeat). Its record averages the epochs of its
``metrics.jsonl`` after the warm-up epochs. A *summary row* groups the repeats of one (mode, backend, N) and gives
the mean, spread and the scaling efficiency against the smallest N of the same (mode, backend), normally N = 1:

- strong scaling (same global batch, same steps at every N): ``E(N) = T_1 / (N * T_N)``, T the epoch time;
- weak scaling (same per-rank batch): ``E(N) = X_N / (N * X_1)``, X the throughput in graphs/s.

The spread of E over repeats is taken from each repeat's own T_N (or X_N) against the mean baseline.

A study folder ``scaling_studies/<name>/`` holds ``records.json`` (study, environment, runs, summary),
``runs.csv`` and ``summary.csv``.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path
from statistics import fmean, stdev
from typing import Any, Iterable, Mapping, Sequence

from trkx_tf.errors import BackendError, ConfigError
from trkx_tf.files import write_text_atomic

RUN_FIELDS = (
    "mode", "backend", "launcher", "ranks", "repeat", "global_batch", "epochs_measured", "epoch_time_s",
    "graphs_per_s", "edges_per_s", "step_time_s", "step_time_s_max", "imbalance", "loss", "wall_s", "load_start",
    "load_end", "hostname", "run_dir",
)
SUMMARY_FIELDS = (
    "mode", "backend", "ranks", "repeats", "global_batch", "epoch_time_s", "epoch_time_s_std", "epoch_time_s_min",
    "epoch_time_s_max", "graphs_per_s", "graphs_per_s_std", "edges_per_s", "step_time_s", "step_time_s_max",
    "imbalance", "speedup", "efficiency", "efficiency_min", "efficiency_max", "efficiency_std", "baseline_ranks",
    "load",
)
EPOCH_KEYS = (  # what every {"kind": "epoch"} line of a run's metrics.jsonl must hold
    "epoch", "epoch_time_s", "graphs_per_s", "edges_per_s", "step_time_s", "step_time_s_max", "imbalance", "ranks",
    "backend", "global_batch", "loss",
)
_AVERAGED = ("epoch_time_s", "graphs_per_s", "edges_per_s", "step_time_s", "step_time_s_max", "imbalance")


def read_epochs(path: os.PathLike | str) -> list[dict[str, Any]]:
    """The epoch records of a run's ``metrics.jsonl``, one per epoch, in epoch order.

    A resumed run may have written an epoch twice; the last line wins. Lines of other kinds are skipped.

    Args:
      path: the ``metrics.jsonl`` file.

    Returns:
      The ``{"kind": "epoch", ...}`` objects sorted by ``epoch``.

    Raises:
      BackendError: the file is missing or a line is not JSON.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BackendError(f"{path}: cannot read the run's metrics ({exc.strerror}); did the run start?") from None
    epochs: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise BackendError(f"{path}:{number}: not a JSON line") from None
        if isinstance(record, dict) and record.get("kind") == "epoch":
            epochs[int(record["epoch"])] = record
    if lines and not epochs:
        raise BackendError(f'{path}: no {{"kind": "epoch", ...}} lines; the trainer does not write the epoch records '
                           "the scaling harness reads")
    return [epochs[k] for k in sorted(epochs)]


def run_record(
    epochs: Sequence[Mapping[str, Any]], *, warmup_epochs: int, ranks: int, repeat: int, mode: str, launcher: str,
    **extra: Any,
) -> dict[str, Any]:
    """Averages the measured epochs of one run into its record.

    Args:
      epochs: the run's epoch records (:func:`read_epochs`).
      warmup_epochs: how many first epochs to leave out.
      ranks: the N the run was launched with; the metrics must say the same.
      repeat: the repeat index (0, 1, ...).
      mode: ``"strong"`` or ``"weak"``.
      launcher: how the run was launched (``"horovodrun"``, ``"srun"``, ...).
      **extra: more fields for the record (``wall_s``, ``hostname``, ``run_dir``).

    Returns:
      A dict with the keys of :data:`RUN_FIELDS` (means over the measured epochs; ``loss`` of the last one;
      ``wall_s``, ``load_start`` (the host's 1-minute load average before the launch), ``load_end``, ``hostname``
      and ``run_dir`` come from ``extra``).

    Raises:
      BackendError: no epoch is left after the warm-up, a record lacks a key of :data:`EPOCH_KEYS`, or the run
        had another number of ranks.
    """
    measured = list(epochs)[warmup_epochs:]
    missing = sorted({k for e in epochs for k in EPOCH_KEYS if k not in e})
    if missing:
        raise BackendError(f"run at {ranks} ranks (repeat {repeat}): its epoch records lack {', '.join(missing)}")
    if not measured:
        raise BackendError(
            f"run at {ranks} ranks (repeat {repeat}) has {len(epochs)} epochs, none after {warmup_epochs} warm-up "
            "epochs: raise scaling.epochs"
        )
    seen = {int(e["ranks"]) for e in measured}
    if seen != {ranks}:
        raise BackendError(f"run launched with {ranks} ranks reports ranks={sorted(seen)} in its metrics")
    record: dict[str, Any] = {
        "mode": mode, "backend": str(measured[-1]["backend"]), "launcher": launcher, "ranks": ranks,
        "repeat": repeat, "global_batch": int(measured[-1]["global_batch"]), "epochs_measured": len(measured),
    }
    for key in _AVERAGED:
        record[key] = fmean(float(e[key]) for e in measured)
    record["loss"] = float(measured[-1]["loss"])
    if "params" in measured[-1]:  # optional: the model's trainable parameter count, for the projection
        record["params"] = int(measured[-1]["params"])
    record.update(extra)
    return record


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(min, max, sample standard deviation; 0 for one value)."""
    return min(values), max(values), (stdev(values) if len(values) > 1 else 0.0)


def summarize(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (mode, backend, ranks): means over repeats, spread, speedup and efficiency.

    Args:
      runs: run records (:func:`run_record`).

    Returns:
      Rows with the keys of :data:`SUMMARY_FIELDS`, sorted by mode, backend and ranks. The baseline of each
      (mode, backend) is its smallest rank count (``baseline_ranks``); for a baseline N0 > 1 the formulas above
      become ``E = N0 * T_N0 / (N * T_N)`` and ``E = (X_N / N) / (X_N0 / N0)``.
    """
    groups: dict[tuple[str, str], dict[int, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[(run["mode"], run["backend"])][int(run["ranks"])].append(run)
    rows = []
    for (mode, backend), by_ranks in sorted(groups.items()):
        base_n = min(by_ranks)
        base_time = fmean(r["epoch_time_s"] for r in by_ranks[base_n])
        base_rate = fmean(r["graphs_per_s"] for r in by_ranks[base_n])
        for n in sorted(by_ranks):
            reps = by_ranks[n]
            times = [float(r["epoch_time_s"]) for r in reps]
            rates = [float(r["graphs_per_s"]) for r in reps]
            if mode == "strong":
                per_repeat = [base_n * base_time / (n * t) for t in times]
                eff = base_n * base_time / (n * fmean(times))
            else:
                per_repeat = [(x / n) / (base_rate / base_n) for x in rates]
                eff = (fmean(rates) / n) / (base_rate / base_n)
            t_min, t_max, t_std = _spread(times)
            e_min, e_max, e_std = _spread(per_repeat)
            loads = [float(r["load_start"]) for r in reps if "load_start" in r]
            row = {
                "mode": mode, "backend": backend, "ranks": n, "repeats": len(reps),
                "global_batch": int(reps[-1]["global_batch"]),
                "epoch_time_s": fmean(times), "epoch_time_s_std": t_std,
                "epoch_time_s_min": t_min, "epoch_time_s_max": t_max,
                "graphs_per_s": fmean(rates), "graphs_per_s_std": _spread(rates)[2],
                "edges_per_s": fmean(float(r["edges_per_s"]) for r in reps),
                "step_time_s": fmean(float(r["step_time_s"]) for r in reps),
                "step_time_s_max": fmean(float(r["step_time_s_max"]) for r in reps),
                "imbalance": fmean(float(r["imbalance"]) for r in reps),
                "speedup": base_time / fmean(times) if mode == "strong" else fmean(rates) / base_rate,
                "efficiency": eff, "efficiency_min": e_min, "efficiency_max": e_max, "efficiency_std": e_std,
                "baseline_ranks": base_n,
                "load": fmean(loads) if loads else None,  # the host's 1-minute load average when the runs started
            }
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ study folder
def _csv_text(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> str:
    from io import StringIO

    out = StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def write_study(
    folder: os.PathLike | str, runs: Sequence[Mapping[str, Any]], study: Mapping[str, Any],
    environment: Mapping[str, Any],
) -> dict[str, Any]:
    """Writes ``records.json``, ``runs.csv`` and ``summary.csv`` of a study (each file replaced atomically).

    Args:
      folder: the study folder (created if needed).
      runs: every run record of the study.
      study: what was run (name, the scaling section, the commands).
      environment: where it ran (:func:`trkx_tf.scaling.environment.collect_environment`).

    Returns:
      The ``records.json`` content: ``{"study", "environment", "runs", "summary"}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs)
    records = {"study": dict(study), "environment": dict(environment), "runs": list(runs), "summary": summary}
    write_text_atomic(folder / "records.json", json.dumps(records, indent=2, default=str) + "\n")
    write_text_atomic(folder / "runs.csv", _csv_text(runs, RUN_FIELDS))
    write_text_atomic(folder / "summary.csv", _csv_text(summary, SUMMARY_FIELDS))
    return records


def load_study(folder: os.PathLike | str) -> dict[str, Any]:
    """Reads a study's ``records.json`` and recomputes its summary from the runs.

    Raises:
      ConfigError: the folder has no readable ``records.json``.
    """
    path = Path(folder) / "records.json"
    try:
        records = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: no scaling records ({exc.strerror}); run trkx-scaling run first") from None
    except json.JSONDecodeError:
        raise ConfigError(f"{path}: not valid JSON") from None
    records["summary"] = summarize(records.get("runs", []))
    return records
