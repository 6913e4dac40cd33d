"""Candidate-edge builders: the module map (learn, build, save/load) and the embedding builder."""


import numpy as np
import pandas as pd
import pytest

from toy import make_event
from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.graphs.candidates import EmbeddingBuilder, ModuleMapBuilder, make_builder, radius_graph
from trkx_tf.graphs.doublets import doublet_variables, module_uid
from trkx_tf.graphs.features import hit_features
from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
from trkx_tf.graphs.truth import label_edges, truth_graph


def sample(event):
    return EdgeSample.from_truth(event.hits, truth_graph(event.hits, event.particles, event.truth))


@pytest.fixture(scope="module")
def trained():
    events = [make_event(event_id=i, n_particles=150, noise=30, seed=100 + i, overlap=0.1) for i in range(12)]
    return ModuleMap.fit([sample(e) for e in events]), events


def efficiency(builder, event):
    g = truth_graph(event.hits, event.particles, event.truth)
    s, r = builder.build(event.hits, None)
    labels, _, _ = label_edges(s, r, g)
    return labels.sum() / g.n_true, s, r


def test_doublet_variables():
    r = np.array([30.0, 60.0, 60.0])
    phi = np.array([3.1, -3.1, 0.0])
    z = np.array([10.0, 40.0, 10.0])
    dphi, z0 = doublet_variables(r, phi, z, np.array([0, 0]), np.array([1, 2]))
    np.testing.assert_allclose(dphi, [2 * np.pi - 6.2, -3.1])  # wrapped across ±π
    np.testing.assert_allclose(z0, [-20.0, 10.0])  # line through (30, 10), (60, 40) meets r = 0 at z = -20


def test_module_map_recovers_every_training_edge(trained):
    mm, events = trained
    builder = ModuleMapBuilder(mm, margin=0.0, rare_margin=0.0, min_count=1)
    eff, s, r = efficiency(builder, events[0])
    assert eff == 1.0
    assert np.all(s != r)
    keys = np.minimum(s, r) * len(events[0].hits) + np.maximum(s, r)
    assert len(np.unique(keys)) == len(keys)  # no hit pair twice
    assert np.all(np.diff(s) >= 0)  # sorted by sender


def test_module_map_generalises_to_a_new_event(trained):
    mm, _ = trained
    new = make_event(event_id=99, n_particles=150, noise=30, seed=999)
    eff_wide, s_wide, _ = efficiency(ModuleMapBuilder(mm, margin=0.3, rare_margin=1.0), new)
    eff_tight, s_tight, _ = efficiency(ModuleMapBuilder(mm, margin=0.0, rare_margin=0.0), new)
    assert eff_wide > 0.9  # only module pairs never seen in training are lost
    assert eff_tight < eff_wide and len(s_tight) < len(s_wide)  # windows do cut
    assert len(ModuleMapBuilder(mm, min_count=10**6).build(new.hits)[0]) == 0  # no pair is used


