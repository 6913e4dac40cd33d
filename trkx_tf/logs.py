"""Logging with the rank in every line.

The rank is whatever the launcher says (Horovod, Open MPI, PMI, SLURM) until a backend knows better and calls
:func:`setup_logging` again with its own rank. Nothing here runs at import.
"""

from __future__ import annotations

import logging
import sys

from trkx_tf.placement import launch_env


def setup_logging(rank: int | None = None, level: str = "INFO") -> logging.Logger:
    """Configures the ``trkx_tf`` logger to write ``time [rank R] LEVEL name: message`` lines to stderr.

    Args:
      rank: the process's global rank; None reads it from the launcher's environment.
      level: a logging level name.

    Returns:
      The ``trkx_tf`` logger.
    """
    rank = launch_env().rank if rank is None else rank
    logger = logging.getLogger("trkx_tf")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger
