"""``trkx-info``: versions of the stack, Horovod's build, the devices TensorFlow sees, and the released models
(models/, trkx_tf/release.py)."""

import argparse
import json

from trkx_tf.cli.common import command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-info", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--models", action="store_true", help="only list the released models (no TensorFlow)")
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.info import collect, format_info
    from trkx_tf.release import format_releases, list_releases

    releases = list_releases()
    if args.models:
        print(json.dumps(releases, indent=2) if args.json else format_releases(releases))
        return 0
    info = collect()
    info["released_models"] = releases
    print(json.dumps(info, indent=2) if args.json else format_info(info) + "\n" + format_releases(releases))
    return 0


main = command(build_parser, run)
