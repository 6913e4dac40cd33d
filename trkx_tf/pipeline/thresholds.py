"""Chooses the inference thresholds on validation events: the filter cut, the GNN cut and the labelling.

What ``benchmarks/infer_filter_thresholds.py`` and ``benchmarks/infer_tune_labelling.py`` print for a person to
choose from, chosen here by rule (``pipeline.thresholds``), so that the pipeline runs from nothing to results:

1. ``trkx-infer`` on the validation events with the filter cut at the lowest of ``filter_grid`` (every candidate
   edge's filter score is saved in ``event<ID>-edges.npz``). The **filter threshold** is the largest of the grid
   that keeps at least ``filter_target`` of the true edges of the ``selection`` (``pt>0.5``: particles above
   0.5 GeV) that the graph stage found (the filter's own efficiency, as the benchmark measures it on shards).
   With ``filter_target: null`` the config's ``infer.filter_threshold`` stays.
2. ``trkx-infer`` again at that filter threshold (the GNN sees the graph it will see at inference); from the
   saved GNN scores the tracks are rebuilt for every (labelling, GNN threshold) of ``labelling`` x
   ``gnn_grid`` exactly as ``trkx-infer`` builds them, evaluated as ``trkx-eval`` does, and the pair with the
   highest ``metric`` of the ``selection`` wins (the first in grid order on a tie).

Real validation events (``pipeline.validation`` naming events with a partial truth and no truth, e.g. the
``data.real`` validation split of ``../shared/trackml/labelled``): the same rules on the partial-truth metrics
(:mod:`trkx_tf.reco.partial`, restricted to the labelled hits). The filter's efficiency is over the labelled truth
graph's edges the graph found (its purity over the kept edges joining two labelled hits), the selection ``pt>0.5``
or ``all`` is every labelled group and ``pt>1.0`` the ``pt_min=1.0`` class; the track metric is the partial track
efficiency (``technical_efficiency``; ``score`` needs a full truth and is refused). A set may not mix events with
a full truth and events with a partial truth only.

Output folder: ``thresholds.yaml`` (the ``--set`` overrides the infer stages use: ``infer.filter_threshold``,
``infer.gnn_threshold``, ``infer.labelling``), ``thresholds.json`` (both tables and the choice), and the two
inference passes (``pass1/``, ``pass2/``). Event 1000, the real test event, is refused.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import yaml

from trkx_tf.config import Config, ThresholdsConfig
from trkx_tf.errors import ConfigError, DataError, PipelineError
from trkx_tf.files import write_text_atomic

log = logging.getLogger("trkx_tf.pipeline.thresholds")

TEST_EVENT = 1000  # the real TrackML event kept for testing: never tuned on


def _selection_cut(selection: str, pt_cuts: Sequence[float]) -> Optional[float]:
    from trkx_tf.reco.metrics import selection_names

    names = selection_names(pt_cuts)
    if selection not in names:
        raise ConfigError(f"pipeline.thresholds.selection: {selection!r} is not one of {', '.join(names)} "
                          f"(eval.pt_cuts)")
    return names[selection]


def _partial_class(pt_cut: Optional[float], strict: bool = True) -> Optional[str]:
    """The partial-metrics class (:data:`trkx_tf.reco.partial.CLASSES`) of a selection's pT cut (None, or with
    ``strict`` a ConfigError, for a cut the classes cannot tell)."""
    from trkx_tf.trackml.io import PT_MIN_CLASSES

    if pt_cut is None or pt_cut <= PT_MIN_CLASSES[0]:
        return "all"
    if pt_cut == PT_MIN_CLASSES[1]:
        return f"pt_min={PT_MIN_CLASSES[1]}"
    if not strict:
        return None
    raise ConfigError(f"pipeline.thresholds.selection: pT > {pt_cut} GeV cannot be told on a partial truth (its "
                      f"classes: pT > {PT_MIN_CLASSES[0]}, pT > {PT_MIN_CLASSES[1]})")


def _read_validation_event(events_dir, event_id: int):
    """A validation event with its truth, or (no truth) its partial truth; DataError with neither."""
    from trkx_tf.trackml.io import read_event

    ev = read_event(events_dir, event_id, parts=("hits", "particles", "truth", "partial-truth"))
    if (ev.truth is None or ev.particles is None) and ev.partial_truth is None:
        raise DataError(f"{events_dir}: validation event {event_id} has neither truth + particles nor a partial "
                        f"truth")
    return ev


def _is_partial(ev) -> bool:
    return ev.truth is None or ev.particles is None


def filter_table(events_dir: os.PathLike | str, infer_dir: os.PathLike | str, event_ids: Sequence[int],
                 grid: Sequence[float], pt_cut: Optional[float]) -> list[dict]:
    """The filter's efficiency and purity at every threshold of a grid, summed over events.

    Args:
      events_dir: the events (hits, particles, truth; or a partial truth: module docstring).
      infer_dir: a ``trkx-infer`` output with ``event<ID>-edges.npz`` holding every candidate edge's filter score.
      event_ids: the events.
      grid: filter thresholds.
      pt_cut: GeV, the selection of true edges (None: every particle).

    Returns:
      One row per threshold: ``threshold``, ``edges_per_event`` (kept), ``efficiency`` (true edges of the
      selection kept / those the graph found), ``purity`` (true edges kept / edges kept).

    Raises:
      DataError: an edges file is missing or has no filter scores, or an event lacks truth and partial truth.
    """
    from trkx_tf.graphs.features import hit_rows
    from trkx_tf.graphs.truth import truth_graph
    from trkx_tf.reco import partial
    from trkx_tf.reco.metrics import edge_counts
    from trkx_tf.reco.outputs import edges_path, read_edges

    sums = np.zeros((len(grid) + 1, 3), np.int64)  # graph, then each threshold: (edges, true sel, true other)
    for e in event_ids:
        ev = _read_validation_event(events_dir, e)
        ed = read_edges(edges_path(infer_dir, e))
        if "filter" not in ed.scores:
            raise DataError(f"{edges_path(infer_dir, e)}: no filter scores (inference ran without a filter)")
        hit_id = ev.hits["hit_id"].to_numpy(np.int64)
        s, r = hit_rows(hit_id, ed.senders, "edges"), hit_rows(hit_id, ed.receivers, "edges")
        score = ed.scores["filter"]
        masks = {"graph": np.ones(ed.n_edge, bool), **{str(i): score >= t for i, t in enumerate(grid)}}
        if _is_partial(ev):  # kept edges between labelled hits; labelled truth-graph edges; same-group skips
            pc = partial.edge_counts(partial.labelled_hits(ev.hits, ev.partial_truth), s, r, masks)
            for k, name in enumerate(masks):
                c = pc[name][_partial_class(pt_cut)]["all"]
                sums[k] += (c["labelled"], c["true"], c["same_group_skip"])
            continue
        counts = edge_counts(truth_graph(ev.hits, ev.particles, ev.truth), s, r, masks, pt_cut)
        for k, name in enumerate(masks):
            c = counts[name]
            sums[k] += (c["edges"], c["true"], c["true_other"])
    base = max(int(sums[0, 1]), 1)
    return [{"threshold": float(t), "edges_per_event": float(sums[i + 1, 0] / max(len(event_ids), 1)),
             "efficiency": float(sums[i + 1, 1] / base),
             "purity": float((sums[i + 1, 1] + sums[i + 1, 2]) / max(int(sums[i + 1, 0]), 1))}
            for i, t in enumerate(grid)]


def choose_filter_threshold(table: Sequence[Mapping], target: float) -> float:
    """The largest threshold whose efficiency reaches ``target``; the smallest of the table when none does."""
    ok = [row["threshold"] for row in table if row["efficiency"] >= target]
    return max(ok) if ok else min(row["threshold"] for row in table)


def labelling_table(events_dir: os.PathLike | str, infer_dir: os.PathLike | str, event_ids: Sequence[int],
                    grid: Sequence[float], methods: Sequence[str], eval_cfg) -> list[dict]:
    """Track metrics for every (labelling, GNN threshold), rebuilt from the saved GNN scores as trkx-infer does.

    Args:
      events_dir: the events (hits, particles, truth; or partial truths only: the partial track efficiency).
      infer_dir: a ``trkx-infer`` output with ``event<ID>-edges.npz`` (GNN scores, NaN where filtered out).
      event_ids: the events.
      grid: GNN thresholds.
      methods: labelling methods (``cc``, ``walk``).
      eval_cfg: the ``eval`` config section.

    Returns:
      One row per (method, threshold): ``labelling``, ``threshold``, ``tracks`` and ``score`` as in
      ``trkx-eval``'s ``metrics.json`` (per selection); for partial truths ``tracks[selection]`` holds the partial
      track efficiency as ``technical_efficiency`` (purity and score NaN: not measurable).

    Raises:
      DataError: a missing or inconsistent edges file, an event without truth, a mix of full and partial truths.
    """
    from trkx_tf.graphs.features import cylindrical, hit_rows
    from trkx_tf.reco import partial
    from trkx_tf.reco.evaluate import evaluate_event, summarise
    from trkx_tf.reco.labelling import label_tracks, submission_frame
    from trkx_tf.reco.metrics import selection_names
    from trkx_tf.reco.outputs import edges_path, read_edges

    events = []
    for e in event_ids:
        ev = _read_validation_event(events_dir, e)
        ed = read_edges(edges_path(infer_dir, e))
        hit_id = ev.hits["hit_id"].to_numpy(np.int64)
        reached = ~np.isnan(ed.scores["gnn"])
        s = hit_rows(hit_id, ed.senders[reached], "edges")
        r = hit_rows(hit_id, ed.receivers[reached], "edges")
        rr, _, z = cylindrical(ev.hits)
        events.append((ev, hit_id, s, r, ed.scores["gnn"][reached], np.hypot(rr, z)))
    kinds = {_is_partial(ev) for ev, *_ in events}
    if len(kinds) > 1:
        raise DataError(f"{events_dir}: the validation events mix full and partial truths; choose on one kind")
    rows = []
    for method in methods:
        for t in grid:
            evals = []
            for ev, hit_id, s, r, scores, key in events:
                labels = label_tracks(method, len(hit_id), s, r, scores, float(t), key if method == "walk" else None)
                if _is_partial(ev):
                    evals.append(partial.evaluate_partial_event(ev, labels))
                else:
                    evals.append(evaluate_event(ev, submission_frame(ev.event_id, hit_id, labels), eval_cfg))
            if kinds == {True}:
                tracks = partial._sum_nested([v.tracks for v in evals], partial.TRACK_COUNT_KEYS)
                classes = {name: _partial_class(cut, strict=False)
                           for name, cut in selection_names(eval_cfg.pt_cuts).items()}
                eff = {name: None if c is None else partial.track_ratios(tracks[c]["all"])["efficiency"]
                       for name, c in classes.items()}
                rows.append({"labelling": method, "threshold": float(t), "partial": True,
                             "tracks": {name: {"technical_efficiency": np.nan if v is None else v, "purity": np.nan}
                                        for name, v in eff.items()},
                             "score": {name: np.nan for name in eff}})
                continue
            m = summarise(evals, eval_cfg)
            rows.append({"labelling": method, "threshold": float(t), "tracks": m["tracks"], "score": m["score"]})
    return rows


def choose_labelling(rows: Sequence[Mapping], metric: str, selection: str) -> Mapping:
    """The row with the highest ``metric`` (``technical_efficiency`` or ``score``) of ``selection``; the first
    in table order on a tie."""
    def value(row):
        return row["score"][selection] if metric == "score" else row["tracks"][selection][metric]

    best = rows[0]
    for row in rows[1:]:
        if value(row) > value(best):
            best = row
    return best


def _infer(argv: Sequence[str], out: Path) -> None:
    """Runs one trkx-infer pass (a subprocess: the command's behaviour is trkx-infer's own)."""
    exe = str(Path(sys.executable).parent / "trkx-infer")
    proc = subprocess.run([exe if os.path.exists(exe) else "trkx-infer", *argv, "--out", str(out), "--no-progress"],
                          stdout=sys.stdout, stderr=sys.stderr, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise PipelineError(f"trkx-infer on the validation events failed (exit {proc.returncode}); see above")


def tune_thresholds(cfg: Config, config_path: str, overrides: Sequence[str], events_dir: os.PathLike | str,
                    out_dir: os.PathLike | str, event_ids: Optional[Sequence[int]] = None,
                    model_args: Sequence[str] = ()) -> dict:
    """Chooses the filter threshold, the GNN threshold and the labelling on validation events (module docstring).

    Args:
      cfg: the effective config (``pipeline.thresholds``, ``eval``, ``infer.filter_threshold``).
      config_path: the config file trkx-infer reads, with ``overrides`` (``KEY=VALUE``).
      overrides: see ``config_path``.
      events_dir: the validation events (with truth).
      out_dir: where ``thresholds.yaml``, ``thresholds.json`` and the passes go.
      event_ids: the validation events (None: every event of the folder).
      model_args: trkx-infer's model flags (``--filter-ckpt``, ``--gnn-ckpt``, ``--module-map``).

    Returns:
      The chosen overrides: ``{"infer.filter_threshold": …, "infer.gnn_threshold": …, "infer.labelling": …}``.

    Raises:
      DataError: no validation events, event 1000 among them, events without truth or partial truth.
      ConfigError: an empty grid or an unknown selection; ``metric: score`` on partial truths.
      PipelineError: a trkx-infer pass failed.
    """
    from trkx_tf.trackml.io import list_events

    tc: ThresholdsConfig = cfg.pipeline.thresholds
    ids = sorted(int(e) for e in (event_ids if event_ids else list_events(events_dir)))
    if not ids:
        raise DataError(f"{events_dir}: no validation events")
    if TEST_EVENT in ids:
        raise DataError(f"event {TEST_EVENT} is the real test event: never choose thresholds on it")
    if not tc.gnn_grid or not tc.labelling or (tc.filter_target is not None and not tc.filter_grid):
        raise ConfigError("pipeline.thresholds: the grids and the labelling list must not be empty")
    pt_cut = _selection_cut(tc.selection, cfg.eval.pt_cuts)
    if any(_is_partial(_read_validation_event(events_dir, e)) for e in ids):
        _partial_class(pt_cut)
        if tc.metric == "score":
            raise ConfigError("pipeline.thresholds.metric=score needs a full truth; validation events with a partial "
                              "truth give technical_efficiency (the partial track efficiency)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = ["--config", config_path, *[a for o in overrides for a in ("--set", o)], "--input", str(events_dir),
            "--events", *map(str, ids), *model_args, "--set", "infer.save_edges=true"]
    report: dict = {"events_dir": str(events_dir), "events": ids, "selection": tc.selection, "metric": tc.metric}

    f_thr = cfg.infer.filter_threshold
    if tc.filter_target is not None:
        low = min(tc.filter_grid)
        _infer([*base, "--set", f"infer.filter_threshold={low}"], out / "pass1")
        table = filter_table(events_dir, out / "pass1", ids, sorted(tc.filter_grid), pt_cut)
        f_thr = choose_filter_threshold(table, tc.filter_target)
        report["filter"] = {"target": tc.filter_target, "table": table, "chosen": f_thr}
        for row in table:
            log.info("filter %.3f: %9.0f edges/event, efficiency %.4f, purity %.4f%s", row["threshold"],
                     row["edges_per_event"], row["efficiency"], row["purity"],
                     "  <- chosen" if row["threshold"] == f_thr else "")
    _infer([*base, "--set", f"infer.filter_threshold={f_thr}"], out / "pass2")
    rows = labelling_table(events_dir, out / "pass2", ids, tc.gnn_grid, tc.labelling, cfg.eval)
    best = choose_labelling(rows, tc.metric, tc.selection)
    report["labelling"] = {"table": rows, "chosen": {"labelling": best["labelling"], "threshold": best["threshold"]}}
    for row in rows:
        t = row["tracks"][tc.selection]
        log.info("%-4s %.2f: technical efficiency %.4f, purity %.4f, score %.4f%s", row["labelling"],
                 row["threshold"], t["technical_efficiency"], t["purity"], row["score"][tc.selection],
                 "  <- chosen" if row is best else "")
    chosen = {"infer.filter_threshold": float(f_thr), "infer.gnn_threshold": float(best["threshold"]),
              "infer.labelling": str(best["labelling"])}
    report["chosen"] = chosen
    write_text_atomic(out / "thresholds.json", json.dumps(report, indent=1) + "\n")
    header = (f"# chosen by trkx_tf.pipeline.thresholds on validation events {ids} of {events_dir}\n"
              f"# ({tc.metric} of {tc.selection}; filter target {tc.filter_target}); details: thresholds.json\n")
    write_text_atomic(out / "thresholds.yaml", header + yaml.safe_dump(chosen, sort_keys=False))
    return chosen
