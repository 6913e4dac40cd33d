"""The labelling, metrics and pipeline on the real TrackML geometry and event 1000 (../shared/trackml).

Event 1000 is the test event: nothing here trains or tunes on it. These tests only check that a perfect edge
selection (the truth graph) labels into a perfect reconstruction at the real event's scale, and that the
pipeline runs on events simulated on the real geometry.
"""

import numpy as np
import pytest

from trkx_tf.config import Config, EvalConfig
from trkx_tf.graphs.candidates import ModuleMapBuilder
from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
from trkx_tf.graphs.truth import hit_particle_ids, truth_graph
from trkx_tf.reco.evaluate import evaluate, evaluate_event
from trkx_tf.reco.labelling import connected_components_labels, submission_frame, walkthrough_labels
from trkx_tf.reco.pipeline import Pipeline, infer
from trkx_tf.trackml.io import read_event, write_event

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def event1000(shared_trackml):
    if not (shared_trackml / "event000001000-hits.csv.gz").exists():
        pytest.skip(f"real event 1000 not found in {shared_trackml}")
    return read_event(shared_trackml, 1000, parts=("hits", "particles", "truth"))


def test_truth_graph_labels_into_a_perfect_reconstruction_of_event_1000(event1000):
    ev = event1000
    tg = truth_graph(ev.hits, ev.particles, ev.truth)
    n = len(ev.hits)
    scores = np.ones(tg.n_true)
    for labels in (connected_components_labels(n, tg.senders, tg.receivers, scores, 0.5),):
        e = evaluate_event(ev, submission_frame(1000, ev.hits["hit_id"].to_numpy(), labels), EvalConfig())
        assert e.score["all"] == pytest.approx(1.0, abs=1e-6)
        for sel in ("all", "pt>0.5", "pt>1"):
            assert e.tracks[sel]["matched_reconstructable"] == e.tracks[sel]["reconstructable"] > 0
    # the walk-through resolves the truth graph's overlap branches almost losslessly (0.989 when written)
    r = np.hypot(ev.hits["x"].to_numpy(), ev.hits["y"].to_numpy())
    key = np.hypot(r, ev.hits["z"].to_numpy())
    walk = walkthrough_labels(n, tg.senders, tg.receivers, scores, 0.5, key)
    e = evaluate_event(ev, submission_frame(1000, ev.hits["hit_id"].to_numpy(), walk), EvalConfig())
    assert e.score["all"] > 0.97


def test_pipeline_on_events_simulated_on_the_real_geometry(shared_trackml, tmp_path):
    from trkx_tf.trackml.geometry import Geometry
    from trkx_tf.trackml.simulate import event_rng, simulate_event

    geometry = Geometry.load(shared_trackml / "detectors.csv.gz")
    events = [simulate_event(geometry, i, event_rng(7, i), pileup=3, cells=False) for i in range(9)]
    samples = [EdgeSample.from_truth(e.hits, truth_graph(e.hits, e.particles, e.truth)) for e in events[:8]]
    builder = ModuleMapBuilder(ModuleMap.fit(samples, pt_min=0.0))
    test = events[8]
    write_event(tmp_path / "events", test)
    pid = hit_particle_ids(test.hits, test.truth)

    def oracle(nodes, s, r):  # a test double behind the EdgeScorer interface
        return np.where((pid[s] == pid[r]) & (pid[s] != 0), 0.9, 0.1).astype(np.float32)

    pipe = Pipeline(builder, gnn=oracle, filter=oracle, filter_threshold=0.5, gnn_threshold=0.5, labelling="cc")
    infer(Config(), tmp_path / "events", tmp_path / "out", pipeline=pipe, progress=False)
    m = evaluate(tmp_path / "events", tmp_path / "out", tmp_path / "eval", EvalConfig(), progress=False)
    # a map from 8 tiny events misses many module pairs (edge efficiency ~0.45; ~0.72 from 40 events), but the
    # edges it finds all reach the tracks, and purely (the oracle also joins hits of one particle that the truth
    # graph does not link, e.g. across a missed layer, which the edge metrics count as fake); the unmatched tracks
    # are fragments of particles, cut where the map misses an edge
    assert m["edges"]["graph"]["all"]["efficiency"] > 0.3
    assert m["edges"]["gnn"]["all"]["efficiency"] == m["edges"]["graph"]["all"]["efficiency"]
    assert m["edges"]["gnn"]["all"]["purity"] > 0.95
    assert m["tracks"]["all"]["tracks"] > 20 and m["tracks"]["all"]["purity"] > 0.5 and m["score"]["all"] > 0.1
