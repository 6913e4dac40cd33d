"""Partial-truth metrics (trkx_tf.reco.partial) on a hand-made event whose every count is worked out by hand.

Hits (row: name, volume, group, pt_min), positions chosen so that the order from the origin is the name order:

  group A (pt_min 1.0): a1 a2 a3 a4 in the pixel barrel (8), a5 in the +z endcap (9)
  group B (pt_min 0.5): b1 b2 b3 in the barrel
  group C (pt_min 1.0): c1 c2 c3 in the -z endcap (7)
  group D (pt_min 1.0): d1 d2 in the barrel (2 labelled hits: no track metric)
  unlabelled: u1 (barrel), u2 (strip volume 13)

Labelled truth graph (consecutive labelled hits of a group), 9 edges:
  a1a2 a2a3 a3a4 (barrel) a4a5 (endcap) | b1b2 b2b3 (barrel) | c1c2 c2c3 (endcap) | d1d2 (barrel)

Candidate edges and what they are:
  e0 a1a2 true   e1 a2a3 true   e2 a3a4 true   e3 a4a5 true (endcap)   e4 a1a3 same group, skips a2
  e5 a2b2 false (barrel, classes 1.0 and 0.5)    e6 b1b2 true   e7 b2u1 unknown   e8 a4u2 unknown
  e9 c2c1 true (reversed)   e10 b3a5 false (barrel-endcap: not in the 0.5 class's volumes)   e11 u1u2 unknown
"""

import numpy as np
import pandas as pd
import pytest

from trkx_tf.config import EvalConfig
from trkx_tf.errors import DataError
from trkx_tf.reco import partial as P
from trkx_tf.reco.evaluate import evaluate, format_summary
from trkx_tf.reco.outputs import StageEdges, edges_path, write_edges
from trkx_tf.trackml.io import Event, write_event

# name: (volume, group, pt_min, r, z)
HITS = {
    "a1": (8, 1, 1.0, 30.0, 10.0), "a2": (8, 1, 1.0, 70.0, 25.0), "a3": (8, 1, 1.0, 115.0, 40.0),
    "a4": (8, 1, 1.0, 170.0, 60.0), "a5": (9, 1, 1.0, 190.0, 600.0),
    "b1": (8, 2, 0.5, 31.0, -5.0), "b2": (8, 2, 0.5, 71.0, -12.0), "b3": (8, 2, 0.5, 116.0, -20.0),
    "c1": (7, 3, 1.0, 60.0, -600.0), "c2": (7, 3, 1.0, 70.0, -700.0), "c3": (7, 3, 1.0, 80.0, -800.0),
    "d1": (8, 4, 1.0, 32.0, 2.0), "d2": (8, 4, 1.0, 72.0, 4.0),
    "u1": (8, 0, 0.0, 72.0, 5.0), "u2": (13, 0, 0.0, 300.0, 80.0),
}
NAMES = list(HITS)
ROW = {n: i for i, n in enumerate(NAMES)}
EDGES = ["a1a2", "a2a3", "a3a4", "a4a5", "a1a3", "a2b2", "b1b2", "b2u1", "a4u2", "c2c1", "b3a5", "u1u2"]
FILTER_DROPS = {"a3a4", "b2u1"}
GNN_DROPS = FILTER_DROPS | {"a1a3", "a2b2", "b3a5"}


def make_event(event_id: int = 7) -> Event:
    vol, group, pt_min, r, z = (np.array([HITS[n][i] for n in NAMES]) for i in range(5))
    phi = 0.1 * np.arange(len(NAMES))
    hits = pd.DataFrame({"hit_id": np.arange(101, 101 + len(NAMES)), "x": r * np.cos(phi), "y": r * np.sin(phi),
                         "z": z, "volume_id": vol.astype(int), "layer_id": 2, "module_id": 1})
    lab = group > 0
    partial = pd.DataFrame({"hit_id": hits["hit_id"][lab], "group": group[lab].astype(int), "pt_min": pt_min[lab]})
    return Event(event_id, hits, partial_truth=partial)


