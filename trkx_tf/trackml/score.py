"""The TrackML score, the official hit weights, and the submission CSV.

Score (TrackML challenge definition): every reconstructed track (the hits sharing one ``track_id``) is matched to
its majority particle, the particle that contributes most of its hits (noise, particle_id 0, counts as a
particle, with weight 0). The track counts when the majority particle holds more than half of the track's hits
*and* the track holds more than half of the particle's hits. The score is the summed truth weight of the
majority particle's hits in the counted tracks, divided by the event's total weight; a perfect reconstruction
scores 1. Ties never matter: a tie for the majority means the majority has at most half of the track's hits.

Hit weights (the challenge's recipe, for events that lack them): weight = w_pt(particle pT) × w_order(rank of
the hit along the particle, by ``|tz - vz|``, among the particle's hits), normalised to sum 1 over the event.
w_pt is 0.2 below 0.5 GeV, rising linearly to 1 at 3 GeV and flat above (0 below 0.05 GeV); w_order
interpolates the profile (10, 8, 6, 5, 3, 3, 3, 5, 6) over the particle's hits, normalised per particle, so
that the first and the last hits weigh more. Particles with fewer than 4 hits and noise hits weigh 0; hits of
particles with more than 20 hits use the 20-hit profile, and hits past the 20th weigh 0.

Submission: a CSV with columns ``event_id, hit_id, track_id``; every hit of the event exactly once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.trackml.io import _conform, _read_csv, _rows, _write_csv_atomic

ORDER_PROFILE = (10.0, 8.0, 6.0, 5.0, 3.0, 3.0, 3.0, 5.0, 6.0)
ORDER_MIN_HITS = 4
ORDER_MAX_HITS = 20
PT_INF, PT_SUP, W_MIN, W_MAX, PT_FLOOR = 0.5, 3.0, 0.2, 1.0, 0.05

SUBMISSION_COLUMNS = {"event_id": "int64", "hit_id": "int32", "track_id": "int64"}


def _order_matrix() -> np.ndarray:
    """``[ORDER_MAX_HITS + 1, ORDER_MAX_HITS]``: weight of hit i (column) on a particle with n hits (row)."""
    w = np.zeros((ORDER_MAX_HITS + 1, ORDER_MAX_HITS))
    profile = np.asarray(ORDER_PROFILE)
    for n in range(ORDER_MIN_HITS, ORDER_MAX_HITS + 1):
        support = np.arange(len(profile)) * (n - 1) / (len(profile) - 1)
        row = np.interp(np.arange(n), support, profile)
        w[n, :n] = row / row.sum()
    return w


_ORDER = _order_matrix()


def pt_weight(pt: np.ndarray) -> np.ndarray:
    """The pT factor of the hit weight; pt ``[n]`` in GeV -> ``[n]``."""
    return np.interp(np.asarray(pt, np.float64), [PT_FLOOR, PT_INF, PT_SUP], [W_MIN, W_MIN, W_MAX],
                     left=0.0, right=W_MAX)


def order_weight(ihit: np.ndarray, nhits: np.ndarray) -> np.ndarray:
    """The order factor of the hit weight: hit rank ``ihit`` (0-based) of a particle with ``nhits`` hits."""
    ihit = np.asarray(ihit, np.int64)
    n = np.minimum(np.asarray(nhits, np.int64), ORDER_MAX_HITS)
    ok = (n >= ORDER_MIN_HITS) & (ihit < ORDER_MAX_HITS) & (ihit >= 0)
    out = np.zeros(ihit.shape)
    out[ok] = _ORDER[n[ok], np.minimum(ihit[ok], n[ok] - 1)]
    return out


def hit_weights(truth: pd.DataFrame, particles: pd.DataFrame) -> np.ndarray:
    """The official TrackML hit weights.

    Args:
      truth: ``[n_hits]`` rows with hit_id, particle_id (0 = noise) and tz.
      particles: ``[n_particles]`` rows with particle_id, vz, px, py.

    Returns:
      ``[n_hits]`` float64 weights in truth's row order, summing to 1 (all zero when no hit can weigh anything).

    Raises:
      DataError: a truth particle_id (other than 0) is not in particles.
    """
    pid = truth["particle_id"].to_numpy(np.int64)
    tz = truth["tz"].to_numpy(np.float64)
    ppid = particles["particle_id"].to_numpy(np.int64)
    signal = pid != 0
    row = np.zeros(len(pid), np.int64)
    found = np.zeros(len(pid), bool)
    if len(ppid):
        order = np.argsort(ppid, kind="stable")
        pos = np.minimum(np.searchsorted(ppid[order], pid), len(ppid) - 1)
        row = order[pos]
        found = ppid[row] == pid
    if (signal & ~found).any():
        raise DataError(f"truth: column 'particle_id' has values not in particles in {_rows(signal & ~found)}")
    vz = particles["vz"].to_numpy(np.float64)
    pt = np.hypot(particles["px"].to_numpy(np.float64), particles["py"].to_numpy(np.float64))
    w_pt = np.where(signal, pt_weight(pt[row]) if len(ppid) else 0.0, 0.0)
    dist = np.abs(tz - np.where(signal, vz[row] if len(ppid) else 0.0, 0.0))
    frame = pd.DataFrame({"pid": pid, "dist": dist})
    nhits = frame.groupby("pid")["dist"].transform("size").to_numpy()
    # rank with ties averaged, as the challenge's pandas rank(); 0-based and truncated to an integer
    rank = frame.groupby("pid")["dist"].rank(method="average").to_numpy()
    ihit = np.floor(rank - 1.0).astype(np.int64)
    w = w_pt * order_weight(ihit, np.where(signal, nhits, 0))
    total = w.sum()
    return w / total if total > 0 else w


def _check_submission(truth: pd.DataFrame, submission: pd.DataFrame) -> None:
    for col in ("hit_id", "track_id"):
        if col not in submission.columns:
            raise DataError(f"submission: missing column {col!r}")
    sub_ids = submission["hit_id"].to_numpy()
    dup = pd.Series(sub_ids).duplicated().to_numpy()
    if dup.any():
        raise DataError(f"submission: column 'hit_id' has duplicate values in {_rows(dup)}")
    truth_ids = truth["hit_id"].to_numpy()
    extra = ~np.isin(sub_ids, truth_ids)
    if extra.any():
        raise DataError(f"submission: column 'hit_id' has values not in truth in {_rows(extra)}")
    lacking = ~np.isin(truth_ids, sub_ids)
    if lacking.any():
        raise DataError(f"submission: misses truth hits in {_rows(lacking)} of truth")


def score_event(truth: pd.DataFrame, submission: pd.DataFrame) -> float:
    """The TrackML score of one event's reconstruction.

    Args:
      truth: ``[n_hits]`` rows with hit_id, particle_id and weight.
      submission: ``[n_hits]`` rows with hit_id and track_id, every truth hit exactly once.

    Returns:
      The score in [0, 1] (0 when the event's total weight is 0).

    Raises:
      DataError: the submission lacks a column, repeats a hit, or does not cover exactly the truth hits.
    """
    _check_submission(truth, submission)
    total = float(truth["weight"].to_numpy(np.float64).sum())
    if total <= 0:
        return 0.0
    ev = pd.DataFrame({
        "hit_id": truth["hit_id"].to_numpy(),
        "particle_id": truth["particle_id"].to_numpy(np.int64),
        "weight": truth["weight"].to_numpy(np.float64),
    }).merge(pd.DataFrame({"hit_id": submission["hit_id"].to_numpy(),
                           "track_id": submission["track_id"].to_numpy()}), on="hit_id", how="left")
    particle_nhits = ev.groupby("particle_id").size()
    track_nhits = ev.groupby("track_id").size()
    pairs = ev.groupby(["track_id", "particle_id"], sort=True).agg(n=("weight", "size"), w=("weight", "sum"))
    pairs = pairs.reset_index()
    # majority particle of each track: most hits, ties to the smallest particle_id (they cannot count anyway)
    pairs = pairs.sort_values(["track_id", "n", "particle_id"], ascending=[True, False, True], kind="stable")
    major = pairs.drop_duplicates("track_id", keep="first")
    n_track = track_nhits.loc[major["track_id"].to_numpy()].to_numpy()
    n_particle = particle_nhits.loc[major["particle_id"].to_numpy()].to_numpy()
    n = major["n"].to_numpy()
    good = (2 * n > n_track) & (2 * n > n_particle)
    return float(major["w"].to_numpy()[good].sum() / total)


def throughput_score(accuracy: float, seconds_per_event: float) -> float:
    """The TrackML challenge's Throughput-phase score of an accuracy reached at a speed.

    ``sqrt(ln(1 + 600 / t) · (A − 0.5)²)`` for ``A > 0.5``, else 0, with ``A`` the TrackML score and ``t`` the
    wall time per event in seconds (the challenge measured it on 2 CPU cores; its winner, A = 0.944 at
    t = 0.56 s, scored 1.17).

    Raises:
      DataError: a time that is not positive and finite.
    """
    if not (np.isfinite(seconds_per_event) and seconds_per_event > 0):
        raise DataError(f"throughput score: the time per event must be positive, got {seconds_per_event}")
    if not accuracy > 0.5:
        return 0.0
    return float(np.sqrt(np.log1p(600.0 / seconds_per_event) * (accuracy - 0.5) ** 2))


def read_submission(path: os.PathLike | str) -> pd.DataFrame:
    """Reads a submission CSV.

    Returns:
      ``[n_hits]`` rows: event_id int64, hit_id int32, track_id int64.

    Raises:
      DataError: the file is missing or unreadable, a column is missing, not an integer or not finite, or a hit
        appears twice in one event.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: submission file not found")
    sub = _conform(_read_csv(path), SUBMISSION_COLUMNS, path.name)
    dup = sub.duplicated(["event_id", "hit_id"]).to_numpy()
    if dup.any():
        raise DataError(f"{path.name}: column 'hit_id' has duplicate values in {_rows(dup)}")
    return sub


def write_submission(path: os.PathLike | str, submission: pd.DataFrame) -> None:
    """Writes a submission CSV atomically (``.gz`` suffix: gzip-compressed).

    Args:
      path: destination file.
      submission: rows with event_id, hit_id and track_id; a hit may appear once per event.

    Raises:
      DataError: a column is missing or not an integer, or a hit appears twice in one event.
    """
    path = Path(path)
    sub = _conform(submission, SUBMISSION_COLUMNS, f"{path.name} (writing)")
    dup = sub.duplicated(["event_id", "hit_id"]).to_numpy()
    if dup.any():
        raise DataError(f"{path.name} (writing): column 'hit_id' has duplicate values in {_rows(dup)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_csv_atomic(sub, path, compress=path.name.endswith(".gz"))
