"""Restricted metrics from a partial truth: edge and track efficiencies on the labelled hits only.

The real labelled events carry a partial truth (:mod:`trkx_tf.trackml.partial`): a subset of the pixel hits,
grouped by particle, each group of class ``pt_min`` 1.0 (pT > 1 GeV, labelled in the pixel barrel and endcaps) or
0.5 (0.5 < pT <= 1 GeV, labelled in the pixel barrel only), at most one labelled hit per particle and layer. An
unlabelled hit is *unknown*, not noise: nothing here ever counts an edge or a hit that touches an unlabelled hit
as false. These metrics are therefore **restricted**: they measure what the labels can see (pixel hits of
particles above 0.5 GeV), not the whole event, and they are not the full-truth metrics of
:mod:`trkx_tf.reco.metrics`. ``trkx-eval`` uses them for an event with a partial truth and no truth.

Shape vocabulary as in :mod:`trkx_tf.reco.metrics` (``n_node`` hits of one event, ``n_edge`` candidate edges);
``n_labelled_true`` edges of the labelled truth graph, ``n_groups`` labelled particles.

Classes and regions
-------------------
Every metric is given per **class** and **region**. Classes: ``all`` (every group), ``pt_min=1.0`` and
``pt_min=0.5``. A class is labelled in its volumes only (1.0: pixel volumes 7, 8, 9; 0.5: volume 8), and its rows
count only edges whose two hits lie in those volumes, so the ``pt_min=0.5`` endcap rows are empty by design.
Regions: ``all``, ``barrel`` (an edge with both hits in the pixel barrel, volume 8; a particle with all its
labelled hits there) and ``endcap`` (every other edge or particle).

Edge metrics, for a stage (``graph``, ``filter``, ``gnn``: the keep masks of ``trkx-infer``'s edges file)
-------------------------------------------------------------------------------------------------------
* The **labelled truth graph** joins consecutive labelled hits of one group, ordered by distance from the origin
  (the vertex is not known). Where the full truth exists, each of its edges is an edge of the full truth graph
  whenever the particle has no other hit between the two (checked on event 1000: docs/partial_truth.md).
* ``efficiency`` = labelled-truth-graph edges the stage keeps / labelled-truth-graph edges (cumulative);
  ``stage_efficiency`` = over those the stage before kept.
* ``purity`` = kept edges between two labelled hits of one group / kept edges whose two hits are both labelled
  (and, for a class, lie in its volumes, one of them of the class). An edge that touches an unlabelled hit is in
  neither count. Two labelled hits of one group are a true edge even when they skip a labelled layer
  (``same_group_skip`` counts these; the full truth graph calls them false).

Track metrics
-------------
A group with at least ``min_labelled_hits`` (3) labelled hits is **matched** when one reconstructed track
(``track_id``, of any size) holds more than half of the group's labelled hits and those are more than half of that
track's *labelled* hits (its unlabelled hits are unknown, so track purity is not measured). Unlike the full
metrics no minimum track size applies by default (``min_track_hits`` 1): the particle's total number of hits is
not known, and with the full metrics' 5 the truth itself would score 96.7 % on event 1000, whose labelled groups
leave fewer than 5 hits in all for 3.3 %. ``efficiency`` = matched groups / groups, per class and region, and
against η (from the slope z/r between the group's innermost and outermost labelled hits).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.graphs.features import hit_rows
from trkx_tf.reco.metrics import efficiency_histogram
from trkx_tf.trackml.io import PT_MIN_CLASSES
from trkx_tf.trackml.partial import PIXEL_BARREL, PIXEL_VOLUMES

#: class name -> pt_min (None: every group).
CLASSES: dict[str, Optional[float]] = {"all": None, "pt_min=1.0": PT_MIN_CLASSES[1], "pt_min=0.5": PT_MIN_CLASSES[0]}
#: The volumes where each pt_min class is labelled.
CLASS_VOLUMES = {PT_MIN_CLASSES[1]: PIXEL_VOLUMES, PT_MIN_CLASSES[0]: (PIXEL_BARREL,)}
REGIONS = ("all", "barrel", "endcap")
#: A labelled particle counts for the track efficiency with at least this many labelled hits.
MIN_LABELLED_HITS = 3
EDGE_COUNT_KEYS = ("truth", "true", "labelled", "same_group", "same_group_skip")
TRACK_COUNT_KEYS = ("groups", "matched")


@dataclasses.dataclass(frozen=True)
class LabelledHits:
    """The partial truth of one event, in the hits' row order.

    Attributes:
      group: [n_node] int64 group of each hit (0: unlabelled).
      pt_min: [n_node] float64 class of each hit's group (0 where unlabelled).
      barrel: [n_node] bool, the hit is in the pixel barrel.
      volume_id: [n_node] int64.
      distance: [n_node] float64 distance from the origin (mm), the order along a track.
      r, z: [n_node] float64 cylindrical coordinates (mm).
    """

    group: np.ndarray
    pt_min: np.ndarray
    barrel: np.ndarray
    volume_id: np.ndarray
    distance: np.ndarray
    r: np.ndarray
    z: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        """[n_node] bool."""
        return self.group > 0

    def in_class_volumes(self, pt_min: Optional[float]) -> np.ndarray:
        """[n_node] bool: the hit lies where the class is labelled (any labelled hit for None)."""
        if pt_min is None:
            return self.labelled
        return self.labelled & np.isin(self.volume_id, CLASS_VOLUMES[pt_min])


def labelled_hits(hits: pd.DataFrame, partial_truth: pd.DataFrame, what: str = "partial truth") -> LabelledHits:
    """Spreads a partial truth over the event's hits.

    Args:
      hits: ``[n_node]`` rows with ``hit_id, x, y, z, volume_id``.
      partial_truth: ``[n_labelled]`` rows ``hit_id, group, pt_min`` (as read by
        :func:`~trkx_tf.trackml.io.read_event`).
      what: the partial truth's name, for the messages.

    Returns:
      The :class:`LabelledHits`.

    Raises:
      DataError: a partial-truth hit_id is not a hit of the event, or appears twice.
    """
    hit_ids = hits["hit_id"].to_numpy(np.int64)
    rows = hit_rows(hit_ids, partial_truth["hit_id"].to_numpy(np.int64), what)
    if len(np.unique(rows)) != len(rows):
        raise DataError(f"{what}: a hit_id appears more than once")
    n = len(hit_ids)
    group = np.zeros(n, np.int64)
    group[rows] = partial_truth["group"].to_numpy(np.int64)
    pt_min = np.zeros(n, np.float64)
    pt_min[rows] = partial_truth["pt_min"].to_numpy(np.float64)
    x, y, z = (hits[c].to_numpy(np.float64) for c in ("x", "y", "z"))
    r = np.hypot(x, y)
    volume = hits["volume_id"].to_numpy(np.int64)
    return LabelledHits(group, pt_min, volume == PIXEL_BARREL, volume, np.hypot(r, z), r, z)


def labelled_truth_graph(lab: LabelledHits) -> tuple[np.ndarray, np.ndarray]:
    """The labelled truth graph: consecutive labelled hits of each group, ordered by distance from the origin.

    Args:
      lab: the event's :class:`LabelledHits`.

    Returns:
      ``(senders, receivers)``: [n_labelled_true] int64 hit rows, the inner hit first.
    """
    rows = np.flatnonzero(lab.labelled)
    rows = rows[np.lexsort((lab.distance[rows], lab.group[rows]))]
    same = lab.group[rows[1:]] == lab.group[rows[:-1]]
    return rows[:-1][same].astype(np.int64), rows[1:][same].astype(np.int64)


def _pair_keys(s: np.ndarray, r: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(s, r).astype(np.int64) * np.int64(max(n, 1)) + np.maximum(s, r)


def _region_masks(barrel_edge: np.ndarray) -> dict[str, np.ndarray]:
    return {"all": np.ones(len(barrel_edge), bool), "barrel": barrel_edge, "endcap": ~barrel_edge}


def edge_counts(lab: LabelledHits, senders: np.ndarray, receivers: np.ndarray,
                stages: Mapping[str, np.ndarray]) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """The counts behind the partial edge metrics of one event (module docstring).

    Args:
      lab: the event's :class:`LabelledHits`.
      senders, receivers: [n_edge] hit rows of the candidate edges.
      stages: stage -> [n_edge] bool, the edges the stage keeps (cumulative).

    Returns:
      stage -> class -> region -> ``{"truth": labelled-truth-graph edges, "true": of them kept, "labelled": kept
      edges between two labelled hits (of the class's volumes, one of the class), "same_group": of them joining
      one group (of the class), "same_group_skip": of those, not in the labelled truth graph}``.

    Raises:
      DataError: a stage mask or the receivers do not have the senders' shape.
    """
    s = np.asarray(senders, np.int64)
    r = np.asarray(receivers, np.int64)
    if r.shape != s.shape or s.ndim != 1:
        raise DataError(f"partial metrics: senders and receivers must be [n_edge] vectors of one length "
                        f"(got {list(s.shape)} and {list(r.shape)})")
    n = len(lab.group)
    ts, tr = labelled_truth_graph(lab)
    tkeys = np.sort(_pair_keys(ts, tr, n))
    ckeys = _pair_keys(s, r, n)
    pos = np.minimum(np.searchsorted(tkeys, ckeys), max(len(tkeys) - 1, 0))
    on_truth = (tkeys[pos] == ckeys) if len(tkeys) else np.zeros(len(ckeys), bool)
    gs, gr = lab.group[s], lab.group[r]
    both = (gs > 0) & (gr > 0)
    same = both & (gs == gr)
    c_regions = _region_masks(lab.barrel[s] & lab.barrel[r])
    t_regions = _region_masks(lab.barrel[ts] & lab.barrel[tr])
    t_class = lab.pt_min[ts]
    masks = {name: np.asarray(m, bool) for name, m in stages.items()}
    for name, m in masks.items():
        if m.shape != s.shape:
            raise DataError(f"partial metrics: stage {name!r} mask has shape {list(m.shape)}, expected [{len(s)}]")
    out: dict = {stage: {} for stage in masks}
    for cname, pt_min in CLASSES.items():
        inside = lab.in_class_volumes(pt_min)
        if pt_min is None:
            c_edge = both
            c_same = same
            c_truth = np.ones(len(ts), bool)
        else:
            c_edge = both & inside[s] & inside[r] & ((lab.pt_min[s] == pt_min) | (lab.pt_min[r] == pt_min))
            c_same = c_edge & same & (lab.pt_min[s] == pt_min)
            c_truth = t_class == pt_min
        for stage, keep in masks.items():
            per_region = {}
            for region in REGIONS:
                cm, tm = c_regions[region], t_regions[region]
                kept_same = keep & cm & c_same
                per_region[region] = {
                    "truth": int((c_truth & tm).sum()),
                    "true": int((kept_same & on_truth).sum()),
                    "labelled": int((keep & cm & c_edge).sum()),
                    "same_group": int(kept_same.sum()),
                    "same_group_skip": int((kept_same & ~on_truth).sum()),
                }
            out[stage][cname] = per_region
    return out


def _ratio(num: float, den: float) -> Optional[float]:
    return float(num) / float(den) if den else None


def edge_ratios(counts: Mapping[str, int], input_counts: Optional[Mapping[str, int]] = None
                ) -> dict[str, Optional[float]]:
    """Efficiency, purity (and with the previous stage's counts, the stage's own efficiency) of (summed) counts.

    Returns:
      ``{"efficiency", "purity"}`` (+ ``"stage_efficiency"``), None where the denominator is 0.
    """
    out = {"efficiency": _ratio(counts["true"], counts["truth"]),
           "purity": _ratio(counts["same_group"], counts["labelled"])}
    if input_counts is not None:
        out["stage_efficiency"] = _ratio(counts["true"], input_counts["true"])
    return out


def stage_metrics(edges: Mapping) -> dict:
    """stage -> class -> region -> counts with their ratios (stages in pipeline order)."""
    out, previous = {}, None
    for stage, by_class in edges.items():
        out[stage] = {c: {g: {**v, **edge_ratios(v, None if previous is None else previous[c][g])}
                          for g, v in by_region.items()} for c, by_region in by_class.items()}
        previous = by_class
    return out


# ---------------------------------------------------------------------------------------------------- tracks
def group_table(lab: LabelledHits, hit_track: np.ndarray, min_track_hits: int = 1,
                min_labelled_hits: int = MIN_LABELLED_HITS) -> pd.DataFrame:
    """The labelled particles of one event with their matching (module docstring).

    Args:
      lab: the event's :class:`LabelledHits`.
      hit_track: [n_node] int64 track of every hit.
      min_track_hits: tracks with fewer hits (labelled or not) are not tracks.
      min_labelled_hits: groups with fewer labelled hits are left out.

    Returns:
      ``[n_groups]`` rows sorted by group: ``group`` int64, ``pt_min`` float64, ``n_labelled`` int64, ``barrel``
      bool (every labelled hit in the pixel barrel), ``eta`` float64, ``matched`` bool.

    Raises:
      DataError: ``hit_track`` does not have one entry per hit, or ``min_track_hits`` < 1.
    """
    hit_track = np.asarray(hit_track, np.int64)
    if hit_track.shape != lab.group.shape:
        raise DataError(f"partial metrics: hit_track has shape {list(hit_track.shape)}, expected "
                        f"[{len(lab.group)}]")
    if min_track_hits < 1:
        raise DataError(f"partial metrics: min_track_hits must be >= 1, got {min_track_hits}")
    rows = np.flatnonzero(lab.labelled)
    if len(rows) == 0:
        return pd.DataFrame({"group": np.zeros(0, np.int64), "pt_min": np.zeros(0), "n_labelled": np.zeros(0, np.int64),
                             "barrel": np.zeros(0, bool), "eta": np.zeros(0), "matched": np.zeros(0, bool)})
    tids, t_inv, t_hits = np.unique(hit_track, return_inverse=True, return_counts=True)
    t_inv = t_inv.reshape(-1)
    g = lab.group[rows]
    gids, g_inv, g_hits = np.unique(g, return_inverse=True, return_counts=True)
    g_inv = g_inv.reshape(-1)
    t_lab = np.bincount(t_inv[rows], minlength=len(tids))
    pair, shared = np.unique(np.stack([g_inv, t_inv[rows]], 1).reshape(-1, 2), axis=0, return_counts=True)
    ok = ((2 * shared > g_hits[pair[:, 0]]) & (2 * shared > t_lab[pair[:, 1]])
          & (t_hits[pair[:, 1]] >= min_track_hits))
    matched = np.zeros(len(gids), bool)
    matched[pair[ok, 0]] = True
    # per group: class, all-barrel, innermost and outermost hit (by distance from the origin) for η
    pt_min = np.zeros(len(gids))
    pt_min[g_inv] = lab.pt_min[rows]
    barrel = np.ones(len(gids), bool)
    np.logical_and.at(barrel, g_inv, lab.barrel[rows])
    order = np.lexsort((lab.distance[rows], g_inv))
    first = np.r_[0, np.flatnonzero(np.diff(g_inv[order])) + 1]
    last = np.r_[first[1:] - 1, len(order) - 1]
    inner, outer = rows[order[first]], rows[order[last]]
    dr = lab.r[outer] - lab.r[inner]
    dz = lab.z[outer] - lab.z[inner]
    eta = np.arcsinh(dz / np.where(np.abs(dr) > 1e-6, dr, 1e-6))
    table = pd.DataFrame({"group": gids.astype(np.int64), "pt_min": pt_min, "n_labelled": g_hits.astype(np.int64),
                          "barrel": barrel, "eta": eta, "matched": matched})
    return table[table["n_labelled"] >= min_labelled_hits].reset_index(drop=True)


def track_counts(groups: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """class -> region -> ``{"groups", "matched"}`` of a :func:`group_table`."""
    out: dict = {}
    region_masks = {"all": np.ones(len(groups), bool), "barrel": groups["barrel"].to_numpy(bool),
                    "endcap": ~groups["barrel"].to_numpy(bool)}
    matched = groups["matched"].to_numpy(bool)
    for cname, pt_min in CLASSES.items():
        cm = np.ones(len(groups), bool) if pt_min is None else groups["pt_min"].to_numpy() == pt_min
        out[cname] = {g: {"groups": int((cm & m).sum()), "matched": int((cm & m & matched).sum())}
                      for g, m in region_masks.items()}
    return out


def track_ratios(counts: Mapping[str, int]) -> dict[str, Optional[float]]:
    """``{"efficiency"}`` of (summed) track counts, None without groups."""
    return {"efficiency": _ratio(counts["matched"], counts["groups"])}


# ----------------------------------------------------------------------------------------------- one event
@dataclasses.dataclass
class PartialEvaluation:
    """The partial-truth metrics of one event.

    Attributes:
      event_id: the event.
      n_hits: hits of the event.
      n_labelled: labelled hits.
      tracks: class -> region -> track counts.
      edges: stage -> class -> region -> edge counts (None without an edges file).
      groups: the :func:`group_table` (for the histograms).
    """

    event_id: int
    n_hits: int
    n_labelled: int
    tracks: dict
    edges: Optional[dict]
    groups: pd.DataFrame

    def record(self) -> dict:
        """The event's numbers as plain JSON-able data."""
        out = {"event_id": self.event_id, "n_hits": self.n_hits, "n_labelled_hits": self.n_labelled,
               "tracks": {c: {g: {**v, **track_ratios(v)} for g, v in by.items()} for c, by in self.tracks.items()}}
        if self.edges is not None:
            out["edges"] = stage_metrics(self.edges)
        return out


def evaluate_partial_event(event, hit_track: np.ndarray, min_track_hits: int = 1, edges=None,
                           partial_truth: Optional[pd.DataFrame] = None) -> PartialEvaluation:
    """The partial-truth metrics of one event.

    Args:
      event: a :class:`~trkx_tf.trackml.io.Event` with hits and (unless given) a partial truth.
      hit_track: [n_node] int64 track of every hit, in the hits' row order.
      min_track_hits: tracks with fewer hits (labelled or not) are ignored (default: none).
      edges: the event's :class:`~trkx_tf.reco.outputs.StageEdges`, or None (no edge metrics).
      partial_truth: use this instead of ``event.partial_truth`` (e.g. one made from a full truth).

    Returns:
      The :class:`PartialEvaluation`.

    Raises:
      DataError: no partial truth, a partial-truth or edge hit_id not in the event, or a wrong-shaped input.
    """
    partial = event.partial_truth if partial_truth is None else partial_truth
    if partial is None:
        raise DataError(f"event {event.event_id}: partial-truth metrics need a partial-truth file")
    lab = labelled_hits(event.hits, partial, f"partial truth of event {event.event_id}")
    groups = group_table(lab, hit_track, min_track_hits)
    edge_c = None
    if edges is not None:
        hit_ids = event.hits["hit_id"].to_numpy(np.int64)
        s = hit_rows(hit_ids, edges.senders, f"edges of event {event.event_id}")
        r = hit_rows(hit_ids, edges.receivers, f"edges of event {event.event_id}")
        edge_c = edge_counts(lab, s, r, edges.keep)
    return PartialEvaluation(int(event.event_id), len(lab.group), int(lab.labelled.sum()), track_counts(groups),
                             edge_c, groups)


def _sum_nested(items: Sequence[dict], keys: Sequence[str]) -> dict:
    """Sums dicts of identical nesting whose leaves are dicts of ``keys``."""
    first = items[0]
    if set(first) >= set(keys) and not isinstance(first[keys[0]], dict):
        return {k: int(sum(i[k] for i in items)) for k in keys}
    return {k: _sum_nested([i[k] for i in items], keys) for k in first}


def summarise(evaluations: Sequence[PartialEvaluation], eta_bins: np.ndarray, min_track_hits: int) -> dict:
    """Sums the counts of several events and forms the ratios.

    Args:
      evaluations: one :class:`PartialEvaluation` per event (at least one).
      eta_bins: [B + 1] η bin edges of the efficiency histograms.
      min_track_hits: the minimum track size used (recorded in the definitions).

    Returns:
      ``{"events", "definitions", "tracks": class -> region -> counts + efficiency, "edges": stage -> class ->
      region -> counts + ratios (None without edges files), "histograms": {"efficiency_vs_eta": class ->
      histogram}, "per_event"}``.
    """
    tracks = _sum_nested([e.tracks for e in evaluations], TRACK_COUNT_KEYS)
    tracks = {c: {g: {**track_ratios(v), **v} for g, v in by.items()} for c, by in tracks.items()}
    with_edges = [e.edges for e in evaluations if e.edges is not None]
    edges = None
    if with_edges:
        stages = [s for s in with_edges[0] if all(s in e for e in with_edges)]
        edges = stage_metrics(_sum_nested([{s: e[s] for s in stages} for e in with_edges], EDGE_COUNT_KEYS))
    groups = pd.concat([e.groups for e in evaluations], ignore_index=True)
    hist = {}
    for cname, pt_min in CLASSES.items():
        part = groups if pt_min is None else groups[groups["pt_min"] == pt_min]
        hist[cname] = efficiency_histogram(part["eta"], part["matched"], eta_bins)
    return {
        "events": [e.event_id for e in evaluations],
        "definitions": {
            "restricted": "partial-truth metrics: labelled pixel hits of particles above 0.5 GeV only "
                          "(docs/partial_truth.md); not comparable one to one with full-truth metrics",
            "classes": {c: ("every group" if v is None else f"pt_min={v:g}, labelled in volumes "
                            f"{list(CLASS_VOLUMES[v])}") for c, v in CLASSES.items()},
            "regions": "barrel: both hits of an edge (every labelled hit of a particle) in volume 8; endcap: the rest",
            "edge_efficiency": "kept edges of the labelled truth graph (consecutive labelled hits of one group) / "
                               "its edges",
            "edge_purity": "kept edges joining two labelled hits of one group / kept edges joining two labelled "
                           "hits; edges touching an unlabelled hit are not counted",
            "track_matching": f"a group with >= {MIN_LABELLED_HITS} labelled hits is matched when one track (>= "
                              f"{min_track_hits} hit{'s' if min_track_hits != 1 else ''} in all) holds > 50% of its "
                              f"labelled hits and they are > 50% of the track's labelled hits",
        },
        "n_labelled_hits": int(sum(e.n_labelled for e in evaluations)),
        "tracks": tracks,
        "edges": edges,
        "histograms": {"efficiency_vs_eta": hist},
        "per_event": [e.record() for e in evaluations],
    }
