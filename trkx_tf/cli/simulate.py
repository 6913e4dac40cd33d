"""``trkx-simulate``: writes TrackML-format events simulated on the real TrackML geometry.

Every flag is a ``--set`` override (``--events 8`` is ``--set simulate.events=8``) applied after the config and its
``--set`` overrides, so flags win; unset keys keep the config's ``simulate.*``, ``data.detector`` and
``data.events_dir``. The detector has no default: the configs name it (``data.detector``), or give ``--detector``.
Example::

    trkx-simulate --detector ../shared/trackml/detectors.csv.gz --events 8 --pileup 200 --seed 1 --out data/events

Under ``mpirun -np N`` or ``srun`` event i goes to rank i mod N (trkx_tf/ranks.py); every event has its own random
stream, so the files are the same whatever N; rank 0 prints the summary.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from trkx_tf.cli.common import EXIT_USER_ERROR, add_config_args, command, config_from_args, overrides_from_flags

#: flag destination -> the config key it sets
FLAG_KEYS = {
    "events": "simulate.events", "pileup": "simulate.pileup", "seed": "simulate.seed", "out": "data.events_dir",
    "noise_fraction": "simulate.noise_fraction", "workers": "simulate.workers", "detector": "data.detector",
    "first_event": "simulate.first_event", "compress": "simulate.compress", "cells": "simulate.cells",
}


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (then exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="trkx-simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, metavar="N", help="number of events (= --set simulate.events=N)")
    parser.add_argument("--pileup", type=float, metavar="MU", help="mean pile-up vertices (= --set simulate.pileup)")
    parser.add_argument("--seed", type=int, metavar="S", help="run seed (= --set simulate.seed)")
    parser.add_argument("--out", metavar="DIR", help="output folder (= --set data.events_dir)")
    parser.add_argument("--noise-fraction", type=float, metavar="F",
                        help="noise hits / all hits (= --set simulate.noise_fraction)")
    parser.add_argument("--workers", type=int, metavar="W",
                        help="processes; 0: one per CPU core (= --set simulate.workers)")
    parser.add_argument("--detector", metavar="PATH", help="detectors.csv[.gz] (= --set data.detector)")
    parser.add_argument("--first-event", type=int, metavar="ID",
                        help="id of the first event (= --set simulate.first_event)")
    parser.add_argument("--compress", action="store_true", default=None,
                        help="write .csv.gz files (= --set simulate.compress=true)")
    parser.add_argument("--no-cells", dest="cells", action="store_false", default=None,
                        help="skip the cells files (= --set simulate.cells=false)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.ranks import ranks_from_env
    from trkx_tf.trackml.simulate import simulate_from_config

    args.overrides = list(args.overrides) + overrides_from_flags(args, FLAG_KEYS)
    cfg = config_from_args(args)
    ranks = ranks_from_env()  # under mpirun / srun: the events are dealt over the ranks, rank 0 reports
    summaries = simulate_from_config(cfg, progress=not args.quiet and ranks.root, ranks=ranks)
    if not ranks.root:
        return 0
    hits = sum(s.n_hits for s in summaries) / len(summaries)
    parts = sum(s.n_particles for s in summaries) / len(summaries)
    print(f"wrote {len(summaries)} events (ids {summaries[0].event_id}..{summaries[-1].event_id}) to "
          f"{cfg.data.events_dir}: {hits:,.0f} hits and {parts:,.0f} particles with hits per event on average",
          file=sys.stdout)
    return 0


main = command(build_parser, run)
