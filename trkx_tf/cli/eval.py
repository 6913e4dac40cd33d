"""``trkx-eval --input DIR --submissions DIR --out DIR``: track and edge metrics, TrackML score, efficiency plots.

Evaluates every ``event<ID>-submission.csv`` of the submissions folder against the truth of the same event in the
input folder (the edge metrics need the ``event<ID>-edges.npz`` that ``trkx-infer`` writes beside it). Writes
``metrics.json`` and ``plots/efficiency_vs_pt.png``, ``plots/efficiency_vs_eta.png`` under the output folder and
prints the headline numbers. Definitions: docs/reco.md.

An event with a partial truth (``event<ID>-partial-truth.csv[.gz]``, the real labelled events) and no truth gets
the restricted partial-truth metrics instead (labelled edge efficiency and purity per stage, labelled track
efficiency; ``partial_truth`` in metrics.json, ``plots/partial_*.png``): docs/partial_truth.md.
"""

from __future__ import annotations

import argparse

from trkx_tf.cli.common import add_config_args, command, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--input", required=True,
                        help="TrackML events folder (hits + truth and particles, or hits + partial truth)")
    parser.add_argument("--submissions", required=True, help="folder of event<ID>-submission.csv (trkx-infer --out)")
    parser.add_argument("--out", required=True, help="output folder for metrics.json and plots/")
    parser.add_argument("--events", type=int, nargs="+", metavar="ID", help="only these events (default: all)")
    parser.add_argument("--min-track-hits", dest="min_track_hits", type=int,
                        help="ignore tracks with fewer hits (= --set eval.min_track_hits=N)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.logs import setup_logging
    from trkx_tf.reco.evaluate import evaluate, format_summary

    if args.min_track_hits is not None:
        args.overrides = list(args.overrides) + [f"eval.min_track_hits={args.min_track_hits}"]
    cfg = config_from_args(args)
    setup_logging(level=cfg.run.log_level)
    summary = evaluate(args.input, args.submissions, args.out, cfg.eval, events=args.events, progress=args.progress)
    print(format_summary(summary))
    print(f"metrics: {args.out}/metrics.json")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
