"""The stages a config makes: names, order, commands, launchers, upstream links, config slices, bad configs."""

import pytest

from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError
from trkx_tf.pipeline.stages import config_slice, effective_config, pipeline_stages, read_set_file
from trkx_tf.pipeline.thresholds import choose_filter_threshold, choose_labelling


def _by_name(cfg):
    return {s.name: s for s in pipeline_stages(cfg)}


def test_demo_config_stages(repo):
    cfg = load_config(repo / "configs" / "demo.yaml")
    stages = pipeline_stages(cfg)
    assert [s.name for s in stages] == [
        "simulate", "simulate_sim", "module_map", "build", "train_filter", "build_filtered", "train_gnn",
        "thresholds", "infer_sim", "eval_sim", "infer_event1000", "eval_event1000"]
    s = {x.name: x for x in stages}
    assert s["train_filter"].argv[:6] == ("horovodrun", "-np", "2", "-H", "localhost:2", "trkx-train")
    assert s["train_gnn"].resumable and not s["build"].resumable
    assert "graph.filter_ckpt=runs/demo-filter/checkpoints" in s["build_filtered"].argv
    assert s["build_filtered"].after == ("simulate", "module_map", "train_filter")
    assert s["train_gnn"].after == ("build_filtered",)
    assert s["thresholds"].after == ("simulate", "module_map", "train_filter", "train_gnn")
    assert s["infer_event1000"].argv[s["infer_event1000"].argv.index("--events") + 1] == "1000"
    assert s["infer_event1000"].set_files == ("runs/demo/thresholds/thresholds.yaml",)
    assert "thresholds" in s["infer_event1000"].after and "simulate" not in s["infer_event1000"].after
    assert s["infer_event1000"].inputs[0].patterns == ("event000001000-*",)
    assert s["eval_sim"].after == ("simulate_sim", "infer_sim")
    # the held-out set is simulated as make demo simulates it
    assert s["simulate_sim"].overrides[:3] == ("data.events_dir=data/demo/test", "simulate.events=2",
                                              "simulate.first_event=100")


@pytest.mark.parametrize("launcher,head", [
    ("one", ("trkx-train", "--config")),
    ("horovodrun", ("horovodrun", "-np", "4", "-H", "localhost:4", "trkx-train")),
    ("mpirun", ("mpirun", "-np", "4", "--bind-to", "none", "trkx-train")),
])
def test_training_launchers(launcher, head):
    s = _by_name(load_config(None, [f"pipeline.launcher={launcher}", "pipeline.np=4"]))["train_gnn"]
    assert s.argv[:len(head)] == head
    assert s.argv[-6:] == ("--set", "train.model=gnn", "--set", "run.name=demo-gnn", "--set",
                           "data.shards_dir=data/shards-filtered")
    cfg_slice = config_slice(effective_config(load_config(None), s.overrides), s.config_keys)
    assert cfg_slice["train"]["model"] == "gnn" and "model.gnn" in cfg_slice and "model.filter" not in cfg_slice


def test_module_map_sources():
    assert "module_map" not in _by_name(load_config(None, ["graph.module_map.path=maps/m.npz"]))
    s = _by_name(load_config(None, ["graph.module_map.path=maps/m.npz"]))
    assert s["build"].argv[s["build"].argv.index("--module-map") + 1] == "maps/m.npz"
    s = _by_name(load_config(None, ["pipeline.map_events={name: map, dir: data/map, simulate: 30, seed: 7}"]))
    assert "--split" not in s["module_map"].argv and s["module_map"].after == ("simulate_map",)
    assert "simulate.seed=7" in s["simulate_map"].overrides
    s = _by_name(load_config(None, ["pipeline.gnn_events=30"]))
    assert s["build_filtered"].argv[s["build_filtered"].argv.index("--input") + 1].endswith("gnn-events")
    assert "gnn_events" in s["build_filtered"].after


def test_stage_overrides_and_bad_configs():
    s = _by_name(load_config(None, ["pipeline.set={train_gnn: [train.epochs=7]}"]))["train_gnn"]
    assert s.overrides[-1] == "train.epochs=7" and s.argv[-1] == "train.epochs=7"
    with pytest.raises(ConfigError, match="pipeline.set: no stage named 'train_gnm'"):
        pipeline_stages(load_config(None, ["pipeline.set={train_gnm: [train.epochs=7]}"]))
    with pytest.raises(ConfigError, match="pipeline.set.train_gnn: train.epochs"):
        pipeline_stages(load_config(None, ["pipeline.set={train_gnn: [train.epochs=many]}"]))
    with pytest.raises(ConfigError, match="needs a dir"):
        pipeline_stages(load_config(None, ["pipeline.test=[{name: t}]"]))
    with pytest.raises(ConfigError, match="two event sets give the stage name 'eval_a'"):
        pipeline_stages(load_config(None, ["pipeline.test=[{name: a, dir: x, simulate: 1}, "
                                           "{name: a, dir: y, simulate: 1}]"]))
    with pytest.raises(ConfigError, match="unknown key 'pipeline.launcherr'"):
        load_config(None, ["pipeline.launcherr=srun"])


