"""Synthetic padded batches behind the same contract as the shard reader (:mod:`trkx_tf.graphs.batch`).

For tests, benchmarks and smoke runs that must not depend on TrackML files: random graphs of a given size, a
toy tracking event with a learnable truth, and the padding / concatenation helpers that turn single graphs into
bucket-shaped batches. Everything here is numpy; nothing imports TensorFlow.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``n_node``, ``n_edge``, ``N``, ``E``, ``F``, ``G``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trkx_tf.errors import DataError
from trkx_tf.graphs.batch import BATCH_KEYS


def graph_batch(nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray, labels: np.ndarray,
                weights: np.ndarray | None = None) -> dict:
    """A one-graph batch without padding.

    Args:
      nodes: [n_node, F] features.
      senders: [n_edge] ints in [0, n_node).
      receivers: [n_edge] ints in [0, n_node).
      labels: [n_edge] 0/1.
      weights: [n_edge] loss weights (default ones).

    Returns:
      A padded-batch dict (see :mod:`trkx_tf.graphs.batch`) with ``N = n_node``, ``E = n_edge``, ``G = 1``.

    Raises:
      DataError: an index is out of range or the edge arrays differ in length.
    """
    nodes = np.asarray(nodes, np.float32)
    n_node, n_edge = nodes.shape[0], len(senders)
    if not (len(receivers) == len(labels) == n_edge) or (weights is not None and len(weights) != n_edge):
        raise DataError(f"edge arrays differ in length: senders {len(senders)}, receivers {len(receivers)}, "
                        f"labels {len(labels)}" + (f", weights {len(weights)}" if weights is not None else ""))
    for name, idx in (("senders", senders), ("receivers", receivers)):
        if n_edge and (np.min(idx) < 0 or np.max(idx) >= n_node):
            raise DataError(f"{name} out of range [0, {n_node}): min {np.min(idx)}, max {np.max(idx)}")
    return {
        "nodes": nodes,
        "senders": np.asarray(senders, np.int32),
        "receivers": np.asarray(receivers, np.int32),
        "node_mask": np.ones(n_node, np.float32),
        "edge_mask": np.ones(n_edge, np.float32),
        "edge_labels": np.asarray(labels, np.float32),
        "edge_weights": np.ones(n_edge, np.float32) if weights is None else np.asarray(weights, np.float32),
        "n_node": np.array([n_node], np.int32),
        "n_edge": np.array([n_edge], np.int32),
    }


def concat_batches(batches: Sequence[dict]) -> dict:
    """Concatenates batches along the node and edge axes (their graphs become the graphs of one batch).

    Args:
      batches: padded batches; their padding is kept in place (and stays masked).

    Returns:
      One batch whose ``n_node``/``n_edge`` list every graph; edge indices are offset to the new node rows.
    """
    out = {k: [] for k in BATCH_KEYS}
    offset = 0
    for b in batches:
        for k in BATCH_KEYS:
            out[k].append(b[k] + offset if k in ("senders", "receivers") else b[k])
        offset += b["nodes"].shape[0]
    return {k: np.concatenate(v, 0) for k, v in out.items()}


def pad_batch(batch: dict, n_nodes: int, n_edges: int) -> dict:
    """Appends padding rows so the batch has exactly ``N = n_nodes`` nodes and ``E = n_edges`` edges.

    Padded nodes are zero rows with mask 0; padded edges have label, weight and mask 0 and point at the first
    padded node, or at node 0 when no node is padded (the batch contract).

    Args:
      batch: a padded batch with N0 <= n_nodes nodes and E0 <= n_edges edges.
      n_nodes: N.
      n_edges: E.

    Returns:
      The padded batch (new arrays).

    Raises:
      DataError: the batch is already larger than the requested size.
    """
    n0, e0 = batch["nodes"].shape[0], batch["senders"].shape[0]
    if n0 > n_nodes or e0 > n_edges:
        raise DataError(f"batch of {n0} nodes / {e0} edges does not fit a bucket of {n_nodes} / {n_edges}")
    pn, pe = n_nodes - n0, n_edges - e0
    target = n0 if pn > 0 else 0
    out = dict(batch)
    out["nodes"] = np.concatenate([batch["nodes"], np.zeros((pn, batch["nodes"].shape[1]), np.float32)], 0)
    out["node_mask"] = np.concatenate([batch["node_mask"], np.zeros(pn, np.float32)])
    for key in ("senders", "receivers"):
        out[key] = np.concatenate([batch[key], np.full(pe, target, np.int32)])
    for key in ("edge_mask", "edge_labels", "edge_weights"):
        out[key] = np.concatenate([batch[key], np.zeros(pe, np.float32)])
    return out


def random_graph(n_node: int, n_edge: int, n_features: int, seed: int = 0, true_fraction: float = 0.3) -> dict:
    """A one-graph batch with random features, random edges and random labels (for shapes and timing).

    Args:
      n_node: nodes.
      n_edge: edges.
      n_features: F.
      seed: numpy seed.
      true_fraction: probability that an edge is labelled true.

    Returns:
      A padded batch without padding (see :func:`graph_batch`).
    """
    rng = np.random.default_rng(seed)
    return graph_batch(
        rng.normal(size=(n_node, n_features)).astype(np.float32),
        rng.integers(0, n_node, n_edge), rng.integers(0, n_node, n_edge),
        (rng.random(n_edge) < true_fraction).astype(np.float32),
        rng.uniform(0.5, 1.5, n_edge).astype(np.float32),
    )


def toy_tracking_graph(n_particles: int, n_layers: int = 8, seed: int = 0, noise_hits: float = 0.1,
                       phi_window: float = 0.08, max_edges: int | None = None) -> dict:
    """A toy barrel event with a learnable truth: helix-like tracks crossing concentric layers.

    Particles start at the origin with a random azimuth, a random curvature (signed, pT-like) and a random
    slope; each leaves one hit per layer (small Gaussian smearing), plus uniform noise hits. Candidate edges join
    hits of consecutive layers whose azimuths differ by less than ``phi_window``; an edge is true when both hits
    belong to the same particle. Features are ``(r, phi, z)`` scaled to O(1), so an edge classifier must learn
    the local track curvature and slope to separate true from fake edges.

    Args:
      n_particles: particles in the event.
      n_layers: detector layers (radii 1..n_layers).
      seed: numpy seed.
      noise_hits: noise hits as a fraction of the particle hits.
      phi_window: maximal azimuth difference of a candidate edge (radians).
      max_edges: keep at most this many candidate edges (a random subset), or all.

    Returns:
      A padded batch without padding, F = 3.
    """
    rng = np.random.default_rng(seed)
    radii = np.arange(1, n_layers + 1, dtype=np.float64)
    phi0 = rng.uniform(-np.pi, np.pi, n_particles)
    curv = rng.uniform(-0.06, 0.06, n_particles)
    slope = rng.uniform(-2.0, 2.0, n_particles)
    hit_r = np.tile(radii, n_particles)
    pid = np.repeat(np.arange(n_particles), n_layers)
    hit_phi = phi0[pid] + curv[pid] * hit_r + rng.normal(0, 0.002, hit_r.size)
    hit_z = slope[pid] * hit_r + rng.normal(0, 0.01, hit_r.size)
    n_noise = int(noise_hits * hit_r.size)
    if n_noise:
        hit_r = np.concatenate([hit_r, rng.integers(1, n_layers + 1, n_noise).astype(np.float64)])
        hit_phi = np.concatenate([hit_phi, rng.uniform(-np.pi, np.pi, n_noise)])
        hit_z = np.concatenate([hit_z, rng.uniform(-2.0, 2.0, n_noise) * hit_r[-n_noise:]])
        pid = np.concatenate([pid, -1 - np.arange(n_noise)])
    hit_phi = (hit_phi + np.pi) % (2 * np.pi) - np.pi
    senders, receivers = [], []
    layer = np.rint(hit_r).astype(int)
    for k in range(1, n_layers):
        inner, outer = np.flatnonzero(layer == k), np.flatnonzero(layer == k + 1)
        if inner.size == 0 or outer.size == 0:
            continue
        order = np.argsort(hit_phi[outer])
        sorted_phi = hit_phi[outer][order]
        lo = np.searchsorted(sorted_phi, hit_phi[inner] - phi_window)
        hi = np.searchsorted(sorted_phi, hit_phi[inner] + phi_window)
        for i, a, b in zip(inner, lo, hi):
            senders.append(np.full(b - a, i))
            receivers.append(outer[order[a:b]])
    senders = np.concatenate(senders) if senders else np.zeros(0, int)
    receivers = np.concatenate(receivers) if receivers else np.zeros(0, int)
    if max_edges is not None and senders.size > max_edges:
        keep = np.sort(rng.choice(senders.size, max_edges, replace=False))
        senders, receivers = senders[keep], receivers[keep]
    labels = (pid[senders] == pid[receivers]) & (pid[senders] >= 0)
    nodes = np.stack([hit_r / n_layers, hit_phi / np.pi, hit_z / (2.0 * n_layers)], 1)
    return graph_batch(nodes, senders, receivers, labels.astype(np.float32))