def edge_rows(names=EDGES):
    return (np.array([ROW[e[:2]] for e in names]), np.array([ROW[e[2:]] for e in names]))


def stages():
    return {"graph": np.ones(len(EDGES), bool),
            "filter": np.array([e not in FILTER_DROPS for e in EDGES]),
            "gnn": np.array([e not in GNN_DROPS for e in EDGES])}


@pytest.fixture
def lab():
    ev = make_event()
    return P.labelled_hits(ev.hits, ev.partial_truth)


def test_labelled_truth_graph_joins_consecutive_labelled_hits(lab):
    s, r = P.labelled_truth_graph(lab)
    got = sorted(NAMES[i] + NAMES[j] for i, j in zip(s, r))
    assert got == sorted(["a1a2", "a2a3", "a3a4", "a4a5", "b1b2", "b2b3", "c1c2", "c2c3", "d1d2"])


def test_edge_counts_by_hand(lab):
    s, r = edge_rows()
    c = P.edge_counts(lab, s, r, stages())
    g = c["graph"]
    assert g["all"]["all"] == {"truth": 9, "true": 6, "labelled": 9, "same_group": 7, "same_group_skip": 1}
    assert g["all"]["barrel"] == {"truth": 6, "true": 4, "labelled": 6, "same_group": 5, "same_group_skip": 1}
    assert g["all"]["endcap"] == {"truth": 3, "true": 2, "labelled": 3, "same_group": 2, "same_group_skip": 0}
    # pt_min=1.0: e0-e5, e9, e10 (e6 joins two 0.5 hits); truth a*, c*, d1d2
    assert g["pt_min=1.0"]["all"] == {"truth": 7, "true": 5, "labelled": 8, "same_group": 6, "same_group_skip": 1}
    assert g["pt_min=1.0"]["barrel"] == {"truth": 4, "true": 3, "labelled": 5, "same_group": 4,
                                         "same_group_skip": 1}
    assert g["pt_min=1.0"]["endcap"] == {"truth": 3, "true": 2, "labelled": 3, "same_group": 2,
                                         "same_group_skip": 0}
    # pt_min=0.5: e5 and e6 only (e10 has a hit in the endcap, where 0.5 is not labelled); endcap empty by design
    assert g["pt_min=0.5"]["barrel"] == {"truth": 2, "true": 1, "labelled": 2, "same_group": 1, "same_group_skip": 0}
    assert g["pt_min=0.5"]["endcap"] == dict.fromkeys(P.EDGE_COUNT_KEYS, 0)
    f, n = c["filter"]["all"]["all"], c["gnn"]["all"]["all"]
    assert f == {"truth": 9, "true": 5, "labelled": 8, "same_group": 6, "same_group_skip": 1}
    assert n == {"truth": 9, "true": 5, "labelled": 5, "same_group": 5, "same_group_skip": 0}
    m = P.stage_metrics(c)
    assert m["graph"]["all"]["all"]["efficiency"] == pytest.approx(6 / 9)
    assert m["graph"]["all"]["all"]["purity"] == pytest.approx(7 / 9)
    assert m["gnn"]["all"]["all"]["purity"] == 1.0
    assert m["gnn"]["all"]["all"]["stage_efficiency"] == 1.0 and m["filter"]["all"]["all"]["stage_efficiency"] == 5 / 6
    assert m["graph"]["pt_min=0.5"]["endcap"]["efficiency"] is None
    assert m["graph"]["pt_min=0.5"]["endcap"]["purity"] is None


def test_unknown_edges_are_never_counted_false(lab):
    s, r = edge_rows()
    known = np.array(["u" not in e for e in EDGES])
    with_unknown = P.edge_counts(lab, s, r, stages())
    without = P.edge_counts(lab, s[known], r[known], {k: v[known] for k, v in stages().items()})
    assert with_unknown == without
    # a stage that keeps only unknown edges has no labelled purity at all, not a purity of 0
    only = P.stage_metrics(P.edge_counts(lab, s, r, {"graph": ~known}))["graph"]
    for c in P.CLASSES:
        for g in P.REGIONS:
            assert only[c][g]["purity"] is None and only[c][g]["labelled"] == 0


