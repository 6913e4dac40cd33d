"""Each metric definition on hand-made cases where the numbers are known exactly."""

import json

import numpy as np
import pytest

from handmade import make_event, make_submission
from trkx_tf.config import EvalConfig
from trkx_tf.errors import DataError
from trkx_tf.graphs.truth import TruthGraph, hit_particle_ids
from trkx_tf.reco import metrics as M
from trkx_tf.reco.evaluate import evaluate, evaluate_event, format_summary, summarise
from trkx_tf.reco.outputs import StageEdges, edges_path, submission_path, write_edges
from trkx_tf.trackml.io import write_event
from trkx_tf.trackml.score import score_event, write_submission


def test_match_tracks_double_majority():
    ev, sub = make_event(), make_submission()
    pid = hit_particle_ids(ev.hits, ev.truth)
    m = M.match_tracks(pid, sub["track_id"].to_numpy(), min_track_hits=5)
    assert m.track_id.tolist() == [1, 2, 3, 6]
    assert m.track_hits.tolist() == [6, 5, 6, 5]
    assert m.track_particle.tolist() == [1, 2, 3, 5]
    assert m.track_shared.tolist() == [6, 3, 4, 3]
    assert m.track_matched.tolist() == [True, True, True, False]
    assert m.particle_id.tolist() == [1, 2, 3, 4, 5]
    assert m.particle_matched.tolist() == [True, True, True, False, False]
    # with min_track_hits=3 the 3-hit track of particle 4 counts, but holds only 3/6 of its hits
    m3 = M.match_tracks(pid, sub["track_id"].to_numpy(), min_track_hits=3)
    assert m3.track_id.tolist() == [1, 2, 3, 4, 6, 7] and m3.track_matched.tolist()[3] is False


def test_majority_noise_and_ties():
    # a track of 2 noise + 1 hit of particle 9 (1 hit): the majority is noise, never a match
    m = M.match_tracks(np.array([0, 0, 9]), np.array([1, 1, 1]), 1)
    assert m.track_particle.tolist() == [0] and not m.track_matched[0]
    # a 2-2 tie: majority goes to the smaller id, and exactly half is not a match
    m = M.match_tracks(np.array([4, 4, 3, 3]), np.array([1, 1, 1, 1]), 1)
    assert m.track_particle.tolist() == [3] and not m.track_matched[0]
    # a singleton track of a 1-hit particle matches when tracks of one hit count
    m = M.match_tracks(np.array([7]), np.array([1]), 1)
    assert m.track_matched.tolist() == [True] and m.particle_matched.tolist() == [True]
    with pytest.raises(DataError, match="min_track_hits"):
        M.match_tracks(np.array([7]), np.array([1]), 0)


EXPECTED_TRACKS = {
    "all": dict(particles=5, matched_particles=3, reconstructable=4, matched_reconstructable=2, tracks=4,
                matched_tracks=3),
    "pt>0.5": dict(particles=4, matched_particles=2, reconstructable=4, matched_reconstructable=2, tracks=3,
                   matched_tracks=2),
    # T6 (the fake) is dominated by particle 5 (0.8 GeV): neutral for pt>1, like T2 and T3
    "pt>1": dict(particles=2, matched_particles=1, reconstructable=2, matched_reconstructable=1, tracks=1,
                 matched_tracks=1),
}
EXPECTED_SCORE = {"all": 0.52, "pt>0.5": 0.42 / 0.9, "pt>1": 0.3 / 0.6}


def test_track_counts_ratios_and_scores():
    ev, sub = make_event(), make_submission()
    e = evaluate_event(ev, sub, EvalConfig())
    assert e.tracks == EXPECTED_TRACKS
    for sel, s in EXPECTED_SCORE.items():
        assert e.score[sel] == pytest.approx(s, abs=1e-6), sel
    assert e.score["all"] == pytest.approx(score_event(ev.truth, sub))
    r = M.track_ratios(e.tracks["pt>0.5"])
    assert r == {"physics_efficiency": 0.5, "technical_efficiency": 0.5, "purity": pytest.approx(2 / 3)}
    assert M.track_ratios(dict.fromkeys(M.TRACK_COUNT_KEYS, 0)) == dict.fromkeys(
        ["physics_efficiency", "technical_efficiency", "purity"])


