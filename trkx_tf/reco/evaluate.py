"""``trkx-eval`` as a library: TrackML events with truth + submissions (+ scored edges) in, metrics.json and plots out.

The metrics and their definitions are in :mod:`trkx_tf.reco.metrics`. An event with a partial truth and no truth
(the real labelled events) gets the restricted metrics of :mod:`trkx_tf.reco.partial` instead, under the
``partial_truth`` key; an event with neither is an error. Output folder::

    metrics.json                  every metric, per selection and stage, summed over events, plus each event's
                                  own numbers and the histograms behind the plots ("partial_truth": the same for
                                  the events evaluated on a partial truth; "throughput": the time per event and
                                  the TrackML Throughput-phase score, where trkx-infer's timings.json is there)
    plots/efficiency_vs_pt.png    technical and physics efficiency against particle pT      (full truth)
    plots/efficiency_vs_eta.png   technical efficiency against particle η, for every selection (full truth)
    plots/partial_edges.png       labelled edge efficiency and purity per stage, class, region (partial truth)
    plots/partial_efficiency_vs_eta.png  labelled track efficiency against η per class       (partial truth)

Shape vocabulary as in :mod:`trkx_tf.reco.metrics`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.files import check_output_folder, write_text_atomic
from trkx_tf.graphs.features import hit_rows
from trkx_tf.graphs.truth import hit_particle_ids, truth_graph
from trkx_tf.reco import metrics as M
from trkx_tf.reco import partial as P
from trkx_tf.reco.plots import plot_efficiencies, plot_partial
from trkx_tf.reco.outputs import TIMINGS_FILE, edges_path, find_submission, list_submissions, read_edges
from trkx_tf.trackml.io import list_events, read_event
from trkx_tf.trackml.score import read_submission, throughput_score

log = logging.getLogger("trkx_tf.reco.evaluate")

#: Bin edges of the efficiency plots.
PT_BINS = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0])
ETA_BINS = np.linspace(-4.0, 4.0, 21)
METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class EventEvaluation:
    """The metrics of one event.

    Attributes:
      event_id: the event.
      n_hits: hits of the event.
      tracks: selection -> :func:`~trkx_tf.reco.metrics.track_counts`.
      score: selection -> TrackML score.
      edges: stage -> selection -> :func:`~trkx_tf.reco.metrics.edge_counts` (None without an edges file).
      particles: the particle table with a ``matched`` column (for the histograms).
      n_tracks: tracks with at least ``min_track_hits`` hits.
    """

    event_id: int
    n_hits: int
    tracks: dict
    score: dict
    edges: Optional[dict]
    particles: pd.DataFrame
    n_tracks: int

    def record(self) -> dict:
        """The event's numbers as plain JSON-able data."""
        out = {"event_id": self.event_id, "n_hits": self.n_hits, "n_tracks": self.n_tracks, "score": self.score,
               "tracks": {s: {**c, **M.track_ratios(c)} for s, c in self.tracks.items()}}
        if self.edges is not None:
            out["edges"] = stage_metrics(self.edges)
        return out


def stage_metrics(edges: dict) -> dict:
    """stage -> selection -> counts (stages in pipeline order), with their ratios added: cumulative efficiency and
    purity, and each stage's own efficiency over the true edges the stage before it kept."""
    out, previous = {}, None
    for stage, by_sel in edges.items():
        out[stage] = {sel: {**c, **M.edge_ratios(c, None if previous is None else previous[sel])}
                      for sel, c in by_sel.items()}
        previous = by_sel
    return out


def submission_tracks(event, submission: pd.DataFrame) -> np.ndarray:
    """The track of every hit of an event, in the hits' row order.

    Args:
      event: the :class:`~trkx_tf.trackml.io.Event`.
      submission: the event's ``hit_id, track_id`` rows.

    Returns:
      [n_node] int64 track ids.

    Raises:
      DataError: the submission does not cover every hit of the event exactly once.
    """
    hit_ids = event.hits["hit_id"].to_numpy(np.int64)
    sub_ids = submission["hit_id"].to_numpy(np.int64)
    if len(sub_ids) != len(hit_ids) or len(np.unique(sub_ids)) != len(sub_ids):
        raise DataError(f"submission of event {event.event_id}: {len(sub_ids)} rows for {len(hit_ids)} hits "
                        f"(every hit exactly once)")
    rows = hit_rows(hit_ids, sub_ids, f"submission of event {event.event_id}")
    hit_track = np.empty(len(hit_ids), np.int64)
    hit_track[rows] = submission["track_id"].to_numpy(np.int64)
    return hit_track


