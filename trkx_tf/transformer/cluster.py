"""EncReg track building: hits clustered in the regressed parameter space, then TrackML submissions and metrics.

Every hit's regressed (sin φ, cos φ, θ, q/pT) is a point; q/pT is multiplied by ``qpt_scale`` first (the scale
EncReg is trained with, :mod:`trkx_tf.transformer.heads`) so the four coordinates have comparable spreads. Clusters are tracks. The clustering is scikit-learn's: ``hdbscan``
(:class:`sklearn.cluster.HDBSCAN` with ``min_cluster_size`` and ``cluster_selection_epsilon = eps``) or
``dbscan`` (:class:`sklearn.cluster.DBSCAN` with ``eps`` and ``min_samples = min_cluster_size``). A hit the
clustering leaves as noise (label -1) becomes a track of its own. EncCla's tracks are its predicted classes
(:func:`class_tracks`), as in the paper.

The metrics are the existing evaluation's (:func:`trkx_tf.reco.evaluate.evaluate_event`: TrackML score,
double-majority efficiency), plus the paper's **perfect** and **LHC** efficiencies (:func:`paper_efficiencies`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from trkx_tf.config import TransformerConfig, schema_default
from trkx_tf.errors import ConfigError
from trkx_tf.reco.metrics import match_tracks


def cluster_points(points: np.ndarray, method: str = schema_default(TransformerConfig, "cluster"),
                   min_cluster_size: int = schema_default(TransformerConfig, "min_cluster_size"),
                   eps: float = schema_default(TransformerConfig, "eps")) -> np.ndarray:
    """Cluster labels of points (a track id per point; noise points get ids of their own).

    Args:
      points: [n, D] float.
      method: ``hdbscan`` or ``dbscan``.
      min_cluster_size: HDBSCAN's min_cluster_size / DBSCAN's min_samples (>= 2).
      eps: DBSCAN's radius / HDBSCAN's cluster_selection_epsilon.

    Returns:
      [n] int64 track ids >= 0: clusters first (0 .. C-1), then one id per noise point.

    Raises:
      ConfigError: an unknown method or min_cluster_size < 2.
    """
    from sklearn.cluster import DBSCAN, HDBSCAN

    points = np.asarray(points, np.float64)
    n = len(points)
    if min_cluster_size < 2:
        raise ConfigError(f"transformer.min_cluster_size must be >= 2 (got {min_cluster_size})")
    if n == 0:
        return np.zeros(0, np.int64)
    if n < min_cluster_size:
        return np.arange(n, dtype=np.int64)
    if method == "hdbscan":
        labels = HDBSCAN(min_cluster_size=min_cluster_size, cluster_selection_epsilon=float(eps),
                         copy=True).fit_predict(points)
    elif method == "dbscan":
        if eps <= 0:
            raise ConfigError(f"transformer.eps must be > 0 for DBSCAN (got {eps})")
        labels = DBSCAN(eps=float(eps), min_samples=min_cluster_size).fit_predict(points)
    else:
        raise ConfigError(f"transformer.cluster must be 'hdbscan' or 'dbscan' (got {method!r})")
    labels = labels.astype(np.int64)
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return labels


def regressed_tracks(regressed: np.ndarray, cfg) -> np.ndarray:
    """The tracks of an event's hits from their EncReg outputs [n, 4], clustered as the ``transformer`` section says."""
    points = np.asarray(regressed, np.float64).copy()
    points[:, 3] *= cfg.qpt_scale
    return cluster_points(points, cfg.cluster, cfg.min_cluster_size, cfg.eps)


def class_tracks(classes: np.ndarray) -> np.ndarray:
    """EncCla's tracks: the hits of one predicted class form one track."""
    return np.unique(np.asarray(classes), return_inverse=True)[1].astype(np.int64)


def submission(event_id: int, hit_ids: np.ndarray, tracks: np.ndarray) -> pd.DataFrame:
    """A TrackML submission (event_id, hit_id, track_id; track ids from 1)."""
    return pd.DataFrame({"event_id": np.full(len(hit_ids), int(event_id), np.int64),
                         "hit_id": np.asarray(hit_ids, np.int64), "track_id": np.asarray(tracks, np.int64) + 1})


def paper_efficiencies(hit_particle: np.ndarray, hit_track: np.ndarray,
                       min_hits: int = 1) -> dict[str, Optional[float]]:
    """The paper's track efficiencies besides double majority, over particles with at least ``min_hits`` hits.

    * perfect: the particle's hits form exactly one track, with no other hit;
    * LHC: the particle is the majority of a track holding >= 75 % hits of it (the track's purity >= 0.75).

    Args:
      hit_particle: [n] particle of every hit (0: noise, never counted).
      hit_track: [n] track of every hit.
      min_hits: particles with fewer hits are not counted.

    Returns:
      ``{"perfect_efficiency", "lhc_efficiency", "particles"}`` (None when no particle is counted).
    """
    hit_particle = np.asarray(hit_particle, np.int64)
    hit_track = np.asarray(hit_track, np.int64)
    frame = pd.DataFrame({"p": hit_particle, "t": hit_track})
    p_hits = frame.groupby("p").size()
    t_hits = frame.groupby("t").size()
    pairs = frame.groupby(["t", "p"]).size().rename("n").reset_index()
    pairs = pairs.sort_values(["t", "n", "p"], ascending=[True, False, True]).drop_duplicates("t")
    counted = p_hits[(p_hits.index != 0) & (p_hits >= min_hits)]
    purity = pairs["n"].to_numpy() / t_hits.loc[pairs["t"]].to_numpy()
    exact = pairs["n"].to_numpy() == p_hits.loc[pairs["p"]].to_numpy()
    lhc = set(pairs["p"].to_numpy()[purity >= 0.75])
    perfect = set(pairs["p"].to_numpy()[(purity == 1.0) & exact])
    n = len(counted)
    ids = counted.index.to_numpy()
    return {"perfect_efficiency": float(np.isin(ids, list(perfect)).mean()) if n else None,
            "lhc_efficiency": float(np.isin(ids, list(lhc)).mean()) if n else None, "particles": int(n)}


def double_majority_efficiency(hit_particle: np.ndarray, hit_track: np.ndarray, min_track_hits: int = 1,
                               min_particle_hits: int = 1) -> Optional[float]:
    """Share of particles (with >= ``min_particle_hits`` hits) matched by double majority
    (:func:`trkx_tf.reco.metrics.match_tracks`; tracks need ``min_track_hits`` hits)."""
    match = match_tracks(hit_particle, hit_track, min_track_hits)
    counts = pd.Series(np.asarray(hit_particle)[np.asarray(hit_particle) != 0]).value_counts()
    keep = np.isin(match.particle_id, counts[counts >= min_particle_hits].index.to_numpy())
    return float(match.particle_matched[keep].mean()) if keep.any() else None
