"""Track seeds from scored triplets, and the seed metrics.

A seed is three hits that start a track: the hits ``a, b, c`` of a triplet (:mod:`trkx_tf.graphs.triplets`,
inner to outer) whose classifier score is at least a threshold, with that score.

Seed metrics (as the Exa.TrkX paper and issue 20 define them), for particles above a pT cut:

* **efficiency**: the fraction of the selected particles (pT above the cut, at least three hits in the event)
  that are *seeded*: one seed holds three of the particle's hits;
* **purity**: the fraction of all seeds whose three hits belong to one particle (noise hits belong to none).
  Purity is over every seed, whatever its particle's pT.

``trkx-infer --seeds`` (:func:`infer_seeds`) finds the seeds of every event after the tracks: from the GNN-scored
edges that trkx-infer wrote (``event<ID>-edges.npz``), the doublets with a GNN score of at least
``infer.seed_doublet_threshold`` become triplets, the triplet classifier (``model.triplet``, checkpoint
``infer.seed_ckpt``) scores them, and those scoring at least ``infer.seed_threshold`` are written as
``event<ID>-seeds.csv``.

Shape vocabulary: ``n_seed`` seeds; hit arrays as in :mod:`trkx_tf.graphs.batch` (``n_node`` hits).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Sequence

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


# ------------------------------------------------------------------------------------------------ inference
class SeedFinder:
    """Seeds of one event from its GNN-scored edges: doublets -> triplets -> triplet classifier -> seeds.

    Args:
      model: the triplet classifier, a built Sonnet edge classifier taking the triplet batch
        (:func:`trkx_tf.graphs.triplets.triplet_batch`, with ``edges``) and returning [n_triplet] logits.
      doublet_threshold: GNN scores at least this make an edge a doublet (``infer.seed_doublet_threshold``).
      threshold: triplet scores at least this make a seed (``infer.seed_threshold``).
      r_scale, z_scale: the node features' scales (``graph.r_scale``, ``graph.z_scale``).
      chunk: triplets scored per call (bounds memory) when the classifier scores each triplet alone (the
        edge-filter MLP); a message-passing classifier (IN, AGNN) sees the whole triplet graph at once.
    """

    def __init__(self, model, doublet_threshold: float, threshold: float, r_scale: float, z_scale: float,
                 chunk: int = 262144):
        import tensorflow as tf

        from trkx_tf.graphs.triplets import DOUBLET_FEATURES, TRIPLET_FEATURES

        self.model = model
        self.doublet_threshold, self.threshold = float(doublet_threshold), float(threshold)
        self.r_scale, self.z_scale = float(r_scale), float(z_scale)
        from trkx_tf.models.filter import EdgeFilter

        self.chunk = int(chunk) if isinstance(model, EdgeFilter) else None
        signature = {"nodes": tf.TensorSpec([None, len(DOUBLET_FEATURES)], tf.float32),
                     "senders": tf.TensorSpec([None], tf.int32), "receivers": tf.TensorSpec([None], tf.int32),
                     "edges": tf.TensorSpec([None, len(TRIPLET_FEATURES)], tf.float32),
                     "edge_mask": tf.TensorSpec([None], tf.float32), "n_node": tf.TensorSpec([1], tf.int32),
                     "n_edge": tf.TensorSpec([1], tf.int32)}
        self._fn = tf.function(lambda b: tf.sigmoid(model(b)), input_signature=[signature])

    def score(self, batch: dict) -> np.ndarray:
        """[n_triplet] float32 scores of a triplet batch, ``chunk`` triplets at a time (all at once for a GNN)."""
        n = len(batch["senders"])
        step = self.chunk or max(n, 1)
        out = []
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            part = {"nodes": batch["nodes"], "n_node": batch["n_node"], "n_edge": np.array([hi - lo], np.int32)}
            part.update({k: batch[k][lo:hi] for k in ("senders", "receivers", "edges", "edge_mask")})
            out.append(self._fn(part).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    def __call__(self, nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray, gnn_scores: np.ndarray,
                 hit_id: np.ndarray) -> tuple[Seeds, dict]:
        """The seeds of one event.

        Args:
          nodes: [n_node, F] hit features (``r, phi, z`` first).
          senders: [n_edge] int hit rows of the GNN's edges.
          receivers: [n_edge] int hit rows.
          gnn_scores: [n_edge] GNN scores (NaN: the edge did not reach the GNN).
          hit_id: [n_node] int TrackML hit ids.

        Returns:
          ``(seeds, info)``: info has ``doublets``, ``triplets`` and the wall seconds of ``triplets`` (conversion
          and features) and ``scoring``.

        Raises:
          DataError: bad shapes or indices.
        """
        import time

        from trkx_tf.graphs.triplets import triplet_batch

        gnn_scores = np.nan_to_num(np.asarray(gnn_scores, np.float32), nan=-1.0)
        keep = gnn_scores >= self.doublet_threshold
        t = time.perf_counter()
        batch, triplets = triplet_batch(nodes, np.asarray(senders)[keep], np.asarray(receivers)[keep],
                                        gnn_scores[keep], self.r_scale, self.z_scale)
        t_triplets = time.perf_counter() - t
        t = time.perf_counter()
        scores = self.score(batch)
        info = {"doublets": int(keep.sum()), "triplets": triplets.n_triplet,
                "seconds": {"triplets": t_triplets, "scoring": time.perf_counter() - t}}
        return extract_seeds(triplets, scores, hit_id, self.threshold), info


def load_seed_finder(cfg, checkpoint: os.PathLike | str) -> SeedFinder:
    """The :class:`SeedFinder` of a config: the triplet classifier built as ``model.triplet`` says and restored from
    ``checkpoint``, the thresholds of ``infer``.

    Raises:
      CheckpointError: no checkpoint, or it does not fit the configured classifier.
    """
    import tensorflow as tf

    from trkx_tf.graphs.triplets import DOUBLET_FEATURES, TRIPLET_FEATURES
    from trkx_tf.models.registry import build_model
    from trkx_tf.train.checkpoints import restore_model

    model = build_model(cfg.model, "triplet", compute_dtype=cfg.infer.compute_dtype)
    model({"nodes": tf.zeros([2, len(DOUBLET_FEATURES)]), "senders": tf.constant([0], tf.int32),
           "receivers": tf.constant([1], tf.int32), "edges": tf.zeros([1, len(TRIPLET_FEATURES)]),
           "n_node": tf.constant([2], tf.int32), "n_edge": tf.constant([1], tf.int32)})
    restore_model(model, checkpoint)
    i = cfg.infer
    return SeedFinder(model, i.seed_doublet_threshold, i.seed_threshold, cfg.graph.r_scale, cfg.graph.z_scale)


def check_seed_config(cfg, seed_ckpt: Optional[str] = None) -> str:
    """The triplet classifier's checkpoint for ``trkx-infer --seeds``, the settings it needs checked.

    Args:
      cfg: the whole config.
      seed_ckpt: overrides ``infer.seed_ckpt``.

    Returns:
      The checkpoint path.

    Raises:
      ConfigError: no checkpoint, or ``infer.save_edges`` is off (the seeds start from the edges files).
    """
    from trkx_tf.errors import ConfigError

    if not cfg.infer.save_edges:
        raise ConfigError("trkx-infer --seeds starts from the GNN-scored edges: set infer.save_edges=true")
    seed_ckpt = seed_ckpt or cfg.infer.seed_ckpt
    if not seed_ckpt:
        raise ConfigError("trkx-infer --seeds needs the triplet classifier's checkpoint (infer.seed_ckpt or "
                          "--seed-ckpt)")
    return str(seed_ckpt)


def infer_seeds(cfg, input_dir: os.PathLike | str, out_dir: os.PathLike | str, events: Sequence[int],
                seed_ckpt: Optional[str] = None, finder: Optional[SeedFinder] = None) -> list[dict]:
    """``trkx-infer --seeds``: the seeds of events whose GNN-scored edges ``trkx-infer`` wrote to ``out_dir``.

    Writes ``event<ID>-seeds.csv`` (:func:`write_seeds`) next to each event's ``event<ID>-edges.npz``.

    Args:
      cfg: the whole config (``infer``, ``graph``, ``model.triplet``).
      input_dir: the TrackML events (hits).
      out_dir: trkx-infer's output folder (holds the edges files).
      events: the event ids.
      seed_ckpt: the triplet classifier's checkpoint (default ``infer.seed_ckpt``).
      finder: a ready :class:`SeedFinder` instead (tests).

    Returns:
      One record per event: ``event_id``, ``seeds``, ``doublets``, ``triplets``, ``seconds``.

    Raises:
      ConfigError: no seed checkpoint, or ``infer.save_edges`` is off (the seeds start from the edges files).
      DataError: a missing edges file or event.
    """
    from trkx_tf.graphs.features import hit_features, hit_rows
    from trkx_tf.reco.outputs import edges_path, read_edges
    from trkx_tf.trackml.io import read_event

    if finder is None:
        finder = load_seed_finder(cfg, check_seed_config(cfg, seed_ckpt))
    records = []
    for event_id in events:
        hits = read_event(input_dir, event_id, parts=("hits",), validate=False).hits
        nodes = hit_features(hits, r_scale=cfg.graph.r_scale, z_scale=cfg.graph.z_scale)
        hit_id = hits["hit_id"].to_numpy(np.int64)
        edges = read_edges(edges_path(out_dir, event_id))
        if "gnn" not in edges.scores:
            raise DataError(f"{edges_path(out_dir, event_id)}: no GNN scores")
        s = hit_rows(hit_id, edges.senders, "edge senders")
        r = hit_rows(hit_id, edges.receivers, "edge receivers")
        seeds, info = finder(nodes, s, r, edges.scores["gnn"], hit_id)
        write_seeds(seeds_path(out_dir, event_id), seeds)
        records.append({"event_id": int(event_id), "seeds": seeds.n_seed, **info})
    return records