def evaluate_event(event, submission: pd.DataFrame, eval_cfg, edges=None) -> EventEvaluation:
    """All metrics of one event.

    Args:
      event: a :class:`~trkx_tf.trackml.io.Event` with hits, particles and truth.
      submission: the event's ``hit_id, track_id`` rows, every hit once.
      eval_cfg: the ``eval`` config section (min_track_hits, reconstructable_hits, pt_cuts).
      edges: the event's :class:`~trkx_tf.reco.outputs.StageEdges`, or None (no edge metrics).

    Returns:
      The :class:`EventEvaluation`.

    Raises:
      DataError: the event lacks truth or particles, the submission does not cover exactly the event's hits, or
        the edges name hits the event does not have.
    """
    if event.truth is None or event.particles is None:
        raise DataError(f"event {event.event_id}: evaluation needs its truth and particles files")
    hits, truth, particles = event.hits, event.truth, event.particles
    hit_ids = hits["hit_id"].to_numpy(np.int64)
    hit_particle = hit_particle_ids(hits, truth)
    hit_track = submission_tracks(event, submission)

    table = M.particle_table(hit_particle, particles)
    match = M.match_tracks(hit_particle, hit_track, eval_cfg.min_track_hits)
    table["matched"] = match.particle_matched
    selections = M.selection_names(eval_cfg.pt_cuts)
    tracks = {name: M.track_counts(table, match, cut, eval_cfg.reconstructable_hits)
              for name, cut in selections.items()}
    # pT of each truth row's particle, for the selection scores
    truth_pid = truth["particle_id"].to_numpy(np.int64)
    pt_of = pd.Series(table["pt"].to_numpy(), index=table["particle_id"].to_numpy())
    truth_pt = np.where(truth_pid != 0, pt_of.reindex(truth_pid).to_numpy(), 0.0)
    score = {name: M.selection_score(truth, submission, truth_pt, cut) for name, cut in selections.items()}

    edge_counts = None
    if edges is not None:
        tg = truth_graph(hits, particles, truth)
        s = hit_rows(hit_ids, edges.senders, f"edges of event {event.event_id}")
        r = hit_rows(hit_ids, edges.receivers, f"edges of event {event.event_id}")
        edge_counts = {stage: {} for stage in edges.keep}
        for name, cut in selections.items():
            for stage, counts in M.edge_counts(tg, s, r, edges.keep, cut).items():
                edge_counts[stage][name] = counts
    return EventEvaluation(int(event.event_id), len(hit_ids), tracks, score, edge_counts, table,
                           int(len(match.track_id)))


def summarise(evaluations: Sequence[EventEvaluation], eval_cfg) -> dict:
    """Sums the counts of several events and forms the ratios (the mean score for the TrackML score).

    Args:
      evaluations: one :class:`EventEvaluation` per event.
      eval_cfg: the ``eval`` config section.

    Returns:
      The content of ``metrics.json`` (without the plot paths).
    """
    selections = list(M.selection_names(eval_cfg.pt_cuts))
    tracks = {}
    for sel in selections:
        counts = {k: sum(e.tracks[sel][k] for e in evaluations) for k in M.TRACK_COUNT_KEYS}
        tracks[sel] = {**M.track_ratios(counts), **counts}
    score = {sel: float(np.mean([e.score[sel] for e in evaluations])) for sel in selections}
    with_edges = [e for e in evaluations if e.edges is not None]
    edges = None
    if with_edges:
        stages = list(with_edges[0].edges)
        edges = stage_metrics({stage: {sel: {k: sum(e.edges[stage][sel][k] for e in with_edges if stage in e.edges)
                                             for k in M.EDGE_COUNT_KEYS} for sel in selections}
                               for stage in stages})
    particles = pd.concat([e.particles for e in evaluations], ignore_index=True)
    reco = particles[particles["n_hits"] >= eval_cfg.reconstructable_hits]
    hist = {
        "technical_efficiency_vs_pt": M.efficiency_histogram(reco["pt"], reco["matched"], PT_BINS),
        "physics_efficiency_vs_pt": M.efficiency_histogram(particles["pt"], particles["matched"], PT_BINS),
        "technical_efficiency_vs_eta": {},
    }
    for sel, cut in M.selection_names(eval_cfg.pt_cuts).items():
        part = reco if cut is None else reco[reco["pt"] > cut]
        hist["technical_efficiency_vs_eta"][sel] = M.efficiency_histogram(part["eta"], part["matched"], ETA_BINS)
    return {
        "events": [e.event_id for e in evaluations],
        "definitions": {
            "min_track_hits": eval_cfg.min_track_hits,
            "reconstructable_hits": eval_cfg.reconstructable_hits,
            "pt_cuts_gev": list(eval_cfg.pt_cuts),
            "matching": "double majority: >50% of the track's hits from the particle and >50% of the particle's "
                        "hits in the track",
            "score": "TrackML score, mean over events; pt>X: hits of other particles weigh 0",
        },
        "tracks": tracks,
        "score": score,
        "edges": edges,
        "histograms": hist,
        "per_event": [e.record() for e in evaluations],
    }


def evaluate(
    input_dir: os.PathLike | str,
    submissions_dir: os.PathLike | str,
    out_dir: os.PathLike | str,
    eval_cfg,
    events: Optional[Sequence[int]] = None,
    progress: bool = True,
) -> dict:
    """Evaluates the submissions of a folder against the truth of the events of another.

    Every event with a submission in ``submissions_dir`` is evaluated (or the ``events`` given); its edges file,
    where present, adds the edge metrics. An event with a truth file gets the full metrics; one with only a
    partial truth the restricted metrics of :mod:`trkx_tf.reco.partial` (under ``"partial_truth"``).

    Args:
      input_dir: TrackML events with hits and truth (+ particles), or hits and a partial truth.
      submissions_dir: ``event<ID>-submission.csv`` files (and ``event<ID>-edges.npz``), as ``trkx-infer`` writes.
      out_dir: where ``metrics.json`` and ``plots/`` go (created).
      eval_cfg: the ``eval`` config section.
      events: the event ids to evaluate (None: every submission); an id given twice counts once.
      progress: show a progress bar over events (tqdm, on stderr).

    Returns:
      The content written to ``metrics.json`` (with ``"plots"``: the PNG paths). Without full-truth events it
      holds ``"events": []``, ``"tracks": None`` and the ``"partial_truth"`` summary.

    Raises:
      DataError: no submission, a submission without its event, an event with neither truth nor partial truth
        (or truth without particles), a malformed submission, partial truth or edges file.
    """
    from tqdm import tqdm

    input_dir, submissions_dir, out_dir = Path(input_dir), Path(submissions_dir), check_output_folder(out_dir)
    ids = list_submissions(submissions_dir) if events is None else sorted({int(e) for e in events})
    if not ids:
        raise DataError(f"{submissions_dir}: no submissions (event<id>-submission.csv) to evaluate")
    available = set(list_events(input_dir))
    missing = [e for e in ids if e not in available]
    if missing:
        raise DataError(f"{input_dir}: no hits file for event {missing[0]} of the submissions")
    evaluations, partial = [], []
    for event_id in tqdm(ids, desc="eval: events", unit="ev", disable=not progress, dynamic_ncols=True,
                         leave=False):
        path = find_submission(submissions_dir, event_id)
        if path is None:
            raise DataError(f"{submissions_dir}: no submission for event {event_id}")
        submission = read_submission(path)
        submission = submission[submission["event_id"] == event_id]
        event = read_event(input_dir, event_id, parts=("hits", "particles", "truth", "partial-truth"))
        epath = edges_path(submissions_dir, event_id)
        edges = read_edges(epath) if epath.is_file() else None
        if event.truth is None and event.partial_truth is not None:
            partial.append(P.evaluate_partial_event(event, submission_tracks(event, submission), edges=edges))
        elif event.truth is None:
            raise DataError(f"{input_dir}: event {event_id} has neither a truth nor a partial-truth file: "
                            f"nothing to evaluate it against")
        else:
            evaluations.append(evaluate_event(event, submission, eval_cfg, edges))
    summary = summarise(evaluations, eval_cfg) if evaluations else {"events": [], "tracks": None}
    out_dir.mkdir(parents=True, exist_ok=True)
    summary["plots"] = plot_efficiencies(summary, out_dir / "plots") if evaluations else []
    if partial:
        summary["partial_truth"] = P.summarise(partial, ETA_BINS, min_track_hits=1)
        summary["plots"] += plot_partial(summary["partial_truth"], out_dir / "plots")
    if evaluations and (submissions_dir / TIMINGS_FILE).is_file():
        summary["throughput"] = throughput(submissions_dir / TIMINGS_FILE, summary["events"], summary["score"]["all"])
    write_text_atomic(out_dir / METRICS_FILE, json.dumps(summary, indent=1, sort_keys=False) + "\n")
    return summary


