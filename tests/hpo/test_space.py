"""The study file: valid spaces load into Optuna distributions, invalid ones give one line and exit 2."""

import textwrap

import pytest

from trkx_tf.cli.hpo import main
from trkx_tf.hpo.space import SearchSpaceError, contains, load_space

VALID = """
objective: {metric: val_loss, direction: minimize, reduce: best}
sampler: {name: tpe, seed: 3, startup_trials: 2}
pruner: {name: successive_halving, min_epochs: 1, reduction_factor: 2}
params:
  train.lr: {log_uniform: [1.0e-4, 1.0e-2]}
  train.true_weight: {uniform: [1.0, 3.0]}
  model.filter.layers: {int: [2, 4]}
  model.filter.hidden: {choice: [32, 64]}
  train.lr_decay: {choice: [none, cosine]}
  data.val_fraction: {uniform: [0.1, 0.3]}
enqueue:
  - {train.lr: 2.0e-3, model.filter.hidden: 64}
"""


def write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_space_gives_optuna_distributions(tmp_path):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from trkx_tf.hpo.study import distributions

    spec = load_space(write(tmp_path, VALID))
    assert spec.objective.metric == "val_loss" and spec.objective.direction == "minimize"
    assert [p.kind for p in spec.params.values()] == ["log_uniform", "uniform", "int", "choice", "choice", "uniform"]
    d = distributions(spec)
    assert d["train.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert d["train.true_weight"] == FloatDistribution(1.0, 3.0)
    assert d["model.filter.layers"] == IntDistribution(2, 4)
    assert d["model.filter.hidden"] == CategoricalDistribution([32, 64])
    assert d["train.lr_decay"] == CategoricalDistribution(["none", "cosine"])


def test_defaults_and_base_config(tmp_path, repo):
    spec = load_space(write(tmp_path, "params: {train.lr: {log_uniform: [1.0e-4, 1.0e-2]}}"),
                      repo / "configs" / "demo.yaml", ["train.epochs=1"])
    assert (spec.objective.metric, spec.objective.direction, spec.objective.reduce) == ("val_f1", "maximize", "last")
    assert spec.sampler.name == "tpe" and spec.pruner.name == "median"


@pytest.mark.parametrize("params, expected", [
    ("{train.lrr: {uniform: [0.1, 0.2]}}", "params.train.lrr: unknown config key"),
    ("{train: {choice: [1, 2]}}", "params.train: unknown config key"),
    ("{run.name: {choice: [a, b]}}", "params.run.name: set by trkx-hpo"),
    ("{train.lr: {log_uniform: [0.0, 0.1]}}", "log_uniform: low must be > 0"),
    ("{train.lr: {uniform: [0.1, 0.01]}}", "low must be below high"),
    ("{train.lr: {uniform: [0.1]}}", "params.train.lr.uniform"),
    ("{train.lr: {uniform: [0.1, 0.2], choice: [0.1]}}", "exactly one of"),
    ("{train.lr: {normal: [0.1, 0.2]}}", "unknown key 'params.train.lr.normal'"),
    ("{model.filter.hidden: {uniform: [32, 64]}}", "needs a float key (an integer key: use int or choice)"),
    ("{model.filter.hidden: {int: [0, 64]}}", "int value 0 refused"),
    ("{model.filter.hidden: {int: [1.5, 64]}}", "params.model.filter.hidden.int"),
    ("{data.val_fraction: {uniform: [0.1, 1.5]}}", "uniform value 1.5 refused"),
    ("{train.lr_decay: {choice: [none, linear]}}", "choice value 'linear' refused"),
    ("{train.lr_decay: {choice: [none, none]}}", "choice values repeat"),
    ("{train.lr_decay: {choice: []}}", "choice needs at least one value"),
    ("{model.gnn.skip: {int: [1, 2]}}", "int needs a numeric key"),
    ("{}", "empty search space"),
])
def test_invalid_params(tmp_path, params, expected):
    with pytest.raises(SearchSpaceError, match=None) as info:
        load_space(write(tmp_path, f"params: {params}"))
    assert expected in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("objective: {metrik: val_f1}\nparams: {train.lr: {uniform: [0.1, 0.2]}}", "unknown key 'objective.metrik'"),
    ("objective: {direction: up}\nparams: {train.lr: {uniform: [0.1, 0.2]}}", "objective.direction"),
    ("sampler: {name: grid}\nparams: {train.lr: {uniform: [0.1, 0.2]}}", "grid needs choice parameters only"),
    ("params: {train.lr: {uniform: [0.1, 0.2]}}\nenqueue: [{train.lr: 0.5}]", "enqueue.0.train.lr: 0.5 is outside"),
    ("params: {train.lr: {uniform: [0.1, 0.2]}}\nenqueue: [{train.epochs: 2}]", "not a parameter of this space"),
    ("params: [train.lr]", "params: Input should be a valid dictionary"),
    ("- 1", "top level must be a mapping"),
    ("params: {a: [", "not valid YAML"),
])
def test_invalid_study_file(tmp_path, text, expected):
    with pytest.raises(SearchSpaceError) as info:
        load_space(write(tmp_path, text))
    assert expected in str(info.value), str(info.value)


def test_space_checked_against_the_base_config(tmp_path):
    """A choice valid for the schema but refused together with the base config's values (ge=2 on gnn.layers)."""
    space = write(tmp_path, "params: {model.gnn.layers: {choice: [1, 2]}}")
    with pytest.raises(SearchSpaceError, match="choice value 1 refused"):
        load_space(space)


def test_contains():
    from trkx_tf.hpo.space import Param

    p = Param.model_validate({"int": [2, 4]})
    assert contains(p, 3) and not contains(p, 3.5) and not contains(p, 5) and not contains(p, True)
    c = Param.model_validate({"choice": [1, "a", None]})
    assert contains(c, "a") and contains(c, None) and not contains(c, 2)


def test_cli_check_exit_codes(tmp_path, capsys):
    good = write(tmp_path, VALID)
    assert main(["check", "--space", str(good)]) == 0
    assert "6 parameters OK" in capsys.readouterr().out
    bad = write(tmp_path, "params: {train.lrr: {uniform: [0.1, 0.2]}}", "bad.yaml")
    assert main(["check", "--space", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"trkx-hpo: error: {bad}: params.train.lrr: unknown config key (see trkx_tf/config.py)"
    # the same check guards run, before any storage or trial exists
    storage = tmp_path / "s.journal"
    assert main(["run", "--space", str(bad), "--study", "x", "--storage", str(storage), "--trials", "1"]) == 2
    assert "unknown config key" in capsys.readouterr().err
    assert not storage.exists()
