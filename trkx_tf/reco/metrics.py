"""Tracking metrics: edge efficiency and purity per stage, track efficiencies and purity, the TrackML score.

Pure functions of one event's truth and reconstruction; :mod:`trkx_tf.reco.evaluate` applies them to folders.
Shape vocabulary as in :mod:`trkx_tf.graphs.batch` (``n_node`` hits of one event, ``n_edge`` candidate edges);
``n_particles`` particles with at least one hit, ``n_tracks`` reconstructed tracks.

Every metric is computed for several **selections**: ``all`` (every particle), and ``pt>X`` (particles with
pT > X GeV, X from ``eval.pt_cuts``, 0.5 and 1 by default). Across events the *counts* are summed and divided
afterwards (never ratios averaged), except the TrackML score, which is the mean of the events' scores as in the
challenge.

Matching (double majority, as in the Exa.TrkX paper)
----------------------------------------------------
A reconstructed **track** is the set of hits sharing one ``track_id``. Only tracks with at least
``min_track_hits`` hits (``eval.min_track_hits``) are tracks for the metrics; smaller ones (singletons, noise,
fragments) are ignored. A track's majority particle holds the most of its hits (noise, particle 0, competes but
never matches; ties go to the smaller particle id, and a tie cannot match anyway). Track and particle **match** when more than
50 % of the track's hits belong to the particle *and* the track holds more than 50 % of the particle's hits.
A particle matches at most one track and a track at most one particle.

Track metrics, for a selection S
--------------------------------
* ``physics_efficiency`` = matched particles in S / particles in S (every particle with at least one hit);
* ``technical_efficiency`` = matched reconstructable particles in S / reconstructable particles in S, where a
  particle is *reconstructable* with at least ``reconstructable_hits`` hits (``eval.reconstructable_hits``);
* ``purity`` = matched tracks of S / tracks of S, where a track belongs to S when its majority particle is in S
  or is noise: a track dominated by a particle outside the selection (matched or not) is neutral, so the fakes
  of low-pT particles do not lower the purity of a high-pT selection. For ``all`` this is the paper's matched
  tracks / reconstructed tracks;
* ``score``: the TrackML score (:func:`trkx_tf.trackml.score.score_event`); for ``pt>X`` the hits of particles at
  or below X get weight 0, so the score is the fraction of the selection's truth weight that is reconstructed.

Edge metrics, for a stage (``graph``: every candidate edge; ``filter``: edges above the filter threshold;
``gnn``: edges above the GNN threshold among those) and a selection S
----------------------------------------------------------------------------------------------------------
An edge is true when its two hits are joined by an edge of the truth graph (:mod:`trkx_tf.graphs.truth`); its
pT is its particle's.

* ``efficiency`` = true edges of S kept by the stage / truth-graph edges of S (cumulative over the stages);
* ``purity`` = true edges of S kept / (edges kept − true edges outside S kept): true edges of particles outside
  the selection are neutral, as the ``graph.pt_cut`` training weights make them.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.graphs.truth import TruthGraph, match_truth
from trkx_tf.trackml.score import score_event

#: The default particle selections: name -> pT threshold in GeV (None: no cut).
DEFAULT_PT_CUTS = (0.5, 1.0)


def selection_names(pt_cuts: Sequence[float] = DEFAULT_PT_CUTS) -> dict[str, Optional[float]]:
    """The selections of the metrics: ``{"all": None, "pt>0.5": 0.5, "pt>1": 1.0, …}``.

    Args:
      pt_cuts: pT thresholds in GeV.

    Returns:
      An ordered dict name -> threshold (None for ``all``).
    """
    out: dict[str, Optional[float]] = {"all": None}
    for cut in pt_cuts:
        out[f"pt>{float(cut):g}"] = float(cut)
    return out


def _in_selection(pt: np.ndarray, cut: Optional[float]) -> np.ndarray:
    return np.ones(len(pt), bool) if cut is None else np.asarray(pt) > cut


# ----------------------------------------------------------------------------------------------- particles
def particle_table(hit_particle: np.ndarray, particles: pd.DataFrame) -> pd.DataFrame:
    """The particles that left hits, with their kinematics and hit counts.

    Args:
      hit_particle: [n_node] int64 particle id of every hit (0 = noise).
      particles: TrackML particles with ``particle_id, px, py, pz``.

    Returns:
      ``[n_particles]`` rows sorted by particle_id: ``particle_id`` int64, ``n_hits`` int64 (hits in the event),
      ``pt`` (GeV), ``eta`` float64.

    Raises:
      DataError: a column is missing or a hit's particle is not in particles.
    """
    missing = [c for c in ("particle_id", "px", "py", "pz") if c not in particles.columns]
    if missing:
        raise DataError(f"particles: missing column(s) {', '.join(missing)}")
    pid, n_hits = np.unique(hit_particle[hit_particle != 0], return_counts=True)
    index = pd.Index(particles["particle_id"].to_numpy(np.int64))
    if not index.is_unique:
        raise DataError("particles: particle_id is not unique")
    row = index.get_indexer(pid)
    if np.any(row < 0):
        raise DataError(f"truth: particle {int(pid[np.flatnonzero(row < 0)[0]])} is not in particles")
    px = particles["px"].to_numpy(np.float64)[row]
    py = particles["py"].to_numpy(np.float64)[row]
    pz = particles["pz"].to_numpy(np.float64)[row]
    pt = np.hypot(px, py)
    eta = np.arcsinh(np.divide(pz, pt, out=np.sign(pz) * 1e6, where=pt > 0))
    return pd.DataFrame({"particle_id": pid.astype(np.int64), "n_hits": n_hits.astype(np.int64), "pt": pt,
                         "eta": eta})


# ------------------------------------------------------------------------------------------------ matching
@dataclasses.dataclass(frozen=True)
class TrackMatch:
    """The double-majority matching of one event.

    Attributes:
      track_id: [n_tracks] int64 tracks with at least ``min_track_hits`` hits, sorted.
      track_hits: [n_tracks] int64 hits of each track.
      track_particle: [n_tracks] int64 majority particle of each track (0: noise).
      track_shared: [n_tracks] int64 hits of the track that belong to its majority particle.
      track_matched: [n_tracks] bool double-majority match.
      particle_id: [n_particles] int64 particles with hits, sorted.
      particle_matched: [n_particles] bool matched by a track.
    """

    track_id: np.ndarray
    track_hits: np.ndarray
    track_particle: np.ndarray
    track_shared: np.ndarray
    track_matched: np.ndarray
    particle_id: np.ndarray
    particle_matched: np.ndarray


def match_tracks(hit_particle: np.ndarray, hit_track: np.ndarray, min_track_hits: int) -> TrackMatch:
    """Matches reconstructed tracks and particles by double majority (see the module docstring).

    Args:
      hit_particle: [n_node] int64 particle of every hit (0 = noise).
      hit_track: [n_node] int64 track of every hit.
      min_track_hits: tracks with fewer hits are left out.

    Returns:
      The :class:`TrackMatch`.

    Raises:
      DataError: the two arrays differ in shape, or ``min_track_hits`` < 1.
    """
    hit_particle = np.asarray(hit_particle, np.int64)
    hit_track = np.asarray(hit_track, np.int64)
    if hit_particle.shape != hit_track.shape or hit_particle.ndim != 1:
        raise DataError(f"matching: hit_particle and hit_track must be [n_node] vectors of one length "
                        f"(got {hit_particle.shape} and {hit_track.shape})")
    if min_track_hits < 1:
        raise DataError(f"matching: min_track_hits must be >= 1, got {min_track_hits}")
    pids, p_hits = np.unique(hit_particle, return_counts=True)
    tids, t_inv, t_hits = np.unique(hit_track, return_inverse=True, return_counts=True)
    # (track, particle) pairs and their shared hits
    pair, n_shared = np.unique(np.stack([t_inv, np.searchsorted(pids, hit_particle)], 1), axis=0,
                               return_counts=True)
    # majority particle per track: most shared hits, ties to the smaller particle id (pids are sorted)
    order = np.lexsort((pair[:, 1], -n_shared, pair[:, 0]))
    first = np.ones(len(order), bool)
    first[1:] = pair[order[1:], 0] != pair[order[:-1], 0]
    best = order[first]  # one per track, in track order
    major_pos = pair[best, 1]
    shared = n_shared[best]
    major = pids[major_pos]
    big = t_hits >= min_track_hits
    matched = big & (major != 0) & (2 * shared > t_hits) & (2 * shared > p_hits[major_pos])
    real = pids != 0
    p_matched = np.zeros(len(pids), bool)
    p_matched[major_pos[matched]] = True
    return TrackMatch(
        tids[big], t_hits[big], major[big], shared[big], matched[big], pids[real], p_matched[real],
    )


# ------------------------------------------------------------------------------------------- track metrics
TRACK_COUNT_KEYS = ("particles", "matched_particles", "reconstructable", "matched_reconstructable", "tracks",
                    "matched_tracks")


def track_counts(
    particles: pd.DataFrame,
    match: TrackMatch,
    pt_cut: Optional[float],
    reconstructable_hits: int,
) -> dict[str, int]:
    """The counts behind the track metrics of one selection.

    Args:
      particles: :func:`particle_table` of the event.
      match: :func:`match_tracks` of the event.
      pt_cut: GeV, the selection's pT threshold (None: every particle).
      reconstructable_hits: hits a particle needs to be reconstructable.

    Returns:
      ``{"particles", "matched_particles", "reconstructable", "matched_reconstructable", "tracks",
      "matched_tracks"}`` (``tracks``: those whose majority particle is in the selection or is noise).

    Raises:
      DataError: ``particles`` and ``match`` list different particles.
    """
    pid = particles["particle_id"].to_numpy(np.int64)
    if not np.array_equal(pid, match.particle_id):
        raise DataError("metrics: the particle table and the matching list different particles")
    sel = _in_selection(particles["pt"].to_numpy(), pt_cut)
    reco = sel & (particles["n_hits"].to_numpy() >= reconstructable_hits)
    m = match.particle_matched
    # a track belongs to the selection when its majority particle does, or is noise
    major = match.track_particle
    pos = np.minimum(np.searchsorted(pid, major), max(len(pid) - 1, 0))
    t_in = major == 0
    known = ~t_in & (len(pid) > 0)
    t_in[known] = sel[pos[known]] & (pid[pos[known]] == major[known])
    return {
        "particles": int(sel.sum()),
        "matched_particles": int((sel & m).sum()),
        "reconstructable": int(reco.sum()),
        "matched_reconstructable": int((reco & m).sum()),
        "tracks": int(t_in.sum()),
        "matched_tracks": int((t_in & match.track_matched).sum()),
    }


def _ratio(num: float, den: float) -> Optional[float]:
    return float(num) / float(den) if den else None


def track_ratios(counts: Mapping[str, int]) -> dict[str, Optional[float]]:
    """Efficiencies and purity from (summed) :func:`track_counts`.

    Returns:
      ``{"physics_efficiency", "technical_efficiency", "purity"}``; None where the denominator is 0.
    """
    return {
        "physics_efficiency": _ratio(counts["matched_particles"], counts["particles"]),
        "technical_efficiency": _ratio(counts["matched_reconstructable"], counts["reconstructable"]),
        "purity": _ratio(counts["matched_tracks"], counts["tracks"]),
    }


def selection_score(truth: pd.DataFrame, submission: pd.DataFrame, hit_particle_pt: np.ndarray,
                    pt_cut: Optional[float]) -> float:
    """The TrackML score restricted to a selection (hits of other particles and noise weigh 0).

    Args:
      truth: TrackML truth with ``hit_id, particle_id, weight``; ``n_node`` rows.
      submission: ``hit_id, track_id`` of every truth hit.
      hit_particle_pt: [n_node] pT of each truth row's particle (any value for noise), in truth's row order.
      pt_cut: GeV, or None for the plain score.

    Returns:
      The score in [0, 1].

    Raises:
      DataError: as :func:`~trkx_tf.trackml.score.score_event`.
    """
    if pt_cut is None:
        return score_event(truth, submission)
    keep = np.asarray(hit_particle_pt) > pt_cut
    t = truth[["hit_id", "particle_id"]].copy()
    t["weight"] = np.where(keep, truth["weight"].to_numpy(np.float64), 0.0)
    return score_event(t, submission)


# -------------------------------------------------------------------------------------------- edge metrics
EDGE_COUNT_KEYS = ("truth", "edges", "true", "true_other")


def edge_counts(
    truth: TruthGraph,
    senders: np.ndarray,
    receivers: np.ndarray,
    stages: Mapping[str, np.ndarray],
    pt_cut: Optional[float],
) -> dict[str, dict[str, int]]:
    """The counts behind the edge metrics of one event and one selection.

    Args:
      truth: the event's truth graph.
      senders, receivers: [n_edge] hit rows of the candidate edges.
      stages: stage name -> [n_edge] bool, the edges the stage keeps (cumulative: a later stage keeps a subset).
      pt_cut: GeV, the selection's pT threshold (None: every particle).

    Returns:
      stage -> ``{"truth": truth-graph edges of the selection, "edges": edges kept, "true": true edges of the
      selection kept, "true_other": true edges of other particles kept}``.

    Raises:
      DataError: a stage mask has the wrong shape.
    """
    idx = match_truth(senders, receivers, truth)
    is_true = idx >= 0
    pt = np.zeros(len(idx))
    pt[is_true] = truth.pt[idx[is_true]]
    sel_true = is_true & _in_selection(pt, pt_cut)
    other_true = is_true & ~sel_true
    n_truth = int(_in_selection(truth.pt, pt_cut).sum())
    out = {}
    for name, mask in stages.items():
        mask = np.asarray(mask, bool)
        if mask.shape != idx.shape:
            raise DataError(f"metrics: stage {name!r} mask has shape {list(mask.shape)}, expected [{len(idx)}]")
        out[name] = {"truth": n_truth, "edges": int(mask.sum()), "true": int((mask & sel_true).sum()),
                     "true_other": int((mask & other_true).sum())}
    return out


def edge_ratios(counts: Mapping[str, int], input_counts: Optional[Mapping[str, int]] = None
                ) -> dict[str, Optional[float]]:
    """Efficiency and purity from (summed) :func:`edge_counts` of one stage.

    Args:
      counts: the stage's counts.
      input_counts: the counts of the stage before it (what this stage was given), if any.

    Returns:
      ``{"efficiency", "purity"}`` (efficiency over the truth graph: cumulative), plus, with ``input_counts``,
      ``"stage_efficiency"``: the fraction of the true edges the stage was given that it keeps (the filter's or
      the GNN's own efficiency). None where the denominator is 0.
    """
    out = {
        "efficiency": _ratio(counts["true"], counts["truth"]),
        "purity": _ratio(counts["true"], counts["edges"] - counts["true_other"]),
    }
    if input_counts is not None:
        out["stage_efficiency"] = _ratio(counts["true"], input_counts["true"])
    return out


# ----------------------------------------------------------------------------------------------- histograms
def efficiency_histogram(values: np.ndarray, matched: np.ndarray, bins: np.ndarray) -> dict[str, list]:
    """Matched and total particles per bin, with the efficiency and its binomial error.

    Args:
      values: [k] the binned quantity (pT, η) of the particles in the denominator.
      matched: [k] bool, whether each is matched.
      bins: [B + 1] bin edges (values outside are dropped).

    Returns:
      ``{"edges": [B + 1], "total": [B], "matched": [B], "efficiency": [B] (None for empty bins),
      "error": [B]}`` as plain lists.
    """
    values = np.asarray(values, np.float64)
    matched = np.asarray(matched, bool)
    total, _ = np.histogram(values, bins)
    good, _ = np.histogram(values[matched], bins)
    eff = np.divide(good, total, out=np.full(len(total), np.nan), where=total > 0)
    err = np.sqrt(np.divide(eff * (1 - eff), total, out=np.zeros(len(total)), where=total > 0))
    return {
        "edges": [float(b) for b in bins],
        "total": total.astype(int).tolist(),
        "matched": good.astype(int).tolist(),
        "efficiency": [None if np.isnan(e) else float(e) for e in eff],
        "error": [float(e) for e in np.nan_to_num(err)],
    }