def test_set_file(tmp_path):
    (tmp_path / "t.yaml").write_text("# chosen\ninfer.filter_threshold: 0.02\ninfer.labelling: walk\n")
    assert read_set_file(tmp_path / "t.yaml") == ["infer.filter_threshold=0.02", 'infer.labelling="walk"']
    cfg = effective_config(load_config(None), read_set_file(tmp_path / "t.yaml"))
    assert cfg.infer.filter_threshold == 0.02 and cfg.infer.labelling == "walk"
    (tmp_path / "bad.yaml").write_text("infer: {labelling: walk}\n")
    with pytest.raises(ConfigError, match="mapping of dotted keys to single values"):
        read_set_file(tmp_path / "bad.yaml")


def test_threshold_choices():
    table = [{"threshold": t, "efficiency": e} for t, e in ((0.01, 0.999), (0.02, 0.995), (0.05, 0.989))]
    assert choose_filter_threshold(table, 0.99) == 0.02
    assert choose_filter_threshold(table, 0.9999) == 0.01  # none reaches it: the loosest cut
    rows = [{"labelling": m, "threshold": t, "score": {"pt>0.5": sc},
             "tracks": {"pt>0.5": {"technical_efficiency": eff}}}
            for m, t, eff, sc in (("cc", 0.3, 0.90, 0.70), ("walk", 0.2, 0.95, 0.69), ("walk", 0.3, 0.95, 0.71))]
    assert choose_labelling(rows, "technical_efficiency", "pt>0.5") is rows[1]  # first of a tie
    assert choose_labelling(rows, "score", "pt>0.5") is rows[2]


def test_sim200_release_stage(repo):
    s = _by_name(load_config(repo / "configs" / "sim200.yaml"))
    r = s["release"]
    assert list(s)[-1] == "release" and r.owns == ()  # trkx-release replaces models/sim200 whole itself
    assert r.argv[:7] == ("trkx-release", "--config", "runs/sim200/config.yaml", "--name", "sim200", "--out",
                          "models")
    assert [r.argv[i + 1] for i, a in enumerate(r.argv) if a == "--metrics"] == [
        "test=runs/sim200/eval/test/metrics.json", "event1000=runs/sim200/eval/event1000/metrics.json"]
    assert r.argv[r.argv.index("--thresholds") + 1] == "runs/sim200/thresholds/thresholds.yaml"
    assert set(r.after) >= {"train_filter", "train_gnn", "thresholds", "eval_test", "eval_event1000"}
    assert [o.path for o in r.outputs] == ["models/sim200"]
    # the release's config slice is not part of any other stage's: adding it reran nothing upstream
    assert all("pipeline.release" not in x.config_keys for name, x in s.items() if name != "release")


def test_real_labelled_events_stages():
    real = "data.real={events_dir: ../shared/trackml/labelled, shards_dir: data/real, train_events: 40, val_events: 8}"
    plain = _by_name(load_config(None))
    s = _by_name(load_config(None, [real]))
    names = list(s)
    assert names.index("build") < names.index("build_real") < names.index("train_filter")
    assert names.index("build_filtered") < names.index("build_real_filtered") < names.index("train_gnn")
    b = s["build_real"]
    assert b.argv[:6] == ("trkx-build", "--config", "runs/demo/config.yaml", "--no-progress", "--real", "--out")
    assert b.argv[6] == "data/real" and "module_map" in b.after
    f = s["build_real_filtered"]
    assert f.argv[6] == "data/real-filtered" and "graph.filter_ckpt=runs/demo-filter/checkpoints" in f.argv
    assert "train_filter" in f.after
    assert {"build", "build_real"} <= set(s["train_filter"].after)
    assert "data.real.shards_dir=data/real-filtered" in s["train_gnn"].overrides
    assert {"build_filtered", "build_real_filtered"} <= set(s["train_gnn"].after)
    for name in ("train_filter", "train_gnn"):
        assert "data.real" in s[name].config_keys
        assert "data.real" not in plain[name].config_keys  # a pipeline without real events keeps its hashes
    # the mixing fraction retrains, it does not rebuild the real shards
    assert "data.real" not in b.config_keys and "data.real.events_dir" in b.config_keys


def test_fine_tuning_checkpoint_is_a_training_input():
    s = _by_name(load_config(None, ["pipeline.set={train_gnn: [train.init_checkpoint=runs/old-gnn/checkpoints]}"]))
    assert "runs/old-gnn/checkpoints" in [i.path for i in s["train_gnn"].inputs]
    assert "runs/old-gnn/checkpoints" not in [i.path for i in s["train_filter"].inputs]
