"""Simulated and real graph shards dealt together: the training source of mixed sim/real training (``data.real``).

Two trkx-build folders (the simulated shards and the real labelled events' masked-label shards, each with its own
buckets) are read as one :class:`~trkx_tf.train.loop.BatchSource`, dealt to ranks exactly as one folder is
(:func:`~trkx_tf.graphs.epoch_plan.plan_epoch`: one bucket per global step, the same step count on every rank, no
communication). The real buckets are numbered after the simulated ones, so a batch never mixes budgets.

The mixing ratio ``fraction`` is the share of real graphs among an epoch's graphs. Every simulated graph is read
once per epoch; ``n_real = round(fraction / (1 - fraction) · n_sim)`` real graphs are drawn per epoch (all of them
once with ``fraction`` 1 or no simulated graph), spread over the real buckets in proportion to their graphs (so the
count per bucket, hence ``steps_per_epoch``, is the same every epoch), and drawn within a bucket from successive
permutations (``numpy.random.default_rng([seed, epoch, 1])``): each real graph is read ``floor`` or ``ceil`` of
its share, a small real set is repeated, a large one sub-sampled. ``fraction`` 0 reads the simulated graphs only.

Shape vocabulary as in :mod:`trkx_tf.graphs.batch`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from trkx_tf.errors import ShardError
from trkx_tf.graphs.epoch_plan import FILLER, BucketShape, Step, plan_epoch
from trkx_tf.graphs.reader import PlannedBatches, ShardReader


def real_counts(real_bucket: np.ndarray, n_sim: int, fraction: float) -> dict[int, int]:
    """How many real graphs of each real bucket an epoch reads (module docstring).

    Args:
      real_bucket: [n_real] bucket of each real graph.
      n_sim: simulated graphs per epoch.
      fraction: the share of real graphs in an epoch, in [0, 1].

    Returns:
      bucket -> graphs per epoch.

    Raises:
      ShardError: ``fraction`` outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ShardError(f"mixed reader: fraction must be in [0, 1] (got {fraction})")
    buckets, sizes = np.unique(np.asarray(real_bucket, np.int64), return_counts=True)
    n_real = int(sizes.sum())
    if fraction == 0.0 or n_real == 0:
        return {int(b): 0 for b in buckets}
    if fraction == 1.0 or n_sim == 0:
        return {int(b): int(n) for b, n in zip(buckets, sizes)}
    want = fraction / (1.0 - fraction) * n_sim
    # largest remainders: the counts sum to round(want) and each follows its bucket's share
    exact = want * sizes / n_real
    counts = np.floor(exact).astype(np.int64)
    rest = int(round(want)) - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:max(rest, 0)]] += 1
    return {int(b): int(c) for b, c in zip(buckets, counts)}


def _scales(folder: Path) -> Optional[tuple]:
    """``(graph.r_scale, graph.z_scale)`` of a build's saved config (None without one)."""
    path = folder / "config.yaml"
    if not path.is_file():
        return None
    graph = (yaml.safe_load(path.read_text()) or {}).get("graph", {})
    return graph.get("r_scale"), graph.get("z_scale")


