"""``trkx-release``: a released model (weights only, a model card) from trained checkpoints, into models/NAME.

    trkx-release --config runs/demo/config.yaml --name demo-mu20 \\
        --filter-ckpt runs/demo-filter/checkpoints --gnn-ckpt runs/demo-gnn/checkpoints \\
        --module-map runs/demo/module_map.npz --thresholds runs/demo/thresholds/thresholds.yaml \\
        --metrics sim=runs/demo/eval/sim/metrics.json --metrics event1000=runs/demo/eval/event1000/metrics.json \\
        --pipeline-json runs/demo/pipeline.json --data "16 simulated mu=20 events ..." --description "..."

Format and loading: trkx_tf/release.py. ``trkx-infer --model NAME`` runs it; ``trkx-info`` lists it.
"""

from __future__ import annotations

import argparse
import json

from trkx_tf.cli.common import add_config_args, command, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, required=True)
    parser.add_argument("--name", required=True, help="the release's name (models/NAME)")
    parser.add_argument("--out", default=None, help="releases folder (default: the repository's models/)")
    parser.add_argument("--gnn-ckpt", dest="gnn_ckpt", required=True, metavar="PATH", help="GNN checkpoint")
    parser.add_argument("--filter-ckpt", dest="filter_ckpt", metavar="PATH", help="edge-filter checkpoint")
    parser.add_argument("--module-map", dest="module_map", required=True, metavar="NPZ",
                        help="the module map the models were trained with")
    parser.add_argument("--thresholds", metavar="YAML",
                        help="chosen settings as dotted keys (the pipeline's thresholds.yaml), applied as --set")
    parser.add_argument("--metrics", action="append", default=[], metavar="SET=METRICS_JSON",
                        help="trkx-eval metrics.json of an evaluated set, quoted in the card (repeatable)")
    parser.add_argument("--pipeline-json", dest="pipeline_json", metavar="FILE",
                        help="a trkx-pipeline record: its stages' commands go into the card")
    parser.add_argument("--command", dest="commands", action="append", default=[], metavar="CMD",
                        help="a command that made the models (repeatable; with --pipeline-json: added after)")
    parser.add_argument("--data", default="", help="what the models were trained on (one line)")
    parser.add_argument("--training-config", dest="training_config", metavar="PATH",
                        help="the config file the card names as the training config (default: --config)")
    parser.add_argument("--description", default="", help="one line for trkx-info")
    parser.add_argument("--note", default="", help="anything else the card must say")
    parser.add_argument("--commit", default=None, help="the commit that trained them (default: HEAD)")
    return parser


def _yaml_overrides(path: str) -> list[str]:
    import yaml

    from trkx_tf.errors import ConfigError

    try:
        data = yaml.safe_load(open(path)) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the thresholds ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of dotted keys to values")
    return [f"{k}={json.dumps(v)}" for k, v in data.items()]


def _read_json(path: str, what: str) -> dict:
    from trkx_tf.errors import DataError

    try:
        return json.loads(open(path).read())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc})") from None


def run(args: argparse.Namespace) -> int:
    from trkx_tf.errors import ConfigError
    from trkx_tf.release import RELEASES_DIR
    from trkx_tf.release_writer import export_release

    if args.thresholds:
        args.overrides = _yaml_overrides(args.thresholds) + list(args.overrides)
    cfg = config_from_args(args)
    metrics = {}
    for item in args.metrics:
        key, sep, path = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--metrics {item!r}: expected SET=PATH")
        metrics[key] = _read_json(path, "metrics")
    commands, stage_seconds = [], {}
    if args.pipeline_json:
        record = _read_json(args.pipeline_json, "pipeline record")
        stages = {name: s for name, s in record.get("stages", {}).items() if isinstance(s, dict)}
        commands = [s["command"]["shell"] for s in stages.values()
                    if isinstance(s.get("command"), dict) and s["command"].get("shell")]
        stage_seconds = {name: s["wall_s"] for name, s in stages.items() if isinstance(s.get("wall_s"), (int, float))}
    commands += args.commands
    training = {"data": args.data, "config": args.training_config or args.config, "commands": commands,
                "commit": args.commit}
    if stage_seconds:  # the wall time of each stage's last run (the release stage is running now)
        training["stage_seconds"] = stage_seconds
    if args.note:
        training["note"] = args.note
    folder = export_release(cfg, args.out or RELEASES_DIR, args.name, gnn_ckpt=args.gnn_ckpt,
                            filter_ckpt=args.filter_ckpt, module_map=args.module_map, description=args.description,
                            training=training, metrics=metrics)
    card = json.loads((folder / "release.json").read_text())
    print(f"trkx-release: {args.name} -> {folder} ({card['size_bytes'] / 1e6:.2f} MB: "
          + ", ".join(f"{k} {m['parameters']:,} parameters" for k, m in card["models"].items())
          + f", module map {card['module_map']['pairs']:,} pairs)")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