def test_perfect_and_singleton_reconstructions():
    ev = make_event()
    truth_sub = make_submission()
    truth_sub["track_id"] = ev.truth["particle_id"].to_numpy() * 100 + np.where(ev.truth["particle_id"] == 0,
                                                                                 np.arange(len(ev.truth)), 0)
    e = evaluate_event(ev, truth_sub, EvalConfig(min_track_hits=1, reconstructable_hits=5))
    assert e.score["all"] == pytest.approx(1.0)
    assert M.track_ratios(e.tracks["all"]) == {"physics_efficiency": 1.0, "technical_efficiency": 1.0,
                                                "purity": pytest.approx(5 / 7)}  # 2 noise singletons are fakes
    single = truth_sub.assign(track_id=np.arange(len(truth_sub)))
    e = evaluate_event(ev, single, EvalConfig())
    assert e.score["all"] == 0.0 and e.tracks["all"]["tracks"] == 0
    assert M.track_ratios(e.tracks["all"])["purity"] is None


def test_edge_counts_per_stage_and_selection():
    tg = TruthGraph(np.array([0, 1, 3]), np.array([1, 2, 4]), np.array([1, 1, 2]), np.array([2.0, 2.0, 0.3]),
                    np.full(3, np.nan), 6)
    s = np.array([0, 2, 3, 0, 1])
    r = np.array([1, 1, 4, 5, 3])  # (2, 1) is the truth edge (1, 2) reversed
    stages = {"graph": np.ones(5, bool), "filter": np.array([1, 1, 1, 0, 1], bool),
              "gnn": np.array([1, 0, 1, 0, 0], bool)}
    c = M.edge_counts(tg, s, r, stages, None)
    assert c == {"graph": dict(truth=3, edges=5, true=3, true_other=0),
                 "filter": dict(truth=3, edges=4, true=3, true_other=0),
                 "gnn": dict(truth=3, edges=2, true=2, true_other=0)}
    assert M.edge_ratios(c["gnn"]) == {"efficiency": pytest.approx(2 / 3), "purity": 1.0}
    c = M.edge_counts(tg, s, r, stages, 0.5)
    assert M.edge_ratios(c["graph"]) == {"efficiency": 1.0, "purity": 0.5}
    assert M.edge_ratios(c["filter"]) == {"efficiency": 1.0, "purity": pytest.approx(2 / 3)}
    assert M.edge_ratios(c["gnn"]) == {"efficiency": 0.5, "purity": 1.0}
    # the GNN's own efficiency: 1 of the 2 selected true edges the filter gave it
    assert M.edge_ratios(c["gnn"], c["filter"]) == {"efficiency": 0.5, "purity": 1.0, "stage_efficiency": 0.5}
    with pytest.raises(DataError, match="stage 'x'"):
        M.edge_counts(tg, s, r, {"x": np.ones(3, bool)}, None)


def test_efficiency_histogram():
    h = M.efficiency_histogram(np.array([0.5, 1.5, 1.6, 5.0]), np.array([1, 1, 0, 1], bool), np.array([0, 1, 2, 3]))
    assert h["total"] == [1, 2, 0] and h["matched"] == [1, 1, 0]
    assert h["efficiency"] == [1.0, 0.5, None]
    assert h["error"][1] == pytest.approx(np.sqrt(0.25 / 2))


