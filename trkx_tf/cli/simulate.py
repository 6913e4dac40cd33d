"""``trkx-simulate``: writes TrackML-format events simulated on the real TrackML geometry.

Flags win over the config (``--config`` / ``--set simulate.…``); unset flags take ``simulate.*`` and
``data.detector`` / ``data.events_dir`` from it. Example::

    trkx-simulate --events 8 --pileup 200 --seed 1 --out data/events --workers 2
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from trkx_tf.cli.common import EXIT_USER_ERROR, add_config_args, command, config_from_args


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (then exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="trkx-simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, metavar="N", help="number of events (simulate.events)")
    parser.add_argument("--pileup", type=float, metavar="MU", help="mean pile-up vertices (simulate.pileup)")
    parser.add_argument("--seed", type=int, metavar="S", help="run seed (simulate.seed)")
    parser.add_argument("--out", metavar="DIR", help="output folder (data.events_dir)")
    parser.add_argument("--noise-fraction", type=float, metavar="F", help="noise hits / all hits")
    parser.add_argument("--workers", type=int, metavar="W", help="processes; 0: one per CPU core")
    parser.add_argument("--detector", metavar="PATH", help="detectors.csv[.gz] (data.detector)")
    parser.add_argument("--first-event", type=int, metavar="ID", help="id of the first event")
    parser.add_argument("--compress", action="store_true", default=None, help="write .csv.gz files")
    parser.add_argument("--no-cells", dest="cells", action="store_false", default=None, help="skip the cells files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from trkx_tf.trackml.simulate import simulate_events

    cfg = config_from_args(args)
    sim = cfg.simulate

    def pick(flag, default):
        return default if flag is None else flag

    out = pick(args.out, cfg.data.events_dir)
    summaries = simulate_events(
        out_dir=out,
        detector=pick(args.detector, cfg.data.detector),
        n_events=pick(args.events, sim.events),
        pileup=pick(args.pileup, sim.pileup),
        seed=pick(args.seed, sim.seed),
        noise_fraction=pick(args.noise_fraction, sim.noise_fraction),
        workers=pick(args.workers, sim.workers),
        first_event=pick(args.first_event, sim.first_event),
        cells=pick(args.cells, sim.cells),
        compress=pick(args.compress, sim.compress),
        progress=not args.quiet,
    )
    hits = sum(s.n_hits for s in summaries) / len(summaries)
    parts = sum(s.n_particles for s in summaries) / len(summaries)
    print(f"wrote {len(summaries)} events (ids {summaries[0].event_id}..{summaries[-1].event_id}) to {out}: "
          f"{hits:,.0f} hits and {parts:,.0f} particles with hits per event on average", file=sys.stdout)
    return 0


main = command(build_parser, run)
