"""Checking the partial-truth metrics against the full ones on an event that has both (event 1000, simulated).

On such an event :func:`~trkx_tf.trackml.partial.partial_truth_from_full` makes the partial truth the labelled
events' rules give; :func:`compare` then scores one reconstruction with the full metrics
(:mod:`trkx_tf.reco.metrics`) and the partial ones (:mod:`trkx_tf.reco.partial`) side by side, per pT class.
:func:`corrupted_tracks` and :func:`synthetic_stage_edges` make deterministic reconstructions of known quality
from the truth, so that the check needs no trained model. Used by ``benchmarks/partial_truth_check.py`` and
``tests/reco/test_partial_shared_data.py``. A check of the metric: nothing is tuned on it.

Shape vocabulary as in :mod:`trkx_tf.reco.metrics`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.graphs.truth import hit_particle_ids, truth_graph
from trkx_tf.reco import partial as P
from trkx_tf.reco.outputs import StageEdges

#: The corruptions of :func:`corrupted_tracks`.
CORRUPTIONS = ("truth", "drop_particles", "lose_hits", "merge_pairs")

#: pT range (GeV, lower exclusive, upper inclusive) of the full-truth particles each partial class compares with.
CLASS_PT = {"all": (0.5, np.inf), "pt_min=1.0": (1.0, np.inf), "pt_min=0.5": (0.5, 1.0)}


def _hash(values: np.ndarray) -> np.ndarray:
    """A fixed integer hash (splitmix64 finaliser) of int64 values: deterministic, uncorrelated with the ids."""
    x = np.asarray(values, np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def corrupted_tracks(hit_particle: np.ndarray, kind: str, every: int = 4) -> np.ndarray:
    """A reconstruction made from the truth, damaged in a known, deterministic way.

    Args:
      hit_particle: [n_node] int64 particle of every hit (0 = noise).
      kind: ``truth`` (one track per particle, noise hits as singletons); ``drop_particles`` (every
        ``every``-th particle, by a hash of its id, is broken into singletons); ``lose_hits`` (every
        ``every``-th hit, by a hash of its row, becomes a singleton); ``merge_pairs`` (particles, in hash order,
        are merged in pairs for 2 of every ``every``).
      every: the rate of the damage (1 in ``every``).

    Returns:
      [n_node] int64 track id of every hit (>= 1).

    Raises:
      DataError: an unknown kind or ``every`` < 2.
    """
    if kind not in CORRUPTIONS:
        raise DataError(f"corrupted_tracks: unknown kind {kind!r} (expected one of {', '.join(CORRUPTIONS)})")
    if every < 2:
        raise DataError(f"corrupted_tracks: every must be >= 2, got {every}")
    pid = np.asarray(hit_particle, np.int64)
    n = len(pid)
    rows = np.arange(n, dtype=np.int64)
    pids, track = np.unique(pid, return_inverse=True)
    track = track.reshape(-1) + 1 + n  # particle tracks above the singleton ids 1..n
    single = pid == 0
    if kind == "drop_particles":
        single |= (_hash(pid) % np.uint64(every) == 0) & (pid != 0)
    elif kind == "lose_hits":
        single |= _hash(rows) % np.uint64(every) == 0
    elif kind == "merge_pairs":
        order = np.argsort(_hash(pids), kind="stable")
        rank = np.empty(len(pids), np.int64)
        rank[order] = np.arange(len(pids))
        merged = (rank // 2) % (every // 2 if every >= 4 else 1) == 0  # pairs (2k, 2k+1) of half the blocks
        target = np.where(merged, order[rank - rank % 2], np.arange(len(pids)))
        track = target[track - 1 - n] + 1 + n
    return np.where(single, rows + 1, track).astype(np.int64)


def synthetic_stage_edges(event, drop_true=(0.0, 0.1, 0.05), keep_fake=(1.0, 0.3, 0.1)) -> StageEdges:
    """Stage edges made from the truth graph: true edges lost and fake edges kept at known, hashed rates.

    The candidate graph is the truth graph plus one fake edge per true edge: the same inner hit joined to the
    outer hit's neighbour in φ on the outer hit's layer (a near miss, as a graph builder makes them). Stage k
    keeps a true edge unless a hash of it falls below the summed ``drop_true`` rates, and a fake edge when a
    hash falls below ``keep_fake[k]`` (stages are cumulative by construction).

    Args:
      event: an :class:`~trkx_tf.trackml.io.Event` with hits, particles and truth.
      drop_true: per stage (graph, filter, gnn), the share of true edges this stage drops.
      keep_fake: per stage, the share of fake edges still kept after it.

    Returns:
      :class:`~trkx_tf.reco.outputs.StageEdges` with hit ids, keep masks for graph, filter and gnn, no scores.
    """
    hits = event.hits
    tg = truth_graph(hits, event.particles, event.truth)
    n = len(hits)
    phi = np.arctan2(hits["y"].to_numpy(np.float64), hits["x"].to_numpy(np.float64))
    layer = hits["volume_id"].to_numpy(np.int64) * 1000 + hits["layer_id"].to_numpy(np.int64)
    order = np.lexsort((phi, layer))
    nxt = np.empty(n, np.int64)
    nxt[order] = np.where(np.r_[layer[order][1:] == layer[order][:-1], False], np.r_[order[1:], order[0]],
                          order[np.searchsorted(layer[order], layer[order], side="left")])
    s = np.r_[tg.senders, tg.senders].astype(np.int64)
    r = np.r_[tg.receivers, nxt[tg.receivers]].astype(np.int64)
    fake = np.r_[np.zeros(tg.n_true, bool), np.ones(tg.n_true, bool)]
    pid = hit_particle_ids(hits, event.truth)
    fake &= ~((pid[s] == pid[r]) & (pid[s] != 0))  # a neighbour of the same particle is not a fake
    first = np.sort(np.unique(np.minimum(s, r) * n + np.maximum(s, r), return_index=True)[1])
    s, r, fake = s[first], r[first], fake[first]  # each pair of hits once (a neighbour may be a true edge)
    u = (_hash(s * n + r) % np.uint64(1 << 20)).astype(np.float64) / (1 << 20)
    keep, dropped = {}, 0.0
    for name, d, f in zip(("graph", "filter", "gnn"), drop_true, keep_fake):
        dropped += d
        keep[name] = np.where(fake, u < f, u >= dropped)
    ids = hits["hit_id"].to_numpy(np.int64)
    return StageEdges(ids[s], ids[r], keep, {})


def _class_mask(pt: np.ndarray, cname: str) -> np.ndarray:
    lo, hi = CLASS_PT[cname]
    return (pt > lo) & (pt <= hi)


def compare(event, partial: pd.DataFrame, hit_track: np.ndarray, eval_cfg, edges: Optional[StageEdges] = None
            ) -> dict:
    """The full and the partial metrics of one reconstruction of one event, per class.

    Args:
      event: an :class:`~trkx_tf.trackml.io.Event` with hits, particles and truth.
      partial: its partial truth (e.g. :func:`~trkx_tf.trackml.partial.partial_truth_from_full`).
      hit_track: [n_node] int64 track of every hit.
      eval_cfg: the ``eval`` config section (min_track_hits, reconstructable_hits).
      edges: stage edges for the edge metrics, or None.

    Returns:
      ``{"tracks": class -> {"full": technical efficiency of the particles in the class's pT range,
      "partial": partial efficiency, "full_particles", "partial_groups"}, "edges": stage -> class -> {"full_eff",
      "partial_eff", "full_purity", "partial_purity", "full_eff_labelled_hits", "full_purity_labelled_hits"}``
      (``edges`` only with edges). Full edge purity for a class: true edges of the class / (kept edges − true
      edges of other particles), as in :func:`trkx_tf.reco.metrics.edge_ratios`; ``*_labelled_hits``: the same
      full-truth ratios counting only (truth-graph and kept) edges whose two hits are labelled.
    """
    from trkx_tf.reco import metrics as M

    hits = event.hits
    pid = hit_particle_ids(hits, event.truth)
    table = M.particle_table(pid, event.particles)
    match = M.match_tracks(pid, hit_track, eval_cfg.min_track_hits)
    reco = table["n_hits"].to_numpy() >= eval_cfg.reconstructable_hits
    pt = table["pt"].to_numpy()
    lab = P.labelled_hits(hits, partial)
    groups = P.group_table(lab, hit_track)
    pc = P.track_counts(groups)
    out: dict = {"tracks": {}}
    for cname in P.CLASSES:
        sel = reco & _class_mask(pt, cname)
        out["tracks"][cname] = {"full": float(match.particle_matched[sel].mean()) if sel.any() else None,
                                "partial": P.track_ratios(pc[cname]["all"])["efficiency"],
                                "full_particles": int(sel.sum()), "partial_groups": pc[cname]["all"]["groups"]}
    if edges is not None:
        from trkx_tf.graphs.features import hit_rows
        from trkx_tf.graphs.truth import match_truth

        ids = hits["hit_id"].to_numpy(np.int64)
        s, r = hit_rows(ids, edges.senders, "edges"), hit_rows(ids, edges.receivers, "edges")
        tg = truth_graph(hits, event.particles, event.truth)
        idx = match_truth(s, r, tg)
        e_pt = np.where(idx >= 0, tg.pt[np.maximum(idx, 0)], np.nan)
        pe = P.stage_metrics(P.edge_counts(lab, s, r, edges.keep))
        both = lab.labelled[s] & lab.labelled[r]
        t_both = lab.labelled[tg.senders] & lab.labelled[tg.receivers]
        out["edges"] = {}
        for stage, keep in edges.keep.items():
            out["edges"][stage] = {}
            for cname in P.CLASSES:
                in_c = (idx >= 0) & _class_mask(np.nan_to_num(e_pt), cname)
                other = (idx >= 0) & ~in_c
                t_c = _class_mask(tg.pt, cname)
                p = pe[stage][cname]["all"]
                out["edges"][stage][cname] = {
                    "full_eff": _frac((keep & in_c).sum(), t_c.sum()),
                    "partial_eff": p["efficiency"],
                    "full_purity": _frac((keep & in_c).sum(), keep.sum() - (keep & other).sum()),
                    "partial_purity": p["purity"],
                    # the full metrics on the same hits: truth-graph edges and kept edges between labelled hits
                    "full_eff_labelled_hits": _frac((keep & in_c & both).sum(), (t_c & t_both).sum()),
                    "full_purity_labelled_hits": _frac((keep & in_c & both).sum(),
                                                       (keep & both).sum() - (keep & other & both).sum()),
                }
    return out


def _frac(num, den) -> Optional[float]:
    return float(num) / float(den) if den else None
