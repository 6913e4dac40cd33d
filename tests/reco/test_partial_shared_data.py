"""The partial-truth metrics follow the full ones on real event 1000 (a check of the metric: nothing is tuned).

Event 1000 is the test event: a partial truth is made from its full truth by the labelled events' rules, and the
same reconstructions, made from the truth itself or damaged in a deterministic way, are scored both ways. The
real labelled events (../shared/trackml/labelled) are read as released.
"""

import numpy as np
import pandas as pd
import pytest

from trkx_tf.config import EvalConfig
from trkx_tf.graphs.truth import hit_particle_ids, match_truth, truth_graph
from trkx_tf.reco import partial as P
from trkx_tf.reco import partial_check as C
from trkx_tf.reco.evaluate import evaluate
from trkx_tf.reco.outputs import edges_path, write_edges
from trkx_tf.trackml.io import Event, read_event, write_event
from trkx_tf.trackml.partial import partial_truth_from_full

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def event1000(shared_trackml):
    if not (shared_trackml / "event000001000-truth.csv.gz").exists():
        pytest.skip(f"real event 1000 not found in {shared_trackml}")
    ev = read_event(shared_trackml, 1000, parts=("hits", "particles", "truth"))
    return ev, partial_truth_from_full(ev.hits, ev.particles, ev.truth)


def test_real_labelled_events_read_and_validate(shared_trackml):
    folder = shared_trackml / "labelled"
    if not (folder / "event000001001-partial-truth.csv.gz").exists():
        pytest.skip(f"real labelled events not found in {folder}")
    ev = read_event(folder, 1001)
    assert ev.truth is None and ev.partial_truth is not None and ev.particles is not None
    p = ev.partial_truth
    assert 5000 < len(p) < 15000 and p["hit_id"].is_unique and p["hit_id"].is_monotonic_increasing
    assert set(np.unique(p["pt_min"])) == {0.5, 1.0} and p["group"].min() >= 1
    # the 0.5 class is labelled in the pixel barrel only, the 1.0 class in the three pixel volumes
    vol = ev.hits.set_index("hit_id").loc[p["hit_id"], "volume_id"].to_numpy()
    assert set(vol[p["pt_min"].to_numpy() == 0.5]) == {8} and set(vol) == {7, 8, 9}


def test_rules_give_a_labelled_truth_graph_inside_the_full_one(event1000):
    ev, partial = event1000
    lab = P.labelled_hits(ev.hits, partial)
    s, r = P.labelled_truth_graph(lab)
    inside = match_truth(s, r, truth_graph(ev.hits, ev.particles, ev.truth)) >= 0
    assert len(s) > 5000 and inside.mean() > 0.999
    # about as many labels per hit as the real labelled events (94.6 per 1000 hits, 84.9-101.8, when written)
    assert 80 < 1000 * len(partial) / len(ev.hits) < 110


def test_partial_track_efficiency_follows_the_full_one(event1000):
    ev, partial = event1000
    pid = hit_particle_ids(ev.hits, ev.truth)
    cfg = EvalConfig()
    truth = C.compare(ev, partial, C.corrupted_tracks(pid, "truth"), cfg)["tracks"]
    for c in P.CLASSES:
        assert truth[c]["full"] == truth[c]["partial"] == 1.0, c
    dropped = C.compare(ev, partial, C.corrupted_tracks(pid, "drop_particles"), cfg)["tracks"]
    for c in P.CLASSES:
        assert 0.7 < dropped[c]["partial"] < 0.8 and abs(dropped[c]["partial"] - dropped[c]["full"]) < 0.01, c


def test_partial_edge_efficiency_follows_the_full_one_through_trkx_eval(event1000, tmp_path):
    ev, partial = event1000
    pid = hit_particle_ids(ev.hits, ev.truth)
    edges = C.synthetic_stage_edges(ev)
    hit_track = C.corrupted_tracks(pid, "drop_particles")
    cmp = C.compare(ev, partial, hit_track, EvalConfig(), edges)
    for stage, by in cmp["edges"].items():
        for c, v in by.items():
            assert abs(v["partial_eff"] - v["full_eff"]) < 0.005, (stage, c)
            assert abs(v["partial_eff"] - v["full_eff_labelled_hits"]) < 0.001, (stage, c)  # the same hits
    # the same through trkx-eval's library call, on an events folder that has hits + partial truth only
    events, subs = tmp_path / "events", tmp_path / "subs"
    write_event(events, Event(1000, ev.hits, partial_truth=partial))
    subs.mkdir()
    pd.DataFrame({"event_id": 1000, "hit_id": ev.hits["hit_id"], "track_id": hit_track}).to_csv(
        subs / "event000001000-submission.csv", index=False)
    write_edges(edges_path(subs, 1000), edges)
    m = evaluate(events, subs, tmp_path / "out", EvalConfig(), progress=False)["partial_truth"]
    for stage, by in cmp["edges"].items():
        for c, v in by.items():
            assert m["edges"][stage][c]["all"]["efficiency"] == v["partial_eff"]
            assert m["edges"][stage][c]["all"]["purity"] == v["partial_purity"]
    assert m["tracks"]["pt_min=1.0"]["all"]["efficiency"] == cmp["tracks"]["pt_min=1.0"]["partial"]
    assert m["edges"]["gnn"]["pt_min=0.5"]["endcap"]["efficiency"] is None
    assert m["edges"]["gnn"]["pt_min=1.0"]["endcap"]["truth"] > 1000
