"""Local attention for full events: the hit transformer run on overlapping φ–η sectors.

Dense attention over the ~100k hits of a μ=200 event needs a 10^10-entry matrix per head: it does not fit. Here
the event is cut as the graph sectors are (:func:`trkx_tf.graphs.sectors.sector_index`: ``phi_sectors`` equal
φ slices times ``eta_sectors`` η slices of equal hit counts, η seen from the origin). Each sector's *core* is its
slice; its *members* are the hits within ``overlap`` (rad in φ, with the ±π seam, and units of η) of the core's
ranges. Attention runs over a sector's members only (a padded sequence of at most ``max members`` hits), and a
hit's output is taken from the sector whose core holds it, so every hit gets exactly one output, computed with
the context of its neighbourhood. Sectors are run ``sectors_per_batch`` at a time, padded to the largest one's
member count (rounded up to ``quantum``): the memory is bounded by that batch, whatever the event's size.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from trkx_tf.errors import ConfigError
from trkx_tf.graphs.sectors import sector_index


@dataclasses.dataclass(frozen=True)
class Sector:
    """One sector: the rows of its member hits, and which of them are its core (a boolean per member)."""

    members: np.ndarray
    core: np.ndarray


def sectors(phi: np.ndarray, eta: np.ndarray, n_phi: int, n_eta: int, overlap: float) -> list[Sector]:
    """The sectors of an event's hits (see the module docstring); empty sectors are left out.

    Args:
      phi: [n] hit φ (rad, in [-π, π]).
      eta: [n] hit η.
      n_phi, n_eta: sector counts.
      overlap: halo width (rad in φ, units in η).

    Returns:
      The sectors; every hit is in exactly one core.

    Raises:
      ConfigError: counts < 1 or overlap < 0.
    """
    if n_phi < 1 or n_eta < 1 or overlap < 0:
        raise ConfigError(f"transformer sectors: need phi >= 1, eta >= 1, overlap >= 0 (got {n_phi}, {n_eta}, "
                          f"{overlap})")
    phi, eta = np.asarray(phi, np.float64), np.asarray(eta, np.float64)
    inner = np.quantile(eta, np.arange(1, n_eta) / n_eta) if len(eta) else np.zeros(n_eta - 1)
    eta_edges = np.concatenate([[-np.inf], inner, [np.inf]])
    core_of = sector_index(phi, eta, n_phi, n_eta, eta_edges)
    width = 2 * np.pi / n_phi
    out = []
    for k in np.unique(core_of):
        i_phi, i_eta = divmod(int(k), n_eta)
        centre = -np.pi + (i_phi + 0.5) * width
        dphi = np.abs((phi - centre + np.pi) % (2 * np.pi) - np.pi)
        near_phi = dphi <= width / 2 + overlap if n_phi > 1 else np.ones(len(phi), bool)
        near_eta = (eta >= eta_edges[i_eta] - overlap) & (eta <= eta_edges[i_eta + 1] + overlap)
        members = np.flatnonzero((near_phi & near_eta) | (core_of == k))
        out.append(Sector(members, core_of[members] == k))
    return out


def local_outputs(apply: Callable[[dict], np.ndarray], features: np.ndarray, phi: np.ndarray, eta: np.ndarray,
                  outputs: int, n_phi: int, n_eta: int, overlap: float, sectors_per_batch: int = 8,
                  quantum: int = 64) -> tuple[np.ndarray, dict]:
    """The model's outputs for every hit of an event, computed sector by sector.

    Args:
      apply: the model on a batch (``{"hits" [S, M, F], "mask" [S, M]}`` -> [S, M, K] numpy).
      features: [n, F] input features.
      phi, eta: [n] hit φ and η.
      outputs: K.
      n_phi, n_eta, overlap: the sectors (:func:`sectors`).
      sectors_per_batch: sectors run together.
      quantum: padded member counts are multiples of it.

    Returns:
      ``([n, K] float32 outputs, info)``; info: ``sectors``, ``max_members``, ``mean_members`` and
      ``member_ratio`` (members summed over sectors / hits: the overlap's extra work).
    """
    parts = sectors(phi, eta, n_phi, n_eta, overlap)
    parts.sort(key=lambda s: len(s.members))  # similar sizes together: less padding
    out = np.zeros((len(features), outputs), np.float32)
    for start in range(0, len(parts), sectors_per_batch):
        chunk = parts[start:start + sectors_per_batch]
        m = int(-(-max(len(s.members) for s in chunk) // quantum) * quantum)
        hits = np.zeros((len(chunk), m, features.shape[1]), np.float32)
        mask = np.zeros((len(chunk), m), np.float32)
        for i, s in enumerate(chunk):
            hits[i, :len(s.members)] = features[s.members]
            mask[i, :len(s.members)] = 1.0
        result = apply({"hits": hits, "mask": mask})
        for i, s in enumerate(chunk):
            out[s.members[s.core]] = result[i, :len(s.members)][s.core]
    sizes = np.array([len(s.members) for s in parts])
    info = {"sectors": len(parts), "max_members": int(sizes.max(initial=0)),
            "mean_members": float(sizes.mean()) if len(sizes) else 0.0,
            "member_ratio": float(sizes.sum() / max(len(features), 1))}
    return out, info
