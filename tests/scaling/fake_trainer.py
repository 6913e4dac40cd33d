"""A stand-in for ``trkx-train`` that keeps its outside contract, so that the SLURM templates and the scaling
harness can be tested with real launchers (horovodrun, srun --mpi=pmix, mpirun, SlurmClusterResolver) before,
and independently of, the real trainer.

The contract it keeps (the same as trkx-train's):
- ``--config CFG [--set k=v ...]``; backend from ``backend.name`` (horovod | tfdist | single/auto = one process);
- ``train.epochs`` epochs of ``train.max_steps_per_epoch`` steps (or 10) of ``train.graphs_per_step`` graphs per
  rank; a "step" sleeps ``TRKX_FAKE_GRAPH_S`` (default 0.01) seconds per graph, then allreduces across ranks;
- rank 0 appends one ``{"kind": "epoch", ...}`` line per epoch to ``<run.out_dir>/<run.name>/metrics.jsonl``;
- on SIGUSR1/SIGTERM all ranks stop at the same step, rank 0 writes a checkpoint and then, when the job script
  set ``TRKX_REQUEUE_MARK`` (slurm/lib/launch.sh), the requeue marker, every rank exits 99; a restart resumes at
  the epoch it stopped in.

Test knob, ``TRKX_FAKE_RACE=WHEN:S``, replays the exit race of a real job deterministically (a stop makes every
rank exit 99; under ``srun --kill-on-bad-exit=1`` the first one to exit makes srun terminate the others with
SIGTERM; a rank dies of it where it no longer catches it, as a Python process does once it finalizes):
- ``late:S``: rank 0 writes the checkpoint (and the marker), then stops catching SIGTERM and takes S seconds more
  to exit (a slow Horovod/MPI teardown) while the other ranks exit 99 at once: srun kills rank 0, status 143;
- ``early:S``: the other ranks exit 99 as soon as the stop is agreed, rank 0 stops catching SIGTERM and sleeps S
  seconds before checkpointing (a rank 0 killed before its checkpoint): srun kills it, no checkpoint, no marker.
"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

_stop = {"signal": 0}


def _on_signal(signum, _frame):
    _stop["signal"] = signum


def _leave(rank: int, why: str):
    """Exits 99 at once, without the clean-up at exit (Horovod's shutdown could wait for the other ranks)."""
    print(f"fake-trkx-train rank {rank}: {why}, exit 99", flush=True)
    os._exit(99)


def _collectives(backend: str):
    """(rank, size, gather) where gather(list of floats) returns every rank's list, in rank order."""
    if backend == "single":
        return 0, 1, lambda v: [list(v)]
    import tensorflow as tf

    if backend == "horovod":
        import horovod.tensorflow as hvd

        hvd.init()
        return hvd.rank(), hvd.size(), lambda v: hvd.allgather(tf.constant([v], tf.float64)).numpy().tolist()
    if "TF_CONFIG" in os.environ:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    else:  # CPU-only nodes: see DESIGN.md (gpus_per_task=0 makes the resolver fail)
        per_node = int(os.environ.get("SLURM_NTASKS_PER_NODE", os.environ.get("SLURM_NTASKS", "1")).split("(")[0])
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=int(os.environ.get("TRKX_FAKE_PORT_BASE", "23456")), gpus_per_node=per_node,
            gpus_per_task=1, auto_set_gpu=False)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    size = strategy.num_replicas_in_sync

    tf.get_logger().setLevel("ERROR")  # "using CollectiveAllReduceStrategy eagerly" warnings

    def run(v):  # eager: MWMS refuses outside tensors passed into a tf.function'd strategy.run here
        ctx = lambda: tf.distribute.get_replica_context().all_gather(tf.constant([v], tf.float64), axis=0)  # noqa
        return strategy.experimental_local_results(strategy.run(ctx))[0].numpy().tolist()

    return resolver.task_id, size, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="trkx-train (fake)")
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    from trkx_tf.config import load_config

    cfg = load_config(args.config, args.overrides)
    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    backend = cfg.backend.name if cfg.backend.name in ("horovod", "tfdist") else "single"
    rank, size, gather = _collectives(backend)
    run_dir = Path(cfg.run.out_dir) / cfg.run.name
    checkpoint = run_dir / "checkpoint.json"
    start = json.loads(checkpoint.read_text())["epoch"] if checkpoint.exists() else 0
    steps = cfg.train.max_steps_per_epoch or 10
    per_rank = cfg.train.graphs_per_step
    cost = float(os.environ.get("TRKX_FAKE_GRAPH_S", "0.01"))
    print(f"fake-trkx-train rank {rank}/{size} backend {backend} restart {os.environ.get('SLURM_RESTART_COUNT', 0)} "
          f"resumed from epoch {start}", flush=True)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(start, cfg.train.epochs):
        step_times = []
        t0 = time.perf_counter()
        for _ in range(steps):
            s0 = time.perf_counter()
            time.sleep(cost * per_rank)
            flags = gather([float(_stop["signal"])])  # the step's allreduce, and the agreement to stop
            step_times.append(time.perf_counter() - s0)
            if any(f[0] for f in flags):
                race, _, race_s = os.environ.get("TRKX_FAKE_RACE", "").partition(":")
                if race == "early":
                    if rank != 0:
                        _leave(rank, "signalled, leaving before the checkpoint")
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    time.sleep(float(race_s))
                if rank == 0:
                    checkpoint.write_text(json.dumps({"epoch": epoch}))
                    if os.environ.get("TRKX_REQUEUE_MARK"):  # only once the checkpoint is complete
                        Path(os.environ["TRKX_REQUEUE_MARK"]).write_text(f"{checkpoint} epoch {epoch}\n")
                if race == "late" and rank == 0:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                gather([0.0])  # nobody leaves before the checkpoint is written
                if race == "late":
                    if rank == 0:
                        time.sleep(float(race_s))
                    _leave(rank, f"checkpoint at epoch {epoch}")
                print(f"fake-trkx-train rank {rank}: signalled, checkpoint at epoch {epoch}, exit 99", flush=True)
                return 99
        epoch_time = time.perf_counter() - t0
        means = [m[0] for m in gather([sum(step_times) / len(step_times)])]
        if rank == 0:
            graphs = steps * per_rank * size
            mean = sum(means) / len(means)
            record = {
                "kind": "epoch", "epoch": epoch, "epoch_time_s": epoch_time, "steps": steps, "graphs": graphs,
                "edges": graphs * 1000, "graphs_per_s": graphs / epoch_time, "edges_per_s": graphs * 1000 / epoch_time,
                "step_time_s": mean, "step_time_s_max": max(means), "imbalance": max(means) / mean - 1.0,
                "ranks": size, "backend": backend, "global_batch": per_rank * size, "loss": 1.0 / (epoch + 1),
            }
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
