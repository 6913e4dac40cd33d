"""The command lines the harness builds for each launcher."""

import json
import os

import pytest

from trkx_tf.errors import ConfigError
from trkx_tf.scaling.launchers import free_ports, launch_commands

OVERRIDES = ["train.graphs_per_step=2", "run.name=x"]
SETS = ["--set", "train.graphs_per_step=2", "--set", "run.name=x"]
TRAIN = ["/venv/bin/trkx-train", "--config", "cfg.yaml", *SETS]


def _one(launcher, n=4, backend="horovod", **kw):
    launches = launch_commands(launcher, n, "cfg.yaml", OVERRIDES, backend=backend, trainer="/venv/bin/trkx-train",
                               horovodrun="/venv/bin/horovodrun", **kw)
    assert len(launches) == 1
    return launches[0]


def test_horovodrun_and_its_gloo_variant():
    assert list(_one("horovodrun").argv) == ["/venv/bin/horovodrun", "-np", "4", "-H", "localhost:4", *TRAIN]
    assert list(_one("horovodrun-gloo", 2).argv) == [
        "/venv/bin/horovodrun", "-np", "2", "-H", "localhost:2", "--gloo", *TRAIN]


def test_mpirun_runs_unbound_and_allows_root_only_when_root():
    launch = _one("mpirun", 2)
    assert list(launch.argv) == ["mpirun", "-np", "2", "--bind-to", "none", *TRAIN]
    assert ("OMPI_ALLOW_RUN_AS_ROOT" in launch.env) == (os.geteuid() == 0)


def test_srun_uses_pmix_for_horovod_and_places_ranks_per_node():
    assert list(_one("srun", 8, tasks_per_node=4, pmix=True).argv) == [
        "srun", "--mpi=pmix", "-N", "2", "-n", "8", *TRAIN]
    assert list(_one("srun", 1, tasks_per_node=4, pmix=True).argv)[:6] == ["srun", "--mpi=pmix", "-N", "1", "-n", "1"]
    assert list(_one("srun", 2, tasks_per_node=4, pmix=False).argv)[:3] == ["mpirun", "-np", "2"]  # no pmix plugin
    assert list(_one("srun", 6, backend="tfdist", tasks_per_node=4).argv) == ["srun", "-N", "2", "-n", "6", *TRAIN]


def test_sbatch_submits_the_template_of_the_backend_with_the_overrides():
    launch = _one("sbatch", 8, tasks_per_node=4, sbatch_args=["--gpus-per-task=1", "-A", "acct"], repo="/repo",
                  job_name="trkx-scaling-s", log_path="/s/logs/run-%j.out")
    assert list(launch.argv) == [
        "sbatch", "--wait", "--job-name=trkx-scaling-s", "--nodes=2", "--ntasks=8", "--ntasks-per-node=4",
        "--output=/s/logs/run-%j.out", "--gpus-per-task=1", "-A", "acct", "/repo/slurm/train_horovod.sh", "cfg.yaml",
        *SETS]
    launch = _one("sbatch", 2, backend="tfdist", tasks_per_node=4, repo="/repo")
    assert "/repo/slurm/train_tfdist.sh" in launch.argv and "--ntasks-per-node=2" in launch.argv


def test_tfconfig_starts_one_worker_per_rank_with_its_task_index():
    launches = launch_commands("tfconfig", 2, "cfg.yaml", OVERRIDES, backend="tfdist", ports=[2001, 2002],
                               trainer="/venv/bin/trkx-train")
    assert [list(l.argv) for l in launches] == [TRAIN, TRAIN]
    specs = [json.loads(l.env["TF_CONFIG"]) for l in launches]
    assert all(s["cluster"] == {"worker": ["localhost:2001", "localhost:2002"]} for s in specs)
    assert [s["task"] for s in specs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]


@pytest.mark.parametrize("launcher, backend, message", [
    ("horovodrun", "tfdist", "starts Horovod ranks"),
    ("tfconfig", "horovod", "set scaling.backend=tfdist"),
    ("ssh", "horovod", "unknown launcher 'ssh'"),
    ("srun", "gloo", "unknown backend 'gloo'"),
    ("plain", "horovod", "goes with scaling.backend=single"),
    ("horovodrun", "single", "goes with scaling.backend=single"),
])
def test_impossible_combinations_are_config_errors(launcher, backend, message):
    with pytest.raises(ConfigError, match=message):
        launch_commands(launcher, 2, "cfg.yaml", [], backend=backend, trainer="t", ports=[1, 2])


def test_plain_runs_one_trkx_train_and_only_at_one_rank():
    assert _one("plain", 1, backend="single").argv == tuple(TRAIN)
    with pytest.raises(ConfigError, match=r"scaling.ranks must be \[1\]"):
        _one("plain", 2, backend="single")


def test_free_ports_are_distinct():
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)
