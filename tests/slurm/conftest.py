"""A single-node SLURM on this machine for the tests of this folder (``scripts/slurm_local.sh``).

The session fixture starts munged, slurmctld and slurmd (installing slurm-wlm and munge with apt-get the first
time) unless they are already running, and stops them by their pid files at the end if it started them. It
skips when not root or when the packages cannot be installed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
FAKE_TRAINER = REPO / "tests" / "scaling" / "fake_trainer.py"


@pytest.fixture(scope="session")
def slurm():
    """The environment (SLURM_CONF, TRKX_VENV, ...) in which sbatch, srun and squeue reach the local SLURM."""
    if os.geteuid() != 0:
        pytest.skip("a local SLURM needs root (SlurmUser=root); run the SLURM tests as root")
    state = os.environ.get("TRKX_SLURM_DIR", "/tmp/trkx-slurm")
    env = dict(os.environ, TRKX_SLURM_DIR=state, SLURM_CONF=f"{state}/slurm.conf", TF_CPP_MIN_LOG_LEVEL="2",
               TRKX_REPO=str(REPO), TRKX_VENV=str(Path(sys.executable).parent.parent))
    running = subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True).returncode == 0
    if not running:
        proc = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode in (3, 4):  # apt-get failed / not root
            pytest.skip(f"cannot set up a local SLURM: {proc.stderr.strip()}")
        assert proc.returncode == 0, f"scripts/slurm_local.sh start failed:\n{proc.stdout}\n{proc.stderr}"
    yield env
    if not running:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


@pytest.fixture()
def fake_trkx_train(slurm, tmp_path):
    """The environment of ``slurm`` with the contract double of trkx-train first on the jobs' PATH.

    The templates' environment hook (TRKX_ENV_SETUP) activates the venv, then puts a ``trkx-train`` that runs
    tests/scaling/fake_trainer.py in front.
    """
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "trkx-train"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_TRAINER}" "$@"\n')
    script.chmod(0o755)
    setup = f'source "{slurm["TRKX_VENV"]}/bin/activate"; export PATH="{bin_dir}:$PATH"'
    return dict(slurm, TRKX_ENV_SETUP=setup, TRKX_FAKE_GRAPH_S="0.05")
