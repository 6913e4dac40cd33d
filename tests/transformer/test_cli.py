"""``trkx-tracker``: bad input is one line on stderr, exit 2, nothing written."""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("args", [
    ["train", "--set", "transformer.shards_dir={tmp}/none", "--set", "run.out_dir={tmp}/runs"],
    ["data", "--set", "transformer.source_dir={tmp}/none", "--set", "transformer.events_dir={tmp}/events"],
    ["infer", "--events", "{tmp}/none", "--out", "{tmp}/out", "--run", "{tmp}/none"],
    ["real", "--events", "{tmp}/none", "--out", "{tmp}/out"],
    ["train", "--set", "transformer.head=mlp"],
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, repo, args):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.run([str(BIN / "trkx-tracker"), args[0], "--config",
                           str(repo / "configs" / "trackformers_10_50.yaml"), *args[1:]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trkx-tracker: error:"), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
