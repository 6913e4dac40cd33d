"""What ``trkx-pipeline`` prints besides the stage lines: the dry-run plan table and the test sets' headline metrics."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from trkx_tf.pipeline.runner import Decision, Pipeline


def eval_summaries(pipe: "Pipeline") -> list[str]:
    """One line per evaluated test set with a ``metrics.json``: technical efficiency, purity and TrackML score of
    the first pT selection (``pt>0.5`` by default)."""
    lines = []
    for stage in pipe.stages:
        if not stage.name.startswith("eval_"):
            continue
        path = Path(stage.outputs[0].path) / "metrics.json"
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        sel = next((k for k in m.get("tracks", {}) if k != "all"), "all")
        t = m["tracks"][sel]
        lines.append(f"{stage.name[5:]}: technical efficiency ({sel}) {100 * t['technical_efficiency']:.1f} %, "
                     f"purity {100 * t['purity']:.1f} %, TrackML score {m['score']['all']:.3f} "
                     f"({m['score'].get(sel, float('nan')):.3f} {sel}) on events {m.get('events')}: {path}")
    return lines


def format_plan(decisions: Sequence[Decision], commands: bool = True) -> str:
    """The dry-run table: every stage, what would happen to it and why, and the commands that would run."""
    width = max(len(d.stage.name) for d in decisions)
    lines = [f"{'stage':<{width}}  {'action':<6}  reason"]
    for d in decisions:
        lines.append(f"{d.stage.name:<{width}}  {d.action:<6}  {d.reason}")
    if commands:
        todo = [d for d in decisions if d.action in ("run", "resume")]
        if todo:
            lines.append("")
            lines.append("commands:")
        for d in todo:
            argv = d.argv or list(d.stage.argv) + [a for f in d.stage.set_files for a in ("--set", f"@{f}")]
            env = " ".join(f"{k}={v}" for k, v in d.stage.env.items())
            lines.append(f"  {d.stage.name}: {(env + ' ') if env else ''}{shlex.join(argv)}")
    return "\n".join(lines)
