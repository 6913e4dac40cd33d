"""``trkx-build --config CFG --input DIR --out DIR``: TrackML events -> padded HDF5 graph shards.

Prints a summary: events and graphs per split, the candidate-edge builder's efficiency and purity, the buckets and
the padding overhead (padded/real elements). The shard schema is in docs/shards.md.

With ``--filter-ckpt CKPT`` (= ``--set graph.filter_ckpt=CKPT``) the trained edge filter scores every graph's
candidate edges as trkx-infer does, and only the edges scoring at least ``graph.filter_threshold`` (default:
``infer.filter_threshold``) are written:
the shards the GNN trains on. Give it the module map the filter was trained with (``--module-map``).

Events may carry a full truth or a partial truth (the real labelled events): with a partial truth only, the labels
are masked (``graph.labels``; an edge touching an unlabelled hit weighs 0, in no loss and no metric). ``--real``
builds the real labelled events of ``data.real`` with its train/val split (docs/real_data.md).

Under ``mpirun -np N`` or ``srun`` the events and shards are dealt over the N ranks (trkx_tf/ranks.py): the same
shards, byte for byte, as one rank; rank 0 writes the manifest and prints the summary (slurm/build.sh).
"""

from __future__ import annotations

import argparse

from trkx_tf.cli.common import add_config_args, command, config_from_args, overrides_from_flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--input", help="TrackML events folder (default: data.events_dir of the config)")
    parser.add_argument("--out", help="output folder for the shards (default: data.shards_dir of the config)")
    parser.add_argument("--module-map", dest="module_map", metavar="NPZ",
                        help="use this saved module map instead of learning one (= --set graph.module_map.path=NPZ)")
    parser.add_argument("--filter-ckpt", dest="filter_ckpt", metavar="CKPT",
                        help="keep only the edges this trained edge filter scores >= graph.filter_threshold (default: "
                             "infer.filter_threshold) "
                             "(= --set graph.filter_ckpt=CKPT)")
    parser.add_argument("--real", action="store_true",
                        help="build the real labelled events of data.real (masked labels, its train/val split; "
                             "--input/--out default to data.real.events_dir/shards_dir)")
    parser.add_argument("--workers", type=int, help="processes (default: graph.workers; 0: one per core)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.logs import setup_logging
    from trkx_tf.ranks import ranks_from_env
    from trkx_tf.reco.build import build_graphs, build_real_graphs

    args.overrides = list(args.overrides) + overrides_from_flags(
        args, {"module_map": "graph.module_map.path", "filter_ckpt": "graph.filter_ckpt"})
    cfg = config_from_args(args)
    setup_logging(level=cfg.run.log_level)
    ranks = ranks_from_env()  # under mpirun / srun: the events and shards are dealt over the ranks
    progress = args.progress and ranks.root
    if args.real:
        summary = build_real_graphs(cfg, input_dir=args.input, out_dir=args.out, workers=args.workers,
                                    progress=progress, ranks=ranks)
    else:
        summary = build_graphs(cfg, args.input or cfg.data.events_dir, args.out or cfg.data.shards_dir,
                               workers=args.workers, progress=progress, ranks=ranks)
    if ranks.root:
        print(summary.format())
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
