"""``trkx-infer --config CFG --input DIR --out DIR``: tracks from whole TrackML events.

For every event of the input folder: features → candidate edges (``graph.builder``) → edge filter (over edge
chunks) → Interaction Network → track labelling (``infer.labelling``). Writes ``event<ID>-submission.csv`` (every
hit exactly once), ``event<ID>-edges.npz`` (``infer.save_edges``) and ``timings.json`` (wall time per stage) to the
output folder and prints the per-event table; with ``--seeds`` also ``event<ID>-seeds.csv`` (track seeds,
trkx_tf/reco/seeds.py). Checkpoints and the module map come from the ``infer`` section or the flags, or a released model from
``--model NAME`` (models/NAME: weights, module map and config, trkx_tf/release.py). Details:
docs/reco.md.

Under ``mpirun -np N`` or ``srun`` the events are dealt over the N ranks (trkx_tf/ranks.py): the same submissions,
byte for byte, as one rank; rank 0 writes ``timings.json`` and prints the table (slurm/infer.sh).
"""

from __future__ import annotations

import argparse

from trkx_tf.cli.common import add_config_args, add_model_args, command, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--input", required=True, help="TrackML events folder")
    parser.add_argument("--out", required=True, help="output folder (submissions, edges, timings.json)")
    parser.add_argument("--events", type=int, nargs="+", metavar="ID", help="only these events (default: all)")
    parser.add_argument("--model", metavar="NAME",
                        help="a released model (models/NAME, or a release folder; trkx-info lists them): its weights, "
                             "module map and config.yaml (instead of --config; --set still applies), no training "
                             "needed; not with the checkpoint flags")
    add_model_args(parser)
    parser.add_argument("--seeds", action="store_true",
                        help="also write track seeds, event<ID>-seeds.csv (three hit ids and a score per seed): "
                             "triplets of the GNN-scored edges scored by the triplet classifier (infer.seed_*)")
    parser.add_argument("--seed-ckpt", dest="seed_ckpt", metavar="PATH",
                        help="triplet classifier checkpoint for --seeds (= --set infer.seed_ckpt=PATH)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def _stop(signum, frame):
    """SIGTERM (a job's time limit, ``kill``): unwind like Ctrl-C, so that the event being written is removed
    whole (no partial file, no submission without its edges) and the finished events stay (exit 130)."""
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    import signal

    from trkx_tf.logs import setup_logging
    from trkx_tf.ranks import ranks_from_env
    from trkx_tf.reco.pipeline import infer

    signal.signal(signal.SIGTERM, _stop)
    ranks = ranks_from_env()  # under mpirun / srun: the events are dealt over the ranks
    release, pipeline = None, None
    if args.model:
        release, cfg = ranks.step(_release_config, args)
    else:
        cfg = config_from_args(args)
    setup_logging(level=cfg.run.log_level)
    if release is not None:
        from trkx_tf.release import release_pipeline

        pipeline = ranks.step(release_pipeline, cfg, release)
    finder = None
    if args.seeds:  # fail on a bad seed setting before the tracks are made
        from trkx_tf.reco.seeds import check_seed_config, load_seed_finder

        finder = load_seed_finder(cfg, check_seed_config(cfg, args.seed_ckpt))
    summary = infer(cfg, args.input, args.out, events=args.events, filter_ckpt=args.filter_ckpt,
                    gnn_ckpt=args.gnn_ckpt, module_map=args.module_map, progress=args.progress and ranks.root,
                    ranks=ranks, pipeline=pipeline)
    if not ranks.root:  # rank 0 prints the summary (and, with --seeds, makes the seeds)
        return 0
    print(summary.format())
    print(f"timings: {args.out}/timings.json")
    if finder is not None:
        from trkx_tf.reco.seeds import infer_seeds

        for rec in infer_seeds(cfg, args.input, args.out, [e["event_id"] for e in summary.events], finder=finder):
            print(f"seeds: event {rec['event_id']}: {rec['seeds']} seeds from {rec['triplets']} triplets of "
                  f"{rec['doublets']} doublets ({rec['seconds']['triplets']:.2f} s triplets, "
                  f"{rec['seconds']['scoring']:.2f} s scoring) -> {args.out}/event{rec['event_id']:09d}-seeds.csv")
    return 0


def _release_config(args: argparse.Namespace):
    """``--model NAME``: (the release folder, its config with the --set overrides)."""
    from trkx_tf.errors import ConfigError
    from trkx_tf.release import release_config, resolve_release

    clash = [f for f in ("config", "filter_ckpt", "gnn_ckpt", "module_map") if getattr(args, f)]
    if clash:
        raise ConfigError(f"--model runs a released model with its own config and weights; drop "
                          f"--{clash[0].replace('_', '-')}")
    release = resolve_release(args.model)
    return release, release_config(release, args.overrides)


main = command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
