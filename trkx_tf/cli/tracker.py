"""``trkx-tracker``: TrackFormers-style hit transformers (EncReg, EncCla) beside the GNN pipeline.

Three commands (docs/trackformers.md)::

    trkx-tracker data  --config configs/trackformers_10_50.yaml     # reduced events + hits-only shards
    trkx-tracker train --config configs/trackformers_10_50.yaml     # also under horovodrun / tf.distribute
    trkx-tracker infer --config configs/trackformers_10_50.yaml --events DIR --out DIR [--local] [--ids 1 2]
    trkx-tracker real  --config configs/trackformers_10_50.yaml --events ../shared/trackml/labelled --out DIR

``data`` draws the reduced events from ``transformer.source_dir`` (make it with trkx-simulate); ``train`` writes
the run folder ``run.out_dir/run.name``; ``infer`` reads it (``--run`` another one) and writes submissions and
metrics.json; ``real`` writes the labelled hits of real events with their partial truth (a real-data check).
"""

import argparse
import json
import sys

from trkx_tf.cli.common import add_config_args, command, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-tracker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("data", "reduced events and their hits-only shards"), ("train", "train the head"),
                       ("infer", "reconstruct and score events"), ("real", "labelled subsets of real events")):
        p = sub.add_parser(name, help=text)
        add_config_args(p, required=True)
        if name == "real":
            p.add_argument("--events", required=True, help="real labelled events (with partial truth)")
            p.add_argument("--out", required=True, help="where the subsets go")
            p.add_argument("--ids", type=int, nargs="*", default=[], help="only these event ids")
        if name == "infer":
            p.add_argument("--events", required=True, help="TrackML events folder")
            p.add_argument("--out", required=True, help="submissions and metrics.json go here")
            p.add_argument("--run", help="training run folder (default run.out_dir/run.name)")
            p.add_argument("--ids", type=int, nargs="*", default=[], help="only these event ids")
            p.add_argument("--local", action="store_true", help="local attention over φ–η sectors (full events)")
    return parser


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from trkx_tf.transformer import run as R

    if args.command == "data":
        print(json.dumps(R.make_data(cfg)))
    elif args.command == "real":
        from trkx_tf.transformer.data import make_real_subsets

        print(json.dumps({"events": make_real_subsets(args.events, args.out, args.ids)}))
    elif args.command == "train":
        R.train_tracker(cfg)
    else:
        from pathlib import Path

        root = args.run or Path(cfg.run.out_dir) / cfg.run.name
        summary = R.infer_events(cfg, root, args.events, args.out, args.ids, args.local)
        print(json.dumps({k: v for k, v in summary.items() if k != "events"}), file=sys.stdout)
    return 0


main = command(build_parser, run)
