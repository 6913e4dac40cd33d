"""Fixtures of the trkx-hpo tests: a tiny filter config on the session's tiny shards, study files."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


@pytest.fixture()
def tiny_filter_config(tmp_path, tiny_shards):
    """A base config that trains a tiny filter for 2 epochs on ``tiny_shards`` in one thread (seconds)."""
    path = tmp_path / "base.yaml"
    path.write_text(textwrap.dedent(f"""
        run: {{out_dir: {tmp_path / 'runs'}, name: base}}
        data: {{shards_dir: {tiny_shards}}}
        model: {{filter: {{hidden: 8, layers: 1}}}}
        train: {{model: filter, epochs: 2, lr: 1.0e-2, warmup_epochs: 0, lr_scaling: none}}
        backend: {{name: single, threads: 1}}
        """))
    return path


def write_space(tmp_path, text, name="space.yaml"):
    """Writes a study file into tmp_path; returns its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run_tool(args, timeout=900, check=True, cwd=None):
    """Runs a console script of this environment (``trkx-hpo``, ``trkx-train``); with ``check`` fails the test with
    its output tail unless it exits 0."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.run([str(Path(sys.executable).parent / args[0]), *map(str, args[1:])], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=cwd)
    if check:
        assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc
