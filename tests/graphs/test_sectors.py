"""eta/phi sectors: every edge weighted exactly once over the sectors, context edges neutral."""

import numpy as np
import pytest

from toy import make_event
from trkx_tf.errors import ConfigError
from trkx_tf.graphs.candidates import ModuleMapBuilder
from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
from trkx_tf.graphs.features import cylindrical, hit_features
from trkx_tf.graphs.graph import EventGraph
from trkx_tf.graphs.sectors import split_sectors
from trkx_tf.graphs.truth import label_edges, truth_graph


@pytest.fixture(scope="module")
def event_graph():
    ev = make_event(event_id=5, n_particles=120, noise=20, seed=5)
    tg = truth_graph(ev.hits, ev.particles, ev.truth)
    mm = ModuleMap.fit([EdgeSample.from_truth(ev.hits, tg)])
    s, r = ModuleMapBuilder(mm, 0.3, 0.5, 1).build(ev.hits)
    labels, weights, pt = label_edges(s, r, tg, "pt")
    g = EventGraph(hit_features(ev.hits), s.astype(np.int32), r.astype(np.int32), labels, weights, pt,
                   ev.hits["hit_id"].to_numpy(np.int64), 5).validate()
    rr, phi, z = cylindrical(ev.hits)
    return g, phi, np.arcsinh(z / rr)


def edge_ids(graph):
    return list(zip(graph.hit_id[graph.senders].tolist(), graph.hit_id[graph.receivers].tolist()))


@pytest.mark.parametrize("n_phi,n_eta,overlap", [(4, 1, 0.0), (3, 2, 0.1), (8, 2, 0.3)])
def test_each_edge_weighted_exactly_once(event_graph, n_phi, n_eta, overlap):
    g, phi, eta = event_graph
    sectors = split_sectors(g, phi, eta, n_phi, n_eta, overlap)
    assert 1 < len(sectors) <= n_phi * n_eta
    weight_of = dict(zip(edge_ids(g), g.edge_weights.tolist()))
    owned = {}
    for sg in sectors:
        sg.validate()
        assert sg.event_id == 5 and sg.sector >= 0
        for e, w, lab in zip(edge_ids(sg), sg.edge_weights.tolist(), sg.edge_labels.tolist()):
            assert e in weight_of
            if w > 0:
                assert e not in owned  # weighted in one sector only
                owned[e] = w
    positive = {e: w for e, w in weight_of.items() if w > 0}
    assert owned.keys() == positive.keys()
    assert sum(sg.edge_weights.sum() for sg in sectors) == pytest.approx(g.edge_weights.sum(), rel=1e-5)
    if overlap > 0:  # the halo adds unweighted context edges
        assert sum(sg.n_edge for sg in sectors) > g.n_edge


def test_one_sector_is_the_whole_graph(event_graph):
    g, phi, eta = event_graph
    assert split_sectors(g, phi, eta, 1, 1, 0.2) == [g]


def test_bad_sector_config(event_graph):
    g, phi, eta = event_graph
    with pytest.raises(ConfigError):
        split_sectors(g, phi, eta, 0, 1, 0.0)
