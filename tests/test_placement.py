"""CPU placement: rank, size and local rank from the launchers' variables, thread counts and core pinning (in a
child process, so that the test process keeps its cores and TensorFlow settings), the XLA:CPU runtime choice."""

import json
import os
import subprocess
import sys

import pytest

from trkx_tf.placement import LaunchEnv, launch_env, prefer_legacy_xla_cpu_runtime, slurm_step


@pytest.mark.parametrize("environ, expected", [
    ({}, 0),
    ({"HOROVOD_LOCAL_RANK": "3", "SLURM_LOCALID": "1"}, 3),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "2"}, 2),
    ({"SLURM_LOCALID": "1"}, 1),
    ({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "a:2"]}, "task": {"type": "worker", "index": 1}})}, 1),
    ({"TF_CONFIG": "not json"}, 0),
])
def test_local_rank_from_env(environ, expected):
    assert launch_env(environ).local_rank == expected


@pytest.mark.parametrize("environ, expected", [
    ({}, LaunchEnv(0, 1, 0)),
    ({"HOROVOD_RANK": "3", "HOROVOD_SIZE": "4", "HOROVOD_LOCAL_RANK": "1", "SLURM_PROCID": "0"}, LaunchEnv(3, 4, 1)),
    ({"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, LaunchEnv(5, 8, 1)),
    ({"PMI_RANK": " 2 ", "PMI_SIZE": "x", "SLURM_STEP_NUM_TASKS": "3"}, LaunchEnv(2, 3, 0)),
    ({"HOROVOD_SIZE": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2", "SLURM_LOCALID": "2"}, LaunchEnv(2, 4, 2)),
])
def test_launch_env_reads_rank_size_and_local_rank(environ, expected):
    assert launch_env(environ) == expected


def test_slurm_step_reads_the_slurm_variables_alone():
    """tf.distribute's SLURM cluster is the step's: Horovod's or MPI's variables do not change it."""
    assert slurm_step({"HOROVOD_RANK": "1", "HOROVOD_SIZE": "2"}) is None
    assert slurm_step({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == LaunchEnv(0, 1, 0)  # a batch step: one task
    environ = {"PMI_RANK": "5", "SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1",
               "TF_CONFIG": json.dumps({"task": {"index": 2}})}
    assert slurm_step(environ) == LaunchEnv(3, 4, 1)


CHILD = """
import json, os, sys
from trkx_tf.placement import place_process
line = place_process(1, True, {"HOROVOD_LOCAL_RANK": sys.argv[1]})
import tensorflow as tf
tf.constant(1.0) + 1.0
print(json.dumps({"line": line, "cores": sorted(os.sched_getaffinity(0)),
                  "intra": tf.config.threading.get_intra_op_parallelism_threads(),
                  "inter": tf.config.threading.get_inter_op_parallelism_threads()}))
"""


@pytest.mark.parametrize("local_rank", [0, 1])
def test_pinned_process_runs_on_its_own_core_with_one_thread(local_rank):
    allowed = sorted(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", CHILD, str(local_rank)], capture_output=True, text=True,
                         check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["cores"] == [allowed[local_rank % len(allowed)]]
    assert result["intra"] == 1 and result["inter"] == 1
    assert f"core(s) {allowed[local_rank % len(allowed)]}" in result["line"]


@pytest.mark.parametrize("given, expected", [
    (None, "--xla_cpu_use_thunk_runtime=false"),
    ("--xla_cpu_enable_fast_math=false", "--xla_cpu_enable_fast_math=false --xla_cpu_use_thunk_runtime=false"),
    ("--xla_cpu_use_thunk_runtime=true", "--xla_cpu_use_thunk_runtime=true"),  # the user's choice wins
])
def test_prefer_legacy_xla_cpu_runtime(given, expected):
    environ = {} if given is None else {"XLA_FLAGS": given}
    assert prefer_legacy_xla_cpu_runtime(environ) == expected
    assert environ["XLA_FLAGS"] == expected


COMMAND = """
import os, sys
from trkx_tf.cli.common import command
import argparse

def run(args):
    import tensorflow as tf
    x = tf.constant([[1.0, -2.0], [3.0, 4.0]])
    y = tf.function(lambda a: tf.nn.relu(a) * 2.0, jit_compile=True)(x)  # XLA rejects unknown flags here
    print(os.environ["XLA_FLAGS"], "|", y.numpy().tolist())

sys.exit(command(argparse.ArgumentParser, run)([]))
"""


@pytest.mark.parametrize("given, expected", [
    (None, "--xla_cpu_use_thunk_runtime=false"),
    ("--xla_cpu_use_thunk_runtime=true", "--xla_cpu_use_thunk_runtime=true"),
])
def test_command_entry_chooses_the_xla_cpu_runtime_before_tensorflow_runs(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if given is not None:
        env["XLA_FLAGS"] = given
    out = subprocess.run([sys.executable, "-c", COMMAND], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    flags, result = out.stdout.strip().splitlines()[-1].split(" | ")
    assert (flags, result) == (expected, "[[2.0, 0.0], [6.0, 8.0]]")
