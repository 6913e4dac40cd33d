"""Hand-made metrics.jsonl lines and files, as trkx-train writes them, for the scaling tests."""

import json


def epoch_line(epoch, epoch_time, ranks, backend="horovod", global_batch=4, steps=10, imbalance=0.0, **extra):
    """One epoch record as trkx-train writes it (graphs/s consistent with the epoch time)."""
    graphs = steps * global_batch
    step = epoch_time / steps
    return {"kind": "epoch", "epoch": epoch, "epoch_time_s": epoch_time, "steps": steps, "graphs": graphs,
            "edges": graphs * 500, "graphs_per_s": graphs / epoch_time, "edges_per_s": graphs * 500 / epoch_time,
            "step_time_s": step, "step_time_s_max": step * (1 + imbalance), "imbalance": imbalance, "ranks": ranks,
            "backend": backend, "global_batch": global_batch, "loss": 0.5 / (epoch + 1), **extra}


def write_metrics(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path
