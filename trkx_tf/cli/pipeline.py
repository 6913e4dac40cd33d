"""``trkx-pipeline``: the toolkit's stages from simulation to evaluation, cached and resumable.

    trkx-pipeline run --config CFG [--set K=V ...] [--from STAGE] [--to STAGE] [--only STAGE ...] [--dry-run]
                      [--force] [--no-progress]

A stage is skipped when its outputs exist and the hash of its command, its config slice and its input files
matches ``<pipeline dir>/pipeline.json``; otherwise it reruns, with everything downstream. ``--dry-run`` prints
every stage, what would happen to it and why, and the commands. The stages and the ``pipeline`` config section:
trkx_tf/pipeline/stages.py and trkx_tf/config.py. SIGUSR1 stops the run after passing it on to the running stage
(a training checkpoints) and exits 99, for slurm/pipeline.sh to requeue the job; the next run resumes.

The other sub-commands are the bodies of three stages (the runner starts them; they can be run by hand):
``learn-map`` (a module map alone), ``link-events`` (the events of folders, linked), ``thresholds``
(choose the inference thresholds on validation events).
"""

from __future__ import annotations

import argparse
import sys

from trkx_tf.cli.common import add_config_args, add_model_args, command, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="run the stages that are not up to date")
    add_config_args(run, required=True)
    run.add_argument("--from", dest="first", metavar="STAGE", help="start at this stage")
    run.add_argument("--to", dest="last", metavar="STAGE", help="stop after this stage")
    run.add_argument("--only", nargs="+", default=[], metavar="STAGE", help="only these stages")
    run.add_argument("--dry-run", action="store_true", help="print what would run and why; run nothing")
    run.add_argument("--force", action="store_true", help="rerun the selected stages even when up to date")
    run.add_argument("--no-progress", dest="progress", action="store_false",
                     help="one line per stage, no bar (also when stderr is not a terminal)")

    lm = sub.add_parser("learn-map", help="learn a module map from the truth of some events")
    add_config_args(lm)
    lm.add_argument("--input", required=True, help="events folder")
    lm.add_argument("--events", type=int, nargs="+", metavar="ID", help="only these events")
    lm.add_argument("--split", choices=["train"], help="only the training split (data.val_fraction)")
    lm.add_argument("--out", required=True, help="the module map to write (.npz)")
    lm.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")

    le = sub.add_parser("link-events", help="link the events of one or more folders into another")
    le.add_argument("--input", required=True, nargs="+", metavar="DIR", help="events folders (ids unique)")
    le.add_argument("--first", type=int, default=0, metavar="N", help="only the first N events (sorted); 0: all")
    le.add_argument("--exclude", type=int, nargs="+", default=[], metavar="ID", help="never link these events")
    le.add_argument("--out", required=True)

    th = sub.add_parser("thresholds", help="choose the inference thresholds on validation events")
    add_config_args(th)
    th.add_argument("--input", required=True, help="validation events folder (with truth)")
    th.add_argument("--events", type=int, nargs="+", metavar="ID", help="only these events")
    th.add_argument("--out", required=True, help="output folder (thresholds.yaml, thresholds.json, passes)")
    add_model_args(th)
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.logs import setup_logging

    if args.cmd == "link-events":
        from trkx_tf.pipeline.tasks import link_events

        print(link_events(args.input, args.out, args.first, args.exclude))
        return 0
    cfg = config_from_args(args)
    setup_logging(level=cfg.run.log_level)
    if args.cmd == "learn-map":
        from trkx_tf.pipeline.tasks import learn_map

        print(learn_map(cfg, args.input, args.out, args.split, args.events, args.workers))
        return 0
    if args.cmd == "thresholds":
        from trkx_tf.pipeline.thresholds import tune_thresholds

        models = [a for flag, v in (("--filter-ckpt", args.filter_ckpt), ("--gnn-ckpt", args.gnn_ckpt),
                                    ("--module-map", args.module_map)) if v for a in (flag, v)]
        chosen = tune_thresholds(cfg, args.config, args.overrides, args.input, args.out, args.events, models)
        print("thresholds: " + ", ".join(f"{k}={v}" for k, v in chosen.items()) + f" ({args.out}/thresholds.yaml)")
        return 0

    from trkx_tf.pipeline.report import eval_summaries, format_plan
    from trkx_tf.pipeline.runner import Pipeline

    pipe = Pipeline(cfg)
    if args.dry_run:
        print(format_plan(pipe.plan(args.first, args.last, args.only, args.force)))
        return 0
    decisions = pipe.run(args.first, args.last, args.only, args.force,
                         progress=args.progress and sys.stderr.isatty())
    ran = [d.stage.name for d in decisions if d.action in ("run", "resume")]
    for line in eval_summaries(pipe):
        print(line)
    print(f"pipeline {pipe.dir}: {len(ran)} stage(s) ran, "
          f"{sum(d.action == 'skip' for d in decisions)} up to date; record: {pipe.records.path}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
