"""The command lines that start ``trkx-train`` on N ranks, one function per launcher.

========================  ==========================================================================================
launcher                  what runs
========================  ==========================================================================================
``horovodrun``            ``horovodrun -np N -H localhost:N trkx-train ...`` (MPI controller; this host)
``horovodrun-gloo``       the same with ``--gloo``
``mpirun``                ``mpirun -np N --bind-to none trkx-train ...`` (this host, or inside an allocation)
``srun``                  inside a SLURM allocation: ``srun --mpi=pmix -N nodes -n N trkx-train`` for Horovod
                          (``mpirun`` when SLURM has no pmix plugin), plain ``srun`` for tf.distribute
``sbatch``                from a login node: ``sbatch --wait ... slurm/train_{horovod,tfdist}.sh CONFIG --set ...``
``tfconfig``              N local tf.distribute workers, each with its own ``TF_CONFIG``
``plain``                 one ``trkx-train`` process with ``backend.name=single`` (N = 1 only): the reference
                          that the distributed backends' 1-rank step is checked against
========================  ==========================================================================================

Nothing is started here; :func:`launch_commands` only builds :class:`Launch` objects, so tests can check them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from trkx_tf.errors import BackendError, ConfigError

HOROVOD_LAUNCHERS = ("horovodrun", "horovodrun-gloo", "mpirun")
LAUNCHERS = HOROVOD_LAUNCHERS + ("srun", "sbatch", "tfconfig", "plain")


@dataclass(frozen=True)
class Launch:
    """One process to start.

    Attributes:
      argv: the command line.
      env: environment variables to set on top of the caller's environment.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def console_script(name: str) -> str:
    """The path of a console script: on PATH first (an activated environment), then beside the interpreter.

    Raises:
      BackendError: the script is installed nowhere.
    """
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise BackendError(f"{name} is not installed (not on PATH, not beside {sys.executable}); run make setup")
    return found


def slurm_has_pmix() -> bool:
    """Whether this SLURM's ``srun --mpi=list`` offers the pmix plugin."""
    try:
        out = subprocess.run(["srun", "--mpi=list"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.strip() == "pmix" for line in (out.stdout + out.stderr).splitlines())


def _root_env() -> dict[str, str]:
    """Open MPI refuses root unless told; the test machines run as root."""
    return {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"} if os.geteuid() == 0 else {}


def _set_args(overrides: Sequence[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def launch_commands(
    launcher: str, ranks: int, config_path: os.PathLike | str, overrides: Sequence[str], *, backend: str,
    tasks_per_node: int = 1, sbatch_args: Sequence[str] = (), repo: os.PathLike | str = ".",
    job_name: str = "trkx-scaling", log_path: Optional[os.PathLike | str] = None,
    ports: Optional[Sequence[int]] = None, pmix: Optional[bool] = None, trainer: Optional[str] = None,
    horovodrun: Optional[str] = None,
) -> list[Launch]:
    """The processes that run one ``trkx-train`` at N ranks.

    Args:
      launcher: one of :data:`LAUNCHERS`.
      ranks: N.
      config_path: the config file trkx-train reads.
      overrides: its ``--set`` overrides (``"train.graphs_per_step=4"``, ...).
      backend: ``"horovod"``, ``"tfdist"`` or ``"single"`` (launcher ``plain`` only).
      tasks_per_node: ranks per node (``srun``, ``sbatch``): ``nodes = ceil(N / tasks_per_node)``.
      sbatch_args: extra sbatch options (``sbatch``).
      repo: the repository root, where ``slurm/`` is (``sbatch``).
      job_name: the SLURM job name (``sbatch``).
      log_path: the job's output file (``sbatch``); default: the template's ``logs/%x-%j.out``.
      ports: N free TCP ports (``tfconfig``).
      pmix: whether srun has the pmix plugin (``srun``); None asks srun.
      trainer: the trkx-train executable; None finds it (:func:`console_script`).
      horovodrun: the horovodrun executable; None finds it.

    Returns:
      One :class:`Launch` (N for ``tfconfig``).

    Raises:
      ConfigError: an unknown launcher, a launcher that cannot run the backend, or missing ports.
      BackendError: trkx-train or horovodrun is not installed.
    """
    if launcher not in LAUNCHERS:
        raise ConfigError(f"scaling.launcher: unknown launcher {launcher!r} (one of {', '.join(LAUNCHERS)})")
    if backend not in ("horovod", "tfdist", "single"):
        raise ConfigError(f"scaling.backend: unknown backend {backend!r} (horovod, tfdist or single)")
    if (launcher == "plain") != (backend == "single"):
        raise ConfigError("scaling.launcher=plain runs one plain trkx-train: it goes with scaling.backend=single, "
                          "and only with it")
    if launcher == "plain" and ranks != 1:
        raise ConfigError(f"scaling.launcher=plain runs one process: scaling.ranks must be [1] (got N={ranks})")
    if launcher in HOROVOD_LAUNCHERS and backend != "horovod":
        raise ConfigError(f"scaling.launcher={launcher} starts Horovod ranks; for tfdist use tfconfig, srun or sbatch")
    if launcher == "tfconfig" and backend != "tfdist":
        raise ConfigError("scaling.launcher=tfconfig starts tf.distribute workers; set scaling.backend=tfdist")
    nodes = math.ceil(ranks / tasks_per_node)
    if launcher == "sbatch":
        script = Path(repo) / "slurm" / f"train_{backend}.sh"
        argv = ["sbatch", "--wait", f"--job-name={job_name}", f"--nodes={nodes}", f"--ntasks={ranks}",
                f"--ntasks-per-node={min(ranks, tasks_per_node)}"]
        argv += [f"--output={log_path}"] if log_path else []
        argv += [*sbatch_args, str(script), str(config_path), *_set_args(overrides)]
        return [Launch(tuple(argv))]
    train = [trainer or console_script("trkx-train"), "--config", str(config_path), *_set_args(overrides)]
    if launcher == "plain":
        return [Launch(tuple(train))]
    if launcher in ("horovodrun", "horovodrun-gloo"):
        argv = [horovodrun or console_script("horovodrun"), "-np", str(ranks), "-H", f"localhost:{ranks}"]
        argv += ["--gloo"] if launcher == "horovodrun-gloo" else []
        return [Launch(tuple(argv + train))]
    if launcher == "mpirun":
        return [Launch(("mpirun", "-np", str(ranks), "--bind-to", "none", *train), _root_env())]
    if launcher == "srun":
        if backend == "tfdist":
            return [Launch(("srun", "-N", str(nodes), "-n", str(ranks), *train))]
        if pmix if pmix is not None else slurm_has_pmix():
            return [Launch(("srun", "--mpi=pmix", "-N", str(nodes), "-n", str(ranks), *train))]
        return [Launch(("mpirun", "-np", str(ranks), "--bind-to", "none", *train), _root_env())]
    # tfconfig: one worker per rank on this host, the cluster spec in TF_CONFIG
    if ports is None or len(ports) != ranks:
        raise ConfigError(f"launcher tfconfig needs {ranks} ports (got {list(ports or [])})")
    workers = [f"localhost:{p}" for p in ports]
    return [
        Launch(tuple(train), {"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                        "task": {"type": "worker", "index": i}})})
        for i in range(ranks)
    ]


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports that are free on localhost right now."""
    import socket

    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("localhost", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports
