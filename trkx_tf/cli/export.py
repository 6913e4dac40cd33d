"""``trkx-export --config CFG --filter-ckpt PATH --gnn-ckpt PATH --out DIR``: trained models for C++ frameworks.

Writes the edge filter and the GNN, restored from the same checkpoints as ``trkx-infer`` (the flags, else
``infer.filter_ckpt`` / ``infer.gnn_ckpt``), as a TensorFlow SavedModel and as ONNX (opset 17), built with the
XLA kernels, with dynamic numbers of nodes and edges, plus ``export.json``; see trkx_tf/export/writer.py and
docs/export.md (inputs, dtypes, shapes, and the hit features a framework must compute).
"""

from __future__ import annotations

import argparse

from trkx_tf.cli.common import add_config_args, command, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--filter-ckpt", dest="filter_ckpt", metavar="PATH",
                        help="edge-filter checkpoint, a prefix or a folder (default: infer.filter_ckpt)")
    parser.add_argument("--gnn-ckpt", dest="gnn_ckpt", metavar="PATH",
                        help="GNN checkpoint, a prefix or a folder (default: infer.gnn_ckpt)")
    parser.add_argument("--out", required=True, help="output folder (filter/, gnn/, export.json)")
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.export.writer import MANIFEST, export_models
    from trkx_tf.logs import setup_logging

    cfg = config_from_args(args)
    setup_logging(level=cfg.run.log_level)
    checkpoints = {"filter": args.filter_ckpt or cfg.infer.filter_ckpt, "gnn": args.gnn_ckpt or cfg.infer.gnn_ckpt}
    for model in export_models(cfg, args.out, checkpoints):
        print(model.format())
    print(f"manifest: {args.out}/{MANIFEST}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