def test_edge_count_shapes_are_checked(lab):
    s, r = edge_rows()
    with pytest.raises(DataError, match="stage 'gnn' mask has shape"):
        P.edge_counts(lab, s, r, {"gnn": np.ones(3, bool)})
    with pytest.raises(DataError, match="senders and receivers"):
        P.edge_counts(lab, s, r[:2], {})


# tracks: T1 = a1 a2 a3 b1 u1 u2 (A: 3/5 of A, 3/4 of T1's labelled hits -> matched; u1, u2 are unknown, not
# against it), T2 = a4 a5 b2 b3 (B: 2/3 of B but only 2/4 of T2's labelled hits -> not matched), T3 = c1 c2 c3
# (C matched, with min_track_hits <= 3), d1, d2: singletons (D has 2 labelled hits: not counted)
TRACKS = {"a1": 1, "a2": 1, "a3": 1, "b1": 1, "u1": 1, "u2": 1, "a4": 2, "a5": 2, "b2": 2, "b3": 2,
          "c1": 3, "c2": 3, "c3": 3, "d1": 4, "d2": 5}


def hit_track():
    return np.array([TRACKS[n] for n in NAMES])


def test_group_matching_by_hand(lab):
    t = P.group_table(lab, hit_track(), min_track_hits=1)
    assert t["group"].tolist() == [1, 2, 3]  # D has only 2 labelled hits
    assert t["matched"].tolist() == [True, False, True]
    assert t["barrel"].tolist() == [False, True, False]
    assert t["n_labelled"].tolist() == [5, 3, 3]
    assert t["eta"].iloc[0] > 0 and t["eta"].iloc[1] < 0 and t["eta"].iloc[2] < -2.5
    c = P.track_counts(t)
    assert c["all"]["all"] == {"groups": 3, "matched": 2}
    assert c["pt_min=1.0"]["all"] == {"groups": 2, "matched": 2}
    assert c["pt_min=0.5"]["all"] == {"groups": 1, "matched": 0}
    assert c["all"]["barrel"] == {"groups": 1, "matched": 0} and c["all"]["endcap"] == {"groups": 2, "matched": 2}
    assert c["pt_min=0.5"]["endcap"] == {"groups": 0, "matched": 0}
    assert P.track_ratios(c["pt_min=0.5"]["endcap"])["efficiency"] is None
    # by default tracks of any size count; with a minimum (all hits counted) T3, of 3 hits, is not a track
    assert P.group_table(lab, hit_track())["matched"].tolist() == [True, False, True]
    t4 = P.group_table(lab, hit_track(), min_track_hits=4)
    assert t4["matched"].tolist() == [True, False, False]


def test_unlabelled_hits_do_not_dilute_a_track():
    """The same T1 with its two unknown hits made labelled hits of another group loses A's match."""
    ev = make_event()
    partial = pd.concat([ev.partial_truth, pd.DataFrame({"hit_id": ev.hits["hit_id"].iloc[[ROW["u1"], ROW["u2"]]],
                                                         "group": 9, "pt_min": 1.0})])
    lab = P.labelled_hits(ev.hits, partial)
    assert P.group_table(lab, hit_track(), min_track_hits=1)["matched"].tolist() == [False, False, True]


def test_group_table_checks_and_empty(lab):
    with pytest.raises(DataError, match="hit_track has shape"):
        P.group_table(lab, np.ones(3, np.int64))
    ev = make_event()
    empty = P.labelled_hits(ev.hits, ev.partial_truth.iloc[:0])
    assert len(P.group_table(empty, hit_track())) == 0
    with pytest.raises(DataError, match="hit_id 5 is not a hit of the event"):
        P.labelled_hits(ev.hits, ev.partial_truth.assign(hit_id=5))


