"""Logging with the rank in every line.

The rank is whatever the launcher says (Horovod, Open MPI, PMI, SLURM) until a backend knows better and calls
:func:`setup_logging` again with its own rank. Nothing here runs at import.
"""

from __future__ import annotations

import logging
import os
import sys

_RANK_VARIABLES = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return default


def rank_from_env() -> int:
    """The global rank the launcher gave this process (0 when launched alone)."""
    return _first_int(_RANK_VARIABLES, 0)



def setup_logging(rank: int | None = None, level: str = "INFO") -> logging.Logger:
    """Configures the ``trkx_tf`` logger to write ``time [rank R] LEVEL name: message`` lines to stderr.

    Args:
      rank: the process's global rank; None reads it from the launcher's environment.
      level: a logging level name.

    Returns:
      The ``trkx_tf`` logger.
    """
    rank = rank_from_env() if rank is None else rank
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
