"""``trkx-scaling``: run a scaling sweep of trkx-train, or write the report of a recorded study.

  trkx-scaling run --config configs/demo.yaml --ranks 1,2 --repeats 3 --name local [--set key=value ...]
  trkx-scaling report --name local            (or: trkx-scaling report scaling_studies/local)

``run`` exits 99 when a run was stopped by SIGUSR1/SIGTERM (the sbatch templates then requeue the sweep).
"""

import argparse
import shlex
import sys
from pathlib import Path

from trkx_tf.cli.common import add_config_args, command

EXIT_REQUEUE = 99


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run the sweep, record it under scaling_studies/<name>/, write the report")
    add_config_args(run)
    run.add_argument("--ranks", help="rank counts, e.g. 1,2,4 (scaling.ranks)")
    run.add_argument("--repeats", type=int, help="runs per rank count (scaling.repeats)")
    run.add_argument("--name", help="study name: the folder under scaling.out_dir (scaling.name)")
    run.add_argument("--mode", choices=["strong", "weak"], help="scaling.mode")
    run.add_argument("--launcher", help="horovodrun, horovodrun-gloo, mpirun, srun, sbatch, tfconfig or plain "
                     "(one trkx-train, with --backend single --ranks 1: the reference for the 1-rank runs)")
    run.add_argument("--backend", choices=["horovod", "tfdist", "single"], help="scaling.backend")
    run.add_argument("--repo", default=".", help="the repository root, whose slurm/ holds the sbatch templates "
                     "(launcher sbatch; default: the working directory)")
    report = sub.add_parser(
        "report", help="write report.md and the PNG plots of a recorded study",
        description="--config defaults to the study's own config.yaml; --set adjusts e.g. scaling.projection.*",
    )
    report.add_argument("study", nargs="?", help="study folder, or a name under scaling.out_dir")
    report.add_argument("--name", help="study name (instead of STUDY)")
    add_config_args(report)
    return parser


def _scaling_overrides(args: argparse.Namespace) -> list[str]:
    """The run options as --set overrides of the scaling section (validated with the rest of the config)."""
    out = []
    if args.ranks:
        out.append(f"scaling.ranks=[{args.ranks}]")
    for key in ("repeats", "name", "mode", "launcher", "backend"):
        value = getattr(args, key)
        if value is not None:
            out.append(f"scaling.{key}={value}")
    return out


def run(args: argparse.Namespace) -> int:
    from trkx_tf.config import load_config
    from trkx_tf.errors import ConfigError

    if args.action == "run":
        from trkx_tf.scaling.harness import RunInterrupted, run_sweep, study_folder
        from trkx_tf.scaling.report import write_report

        cfg = load_config(args.config, [*args.overrides, *_scaling_overrides(args)])
        line = shlex.join(["trkx-scaling", *sys.argv[1:]])
        try:
            run_sweep(cfg, repo=args.repo, command_line=line)
        except RunInterrupted as exc:
            print(f"trkx-scaling: {exc}", file=sys.stderr)
            return EXIT_REQUEUE
        report = write_report(study_folder(cfg.scaling), cfg.scaling.projection)
        print(report.read_text())
        print(f"report: {report}")
        return 0

    from trkx_tf.scaling.report import write_report

    target = args.study or args.name
    if not target:
        raise ConfigError("trkx-scaling report: give a study folder or --name NAME")
    folder = Path(target)
    if not folder.is_dir():
        base = load_config(args.config, args.overrides) if args.config else load_config(None)
        folder = Path(base.scaling.out_dir) / target
    config = Path(args.config) if args.config else folder / "config.yaml"
    cfg = load_config(config if config.exists() else None, args.overrides)
    report = write_report(folder, cfg.scaling.projection)
    print(report.read_text())
    print(f"report: {report}")
    return 0


main = command(build_parser, run)
