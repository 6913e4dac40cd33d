"""``trkx-hpo``: hyper-parameter optimisation of one training stage with Optuna (docs/hpo.md).

  trkx-hpo run --space configs/hpo/filter.yaml --config configs/filter.yaml --study NAME --storage studies.journal \\
               --trials 20 [--workers 2] [--launcher "horovodrun -np 2 -H localhost:2"] [--set key=value ...]
  trkx-hpo report --study NAME --storage studies.journal [--out DIR]
  trkx-hpo check --space configs/hpo/filter.yaml --config configs/filter.yaml

Every trial is a real trkx-train run with the sampled values as --set overrides and its own run folder. Running
the same ``run`` command again resumes the study up to --trials; several commands (SLURM array tasks) on one
--storage share the study. ``run`` exits 99 when SIGTERM/SIGUSR1 stopped it (slurm/hpo.sh then requeues).
"""

import argparse
import os
import shlex

from trkx_tf.cli.common import add_config_args, command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-hpo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run (or resume) workers of a study until it has --trials trials")
    run.add_argument("--space", required=True, help="study file: search space, objective, sampler, pruner")
    add_config_args(run)
    run.add_argument("--study", required=True, help="study name")
    run.add_argument("--storage", required=True,
                     help="journal file (shared file systems, SLURM arrays) or SQLite file *.db")
    run.add_argument("--trials", type=int, required=True, help="trials in the whole study (all workers)")
    run.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    run.add_argument("--worker-id", type=int, default=None,
                     help="first worker's id, mixed into the sampler seed (default $SLURM_ARRAY_TASK_ID or 0)")
    run.add_argument("--out", help="folder of the trials' run folders (default: beside the storage)")
    run.add_argument("--launcher", default="", help="command prefix of every trial, e.g. 'horovodrun -np 2'")
    run.add_argument("--poll", type=float, default=1.0, help="seconds between looks at a trial's metrics")
    check = sub.add_parser("check", help="validate a study file against the config schema and exit")
    check.add_argument("--space", required=True)
    add_config_args(check)
    report = sub.add_parser("report", help="trials table, best config YAML, importances and PNG plots")
    report.add_argument("--study", required=True)
    report.add_argument("--storage", required=True)
    report.add_argument("--out", help="report folder (default: <storage>-<study>-report beside the storage)")
    report.add_argument("--no-plots", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trkx_tf.errors import ConfigError

    if args.action == "check":
        from trkx_tf.hpo.space import load_space

        spec = load_space(args.space, args.config, args.overrides)
        print(f"{args.space}: {len(spec.params)} parameters OK ({', '.join(spec.params)})")
        return 0
    if args.action == "report":
        from trkx_tf.hpo.report import write_report

        storage = Path(args.storage)
        out = args.out or storage.resolve().parent / f"{storage.stem}-{args.study}-report"
        report = write_report(args.study, args.storage, out, plots=not args.no_plots)
        print(f"report: {report}")
        return 0

    from trkx_tf.hpo.report import summary_line
    from trkx_tf.hpo.study import StudyArgs, run_study
    from trkx_tf.logs import setup_logging

    if args.trials < 1 or args.workers < 1:
        raise ConfigError("--trials and --workers must be at least 1")
    worker = args.worker_id if args.worker_id is not None else int(os.environ.get("SLURM_ARRAY_TASK_ID", "0") or 0)
    setup_logging(worker, "INFO")
    study_args = StudyArgs(space=args.space, config=args.config, overrides=tuple(args.overrides), study=args.study,
                           storage=args.storage, trials=args.trials, out=args.out,
                           launcher=tuple(shlex.split(args.launcher)), worker=worker, poll_s=args.poll)
    code = run_study(study_args, workers=args.workers)
    print(summary_line(args.study, args.storage))
    return code


main = command(build_parser, run)


if __name__ == "__main__":  # the spawned workers re-import the main module
    raise SystemExit(main())