def test_windows_widen_with_margin(trained):
    mm, _ = trained
    lo0, hi0, use0 = mm.windows(0.0, 0.0, 1)
    lo1, hi1, use1 = mm.windows(0.5, 0.5, 1)
    assert np.all(use0 == use1) and use0.all()
    assert np.all(lo1 <= lo0) and np.all(hi1 >= hi0) and np.any(lo1 < lo0)
    np.testing.assert_allclose(lo0, mm.lo)
    np.testing.assert_allclose(hi0, mm.hi)
    # a range resting on fewer edges widens more
    lo2, hi2, _ = mm.windows(0.0, 1.0, 1)
    keys = mm.layer_a * 10**7 + mm.layer_b
    pos = np.searchsorted(keys, (mm.module_a // 100_000) * 10**7 + mm.module_b // 100_000)
    width = mm.layer_hi[pos] - mm.layer_lo[pos]
    inside = (lo2 > mm.layer_lo[pos]) & (hi2 < mm.layer_hi[pos])  # not clipped by the layer range
    pad = (mm.lo - lo2)[inside] / width[inside]
    np.testing.assert_allclose(pad, 1.0 / (np.broadcast_to(mm.count_fit[:, None], lo2.shape)[inside] + 1))
    _, _, use3 = mm.windows(0.0, 0.0, 3)
    assert np.array_equal(use3, mm.count >= 3)


def test_module_map_save_load_roundtrip(trained, tmp_path):
    mm, events = trained
    mm.save(tmp_path / "map.npz")
    back = ModuleMap.load(tmp_path / "map.npz")
    a = ModuleMapBuilder(mm, 0.1, 0.5, 2).build(events[1].hits)
    b = ModuleMapBuilder(back, 0.1, 0.5, 2).build(events[1].hits)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert back.n_events == 12 and back.pt_min == 0.0 and back.quantile == 0.0


def test_module_map_load_errors(trained, tmp_path):
    mm, _ = trained
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        ModuleMap.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "old.npz", version=np.int64(0))
    with pytest.raises(DataError, match="version 0"):
        ModuleMap.load(tmp_path / "old.npz")


def test_module_map_needs_edges():
    with pytest.raises(DataError, match="no true edges"):
        ModuleMap.fit([])


def test_pt_min_sets_windows_from_high_pt_edges_only(trained):
    _, events = trained
    samples = [sample(e) for e in events]
    all_pt = ModuleMap.fit(samples, pt_min=0.0)
    hi_pt = ModuleMap.fit(samples, pt_min=2.0, connect_pt_min=0.0)
    assert hi_pt.n_pairs == all_pt.n_pairs  # connectivity from every edge
    assert ModuleMap.fit(samples, pt_min=2.0).n_pairs < all_pt.n_pairs  # connectivity from high-pT edges only
    width_all = np.nanmax(all_pt.layer_hi[:, 0] - all_pt.layer_lo[:, 0])
    width_hi = np.nanmax(hi_pt.layer_hi[:, 0] - hi_pt.layer_lo[:, 0])
    assert width_hi < width_all  # high-pT tracks bend less
    assert np.all(hi_pt.count_fit <= hi_pt.count) and np.all(hi_pt.count[hi_pt.count_fit == 0] >= 0)


def test_quantile_cuts_the_tails_of_layer_ranges(trained):
    _, events = trained
    samples = [sample(e) for e in events]
    full = ModuleMap.fit(samples, quantile=0.0)
    cut = ModuleMap.fit(samples, quantile=0.05)
    assert np.all(cut.layer_lo >= full.layer_lo) and np.all(cut.layer_hi <= full.layer_hi)
    assert np.any(cut.layer_hi[:, 1] - cut.layer_lo[:, 1] < full.layer_hi[:, 1] - full.layer_lo[:, 1])
    # pair ranges lie inside their layer pair's range
    lo, hi, _ = cut.windows(0.0, 0.0, 1)
    keys = cut.layer_a * 10**7 + cut.layer_b
    pos = np.searchsorted(keys, (cut.module_a // 100_000) * 10**7 + cut.module_b // 100_000)
    assert np.all(lo >= cut.layer_lo[pos]) and np.all(hi <= cut.layer_hi[pos])
    with pytest.raises(ConfigError):
        ModuleMap.fit(samples, quantile=0.5)


def brute_force_pairs(points, radius):
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    i, j = np.nonzero(np.triu(d <= radius, 1))
    return sorted(zip(i.tolist(), j.tolist()))


def test_radius_graph_matches_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.uniform(size=(200, 3))
    i, j = radius_graph(pts, 0.15, max_neighbours=200)
    assert sorted(zip(i.tolist(), j.tolist())) == brute_force_pairs(pts, 0.15)
    i2, _ = radius_graph(pts, 0.15, max_neighbours=2)
    assert np.bincount(i2, minlength=200).max() <= 4  # each point keeps at most 2 of its own (+ others' picks)


def identity(nodes):
    return nodes


def test_embedding_builder_with_identity_embedding(toy_event):
    nodes = hit_features(toy_event.hits)
    builder = EmbeddingBuilder(identity, radius=0.05, max_neighbours=16)
    s, r = builder.build(toy_event.hits, nodes)
    i, j = radius_graph(nodes, 0.05, 16)
    assert len(s) == len(i) and len(s) > 0
    dist = np.hypot(np.hypot(toy_event.hits.x, toy_event.hits.y), toy_event.hits.z).to_numpy()
    assert np.all(dist[s] <= dist[r])  # edges point outwards


def test_make_builder_passes_the_embed_function(toy_event):
    cfg = load_config(None, ["graph.builder=embedding", "graph.embedding.radius=0.05"])
    builder = make_builder(cfg.graph, embed=identity)
    s, _ = builder.build(toy_event.hits, hit_features(toy_event.hits))
    assert len(s) > 0


def test_embedding_builder_rejects_an_embedding_of_other_rows(toy_event):
    builder = EmbeddingBuilder(lambda nodes: nodes[:-1], 0.1, 4)
    with pytest.raises(DataError, match="expected"):
        builder.build(toy_event.hits, hit_features(toy_event.hits))


def test_make_builder_needs_its_input():
    cfg = load_config(None)
    with pytest.raises(ConfigError, match="module map"):
        make_builder(cfg.graph)
    with pytest.raises(ConfigError, match="embedding"):
        make_builder(load_config(None, ["graph.builder=embedding"]).graph)


# ------------------------------------------------------------------------------- unseen pairs borrow windows
def test_module_centres_and_neighbours(trained):
    mm, events = trained
    # a module's centre is the mean position of its hits over the training events
    hits = pd.concat([e.hits for e in events])
    uid = module_uid(hits)
    for k in (0, 7, len(mm.modules) - 1):
        mine = hits[uid == mm.modules[k]]
        np.testing.assert_allclose(mm.centre[k], mine[["x", "y", "z"]].mean().to_numpy(), rtol=1e-9)
    assert set(mm.modules.tolist()) == set(uid.tolist())
    layer = mm.modules // 100_000
    src, nbr = mm.neighbours(3)
    assert np.all(src // 100_000 == nbr // 100_000) and np.all(src != nbr)
    assert np.all(np.bincount(np.searchsorted(mm.modules, src)) == 3)
    # brute force: the 3 nearest centres of the same layer
    i = 5
    same = np.flatnonzero((layer == layer[i]) & (np.arange(len(layer)) != i))
    d = np.linalg.norm(mm.centre[same] - mm.centre[i], axis=1)
    assert set(nbr[src == mm.modules[i]]) == set(mm.modules[same[np.argsort(d)[:3]]])


def test_unseen_pairs_borrow_the_windows_of_neighbouring_pairs(trained):
    _, events = trained
    thin = ModuleMap.fit([sample(e) for e in events[:2]])  # two events: many module pairs never seen
    new = make_event(event_id=98, n_particles=150, noise=30, seed=998)
    plain = ModuleMapBuilder(thin, margin=0.05, rare_margin=0.5)
    lent = ModuleMapBuilder(thin, margin=0.05, rare_margin=0.5, neighbours=8)
    eff_plain, s0, r0 = efficiency(plain, new)
    eff_lent, s1, r1 = efficiency(lent, new)
    assert lent.n_borrowed > 0 and plain.n_borrowed == 0
    assert eff_lent > eff_plain + 0.05
    n = len(new.hits)
    assert set((s0 * n + r0).tolist()) <= set((s1 * n + r1).tolist())  # seen pairs keep their windows
    # a borrowed window is the union of its lenders' windows; seen pairs are never lent one
    lo, hi, use = thin.windows(0.05, 0.5, 1)
    ba, bb, blo, bhi = thin.borrowed_windows(lo, hi, use, 8)
    seen = set(zip(thin.module_a.tolist(), thin.module_b.tolist()))
    assert not seen & set(zip(ba.tolist(), bb.tolist()))
    src, nbr = thin.neighbours(8)
    j = len(ba) // 2
    lenders = [p for p in range(thin.n_pairs)
               if (thin.module_a[p] == ba[j] and bb[j] in nbr[src == thin.module_b[p]])
               or (thin.module_b[p] == bb[j] and ba[j] in nbr[src == thin.module_a[p]])]
    assert lenders
    np.testing.assert_allclose(blo[j], lo[lenders].min(axis=0))
    np.testing.assert_allclose(bhi[j], hi[lenders].max(axis=0))


def test_neighbours_from_the_config_and_old_maps(trained, tmp_path):
    mm, events = trained
    cfg = load_config(None, ["graph.module_map.neighbours=4"])
    assert make_builder(cfg.graph, module_map=mm).n_borrowed > 0
    with pytest.raises(ConfigError, match="neighbours >= 0"):
        ModuleMapBuilder(mm, neighbours=-1)
    # a version-2 map (no module centres) still loads and builds, but cannot lend windows
    arrays = {f: np.asarray(getattr(mm, f)) for f in ("module_a", "module_b", "count", "count_fit", "lo", "hi",
                                                     "layer_a", "layer_b", "layer_lo", "layer_hi", "pt_min",
                                                     "quantile", "n_events")}
    np.savez(tmp_path / "v2.npz", version=np.int64(2), **arrays)
    old = ModuleMap.load(tmp_path / "v2.npz")
    assert len(ModuleMapBuilder(old).build(events[0].hits)[0]) > 0
    with pytest.raises(ConfigError, match="learn it again"):
        ModuleMapBuilder(old, neighbours=2)


def test_explain_says_why_true_edges_are_lost(trained):
    mm, _ = trained
    new = make_event(event_id=97, n_particles=150, noise=30, seed=997)
    g = truth_graph(new.hits, new.particles, new.truth)
    builder = ModuleMapBuilder(mm, margin=0.0, rare_margin=0.0)
    why = builder.explain(new.hits, g.senders, g.receivers)
    s, r = builder.build(new.hits)
    labels, _, _ = label_edges(s, r, g)
    assert (why == 0).sum() == labels.sum()  # kept exactly when the builder finds the edge
    assert {1, 2, 3} & set(why.tolist())
    # a pair outside its dphi window is outside it indeed; unconnected pairs are not in the builder's pairs
    uid = module_uid(new.hits)
    pairs = set(zip(builder.pair_a.tolist(), builder.pair_b.tolist()))
    for k in np.flatnonzero(why == 1)[:20]:
        assert (uid[g.senders[k]], uid[g.receivers[k]]) not in pairs
    from trkx_tf.graphs.features import cylindrical
    r_, phi, z = cylindrical(new.hits)
    dphi, _ = doublet_variables(r_, phi, z, g.senders, g.receivers)
    for k in np.flatnonzero(why == 2)[:20]:
        w = np.flatnonzero((builder.pair_a == uid[g.senders[k]]) & (builder.pair_b == uid[g.receivers[k]]))[0]
        assert not builder.lo[w, 0] <= dphi[k] <= builder.hi[w, 0]


# ------------------------------------------------------------------------------ skip_layers (missing hits)
def straight_event(layers, twin_layer=None, phi=0.3, cot=0.5):
    """One particle (pT 2 GeV) on a straight line from the origin, a hit on each barrel layer of ``layers``
    ((layer_id, r, module_id)); ``twin_layer``: that layer also gets a second hit (module overlap, 1 mm out,
    module_id + 50)."""
    hits = []
    for layer_id, r, module in layers:
        hits.append((layer_id, r, module))
        if layer_id == twin_layer:
            hits.append((layer_id, r + 1.0, module + 50))
    n = len(hits)
    lay = np.array([h[0] for h in hits])
    r = np.array([h[1] for h in hits], float)
    mod = np.array([h[2] for h in hits])
    hits = pd.DataFrame({"hit_id": np.arange(1, n + 1), "x": r * np.cos(phi), "y": r * np.sin(phi), "z": r * cot,
                         "volume_id": 8, "layer_id": lay, "module_id": mod})
    particles = pd.DataFrame({"particle_id": [7], "vx": [0.0], "vy": [0.0], "vz": [0.0], "px": [2.0], "py": [0.0],
                              "pz": [1.0], "q": [1], "nhits": [n]})
    truth = pd.DataFrame({"hit_id": hits["hit_id"], "particle_id": 7, "weight": 1.0 / n})
    return hits, particles, truth


def test_skip_edges_join_runs_two_apart_once():
    from trkx_tf.graphs.module_map import skip_edges

    # runs of one particle: [0] -> [1, 2] (overlap) -> [3] -> [4]; layers 2, 4, 6, 8
    s = np.array([0, 0, 1, 2, 3])
    r = np.array([1, 2, 3, 3, 4])
    pt = np.full(5, 1.5)
    layer = np.array([8002, 8004, 8004, 8006, 8008])
    ks, kr, kpt, kk = skip_edges(s, r, pt, layer, 1)
    assert sorted(zip(ks.tolist(), kr.tolist())) == [(0, 3), (1, 4), (2, 4)]  # 0 -> 3 once, not once per twin
    assert (kk == 1).all() and (kpt == 1.5).all()
    ks, kr, _, kk = skip_edges(s, r, pt, layer, 2)
    assert sorted(zip(ks[kk == 2].tolist(), kr[kk == 2].tolist())) == [(0, 4)]
    # a particle back on the layer it left (layers 2, 4, 2): the two ends would be one run, not joined
    ks, _, _, _ = skip_edges(np.array([0, 1]), np.array([1, 2]), np.ones(2), np.array([8002, 8004, 8002]), 1)
    assert len(ks) == 0
    assert len(skip_edges(s, r, pt, layer, 0)[0]) == 0


def test_skip_layers_learns_the_pairs_of_a_missed_hit():
    # training: layers 2 -> 4 (with an overlap twin) -> 6; the evaluated event misses the hit on layer 4
    train = straight_event([(2, 30.0, 1), (4, 70.0, 2), (6, 110.0, 3)], twin_layer=4)
    test = straight_event([(2, 30.0, 1), (6, 110.0, 3)])  # same track: its windows are points
    g = truth_graph(*test)
    assert g.n_true == 1  # the truth graph joins layers 2 and 6: consecutive once layer 4 is missed
    found = {}
    for k in (0, 1):
        smp = EdgeSample.from_truth(train[0], truth_graph(*train), skip_layers=k)
        mm = ModuleMap.fit([smp], skip_layers=k)
        assert mm.skip_layers == k
        s, r = ModuleMapBuilder(mm).build(test[0])
        found[k] = int(label_edges(s, r, g)[0].sum())
    assert found == {0: 0, 1: 1}
    # the skip edges are only learned when asked: samples with skip edges, map without
    smp = EdgeSample.from_truth(train[0], truth_graph(*train), skip_layers=1)
    assert len(smp.module_a) == 4 + 1  # 2 x 2 true edges around the twin, 1 skip edge 2 -> 6
    assert ModuleMap.fit([smp]).n_pairs == ModuleMap.fit([sample_of(train)]).n_pairs == 4
    with pytest.raises(ConfigError, match="skip_layers=1"):
        ModuleMap.fit([sample_of(train)], skip_layers=1)


def sample_of(event_frames):
    return EdgeSample.from_truth(event_frames[0], truth_graph(*event_frames))


def test_skip_layers_config_save_load_and_old_maps(trained, tmp_path):
    mm, events = trained
    assert load_config(None).graph.module_map.skip_layers == 0
    assert load_config(None, ["graph.module_map.skip_layers=1"]).graph.module_map.skip_layers == 1
    for bad in ("-1", "4", "x"):
        with pytest.raises(ConfigError, match=r"graph.module_map.skip_layers") as err:
            load_config(None, [f"graph.module_map.skip_layers={bad}"])
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="skip_layers must be >= 0"):
        EdgeSample.from_truth(events[0].hits, truth_graph(events[0].hits, events[0].particles, events[0].truth), -1)
    skip = ModuleMap.fit([EdgeSample.from_truth(e.hits, truth_graph(e.hits, e.particles, e.truth), 1)
                          for e in events[:4]], skip_layers=1)
    assert skip.n_pairs > ModuleMap.fit([sample(e) for e in events[:4]]).n_pairs
    skip.save(tmp_path / "skip.npz")
    assert ModuleMap.load(tmp_path / "skip.npz").skip_layers == 1
    # a map saved before skip_layers was recorded loads as skip_layers 0
    arrays = {f.name: np.asarray(getattr(mm, f.name)) for f in __import__("dataclasses").fields(mm)
              if f.name != "skip_layers"}
    np.savez(tmp_path / "old.npz", version=np.int64(3), **arrays)
    assert ModuleMap.load(tmp_path / "old.npz").skip_layers == 0


def test_learn_module_map_follows_the_skip_layers_key(toy_events_dir):
    """trkx-build's learning (learn_module_map) passes graph.module_map.skip_layers to the samples and the fit."""
    from trkx_tf.graphs.map_learning import learn_module_map

    ids = [100, 101, 102]
    plain = learn_module_map(toy_events_dir, ids, load_config(None).graph.module_map)
    skip = learn_module_map(toy_events_dir, ids, load_config(None, ["graph.module_map.skip_layers=1"]).graph.module_map)
    assert (plain.skip_layers, skip.skip_layers) == (0, 1)
    assert skip.n_pairs > plain.n_pairs
    assert set(zip(plain.module_a.tolist(), plain.module_b.tolist())) <= set(zip(skip.module_a.tolist(),
                                                                                skip.module_b.tolist()))