class MixedReader(PlannedBatches):
    """The shards of one split of two trkx-build folders, mixed at a ratio (module docstring).

    Args:
      sim_folder: the simulated shards.
      real_folder: the real labelled events' shards.
      split: ``"train"`` or ``"val"``.
      fraction: the share of real graphs in an epoch.
      rank, size, graphs_per_step, seed, shuffle, verify, extras: as for
        :class:`~trkx_tf.graphs.reader.ShardReader`.

    Raises:
      ShardError: either folder's shards (see :class:`ShardReader`), node features that differ between the two
        builds (names or the r/z scales), or ``fraction`` outside [0, 1].
    """

    def __init__(self, sim_folder, real_folder, split: str = "train", *, fraction: float, rank: int = 0,
                 size: int = 1, graphs_per_step: int = 1, seed: int = 0, shuffle: bool = True, verify: bool = True,
                 extras=()):
        kw = dict(rank=rank, size=size, graphs_per_step=graphs_per_step, seed=seed, shuffle=shuffle, verify=verify,
                  extras=extras)
        self.sim = ShardReader(sim_folder, split, **kw)
        try:
            self.real = ShardReader(real_folder, split, **kw)
            if self.sim.feature_names != self.real.feature_names or self.sim.n_features != self.real.n_features:
                raise ShardError(f"{real_folder}: node features {list(self.real.feature_names)} differ from the "
                                 f"simulated shards' {list(self.sim.feature_names)} (build both with one graph "
                                 f"config)")
            s_sim, s_real = _scales(Path(sim_folder)), _scales(Path(real_folder))
            if s_sim is not None and s_real is not None and s_sim != s_real:
                raise ShardError(f"{real_folder}: graph.r_scale/z_scale {s_real} differ from the simulated shards' "
                                 f"{s_sim} (build both with one graph config)")
        except BaseException:
            self.close()
            raise
        self.split, self.fraction = split, float(fraction)
        self.rank, self.size, self.graphs_per_step = int(rank), int(size), int(graphs_per_step)
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.n_features, self.feature_names, self.extras = self.sim.n_features, self.sim.feature_names, tuple(extras)
        self._offset = (max(self.sim.budgets) + 1) if self.sim.budgets else 0  # real bucket b -> offset + b
        self.budgets = {**self.sim.budgets, **{self._offset + b: v for b, v in self.real.budgets.items()}}
        self._counts = real_counts(self.real.graph_bucket, self.sim.n_graphs, self.fraction)
        self.n_sim = self.sim.n_graphs
        self.n_real_per_epoch = int(sum(self._counts.values()))

    # ------------------------------------------------------------------------------------------------ shape
    @property
    def n_graphs(self) -> int:
        """Graphs read per epoch (simulated + drawn real)."""
        return self.n_sim + self.n_real_per_epoch

    @property
    def bucket_shapes(self) -> list[BucketShape]:
        """One :class:`BucketShape` per bucket with graphs, simulated buckets first."""
        g = self.graphs_per_step
        used = set(np.unique(self.sim.graph_bucket).tolist()) | {self._offset + b for b, c in self._counts.items()
                                                                 if c}
        return [BucketShape(b, g * nb, g * eb, self.n_features, g) for b, (nb, eb) in sorted(self.budgets.items())
                if b in used]

    @property
    def steps_per_epoch(self) -> int:
        """Steps each rank runs per epoch (the same on every rank and in every epoch)."""
        per_step = self.size * self.graphs_per_step
        sim = sum(-(-int(np.sum(self.sim.graph_bucket == b)) // per_step) for b in self.sim.budgets)
        return int(sim + sum(-(-c // per_step) for c in self._counts.values()))

    # ------------------------------------------------------------------------------------------------ dealing
    def epoch_graphs(self, epoch: int) -> np.ndarray:
        """The epoch's graphs: [n_graphs] int64, simulated graph i as i, real graph j as ``n_sim + j``."""
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(epoch), 1])
        chosen = [np.arange(self.n_sim, dtype=np.int64)]
        for b, count in sorted(self._counts.items()):
            members = np.flatnonzero(self.real.graph_bucket == b)
            reps = -(-count // len(members)) if count else 0
            draws = [rng.permutation(members) if self.shuffle else members for _ in range(reps)]
            chosen.append(self.n_sim + np.concatenate(draws)[:count] if draws else np.zeros(0, np.int64))
        return np.concatenate(chosen).astype(np.int64)

    def plan(self, epoch: int) -> list[Step]:
        """The epoch's global steps; :attr:`Step.graphs` index the combined graph list (``n_sim + j``: real j)."""
        graphs = self.epoch_graphs(epoch)
        is_real = graphs >= self.n_sim
        bucket = np.empty(len(graphs), np.int64)
        n_edge = np.empty(len(graphs), np.int64)
        bucket[~is_real] = self.sim.graph_bucket[graphs[~is_real]]
        n_edge[~is_real] = self.sim.graph_n_edge[graphs[~is_real]]
        bucket[is_real] = self.real.graph_bucket[graphs[is_real] - self.n_sim] + self._offset
        n_edge[is_real] = self.real.graph_n_edge[graphs[is_real] - self.n_sim]
        steps = plan_epoch(bucket, n_edge, size=self.size, graphs_per_step=self.graphs_per_step, seed=self.seed,
                           epoch=epoch, shuffle=self.shuffle)
        return [Step(s.bucket, np.where(s.graphs == FILLER, FILLER, graphs[np.maximum(s.graphs, 0)])) for s in steps]

    # ------------------------------------------------------------------------------------------------ reading
    def read_graph(self, index: int) -> dict[str, np.ndarray]:
        """One graph of the combined list (``n_sim + j``: real graph j)."""
        return self.real.read_graph(index - self.n_sim) if index >= self.n_sim else self.sim.read_graph(index)

    def close(self) -> None:
        for reader in (getattr(self, "sim", None), getattr(self, "real", None)):
            if reader is not None:
                reader.close()

