"""The data stages (``trkx-simulate``, ``trkx-build``, ``trkx-infer``) on MPI ranks.

Started under ``mpirun`` or ``srun`` (:func:`trkx_tf.placement.launch_env` reads how many processes the launcher
started), each rank of a data stage does a share of its events; rank 0 alone writes the summary files (manifest,
``timings.json``). Alone, a stage runs as one rank and imports no MPI.

Sharing is deterministic: item ``i`` of a list goes to rank ``i mod size`` (:meth:`Ranks.share`) and the results come
back to every rank in the list's order (:meth:`Ranks.map`), so what is written does not depend on the number of
ranks.

Failures: every step that may fail on one rank runs through :meth:`Ranks.step`, which ends with an exchange of the
ranks' outcomes. When one rank raised, every rank raises: rank 0 the failing rank's error (the same
:class:`~trkx_tf.errors.TrkxError` type, so one line and its exit status), the others a quiet
:class:`RankFailed` with the same exit status (no second line). A rank that dies outright (a signal) is the
launcher's business: ``mpirun`` and ``srun`` stop the others. Summary files are written atomically, so a failed
step never leaves a half-written one.

Importing this module changes nothing and imports no MPI.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

from trkx_tf.errors import ConfigError, TrkxError
from trkx_tf.placement import launch_env

T = TypeVar("T")
R = TypeVar("R")


class RankFailed(TrkxError):
    """Another rank of this data stage failed; that rank's error is printed by rank 0 (this one is quiet).

    Attributes:
      quiet: True: the console scripts print nothing for it (rank 0 prints the error).
    """

    quiet = True

    def __init__(self, message: str, exit_status: int = TrkxError.exit_status):
        super().__init__(message)
        self.exit_status = exit_status


class RankError(TrkxError):
    """A rank failed with an error that is not a :class:`~trkx_tf.errors.TrkxError` (a bug; its traceback is on
    that rank's stderr)."""


@dataclasses.dataclass
class Ranks:
    """The ranks of one data stage.

    Attributes:
      rank: this process's rank.
      size: the number of ranks.
      comm: the MPI communicator (``mpi4py.MPI.COMM_WORLD``), None for one rank.
    """

    rank: int = 0
    size: int = 1
    comm: Any = None

    @property
    def root(self) -> bool:
        """Whether this is rank 0 (the one that writes summaries)."""
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: those at positions ``rank, rank + size, ...``."""
        return list(items)[self.rank::self.size]

    def step(self, fn: Callable[..., R], *args, **kwargs) -> R:
        """``fn(*args, **kwargs)`` on this rank, then an exchange of every rank's outcome.

        Returns:
          What ``fn`` returned.

        Raises:
          TrkxError: when a rank raised: on rank 0 the error of the lowest failing rank (its type and message; a
          non-TrkxError as :class:`RankError`); on the other ranks their own error if they failed, else
          :class:`RankFailed`. A rank that failed with a non-TrkxError re-raises it (its traceback).
        """
        try:
            out, failure, exc = fn(*args, **kwargs), None, None
        except BaseException as e:  # noqa: BLE001 - every rank must reach the exchange below
            out, exc = None, e
            failure = (type(e) if isinstance(e, TrkxError) else None, type(e).__name__,
                       " ".join(part.strip() for part in str(e).splitlines() if part.strip()),
                       int(getattr(e, "exit_status", TrkxError.exit_status)))
        if self.comm is None:
            if exc is not None:
                raise exc
            return out
        self._wait_for_all()
        outcomes = self.comm.allgather(_picklable(failure))
        failed = [(k, f) for k, f in enumerate(outcomes) if f is not None]
        if not failed:
            return out
        k, (cls, name, message, status) = failed[0]
        if self.rank == 0:
            if exc is not None and k == 0:
                raise exc
            if cls is not None:
                try:
                    error = cls(message)
                except Exception:  # noqa: BLE001 - an error type with another signature
                    error = RankError(message)
                    error.exit_status = status
            else:
                error = RankError(f"rank {k} failed: {name}: {message}")
            raise error
        if exc is not None and not isinstance(exc, TrkxError):
            raise exc
        raise RankFailed(f"rank {k} failed: {message}", status)

    def _wait_for_all(self, poll_s: float = 0.005) -> None:
        """Returns once every rank got here, sleeping between checks: a rank that waits in a blocking MPI
        collective spins on a core (Open MPI polls), which slows the ranks still working on a shared or
        oversubscribed node."""
        import time

        request = self.comm.Ibarrier()
        while not request.Test():
            time.sleep(poll_s)

    def map(self, fn: Callable[[list[T]], list[R]], items: Sequence[T], root_only: bool = False) -> list[R]:
        """``fn`` over this rank's share of ``items`` (:meth:`share`) as one :meth:`step`; every rank gets every
        result, in the order of ``items``.

        Args:
          fn: list of items -> list of results (one per item, in order), e.g. a process-pool map.
          items: the items of all ranks (the same list on every rank).
          root_only: only rank 0 gets the results (the others get None): less traffic for large results.

        Returns:
          ``[result of item 0, result of item 1, ...]`` on every rank (on rank 0 only with ``root_only``).

        Raises:
          See :meth:`step`.
        """
        items = list(items)
        mine = self.step(fn, self.share(items))
        if self.comm is None:
            return list(mine)
        shares = self.comm.gather(mine, root=0) if root_only else self.comm.allgather(mine)
        if shares is None:
            return None
        out: list = [None] * len(items)
        for r, results in enumerate(shares):
            out[r::self.size] = results
        return out

    def bcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank."""
        return value if self.comm is None else self.comm.bcast(value, root=0)

    def gather(self, value: T) -> Optional[list[T]]:
        """Every rank's ``value``, in rank order, on rank 0 (None on the others)."""
        return [value] if self.comm is None else self.comm.gather(value, root=0)


def _picklable(failure):
    """A failure tuple whose error type can travel to the other ranks: a class pickles by reference, so it must be
    reachable as ``module.qualname`` (a class defined inside a function is not); otherwise the type is dropped."""
    if failure is None or failure[0] is None:
        return failure
    cls = failure[0]
    module = sys.modules.get(cls.__module__)
    target = module
    for part in cls.__qualname__.split("."):
        target = getattr(target, part, None)
    return failure if target is cls else (None, *failure[1:])


SINGLE = Ranks()


def ranks_from_env(environ: Optional[Mapping[str, str]] = None) -> Ranks:
    """The ranks this process was started among: one (no MPI imported) unless a launcher (``mpirun``, ``srun``)
    started several (:func:`~trkx_tf.placement.launch_env`), then ``mpi4py``'s ``COMM_WORLD``.

    Args:
      environ: the environment (``os.environ`` when None).

    Returns:
      The :class:`Ranks`.

    Raises:
      ConfigError: several ranks but mpi4py cannot be imported, or MPI's world is not the launcher's (e.g.
      ``srun`` without an MPI plugin, which starts independent processes).
    """
    env = launch_env(environ)
    if env.size <= 1:
        return SINGLE
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ConfigError(f"started as rank {env.rank} of {env.size} but mpi4py cannot be imported ({exc}); "
                          f"install mpi4py or run the command alone") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != env.size or comm.Get_rank() != env.rank:
        raise ConfigError(f"the launcher says rank {env.rank} of {env.size} but MPI says rank {comm.Get_rank()} of "
                          f"{comm.Get_size()}: start with mpirun, or srun --mpi=pmix")
    return Ranks(env.rank, env.size, comm)
