"""trkx-export: SavedModel and ONNX of a seeded filter and GNN give trkx-infer's scores on toy events of two sizes;
the ONNX graphs hold standard operators only (scatters as ScatterND add); the CLI's errors exit 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from toy_events import make_event
from trkx_tf.cli.export import main as export_main
from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError
from trkx_tf.export.onnx_graph import OPSET, nonstandard_ops, to_onnx
from trkx_tf.export.serving import SIGNATURE_KEY, native_op_types
from trkx_tf.export.writer import MANIFEST, ONNX_FILE, SAVED_MODEL, saved_graph_def
from trkx_tf.graphs.candidates import ModuleMapBuilder
from trkx_tf.graphs.features import edge_features, hit_features
from trkx_tf.graphs.module_map import EdgeSample, ModuleMap
from trkx_tf.graphs.truth import truth_graph
from trkx_tf.reco.scorers import load_scorer
from trkx_tf.train.checkpoints import build_edge_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# the filter without edge features, the GNN with them: both input layouts are exported
SETS = ["model.filter.hidden=16", "model.filter.layers=2", "model.filter.edge_features=false",
        "model.gnn.hidden=8", "model.gnn.layers=2", "model.gnn.steps=2", "model.gnn.edge_features=true"]
EVENTS = {100: 40, 101: 25}  # event id -> particles: two graph sizes


def _cli_sets(sets):
    return [a for s in sets for a in ("--set", s)]


def _seeded_checkpoint(kind, cfg, folder, seed):
    """A model of the configured shape, its weights moved off their initial values by a seeded draw, saved."""
    model = build_edge_model(kind, cfg.model, 3)
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(v + rng.normal(0, 0.3, v.shape).astype(np.float32))
    tf.train.Checkpoint(model=model, step=tf.Variable(1)).save(str(folder / "ckpt"))
    return folder


@pytest.fixture(scope="module")
def graphs():
    """Per event: nodes [n_node, 3] and the module-map builder's candidate edges, as trkx-infer makes them."""
    samples = [EdgeSample.from_truth(e.hits, truth_graph(e.hits, e.particles, e.truth))
               for e in (make_event(i) for i in range(12))]
    builder = ModuleMapBuilder(ModuleMap.fit(samples, pt_min=0.0))
    out = {}
    for eid, n_particles in EVENTS.items():
        hits = make_event(eid, n_particles=n_particles).hits
        nodes = hit_features(hits)
        s, r = builder.build(hits, nodes)
        out[eid] = nodes, s.astype(np.int32), r.astype(np.int32)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Seeded checkpoints exported by the CLI (in process); graph.use_cells stays true: F=3 is found by trying."""
    root = tmp_path_factory.mktemp("export")
    cfg = load_config(None, SETS)
    ckpts = {k: _seeded_checkpoint(k, cfg, root / k, seed) for seed, k in enumerate(("filter", "gnn"))}
    code = export_main(["--filter-ckpt", str(ckpts["filter"]), "--gnn-ckpt", str(ckpts["gnn"]),
                        "--out", str(root / "out"), *_cli_sets(SETS)])
    assert code == 0
    return cfg, ckpts, root / "out"


def _inputs(kind, cfg, nodes, s, r):
    feeds = {"nodes": nodes, "senders": s, "receivers": r}
    if getattr(cfg.model, kind).edge_features:
        feeds["edges"] = edge_features(nodes, s, r, cfg.graph.r_scale, cfg.graph.z_scale)
    return feeds


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["filter", "gnn"])
def test_exports_score_like_trkx_infer(exported, graphs, kind):
    cfg, ckpts, out = exported
    scorer = load_scorer(cfg, kind, ckpts[kind], 3)  # trkx-infer's scorer (native kernels where they build)
    saved = tf.saved_model.load(str(out / kind / SAVED_MODEL)).signatures[SIGNATURE_KEY]
    session = ort.InferenceSession(str(out / kind / ONNX_FILE), providers=["CPUExecutionProvider"])
    sizes = set()
    for eid, (nodes, s, r) in graphs.items():
        sizes.add((len(nodes), len(s)))
        expected = scorer(nodes, s, r)
        assert len(s) > 50 and expected.std() > 1e-3  # a real graph and scores that are not all alike
        feeds = _inputs(kind, cfg, nodes, s, r)
        by_saved = saved(**{k: tf.constant(v) for k, v in feeds.items()})["scores"].numpy()
        by_onnx = session.run(["scores"], feeds)[0]
        assert by_saved.shape == by_onnx.shape == expected.shape == (len(s),)
        np.testing.assert_allclose(by_saved, expected, rtol=0, atol=1e-4)
        np.testing.assert_allclose(by_onnx, expected, rtol=0, atol=1e-4)
    assert len(sizes) == 2  # one export, two graph sizes, no padding


@pytest.mark.slow
def test_exported_graphs_are_portable(exported):
    cfg, _, out = exported
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["onnx_opset"] == OPSET and set(manifest["models"]) == {"filter", "gnn"}
    assert [i["name"] for i in manifest["models"]["filter"]["inputs"]] == ["nodes", "senders", "receivers"]
    assert [i["name"] for i in manifest["models"]["gnn"]["inputs"]] == ["nodes", "edges", "senders", "receivers"]
    assert manifest["models"]["gnn"]["features"] == ["r", "phi", "z"]
    for kind in ("filter", "gnn"):
        model = onnx.load(str(out / kind / ONNX_FILE))
        assert nonstandard_ops(model) == []
        assert {n.op_type for n in model.graph.node}.isdisjoint({"PartitionedCall", "Unique"})
        dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in list(model.graph.input) + list(model.graph.output)}
        assert dims["nodes"] == ["n_node", 3] and dims["senders"] == ["n_edge"] and dims["scores"] == ["n_edge"]
        # the SavedModel: the XLA kernels (functions that XLA must compile), no native op
        saved = saved_graph_def(out / kind / SAVED_MODEL)
        assert native_op_types(saved) == []
        assert any(f.attr["_XlaMustCompile"].b for f in saved.library.function)
    # a process without trkx_tf (nor its native library) loads and runs the SavedModel
    code = ("import sys, numpy as np, tensorflow as tf; f = tf.saved_model.load(sys.argv[1]).signatures['%s']; "
            "n = tf.constant(np.random.default_rng(0).uniform(0.1, 1, (5, 3)), tf.float32); "
            "e = tf.constant([0, 1, 2, 3], tf.int32); "
            "print(f(nodes=n, edges=tf.zeros([4, 6]), senders=e, receivers=e + 1)['scores'].shape)" % SIGNATURE_KEY)
    proc = subprocess.run([sys.executable, "-c", code, str(out / "gnn" / SAVED_MODEL)], capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300, cwd="/")
    assert proc.returncode == 0 and proc.stdout.strip() == "(4,)", proc.stderr[-2000:]
    gnn = onnx.load(str(out / "gnn" / ONNX_FILE))
    scatters = [n for n in gnn.graph.node if n.op_type == "ScatterND"]
    reductions = [{a.name: a.s for a in n.attribute}.get("reduction") for n in scatters]
    assert scatters and set(reductions) == {b"add"}  # every segment sum; nothing else scatters


def test_scatter_handlers_match_tensorflow():
    """Segment sums (repeated ids, empty segments) and a sparse-dense product, converted and run by ONNX Runtime."""
    sig = [tf.TensorSpec([None, 3], tf.float32, name="x"), tf.TensorSpec([None], tf.int32, name="ids"),
           tf.TensorSpec([None], tf.int32, name="other")]

    @tf.function(input_signature=sig)
    def fn(x, ids, other):
        n = tf.reduce_max(ids) + 3  # segments past the largest id stay empty
        summed = tf.math.unsorted_segment_sum(tf.gather(x, other), ids, n)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(ids, tf.float32), ids, n)
        idx = tf.stack([tf.cast(ids, tf.int64), tf.cast(other, tf.int64)], 1)
        rows = tf.cast(n, tf.int64)
        sparse = tf.sparse.SparseTensor(idx, tf.range(tf.cast(tf.shape(ids)[0], tf.float32)) + 1.0,
                                        tf.stack([rows, tf.cast(tf.shape(x)[0], tf.int64)]))
        return {"y": summed * counts[:, None] + tf.sparse.sparse_dense_matmul(sparse, x)}

    model = to_onnx(fn.get_concrete_function(), ["x", "ids", "other"], "y", "test")
    assert nonstandard_ops(model) == [] and "ScatterND" in {n.op_type for n in model.graph.node}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for n_rows, n_ids in ((5, 9), (11, 30)):
        x = rng.normal(size=(n_rows, 3)).astype(np.float32)
        ids = rng.integers(0, 4, n_ids).astype(np.int32)
        other = rng.integers(0, n_rows, n_ids).astype(np.int32)
        got = session.run(["y"], {"x": x, "ids": ids, "other": other})[0]
        np.testing.assert_allclose(got, fn(x, ids, other)["y"].numpy(), rtol=1e-5, atol=1e-5)


def test_cli_errors_exit_2(tmp_path, capsys):
    cfg = load_config(None, SETS)
    ckpt = _seeded_checkpoint("filter", cfg, tmp_path / "filter", 0)
    (tmp_path / "file").write_text("x")
    cases = [
        (["--filter-ckpt", str(tmp_path / "missing")], "checkpoint"),                     # no checkpoint there
        (["--filter-ckpt", str(ckpt), "--set", "model.filter.hidden=32"], "does not fit"),  # another model
        (["--gnn-ckpt", str(ckpt)], "does not fit"),                                       # a filter as the GNN
        ([], "nothing to export"),
        (["--filter-ckpt", str(ckpt), "--out", str(tmp_path / "file" / "x")], "is a file"),
    ]
    for args, words in cases:
        argv = ["--out", str(tmp_path / "out"), *_cli_sets(SETS), *args]
        assert export_main(argv) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("trkx-export: error:") and words in err and "\n" not in err, (args, err)
    assert not (tmp_path / "out" / "filter").exists()  # nothing half-written


@pytest.mark.slow
def test_attention_gnn_exports(graphs, tmp_path):
    """The attention GNN's sparse-dense aggregation reaches ONNX as a gather, a product and ScatterND add."""
    sets = ["model.gnn.kind=attention", "model.gnn.attention_hidden=8", "model.gnn.attention_layers=2",
            "model.gnn.steps=2", "model.gnn.aggregation=both", "model.gnn.edge_features=true"]
    cfg = load_config(None, sets)
    ckpt = _seeded_checkpoint("gnn", cfg, tmp_path / "gnn", 3)
    assert export_main(["--gnn-ckpt", str(ckpt), "--out", str(tmp_path / "out"), *_cli_sets(sets)]) == 0
    model = onnx.load(str(tmp_path / "out" / "gnn" / ONNX_FILE))
    assert nonstandard_ops(model) == [] and "ScatterND" in {n.op_type for n in model.graph.node}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    scorer = load_scorer(cfg, "gnn", ckpt, 3)
    for nodes, s, r in graphs.values():
        expected = scorer(nodes, s, r)
        assert expected.std() > 1e-3
        got = session.run(["scores"], _inputs("gnn", cfg, nodes, s, r))[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_export_trained_takes_built_models(graphs, tmp_path):
    """Weights from elsewhere than a checkpoint (a release): a built model is exported as it is."""
    from trkx_tf.export.writer import TrainedModel, export_trained
    from trkx_tf.graphs.features import feature_names

    cfg = load_config(None, SETS)
    model = build_edge_model("filter", cfg.model, 3)
    for v in model.trainable_variables:
        v.assign(v + np.random.default_rng(5).normal(0, 0.3, v.shape).astype(np.float32))
    with pytest.raises(ConfigError, match="one model per kind"):
        export_trained(cfg, tmp_path / "out", [])
    [done] = export_trained(cfg, tmp_path / "out", [TrainedModel("filter", model, "built", feature_names(False))])
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["models"]["filter"]["source"] == "built"
    session = ort.InferenceSession(str(done.onnx), providers=["CPUExecutionProvider"])
    nodes, s, r = graphs[100]
    n_edge = len(s)
    batch = {"nodes": nodes, "senders": s, "receivers": r, "n_node": np.array([len(nodes)], np.int32),
             "n_edge": np.array([n_edge], np.int32), "edge_mask": np.ones(n_edge, np.float32)}
    expected = tf.sigmoid(model({k: tf.constant(v) for k, v in batch.items()})).numpy()
    got = session.run(["scores"], {"nodes": nodes, "senders": s, "receivers": r})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