def test_trkx_eval_uses_the_partial_truth(tmp_path):
    """A folder of two events, one with partial truth only: the partial metrics, summed, plotted, printed."""
    events, subs = tmp_path / "events", tmp_path / "subs"
    sub_frames = []
    for eid in (7, 8):
        ev = make_event(eid)
        write_event(events, ev)
        sub_frames.append(pd.DataFrame({"event_id": eid, "hit_id": ev.hits["hit_id"], "track_id": hit_track()}))
        subs.mkdir(exist_ok=True)
        sub_frames[-1].to_csv(subs / f"event{eid:09d}-submission.csv", index=False)
    s, r = edge_rows()
    ids = make_event().hits["hit_id"].to_numpy()
    write_edges(edges_path(subs, 7), StageEdges(ids[s], ids[r], stages(), {}))
    m = evaluate(events, subs, tmp_path / "out", EvalConfig(), progress=False)  # partial: tracks of any size
    assert m["events"] == [] and m["tracks"] is None
    p = m["partial_truth"]
    assert p["events"] == [7, 8] and p["n_labelled_hits"] == 26
    assert p["tracks"]["all"]["all"] == {"efficiency": 2 / 3, "groups": 6, "matched": 4}
    assert p["edges"]["graph"]["all"]["all"]["truth"] == 9  # only event 7 has an edges file
    assert p["edges"]["gnn"]["pt_min=1.0"]["all"]["efficiency"] == pytest.approx(4 / 7)
    assert sorted(pth.rsplit("/", 1)[1] for pth in m["plots"]) == ["partial_edges.png",
                                                                    "partial_efficiency_vs_eta.png"]
    assert all((tmp_path / "out" / "plots" / n).stat().st_size > 1000 for n in
               ("partial_edges.png", "partial_efficiency_vs_eta.png"))
    assert [e["event_id"] for e in p["per_event"]] == [7, 8] and "edges" not in p["per_event"][1]
    text = format_summary(m)
    assert "partial-truth events" in text and "pt_min=0.5  endcap" in text and "66.67" in text


def test_trkx_eval_mixes_full_and_partial_events_and_refuses_neither(tmp_path):
    from handmade import make_event as make_full, make_submission

    events, subs = tmp_path / "events", tmp_path / "subs"
    write_event(events, make_full(5))
    make_submission(5).to_csv(tmp_path / "s5.csv", index=False)
    subs.mkdir()
    (subs / "event000000005-submission.csv").write_text((tmp_path / "s5.csv").read_text())
    ev = make_event(7)
    write_event(events, ev)
    pd.DataFrame({"event_id": 7, "hit_id": ev.hits["hit_id"], "track_id": hit_track()}).to_csv(
        subs / "event000000007-submission.csv", index=False)
    m = evaluate(events, subs, tmp_path / "out", EvalConfig(), progress=False)
    assert m["events"] == [5] and m["partial_truth"]["events"] == [7]
    assert m["tracks"]["all"]["technical_efficiency"] is not None
    assert len(m["plots"]) == 3  # two full-truth plots + the partial track plot (no edges)
    # an event with hits only cannot be evaluated
    write_event(events, Event(9, ev.hits))
    pd.DataFrame({"event_id": 9, "hit_id": ev.hits["hit_id"], "track_id": 1}).to_csv(
        subs / "event000000009-submission.csv", index=False)
    with pytest.raises(DataError, match="event 9 has neither a truth nor a partial-truth file"):
        evaluate(events, subs, tmp_path / "out2", EvalConfig(), progress=False)


