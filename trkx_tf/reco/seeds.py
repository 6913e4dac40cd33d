"""Track seeds from scored triplets, and the seed metrics.

A seed is three hits that start a track: the hits ``a, b, c`` of a triplet (:mod:`trkx_tf.graphs.triplets`,
inner to outer) whose classifier score is at least a threshold, with that score.

Seed metrics (as the Exa.TrkX paper and issue 20 define them), for particles above a pT cut:

* **efficiency**: the fraction of the selected particles (pT above the cut, at least three hits in the event)
  that are *seeded*: one seed holds three of the particle's hits;
* **purity**: the fraction of all seeds whose three hits belong to one particle (noise hits belong to none).
  Purity is over every seed, whatever its particle's pT.

Shape vocabulary: ``n_seed`` seeds; hit arrays as in :mod:`trkx_tf.graphs.batch` (``n_node`` hits).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.files import write_text_atomic
from trkx_tf.graphs.triplets import TripletGraph
from trkx_tf.reco.metrics import particle_table

SEED_COLUMNS = ("hit_id_1", "hit_id_2", "hit_id_3", "score")


@dataclasses.dataclass(frozen=True)
class Seeds:
    """The seeds of one event.

    Attributes:
      hit_id: [n_seed, 3] int64 TrackML hit ids, inner to outer.
      score: [n_seed] float32 triplet scores.
    """

    hit_id: np.ndarray
    score: np.ndarray

    @property
    def n_seed(self) -> int:
        return int(len(self.score))

    def frame(self) -> pd.DataFrame:
        """The seeds as a table with the columns of :data:`SEED_COLUMNS`, best score first."""
        order = np.argsort(-self.score, kind="stable")
        h = self.hit_id[order]
        return pd.DataFrame({"hit_id_1": h[:, 0], "hit_id_2": h[:, 1], "hit_id_3": h[:, 2],
                             "score": self.score[order]})


def extract_seeds(triplets: TripletGraph, scores: np.ndarray, hit_id: np.ndarray, threshold: float) -> Seeds:
    """The triplets scoring at least ``threshold``, as seeds of hit ids.

    Args:
      triplets: the event's triplets (hit rows).
      scores: [n_triplet] classifier scores in [0, 1].
      hit_id: [n_node] int TrackML hit id of each hit row.
      threshold: the minimal score of a seed.

    Returns:
      The :class:`Seeds`, in triplet order.

    Raises:
      DataError: ``scores`` has the wrong length, or the threshold is outside [0, 1].
    """
    scores = np.asarray(scores, np.float32)
    if scores.shape != (triplets.n_triplet,):
        raise DataError(f"triplet scores have shape {list(scores.shape)}, expected [{triplets.n_triplet}]")
    if not 0.0 <= threshold <= 1.0:
        raise DataError(f"seed threshold must be in [0, 1] (got {threshold})")
    keep = scores >= threshold
    return Seeds(np.asarray(hit_id, np.int64)[triplets.hits[keep]], scores[keep])


def seed_particles(seed_hits: np.ndarray, hit_particle: np.ndarray) -> np.ndarray:
    """The particle of each seed, 0 where its three hits are not one particle's.

    Args:
      seed_hits: [n_seed, 3] int hit rows.
      hit_particle: [n_node] int64 particle id of every hit row (0 = noise).

    Returns:
      [n_seed] int64.
    """
    seed_hits = np.asarray(seed_hits, np.int64).reshape(-1, 3)
    p = np.asarray(hit_particle, np.int64)[seed_hits]
    same = (p[:, 0] == p[:, 1]) & (p[:, 1] == p[:, 2])
    return np.where(same, p[:, 0], 0)


def seed_metrics(seed_hits: np.ndarray, hit_particle: np.ndarray, particles: pd.DataFrame,
                 pt_min: float) -> dict:
    """Seed efficiency for particles above ``pt_min`` and seed purity (see the module docstring).

    Args:
      seed_hits: [n_seed, 3] int hit rows of the seeds.
      hit_particle: [n_node] int64 particle id of every hit row (0 = noise).
      particles: TrackML particles (``particle_id, px, py, pz``).
      pt_min: GeV; particles with pT above it are the efficiency's denominator.

    Returns:
      ``seeds``, ``true_seeds``, ``particles`` (selected), ``seeded`` (selected particles seeded): counts, to sum
      over events; ``efficiency`` and ``purity``: their ratios (None for an empty denominator).

    Raises:
      DataError: a hit row is out of range or the particles table lacks a column or a particle.
    """
    hit_particle = np.asarray(hit_particle, np.int64)
    seed_hits = np.asarray(seed_hits, np.int64).reshape(-1, 3)
    if seed_hits.size and (seed_hits.min() < 0 or seed_hits.max() >= len(hit_particle)):
        raise DataError(f"seeds: a hit row is outside [0, {len(hit_particle)})")
    owner = seed_particles(seed_hits, hit_particle)
    table = particle_table(hit_particle, particles)
    selected = table["particle_id"].to_numpy()[(table["pt"].to_numpy() > pt_min) & (table["n_hits"].to_numpy() >= 3)]
    seeded = np.isin(selected, owner[owner != 0])
    counts = {"seeds": int(len(owner)), "true_seeds": int(np.count_nonzero(owner)),
              "particles": int(len(selected)), "seeded": int(np.count_nonzero(seeded))}
    return {**counts, **seed_ratios(counts)}


def seed_ratios(counts: dict) -> dict:
    """``efficiency`` = seeded / particles and ``purity`` = true_seeds / seeds from (summed) counts."""
    def ratio(a, b):
        return a / b if b else None

    return {"efficiency": ratio(counts["seeded"], counts["particles"]),
            "purity": ratio(counts["true_seeds"], counts["seeds"])}


def write_seeds(path: os.PathLike | str, seeds: Seeds) -> Path:
    """Writes the seeds as CSV (:data:`SEED_COLUMNS`, best score first) atomically.

    Args:
      path: the file (``event<ID>-seeds.csv``).
      seeds: the seeds.

    Returns:
      The path.
    """
    path = Path(path)
    write_text_atomic(path, seeds.frame().to_csv(index=False, float_format="%.6g"))
    return path


def read_seeds(path: os.PathLike | str) -> Seeds:
    """Reads a file written by :func:`write_seeds`.

    Raises:
      DataError: missing file or columns.
    """
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read seeds ({exc.__class__.__name__})") from None
    missing = [c for c in SEED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: seeds lack column(s) {', '.join(missing)}")
    return Seeds(df[list(SEED_COLUMNS[:3])].to_numpy(np.int64), df["score"].to_numpy(np.float32))


def seeds_path(folder: os.PathLike | str, event_id: int) -> Path:
    """``<folder>/event<ID:09d>-seeds.csv``."""
    return Path(folder) / f"event{int(event_id):09d}-seeds.csv"