def test_evaluate_folder_writes_metrics_and_plots(tmp_path):
    events, subs, out = tmp_path / "events", tmp_path / "subs", tmp_path / "out"
    for eid in (5, 6):
        write_event(events, make_event(eid))
        write_submission(submission_path(subs, eid), make_submission(eid))
    # edges for event 5 only: the hits of particle 1 in a chain (5 true edges) plus 3 fakes
    chain = np.arange(1, 7)
    senders = np.concatenate([chain[:-1], [1, 7, 22]])
    receivers = np.concatenate([chain[1:], [7, 8, 23]])
    keep_f = np.array([1, 1, 1, 1, 1, 1, 1, 0], bool)
    keep_g = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    write_edges(edges_path(subs, 5), StageEdges(senders, receivers, {"graph": np.ones(8, bool), "filter": keep_f,
                                                                     "gnn": keep_g}, {}))
    summary = evaluate(events, subs, out, EvalConfig(), progress=False)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["events"] == [5, 6]
    for sel, counts in EXPECTED_TRACKS.items():  # summed over the two identical events
        for k, v in counts.items():
            assert saved["tracks"][sel][k] == 2 * v
        assert saved["score"][sel] == pytest.approx(EXPECTED_SCORE[sel])
    assert saved["tracks"]["all"]["purity"] == pytest.approx(3 / 4)
    # truth graph of event 5: 5+4+3+5+5 = 22 edges over all particles, 5+4+5+5 = 19 above 0.5 GeV
    assert saved["edges"]["graph"]["all"]["truth"] == 22
    assert saved["edges"]["gnn"]["all"] == {"efficiency": pytest.approx(4 / 22), "purity": 1.0, "truth": 22,
                                            "edges": 4, "true": 4, "true_other": 0,
                                            "stage_efficiency": pytest.approx(4 / 6)}  # of the filter's 6
    assert saved["edges"]["filter"]["all"]["true"] == 6 and "stage_efficiency" not in saved["edges"]["graph"]["all"]
    assert saved["edges"]["filter"]["pt>0.5"]["purity"] == pytest.approx(6 / 7)
    assert saved["edges"]["graph"]["pt>0.5"]["efficiency"] == pytest.approx(6 / 19)
    for p in saved["plots"]:
        assert (out / "plots").exists() and open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "pt>0.5" in format_summary(summary)


def test_evaluate_errors(tmp_path):
    events, subs = tmp_path / "events", tmp_path / "subs"
    write_event(events, make_event(5))
    subs.mkdir()
    with pytest.raises(DataError, match="no submissions"):
        evaluate(events, subs, tmp_path / "out", EvalConfig(), progress=False)
    bad = make_submission(5).iloc[:-1]  # one hit missing
    write_submission(submission_path(subs, 5), bad)
    with pytest.raises(DataError, match="every hit exactly once"):
        evaluate(events, subs, tmp_path / "out", EvalConfig(), progress=False)
    write_submission(submission_path(subs, 9), make_submission(9))
    with pytest.raises(DataError, match="no hits file for event 9"):
        evaluate(events, subs, tmp_path / "out", EvalConfig(), events=[9], progress=False)


def test_summarise_sums_counts_not_ratios():
    ev = make_event()
    good = evaluate_event(ev, make_submission(), EvalConfig())
    perfect = make_submission().assign(track_id=ev.truth["particle_id"].to_numpy())
    best = evaluate_event(ev, perfect, EvalConfig())
    s = summarise([good, best], EvalConfig())
    t = s["tracks"]["all"]
    assert t["technical_efficiency"] == pytest.approx((2 + 4) / (4 + 4))
    assert s["score"]["all"] == pytest.approx(np.mean([good.score["all"], best.score["all"]]))


def test_noise_dominated_tracks_count_as_fakes_in_every_selection():
    # track 1: 3 noise hits + both hits of particle 7 (pT 2 GeV); track 2: the 5 hits of particle 8 (pT 0.2 GeV)
    pid = np.array([0, 0, 0, 7, 7, 8, 8, 8, 8, 8])
    trk = np.array([1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    import pandas as pd

    table = pd.DataFrame({"particle_id": [7, 8], "n_hits": [2, 5], "pt": [2.0, 0.2], "eta": [0.0, 0.0]})
    m = M.match_tracks(pid, trk, 5)
    assert m.track_particle.tolist() == [0, 8] and m.track_matched.tolist() == [False, True]
    c = M.track_counts(table, m, 1.0, 5)
    assert (c["tracks"], c["matched_tracks"]) == (1, 0)  # the noise track counts, the 0.2 GeV track is neutral
    c = M.track_counts(table, m, None, 5)
    assert (c["tracks"], c["matched_tracks"]) == (2, 1)