def test_infer_takes_events_without_truth_and_eval_scores_them_on_partial_truth(tmp_path):
    """trkx-infer on events with hits + partial truth only (toy barrel events, a truth oracle as the models),
    then trkx-eval: the partial metrics of the oracle's perfect edges, and the full metrics of the same
    submission agree."""
    from toy_events import make_event as make_toy

    from trkx_tf.config import Config
    from trkx_tf.graphs.candidates import ModuleMapBuilder
    from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
    from trkx_tf.graphs.truth import hit_particle_ids, truth_graph
    from trkx_tf.reco.pipeline import Pipeline, infer
    from trkx_tf.trackml.partial import partial_truth_from_full

    samples = [EdgeSample.from_truth(e.hits, truth_graph(e.hits, e.particles, e.truth))
               for e in (make_toy(i) for i in range(20))]
    builder = ModuleMapBuilder(ModuleMap.fit(samples, pt_min=0.0))
    full, labelled = tmp_path / "full", tmp_path / "labelled"
    ev = make_toy(100)
    write_event(full, ev)
    partial = partial_truth_from_full(ev.hits, ev.particles, ev.truth)
    write_event(labelled, Event(100, ev.hits, partial_truth=partial))
    pid = hit_particle_ids(ev.hits, ev.truth)

    def oracle(nodes, s, r):  # a test double behind the EdgeScorer interface, as in test_pipeline.py
        return np.where((pid[s] == pid[r]) & (pid[s] != 0), 0.9, 0.1).astype(np.float32)

    pipe = Pipeline(builder, gnn=oracle, filter=oracle, filter_threshold=0.5, gnn_threshold=0.5, labelling="cc")
    infer(Config(), labelled, tmp_path / "subs", pipeline=pipe, progress=False)
    write_event(tmp_path / "bare", Event(100, ev.hits))  # no truth of any kind: inference is the same
    infer(Config(), tmp_path / "bare", tmp_path / "subs_bare", pipeline=pipe, progress=False)
    name = "event000000100-submission.csv"
    assert (tmp_path / "subs" / name).read_text() == (tmp_path / "subs_bare" / name).read_text()
    p = evaluate(labelled, tmp_path / "subs", tmp_path / "ev_p", EvalConfig(), progress=False)["partial_truth"]
    f = evaluate(full, tmp_path / "subs", tmp_path / "ev_f", EvalConfig(), progress=False)
    assert p["edges"]["gnn"]["all"]["all"]["purity"] == 1.0  # the oracle keeps only same-particle edges
    assert p["edges"]["gnn"]["all"]["all"]["efficiency"] == p["edges"]["graph"]["all"]["all"]["efficiency"] > 0.9
    # every toy hit is in the barrel and every particle above 0.5 GeV: the labelled edge counts are the full ones
    for stage in ("graph", "filter", "gnn"):
        pe, fe = p["edges"][stage]["all"]["all"], f["edges"][stage]["pt>0.5"]
        assert (pe["truth"], pe["true"], pe["labelled"]) == (fe["truth"], fe["true"], fe["edges"]), stage
    assert p["edges"]["graph"]["all"]["all"]["purity"] < 1.0  # the module map's fakes between labelled hits
    assert p["edges"]["graph"]["pt_min=1.0"]["endcap"]["truth"] == 0  # a barrel-only detector
    eff_p = p["tracks"]["all"]["all"]["efficiency"]
    eff_f = f["tracks"]["pt>0.5"]["technical_efficiency"]
    assert eff_p > 0.75 and abs(eff_p - eff_f) < 0.05


def test_corrupted_tracks_damage_as_documented():
    from trkx_tf.reco.partial_check import corrupted_tracks

    pid = np.repeat(np.arange(0, 401, dtype=np.int64) * 7, 6)  # particle 0 (noise) and 400 particles of 6 hits
    truth = corrupted_tracks(pid, "truth")
    assert len(np.unique(truth[pid == 0])) == 6  # noise hits: singletons
    real = pid != 0
    assert len(np.unique(truth[real])) == 400 and all(len(np.unique(pid[truth == t])) == 1 for t in truth[real])
    dropped = corrupted_tracks(pid, "drop_particles")
    broken = [p for p in np.unique(pid[real]) if len(np.unique(dropped[pid == p])) == 6]
    assert 70 < len(broken) < 130  # one particle in 4, by hash
    lost = corrupted_tracks(pid, "lose_hits")
    assert 0.2 < np.mean(lost[real] != truth[real]) < 0.3  # one hit in 4 becomes a singleton
    merged = corrupted_tracks(pid, "merge_pairs")
    sizes = np.unique(merged[real], return_counts=True)[1]
    assert set(sizes) == {6, 12} and 80 < (sizes == 12).sum() < 120  # half the particles, in pairs
    assert np.array_equal(corrupted_tracks(pid, "merge_pairs"), merged)  # deterministic
    with pytest.raises(DataError, match="unknown kind 'x'"):
        corrupted_tracks(pid, "x")
