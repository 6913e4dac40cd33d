"""Checkpoint choice: the kept checkpoint of a training run whose epoch scored best on its validation metric.

With ``data.real.validation: real`` the ``val_*`` metrics of ``metrics.jsonl`` are measured on the real
validation events (docs/real_data.md), so this chooses the checkpoint on real events. Checkpoints are numbered by
the optimizer step at which they were saved (``checkpoints/ckpt-<step>``), and each epoch's record holds that step.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

from trkx_tf.errors import CheckpointError, ConfigError


def best_checkpoint(run_dir: os.PathLike | str, metric: str = "val_loss",
                    higher_is_better: Optional[bool] = None) -> tuple[str, dict]:
    """The best kept checkpoint of a run by one epoch metric.

    Args:
      run_dir: the run folder (``metrics.jsonl``, ``checkpoints/``).
      metric: a key of the epoch records (``val_loss``, ``val_f1``, ...).
      higher_is_better: the metric's direction; None: lower for names ending in ``loss``, else higher.

    Returns:
      ``(prefix, record)``: the checkpoint prefix (``<run>/checkpoints/ckpt-<step>``) and its epoch's record; on a
      tie the later epoch.

    Raises:
      CheckpointError: no ``metrics.jsonl``, or no kept checkpoint belongs to an epoch with a finite ``metric``.
      ConfigError: no epoch record has ``metric``.
    """
    run = Path(run_dir)
    path = run / "metrics.jsonl"
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    epochs = [r for r in records if r.get("kind", "epoch") == "epoch" and "step" in r]
    if not any(metric in r for r in epochs):
        raise ConfigError(f"{path}: no epoch record has {metric!r} (a val_* metric needs a validation split)")
    higher = (not metric.endswith("loss")) if higher_is_better is None else higher_is_better
    best = None
    for r in epochs:
        value = r.get(metric)
        prefix = run / "checkpoints" / f"ckpt-{int(r['step'])}"
        if value is None or not math.isfinite(value) or not Path(f"{prefix}.index").exists():
            continue
        if best is None or (value >= best[1][metric] if higher else value <= best[1][metric]):
            best = (str(prefix), r)
    if best is None:
        raise CheckpointError(f"{run / 'checkpoints'}: no kept checkpoint of an epoch with a finite {metric}")
    return best
