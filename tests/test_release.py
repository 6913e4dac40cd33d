"""Released models (trkx_tf/release.py): export from checkpoints, ``trkx-infer --model``, ``trkx-info``, the errors, and
the release checked into models/ when there is one.

The released weights must give the same tracks as the checkpoints they came from, byte for byte.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "reco"))

from toy_events import make_event  # noqa: E402
from trkx_tf.cli.infer import main as infer_main  # noqa: E402
from trkx_tf.cli.info import main as info_main  # noqa: E402
from trkx_tf.cli.release import main as release_main  # noqa: E402
from trkx_tf.config import load_config  # noqa: E402
from trkx_tf.graphs.module_map import EdgeSample, ModuleMap  # noqa: E402
from trkx_tf.graphs.truth import truth_graph  # noqa: E402
from trkx_tf.release import (RELEASES_DIR, list_releases, load_weights, model_weights, read_card,  # noqa: E402
                             resolve_release)
from trkx_tf.trackml.io import write_event  # noqa: E402
from trkx_tf.train.checkpoints import build_edge_model  # noqa: E402

SETS = ["model.filter.hidden=8", "model.filter.layers=2", "model.gnn.hidden=8", "model.gnn.layers=2",
        "model.gnn.steps=2", "infer.filter_threshold=0.4", "infer.gnn_threshold=0.5", "infer.labelling=walk",
        "model.filter.edge_features=true", "model.gnn.edge_features=true"]


def _flags(sets):
    return [x for s in sets for x in ("--set", s)]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Toy events, their module map, a config file, and filter/GNN checkpoints with random (non-initial) weights."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("release")
    samples = []
    for i in range(30):
        e = make_event(i)
        samples.append(EdgeSample.from_truth(e.hits, truth_graph(e.hits, e.particles, e.truth)))
    ModuleMap.fit(samples, pt_min=0.0).save(root / "module_map.npz")
    (root / "events").mkdir()
    for i in (100, 101):
        write_event(root / "events", make_event(i))
    (root / "config.yaml").write_text("\n".join(f"# {s}" for s in SETS) + "\nrun: {name: toy}\n")
    cfg = load_config(root / "config.yaml", SETS)
    rng = np.random.default_rng(3)
    for kind in ("filter", "gnn"):
        model = build_edge_model(kind, cfg.model, 3)
        for v in model.variables:  # weights unlike any initialisation: the test cannot pass by re-initialising
            v.assign(rng.normal(0, 0.5, v.shape).astype(np.float32))
        tf.train.Checkpoint(model=model, step=tf.Variable(1)).save(str(root / kind / "ckpt"))
    metrics = {"events": [100], "tracks": {"pt>0.5": {"technical_efficiency": 0.5, "physics_efficiency": 0.4,
                                                      "purity": 0.3}}, "score": {"all": 0.25}}
    (root / "metrics.json").write_text(json.dumps(metrics))
    return root


def _export(toy, out, name="toy-rel", *extra):
    return release_main(["--config", str(toy / "config.yaml"), *_flags(SETS), "--name", name, "--out", str(out),
                         "--gnn-ckpt", str(toy / "gnn"), "--filter-ckpt", str(toy / "filter"), "--module-map",
                         str(toy / "module_map.npz"), "--metrics", f"sim={toy / 'metrics.json'}", "--data",
                         "30 toy events", "--command", "trkx-train (toy)", *extra])


def test_release_gives_the_checkpoints_tracks(toy, tmp_path, capsys):
    assert _export(toy, tmp_path / "models") == 0
    rel = tmp_path / "models" / "toy-rel"
    assert sorted(p.name for p in rel.iterdir()) == ["MODEL_CARD.md", "config.yaml", "filter.npz", "gnn.npz",
                                                      "module_map.npz", "release.json"]
    card = read_card(rel)
    assert card["metrics"]["sim"]["technical_efficiency"] == 0.5 and card["metrics"]["sim"]["score"] == 0.25
    assert "test-only" in (rel / "MODEL_CARD.md").read_text() or "test event" in card["test_event"]
    assert "never" in card["test_event"] and card["training"]["data"] == "30 toy events"
    assert card["inference"] == {"filter_threshold": 0.4, "gnn_threshold": 0.5, "labelling": "walk"}
    with np.load(rel / "gnn.npz") as w:  # weights only: float32 arrays, nothing else
        assert all(w[k].dtype == np.float32 for k in w.files) and len(w.files) == card["models"]["gnn"]["variables"]
    # tracks from the checkpoints, then from the release by its folder: the same files
    ck = ["--input", str(toy / "events"), "--out", str(tmp_path / "ck"), "--filter-ckpt", str(toy / "filter"),
          "--gnn-ckpt", str(toy / "gnn"), "--module-map", str(toy / "module_map.npz"), "--no-progress"]
    assert infer_main([*ck, *_flags(SETS)]) == 0
    assert infer_main(["--model", str(rel), "--input", str(toy / "events"), "--out", str(tmp_path / "rel"),
                       "--no-progress"]) == 0  # the numpy engine (infer.engine=auto)
    assert infer_main(["--model", str(rel), "--input", str(toy / "events"), "--out", str(tmp_path / "rel-tf"),
                       "--no-progress", "--set", "infer.engine=tensorflow"]) == 0
    for eid in (100, 101):
        sub, edges = f"event{eid:09d}-submission.csv", f"event{eid:09d}-edges.npz"
        for out in ("rel", "rel-tf"):
            assert (tmp_path / "ck" / sub).read_bytes() == (tmp_path / out / sub).read_bytes(), (out, sub)
        assert (tmp_path / "ck" / edges).read_bytes() == (tmp_path / "rel-tf" / edges).read_bytes()
        with np.load(tmp_path / "ck" / edges) as a, np.load(tmp_path / "rel" / edges) as b:  # scores to rounding
            assert a.files == b.files
            for k in a.files:
                if k.startswith("score_"):
                    np.testing.assert_allclose(b[k], a[k], atol=1e-5, equal_nan=True)
                else:
                    assert np.array_equal(a[k], b[k]), k
    # --set still applies on top of the release's config
    assert infer_main(["--model", str(rel), "--input", str(toy / "events"), "--out", str(tmp_path / "rel2"),
                       "--no-progress", "--set", "infer.gnn_threshold=0.99"]) == 0
    assert (tmp_path / "rel2" / "event000000100-submission.csv").read_bytes() != \
        (tmp_path / "rel" / "event000000100-submission.csv").read_bytes()
    # listed by name
    assert [c["name"] for c in list_releases(tmp_path / "models")] == ["toy-rel"]
    assert resolve_release("toy-rel", tmp_path / "models") == rel


def test_release_errors(toy, tmp_path, capsys):
    assert _export(toy, tmp_path / "models") == 0
    rel = tmp_path / "models" / "toy-rel"
    capsys.readouterr()
    cases = [
        (["--model", "no-such-model"], "no released model 'no-such-model'"),
        (["--model", str(rel), "--gnn-ckpt", str(toy / "gnn")], "drop --gnn-ckpt"),
        (["--model", str(rel), "--set", "model.gnn.hidden=16"], "the configured InteractionNetwork needs ("),
    ]
    for args, message in cases:
        code = infer_main([*args, "--input", str(toy / "events"), "--out", str(tmp_path / "o"), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0 and message in err, err
    # a damaged weights file is named
    data = bytearray((rel / "filter.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (rel / "filter.npz").write_bytes(bytes(data))
    code = infer_main(["--model", str(rel), "--input", str(toy / "events"), "--out", str(tmp_path / "o"),
                       "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "filter.npz: checksum does not match" in err
    # too large, and a bad name: refused, nothing written
    assert _export(toy, tmp_path / "m2", "bad/name") == 2
    from trkx_tf.errors import OutputError
    from trkx_tf.release_writer import export_release

    with pytest.raises(OutputError, match="over the limit"):
        export_release(load_config(None, SETS), tmp_path / "m3", "big", gnn_ckpt=toy / "gnn",
                       module_map=toy / "module_map.npz", max_bytes=1000)
    assert not list((tmp_path / "m3").iterdir())


def test_weights_must_fit(toy):
    cfg = load_config(None, SETS)
    model = build_edge_model("gnn", cfg.model, 3)
    weights = model_weights(model)
    from trkx_tf.errors import CheckpointError

    with pytest.raises(CheckpointError, match="missing"):
        load_weights(model, dict(list(weights.items())[1:]), "w.npz")
    key = next(iter(weights))
    with pytest.raises(CheckpointError, match="has shape"):
        load_weights(model, {**weights, key: np.zeros((1, 1), np.float32)}, "w.npz")


def test_a_byte_identical_module_map_is_stored_once(toy, tmp_path, capsys):
    """A second release with the same module map (a fine-tuned one) references its sibling's file instead of a copy,
    runs the same, and names the missing file in one line when the sibling is gone."""
    assert _export(toy, tmp_path / "models", "base") == 0
    assert _export(toy, tmp_path / "models", "tuned") == 0
    base, tuned = tmp_path / "models" / "base", tmp_path / "models" / "tuned"
    card = read_card(tuned)
    assert card["module_map"]["release"] == "base" and not (tuned / "module_map.npz").exists()
    assert "release" not in read_card(base)["module_map"] and (base / "module_map.npz").is_file()
    assert card["size_bytes"] < read_card(base)["size_bytes"] - (base / "module_map.npz").stat().st_size + 10000
    assert "shared with the release base" in (tuned / "MODEL_CARD.md").read_text()
    for rel in (base, tuned):
        assert infer_main(["--model", str(rel), "--input", str(toy / "events"), "--out", str(tmp_path / rel.name),
                           "--no-progress"]) == 0
    sub = "event000000100-submission.csv"
    assert (tmp_path / "base" / sub).read_bytes() == (tmp_path / "tuned" / sub).read_bytes()
    # re-exporting the base keeps its own file (a release never references itself)
    assert _export(toy, tmp_path / "models", "base") == 0 and (base / "module_map.npz").is_file()
    (base / "module_map.npz").unlink()
    capsys.readouterr()
    code = infer_main(["--model", str(tuned), "--input", str(toy / "events"), "--out", str(tmp_path / "o"),
                       "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "base/module_map.npz: a file of the release is missing" in err, err


def test_fine_tuning_starts_from_a_release(toy, tmp_path):
    """``train.init_checkpoint`` naming a release folder: each model takes the release's weights of its kind (found
    by its variables), checksums checked; a model no weights fit gets one clear error."""
    from trkx_tf.errors import CheckpointError, DataError
    from trkx_tf.release import initial_weights

    assert _export(toy, tmp_path / "models") == 0
    rel = tmp_path / "models" / "toy-rel"
    cfg = load_config(None, SETS)
    for kind in ("filter", "gnn"):
        model = build_edge_model(kind, cfg.model, 3)
        assert initial_weights(model, rel) == str(rel / f"{kind}.npz")
        with np.load(rel / f"{kind}.npz") as want:
            got = model_weights(model)
            assert sorted(got) == sorted(want.files)
            for name in got:
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # a checkpoint folder still restores as before
    model = build_edge_model("gnn", cfg.model, 3)
    assert initial_weights(model, toy / "gnn").startswith(str(toy / "gnn"))
    # what inference and trkx-build restore (infer.*_ckpt, graph.filter_ckpt) takes a release folder the same way
    from trkx_tf.train.checkpoints import load_edge_model

    model, source = load_edge_model("filter", cfg.model, rel, 3)
    assert source == str(rel / "filter.npz")
    with np.load(rel / "filter.npz") as want:
        for name, value in model_weights(model).items():
            np.testing.assert_array_equal(value, want[name], err_msg=name)
    with pytest.raises(CheckpointError, match="none of the release's weights"):
        initial_weights(build_edge_model("gnn", load_config(None, SETS + ["model.gnn.layers=3"]).model, 3), rel)
    data = bytearray((rel / "gnn.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (rel / "gnn.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum does not match"):
        initial_weights(build_edge_model("gnn", cfg.model, 3), rel)


def test_info_lists_the_releases(capsys):
    assert info_main(["--models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Released models")
    for card in list_releases():
        assert card["name"] in out


@pytest.mark.slow
def test_release_from_trained_checkpoints(tiny_shards, tmp_path, cli):
    """A release made from checkpoints that trkx-train really trained (2 epochs of tiny models) runs by name on an
    event it never saw, with the same tracks as those checkpoints."""
    sets = ["--set", "model.filter.hidden=8", "--set", "model.filter.layers=2", "--set", "model.gnn.hidden=8",
            "--set", "model.gnn.layers=2", "--set", "model.gnn.steps=2", "--set", "train.epochs=2",
            "--set", "train.max_steps_per_epoch=3", "--set", f"run.out_dir={tmp_path / 'runs'}",
            "--set", f"data.shards_dir={tiny_shards}"]
    for kind in ("filter", "gnn"):
        cli(["trkx-train", "--config", tiny_shards / "config.yaml", *sets, "--set", f"train.model={kind}",
                 "--set", f"run.name={kind}"])
    events = tiny_shards.parent / "events"
    infer_sets = [x for pair in zip(sets[::2], sets[1::2]) if pair[1].startswith("model.") for x in pair]
    cli(["trkx-release", "--config", tmp_path / "runs" / "gnn" / "config.yaml", *infer_sets, "--name", "tiny",
             "--out", tmp_path / "models", "--gnn-ckpt", tmp_path / "runs" / "gnn" / "checkpoints", "--filter-ckpt",
             tmp_path / "runs" / "filter" / "checkpoints", "--module-map", tiny_shards / "module_map.npz"])
    cli(["trkx-infer", "--model", tmp_path / "models" / "tiny", "--input", events, "--events", 3, "--out",
             tmp_path / "rel", "--no-progress"])
    cli(["trkx-infer", "--config", tmp_path / "runs" / "gnn" / "config.yaml", *infer_sets, "--input", events,
             "--events", 3, "--out", tmp_path / "ck", "--no-progress", "--gnn-ckpt",
             tmp_path / "runs" / "gnn" / "checkpoints", "--filter-ckpt", tmp_path / "runs" / "filter" / "checkpoints",
             "--module-map", tiny_shards / "module_map.npz"])
    name = "event000000003-submission.csv"
    assert (tmp_path / "rel" / name).read_bytes() == (tmp_path / "ck" / name).read_bytes()


def test_checked_in_release_runs_on_a_fresh_event(shared_trackml, tmp_path):
    """Each release in models/ reconstructs a small simulated event (μ=5, a seed no training used) by name, with
    no training; trkx-eval's technical efficiency on it is that of a trained model, not of random weights."""
    releases = [c for c in list_releases() if "error" not in c]
    if not releases:
        pytest.skip(f"no release checked into {RELEASES_DIR}")
    from trkx_tf.cli.eval import main as eval_main
    from trkx_tf.trackml.simulate import simulate_events

    events = tmp_path / "events"
    simulate_events(events, shared_trackml / "detectors.csv.gz", 1, pileup=5, seed=987654, workers=1,
                    first_event=7, cells=False, progress=False)
    for card in releases:
        out = tmp_path / card["name"]
        assert infer_main(["--model", card["name"], "--input", str(events), "--out", str(out), "--no-progress"]) == 0
        assert eval_main(["--input", str(events), "--submissions", str(out), "--out", str(out / "eval"),
                          "--no-progress"]) == 0
        m = json.loads((out / "eval" / "metrics.json").read_text())
        assert m["tracks"]["pt>0.5"]["technical_efficiency"] > 0.5, (card["name"], m["tracks"]["pt>0.5"])
        assert read_card(resolve_release(card["name"]))["size_bytes"] < 20e6
    total = sum(p.stat().st_size for p in RELEASES_DIR.rglob("*") if p.is_file())
    assert total <= 20e6