def throughput(timings_file: Path, event_ids: Sequence[int], accuracy: float) -> Optional[dict]:
    """The TrackML Throughput-phase figure of merit of the evaluated events: their mean wall time per event (the
    ``total`` of ``trkx-infer``'s ``timings.json``, per stage too) and the TrackML score reached at that speed
    (:func:`~trkx_tf.trackml.score.throughput_score`). None when the timings hold none of the events.

    Raises:
      DataError: an unreadable timings file.
    """
    try:
        records = {int(r["event_id"]): r["seconds"] for r in json.loads(timings_file.read_text())["events"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{timings_file}: not a trkx-infer timings file ({exc})") from None
    timed = [records[e] for e in event_ids if e in records]
    if not timed:
        return None
    stages = {k: float(np.mean([t.get(k, 0.0) for t in timed])) for k in timed[0]}
    seconds = stages.get("total", 0.0)
    return {"events": len(timed), "seconds_per_event": seconds, "stages": stages, "accuracy": accuracy,
            "score": throughput_score(accuracy, seconds) if seconds > 0 else None,
            "definition": "TrackML Throughput phase: sqrt(ln(1 + 600/t) * (A - 0.5)^2), A the TrackML score "
                          "(all particles), t the mean wall seconds per event of trkx-infer (timings.json total)"}


def format_summary(summary: dict) -> str:
    """The headline numbers of :func:`evaluate` as a few lines of text (what ``trkx-eval`` prints)."""

    def pct(x):
        return "  n/a " if x is None else f"{100 * x:6.2f}"

    def events(ids):
        return f"{len(ids)} ({', '.join(str(e) for e in ids[:8])}{', …' if len(ids) > 8 else ''})"

    lines = []
    if summary.get("tracks"):
        lines += [f"events: {events(summary['events'])}",
                  f"{'selection':<10} {'tech.eff %':>10} {'phys.eff %':>10} {'purity %':>9} {'score':>7}"
                  f" {'reco.particles':>14} {'tracks':>7}"]
    for sel, t in (summary.get("tracks") or {}).items():
        lines.append(f"{sel:<10} {pct(t['technical_efficiency']):>10} {pct(t['physics_efficiency']):>10} "
                     f"{pct(t['purity']):>9} {summary['score'][sel]:7.4f} {t['reconstructable']:>14} "
                     f"{t['tracks']:>7}")
    if summary.get("edges"):
        lines.append("edges      " + "  ".join(
            f"{stage}: eff {pct(v['pt>0.5' if 'pt>0.5' in v else 'all']['efficiency']).strip()} % "
            f"pur {pct(v['pt>0.5' if 'pt>0.5' in v else 'all']['purity']).strip()} %"
            for stage, v in summary["edges"].items())
            + (" (pT > 0.5 GeV)" if "pt>0.5" in next(iter(summary["edges"].values())) else " (all)"))
    if summary.get("partial_truth"):
        lines += format_partial(summary["partial_truth"], events, pct)
    tp = summary.get("throughput")
    if tp and tp["score"] is not None:
        lines.append(f"throughput {tp['seconds_per_event']:.2f} s/event at score {tp['accuracy']:.4f}: "
                     f"TrackML throughput-phase score {tp['score']:.3f}")
    for p in summary.get("plots", []):
        lines.append(f"plot: {p}")
    return "\n".join(lines)


def format_partial(partial: dict, events, pct) -> list[str]:
    """The headline lines of a partial-truth summary (see :func:`format_summary`)."""
    lines = [f"partial-truth events (restricted metrics, labelled hits only): {events(partial['events'])}",
             f"{'class':<11} {'region':<7} {'track eff %':>11} {'groups':>7}"
             + "".join(f" {stage + ' eff/pur %':>19}" for stage in (partial.get("edges") or {}))]
    for cname, by_region in partial["tracks"].items():
        for region, t in by_region.items():
            row = f"{cname:<11} {region:<7} {pct(t['efficiency']):>11} {t['groups']:>7}"
            for stage, v in (partial.get("edges") or {}).items():
                e = v[cname][region]
                row += f" {pct(e['efficiency']).strip() + ' / ' + pct(e['purity']).strip():>19}"
            lines.append(row)
    return lines
