"""``trkx-build --config CFG --input DIR --out DIR``: TrackML events -> padded HDF5 graph shards.

Prints a summary: events and graphs per split, the candidate-edge builder's efficiency and purity, the buckets and
the padding overhead (padded/real elements). The shard schema is in docs/shards.md.

With ``--filter-ckpt CKPT`` (= ``--set graph.filter_ckpt=CKPT``) the trained edge filter scores every graph's
candidate edges as trkx-infer does, and only the edges scoring at least ``graph.filter_threshold`` (default:
``infer.filter_threshold``) are written:
the shards the GNN trains on. Give it the module map the filter was trained with (``--module-map``).
"""

from __future__ import annotations

import argparse

from trkx_tf.cli.common import add_config_args, command, config_from_args


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
    parser.add_argument("--workers", type=int, help="processes (default: graph.workers; 0: one per core)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return parser


def _embedding_model(cfg):
    """The trained embedding model named by graph.embedding.model (the models package loads it)."""
    from trkx_tf.errors import ConfigError

    if not cfg.graph.embedding.model:
        raise ConfigError("graph.builder=embedding needs graph.embedding.model (a trained embedding checkpoint)")
    try:
        from trkx_tf.models.embedding import load_embedding_model
    except ImportError as exc:
        raise ConfigError(f"graph.builder=embedding: cannot load embedding models ({exc})") from None
    return load_embedding_model(cfg.graph.embedding.model, cfg)


def run(args: argparse.Namespace) -> int:
    from trkx_tf.graphs.build import build_shards
    from trkx_tf.logs import setup_logging

    if args.module_map:
        args.overrides = list(args.overrides) + [f"graph.module_map.path={args.module_map}"]
    if args.filter_ckpt:
        args.overrides = list(args.overrides) + [f"graph.filter_ckpt={args.filter_ckpt}"]
    cfg = config_from_args(args)
    setup_logging(level=cfg.run.log_level)
    model = _embedding_model(cfg) if cfg.graph.builder == "embedding" else None
    edge_filter = None
    if cfg.graph.filter_ckpt:
        def edge_filter(n_features: int):
            from trkx_tf.placement import set_threads
            from trkx_tf.reco.pipeline import load_scorer

            set_threads(cfg.infer.threads)
            return load_scorer(cfg, "filter", cfg.graph.filter_ckpt, n_features)
    summary = build_shards(cfg, args.input or cfg.data.events_dir, args.out or cfg.data.shards_dir,
                           workers=args.workers, progress=args.progress, embedding_model=model,
                           edge_filter=edge_filter)
    print(summary.format())
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
