"""What every console script shares: ``--config`` / ``--set`` arguments and the one-line error rule.

Each console script is ``main = command(build_parser, run)``: it parses, loads the config and calls one library
function. A :class:`~trkx_tf.errors.TrkxError` becomes one line on stderr (a message that spans lines is joined)
and its exit status (2, bad input; 3 for :class:`~trkx_tf.errors.TrainingError`); a full disk (an ``OSError``
ENOSPC / EDQUOT) is one line and status 2 too; nothing else is caught, so a bug keeps its traceback. Before
parsing, the entry quiets TensorFlow's start-up log and chooses XLA:CPU's runtime
(:func:`~trkx_tf.placement.prefer_legacy_xla_cpu_runtime`), the only environment writes of a command, so that
importing the package changes nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Mapping, Optional, Sequence

from trkx_tf.config import Config, load_config
from trkx_tf.errors import TrkxError
from trkx_tf.files import disk_full_message
from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

EXIT_USER_ERROR = 2


def add_config_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """Adds ``--config PATH`` and repeatable ``--set KEY=VALUE`` to a parser."""
    parser.add_argument("--config", required=required, help="YAML config file (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.lr=1e-3 (repeatable)",
    )


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Adds ``--filter-ckpt``, ``--gnn-ckpt`` and ``--module-map``: what inference restores, overriding the
    ``infer`` section of the config."""
    parser.add_argument("--filter-ckpt", dest="filter_ckpt", metavar="PATH",
                        help="edge-filter checkpoint, a prefix or a folder (= --set infer.filter_ckpt=PATH)")
    parser.add_argument("--gnn-ckpt", dest="gnn_ckpt", metavar="PATH",
                        help="Interaction Network checkpoint, a prefix or a folder (= --set infer.gnn_ckpt=PATH)")
    parser.add_argument("--module-map", dest="module_map", metavar="NPZ",
                        help="module map of the candidate-edge builder (= --set infer.module_map=NPZ)")


def overrides_from_flags(args: argparse.Namespace, keys: Mapping[str, str]) -> list[str]:
    """The ``--set`` overrides that a command's own flags stand for.

    Args:
      args: the parsed arguments.
      keys: flag destination -> config key (``{"events": "simulate.events"}``); flags left unset (None) are skipped.

    Returns:
      ``["simulate.events=8", ...]``, in the order of ``keys``; booleans as ``true`` / ``false``.
    """
    out = []
    for dest, key in keys.items():
        value = getattr(args, dest, None)
        if value is not None:
            out.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    return out


def config_from_args(args: argparse.Namespace) -> Config:
    """The validated config named by ``--config`` with the ``--set`` overrides applied."""
    return load_config(args.config, args.overrides)


def _quiet_after_error() -> None:
    """After the one error line, keep TensorFlow's Python logger from adding lines while the process winds down
    (e.g. its warning about the unrestored values of a checkpoint that did not fit)."""
    if "tensorflow" in sys.modules:
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def command(
    build_parser: Callable[[], argparse.ArgumentParser],
    run: Callable[[argparse.Namespace], Optional[int]],
) -> Callable[[Optional[Sequence[str]]], int]:
    """Makes a console-script entry point from a parser factory and a function of the parsed arguments."""

    def main(argv: Optional[Sequence[str]] = None) -> int:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, unless asked for
        prefer_legacy_xla_cpu_runtime()  # before TensorFlow runs: XLA reads its flags once
        parser = build_parser()
        args = parser.parse_args(argv)
        try:
            code = run(args)
        except TrkxError as exc:
            message = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
            if not getattr(exc, "quiet", False):  # quiet: another MPI rank's error, printed by rank 0 (ranks.py)
                print(f"{parser.prog}: error: {message}", file=sys.stderr, flush=True)
            _quiet_after_error()
            return int(getattr(exc, "exit_status", EXIT_USER_ERROR))
        except OSError as exc:  # a full disk is the one OSError that is not a bug: one line too
            message = disk_full_message(exc)
            if message is None:
                raise
            print(f"{parser.prog}: error: {message}", file=sys.stderr, flush=True)
            _quiet_after_error()
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print(f"{parser.prog}: interrupted", file=sys.stderr)
            return 130
        return int(code or 0)

    return main
