"""Reduced event sets for the hit transformers: the TrackFormers paper's "TML" subsets on the real geometry.

A reduced event keeps the hits of N particles of a full event, N drawn uniformly in ``[particles_min,
particles_max]``, and nothing else (no noise hits): the paper's subsets of 10–50 and 200–500 tracks. The particles
of one full event are shuffled and cut into consecutive disjoint groups, so one simulated event gives several
reduced events (ids ``source_id * 1000 + k``). Only particles with at least ``min_particle_hits`` hits (after the
volume selection) and pT at least ``pt_min`` are drawn. Truth weights are recomputed for the reduced event
(:func:`trkx_tf.trackml.score.hit_weights`), so the TrackML score of a reduced event is the challenge's formula on
it. Reduced events are ordinary TrackML CSV events: ``trkx-eval`` scores submissions on them unchanged.

The real labelled events (``../shared/trackml/labelled``) have no per-particle parameters; their subset
(:func:`real_subset`) keeps the labelled hits only, with the partial truth, for a track-building check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.config import TransformerConfig, schema_default
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.graphs.features import cylindrical
from trkx_tf.trackml.io import Event, list_events, read_event, write_event
from trkx_tf.trackml.score import hit_weights

#: The input features of a hit (cylindrical coordinates; φ also as its sine and cosine, which have no seam).
INPUT_FEATURES = ("r", "phi", "z", "sin_phi", "cos_phi")
#: The regressed track parameters of EncReg (θ of the momentum, q/pT in 1/GeV).
TARGETS = ("sin_phi", "cos_phi", "theta", "q_over_pt")
#: Reduced event ids: source id times this, plus the subset index.
ID_STRIDE = 1000


def hit_inputs(hits: pd.DataFrame, r_scale: float = 1000.0, z_scale: float = 1000.0) -> np.ndarray:
    """The transformer's input features of every hit (:data:`INPUT_FEATURES`).

    Args:
      hits: TrackML hits (x, y, z in mm).
      r_scale, z_scale: mm; r and z are divided by them.

    Returns:
      [n_hits, 5] float32.
    """
    r, phi, z = cylindrical(hits)
    return np.stack([r / r_scale, phi / np.pi, z / z_scale, np.sin(phi), np.cos(phi)], 1).astype(np.float32)


def particle_targets(particles: pd.DataFrame) -> pd.DataFrame:
    """The EncReg targets of every particle, from its momentum at the vertex and its charge.

    Args:
      particles: TrackML particles (particle_id, px, py, pz, q).

    Returns:
      ``particle_id`` plus the :data:`TARGETS` columns (float64); q/pT is 0 for a particle with pT 0.
    """
    px, py, pz = (particles[c].to_numpy(np.float64) for c in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    phi = np.arctan2(py, px)
    q = particles["q"].to_numpy(np.float64)
    return pd.DataFrame({"particle_id": particles["particle_id"].to_numpy(np.int64), "sin_phi": np.sin(phi),
                         "cos_phi": np.cos(phi), "theta": np.arctan2(pt, pz),
                         "q_over_pt": np.divide(q, pt, out=np.zeros_like(pt), where=pt > 0)})


def hit_targets(event: Event) -> tuple[np.ndarray, np.ndarray]:
    """The targets of every hit (its particle's :func:`particle_targets`) and the particle of every hit.

    Args:
      event: an event with truth and particles.

    Returns:
      ``(targets [n_hits, 4] float32, particle_id [n_hits] int64)``; noise hits (particle 0) get zero targets.

    Raises:
      DataError: the event lacks truth or particles, or a hit's particle is not in particles.
    """
    if event.truth is None or event.particles is None:
        raise DataError(f"event {event.event_id}: the transformer's targets need truth and particles files")
    truth = event.truth.set_index("hit_id").reindex(event.hits["hit_id"].to_numpy())
    pid = truth["particle_id"].fillna(0).to_numpy(np.int64)
    table = particle_targets(event.particles).set_index("particle_id")
    signal = pid != 0
    missing = signal & ~np.isin(pid, table.index.to_numpy())
    if missing.any():
        raise DataError(f"event {event.event_id}: particle {int(pid[missing][0])} of a hit is not in particles")
    targets = np.zeros((len(pid), len(TARGETS)), np.float32)
    if signal.any():
        targets[signal] = table.loc[pid[signal], list(TARGETS)].to_numpy(np.float32)
    return targets, pid


def _eligible(event: Event, min_hits: int, pt_min: float, volumes: Sequence[int]) -> tuple[pd.DataFrame, np.ndarray]:
    """The event's hits in ``volumes`` joined to their particle, and the particles that may be drawn."""
    hits = event.hits
    if volumes:
        hits = hits[hits["volume_id"].isin(list(volumes))]
    truth = event.truth.set_index("hit_id").loc[hits["hit_id"].to_numpy()]
    pid = truth["particle_id"].to_numpy(np.int64)
    ids, counts = np.unique(pid[pid != 0], return_counts=True)
    parts = event.particles.set_index("particle_id").reindex(ids)
    pt = np.hypot(parts["px"].to_numpy(np.float64), parts["py"].to_numpy(np.float64))
    ok = (counts >= min_hits) & (pt >= pt_min)
    return hits.assign(_pid=pid), ids[ok]


def reduce_event(event: Event, rng: np.random.Generator, particles_min: int, particles_max: int,
                 min_particle_hits: int = schema_default(TransformerConfig, "min_particle_hits"), pt_min: float = 0.0,
                 volumes: Sequence[int] = ()) -> list[Event]:
    """Cuts one full event into reduced events of N particles each (see the module docstring).

    Args:
      event: a full event with truth and particles.
      rng: the event's random stream (particle order and each N).
      particles_min, particles_max: N is uniform in this closed range.
      min_particle_hits: particles with fewer hits (in ``volumes``) are never drawn.
      pt_min: GeV; particles below it are never drawn.
      volumes: keep only hits of these volumes; empty: all.

    Returns:
      The reduced events (ids ``event_id * 1000 + k``); empty when the event has fewer than ``particles_min``
      eligible particles. Every reduced event holds between particles_min and particles_max particles.

    Raises:
      ConfigError: ``particles_min > particles_max`` or ``particles_min < 1``.
      DataError: the event lacks truth or particles.
    """
    if not 1 <= particles_min <= particles_max:
        raise ConfigError(f"transformer: need 1 <= particles_min <= particles_max (got {particles_min}, "
                          f"{particles_max})")
    if event.truth is None or event.particles is None:
        raise DataError(f"event {event.event_id}: reduced events need the truth and particles files")
    hits, ids = _eligible(event, min_particle_hits, pt_min, volumes)
    ids = rng.permutation(ids)
    out, start, k = [], 0, 0
    while k < ID_STRIDE:
        n = int(rng.integers(particles_min, particles_max + 1))
        if start + n > len(ids):
            break
        chosen = ids[start:start + n]
        start += n
        out.append(_subset(event, hits, chosen, event.event_id * ID_STRIDE + k))
        k += 1
    return out


def _subset(event: Event, hits: pd.DataFrame, chosen: np.ndarray, event_id: int) -> Event:
    """The event of the ``chosen`` particles' hits (of ``hits``), truth weights recomputed."""
    keep = hits[np.isin(hits["_pid"].to_numpy(), chosen)].drop(columns="_pid").reset_index(drop=True)
    truth = event.truth.set_index("hit_id").loc[keep["hit_id"].to_numpy()].reset_index()
    particles = event.particles[event.particles["particle_id"].isin(chosen)].reset_index(drop=True)
    counts = truth.groupby("particle_id").size()
    particles = particles.assign(nhits=counts.reindex(particles["particle_id"].to_numpy()).to_numpy(np.int32))
    truth = truth.assign(weight=hit_weights(truth, particles).astype(np.float32))
    return Event(int(event_id), keep, particles, truth[list(event.truth.columns)])


def make_reduced_set(source_dir: os.PathLike | str, out_dir: os.PathLike | str, particles_min: int,
                     particles_max: int, *, seed: int = 0,
                     min_particle_hits: int = schema_default(TransformerConfig, "min_particle_hits"), pt_min: float = 0.0,
                     volumes: Sequence[int] = (), max_events: Optional[int] = None) -> list[int]:
    """Writes the reduced events of every event of ``source_dir`` to ``out_dir`` (TrackML CSV, each file atomic).

    Args:
      source_dir: full events with truth and particles (e.g. ``trkx-simulate`` output).
      out_dir: created if needed.
      particles_min, particles_max, min_particle_hits, pt_min, volumes: see :func:`reduce_event`.
      seed: with each source id, the seed of its random stream (the same files whatever the order).
      max_events: stop after writing this many reduced events (None: all).

    Returns:
      The ids of the reduced events written, in order.

    Raises:
      DataError: no source events, or a source event lacks truth or particles, or none gives a reduced event.
      ConfigError: see :func:`reduce_event`.
    """
    ids = list_events(source_dir)
    if not ids:
        raise DataError(f"{source_dir}: no TrackML events to reduce (simulate some with trkx-simulate)")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written: list[int] = []
    for source_id in ids:
        event = read_event(source_dir, source_id, parts=("hits", "particles", "truth"))
        rng = np.random.default_rng([seed, source_id])
        for reduced in reduce_event(event, rng, particles_min, particles_max, min_particle_hits, pt_min, volumes):
            if max_events is not None and len(written) >= max_events:
                return written
            write_event(out_dir, reduced)
            written.append(reduced.event_id)
    if not written:
        raise DataError(f"{source_dir}: no event has {particles_min} particles with >= {min_particle_hits} hits")
    return written


def real_subset(event: Event) -> Event:
    """A real labelled event reduced to its labelled hits, with its partial truth (a track-building check).

    Args:
      event: a real event read with its partial truth.

    Returns:
      The event with only the labelled hits (hits and partial truth; no particles or truth).

    Raises:
      DataError: the event has no partial truth.
    """
    if event.partial_truth is None:
        raise DataError(f"event {event.event_id}: no partial-truth file (only labelled real events can be reduced)")
    labelled = event.partial_truth["hit_id"].to_numpy()
    hits = event.hits[event.hits["hit_id"].isin(labelled)].reset_index(drop=True)
    return Event(event.event_id, hits, partial_truth=event.partial_truth)


def make_real_subsets(labelled_dir: os.PathLike | str, out_dir: os.PathLike | str,
                      ids: Sequence[int] = ()) -> list[int]:
    """Writes :func:`real_subset` of real labelled events (hits and partial truth) to ``out_dir``.

    Args:
      labelled_dir: events with partial-truth files (``../shared/trackml/labelled``).
      out_dir: created if needed.
      ids: these events (empty: all with a partial truth). Event 1000 is refused: it is the test event.

    Returns:
      The ids written.

    Raises:
      DataError: no such event, or event 1000 asked for.
    """
    from trkx_tf.trackml.io import event_ids_with

    labelled = event_ids_with(labelled_dir, "partial-truth")
    ids = list(ids) or labelled
    if not ids:
        raise DataError(f"{labelled_dir}: no events with a partial truth")
    missing = sorted(set(ids) - set(labelled) - {1000})
    if missing:
        raise DataError(f"{labelled_dir}: event {missing[0]} has no partial truth (nothing written)")
    if 1000 in ids:
        raise DataError("event 1000 is the test event: it has no labelled subset (reconstruct it whole)")
    for event_id in ids:
        write_event(out_dir, real_subset(read_event(labelled_dir, event_id, parts=("hits", "partial-truth"))))
    return ids
