"""``trkx-info``: versions of the stack, Horovod's build and the devices TensorFlow sees."""

import argparse
import json

from trkx_tf.cli.common import command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-info", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.info import collect, format_info

    info = collect()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


main = command(build_parser, run)
