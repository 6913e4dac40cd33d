"""Fixtures of the trkx-hpo tests: a tiny filter config on the session's tiny shards, study files."""

import textwrap

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
