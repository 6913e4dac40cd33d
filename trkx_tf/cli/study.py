"""``trkx-study systematics --config CFG``: the Exa.TrkX robustness studies (noise, pile-up, misalignment, field
error, real-event variants) with trained models; writes ``study.md``, ``results.json`` and PNG plots.

The ``systematics`` config section chooses the studies, their points, the events per point and the models (each a
config naming its checkpoints, module map and thresholds); see trkx_tf/study/systematics.py and docs/systematics.md.
Example::

    trkx-study systematics --config studies/systematics/config.yaml --set systematics.events=1
"""

from __future__ import annotations

import argparse
import shlex

from trkx_tf.cli.common import add_config_args, command, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sy = sub.add_parser("systematics", help="noise, pile-up, misalignment and field studies -> study.md + plots")
    add_config_args(sy, required=True)
    sy.add_argument("--studies", metavar="NAME[,NAME]",
                    help="only these studies: noise, pileup, misalignment, field, real (= --set systematics.studies)")
    sy.add_argument("--out", metavar="DIR", help="report folder (= --set systematics.out_dir=DIR)")
    sy.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars or point lines")
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.logs import setup_logging
    from trkx_tf.study.systematics import run_systematics

    argv = ["trkx-study", "systematics", "--config", args.config]
    for o in args.overrides:
        argv += ["--set", o]
    overrides = list(args.overrides)
    if args.studies:
        overrides.append(f"systematics.studies=[{args.studies}]")
    if args.out:
        overrides.append(f"systematics.out_dir={args.out}")
    args.overrides = overrides
    cfg = config_from_args(args)
    setup_logging(level=cfg.run.log_level)
    argv += (["--studies", args.studies] if args.studies else []) + (["--out", args.out] if args.out else [])
    result = run_systematics(cfg, args.config, overrides, command=shlex.join(argv), progress=args.progress)
    print(f"report: {result.report}")
    print(f"results: {result.results}")
    for p in result.plots:
        print(f"plot: {p}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
