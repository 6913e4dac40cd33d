"""Config schema: defaults, YAML files, --set overrides, one-line errors naming file and key, run folders."""

import pytest
import yaml

from trkx_tf.config import Config, load_config, save_config
from trkx_tf.errors import ConfigError
from trkx_tf.rundir import RunDir


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_config_is_valid(repo):
    paths = sorted((repo / "configs").glob("*.yaml"))
    assert paths, "configs/ holds no YAML"
    for path in paths:
        assert isinstance(load_config(path), Config)


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg.model.gnn.steps == 8 and cfg.backend.name == "auto"


def test_file_values_override_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  lr: 0.01\nmodel:\n  gnn: {steps: 3}\n"))
    assert cfg.train.lr == 0.01 and cfg.model.gnn.steps == 3 and cfg.model.gnn.hidden == 128


def test_set_overrides_any_key_with_yaml_values(tmp_path):
    cfg = load_config(write(tmp_path, "train: {lr: 0.01}\n"),
                      ["train.lr=1e-4", "model.gnn.skip=latent0", "run.name=x", "train.epochs=7"])
    assert cfg.train.lr == 1e-4 and cfg.model.gnn.skip == "latent0" and cfg.run.name == "x"
    assert cfg.train.epochs == 7 and isinstance(cfg.train.epochs, int)


@pytest.mark.parametrize("text, key", [
    ("train:\n  lrr: 0.1\n", "train.lrr"),
    ("bogus: {}\n", "bogus"),
    ("model:\n  gnn:\n    width: 3\n", "model.gnn.width"),
])
def test_unknown_key_is_one_line_naming_key_and_file(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"unknown key '{key}'" in msg


@pytest.mark.parametrize("text, key", [
    ("train:\n  epochs: many\n", "train.epochs"),
    ("train:\n  lr: [1, 2]\n", "train.lr"),
    ("backend:\n  name: nccl-magic\n", "backend.name"),
    ("model:\n  gnn: {steps: 0}\n", "model.gnn.steps"),
])
def test_wrong_type_or_value_is_one_line_naming_key_and_file(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: {key}:")


def test_bad_override_names_the_override():
    with pytest.raises(ConfigError, match=r"^--set train.nope=1: unknown key 'train.nope'$"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match=r"--set train.epochs=x: train.epochs:"):
        load_config(None, ["train.epochs=x"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["train.epochs"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+$"):
        load_config(write(tmp_path, "train:\n  lr: [1\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_yaml_is_loaded_safely(tmp_path):
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "run: !!python/object/apply:os.system ['echo pwned']\n"))


def test_config_is_frozen():
    cfg = load_config(None)
    with pytest.raises(Exception):
        cfg.train.lr = 5.0


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.lr=0.123", "graph.builder=embedding"])
    save_config(cfg, tmp_path / "out" / "config.yaml")
    assert load_config(tmp_path / "out" / "config.yaml") == cfg
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary left


def test_run_dir_layout_and_rank0_rule(tmp_path):
    cfg = load_config(None, [f"run.out_dir={tmp_path}", "run.name=r1"])
    writer = RunDir.from_config(cfg).create(cfg)
    reader = RunDir.from_config(cfg, is_writer=False).create(cfg)
    for sub in ("checkpoints", "tensorboard", "plots"):
        assert (tmp_path / "r1" / sub).is_dir()
    assert yaml.safe_load((tmp_path / "r1" / "config.yaml").read_text())["run"]["name"] == "r1"
    writer.log_metrics({"epoch": 0, "loss": 1.5})
    reader.log_metrics({"epoch": 0, "loss": 99.0})  # a non-zero rank writes nothing
    assert writer.read_metrics() == [{"epoch": 0, "loss": 1.5}]


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    """A console script turns a ConfigError into one stderr line and exit status 2 (no traceback)."""
    from trkx_tf.cli.common import add_config_args, command, config_from_args
    import argparse

    def parser():
        p = argparse.ArgumentParser(prog="trkx-x")
        add_config_args(p)
        return p

    main = command(parser, lambda args: config_from_args(args) and 0)
    bad = write(tmp_path, "train:\n  lrr: 1\n")
    assert main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"trkx-x: error: {bad}: unknown key 'train.lrr'\n"
    assert main(["--set", "train.lr=0.5"]) == 0
