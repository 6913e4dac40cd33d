"""Importing trkx_tf chooses XLA:CPU's legacy runtime (faster fused kernels) unless the user chose a runtime."""

import os
import subprocess
import sys

import pytest

PROBE = """
import os, trkx_tf
import tensorflow as tf
x = tf.constant([[1.0, -2.0], [3.0, 4.0]])
y = tf.function(lambda a: tf.nn.relu(a) * 2.0, jit_compile=True)(x)  # XLA rejects unknown flags here
print(os.environ["XLA_FLAGS"], "|", y.numpy().tolist())
"""


def _probe(xla_flags):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    flags, result = out.stdout.strip().splitlines()[-1].split(" | ")
    assert result == "[[2.0, 0.0], [6.0, 8.0]]"
    return flags


@pytest.mark.parametrize("given, expected", [
    (None, "--xla_cpu_use_thunk_runtime=false"),
    ("--xla_cpu_enable_fast_math=false", "--xla_cpu_enable_fast_math=false --xla_cpu_use_thunk_runtime=false"),
    ("--xla_cpu_use_thunk_runtime=true", "--xla_cpu_use_thunk_runtime=true"),  # the user's choice wins
])
def test_import_prefers_legacy_xla_cpu_runtime(given, expected):
    assert _probe(given) == expected
