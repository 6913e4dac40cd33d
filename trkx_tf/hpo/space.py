"""The study file of ``trkx-hpo``: the search space over config keys, the objective, the sampler and the pruner.

A study file is YAML; every section is a frozen schema below, unknown keys are errors, and every default lives
here. Example (``configs/hpo/filter.yaml``)::

    objective: {metric: val_f1, direction: maximize}   # a key of trkx-train's epoch records (metrics.jsonl)
    sampler: {name: tpe, seed: 0}
    pruner: {name: median, startup_trials: 2, warmup_epochs: 1}
    params:
      train.lr: {log_uniform: [1.0e-4, 1.0e-2]}
      model.filter.hidden: {choice: [64, 128, 256]}
      model.filter.layers: {int: [2, 4]}
      train.true_weight: {uniform: [1.0, 3.0]}
    enqueue:                       # trials run first, e.g. the base config's own values (a baseline)
      - {train.lr: 2.0e-3, model.filter.hidden: 128, model.filter.layers: 3, train.true_weight: 2.0}

A parameter is any dotted key of the config schema (:mod:`trkx_tf.config`) and exactly one distribution:
``log_uniform: [low, high]`` (float, 0 < low < high), ``uniform: [low, high]`` (float, low < high), ``int: [low,
high]`` (integers, low < high, both ends included) or ``choice: [v1, v2, ...]`` (distinct scalars: numbers,
strings, booleans, null). :func:`load_space` checks every key against the schema and every end of a range and every
choice against the key's type and bounds, by loading the base config with that value as a ``--set`` override.
``run.name`` and ``run.out_dir`` belong to ``trkx-hpo`` (each trial has its own run folder) and cannot be tuned.
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from trkx_tf.config import Config, Section, load_config
from trkx_tf.errors import ConfigError

#: Config keys the study sets itself for every trial.
RESERVED_KEYS = ("run.name", "run.out_dir")

Scalar = Union[bool, int, float, str, None]
#: The distributions of a parameter, as written in the study file.
KINDS = ("log_uniform", "uniform", "int", "choice")


class SearchSpaceError(ConfigError):
    """The study file is invalid: unknown config key, bad range, a value the config schema refuses."""


class Param(BaseModel):
    """One tuned key: exactly one of the four distributions."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    log_uniform: Optional[tuple[float, float]] = None
    uniform: Optional[tuple[float, float]] = None
    integer: Optional[tuple[StrictInt, StrictInt]] = Field(None, alias="int")
    choice: Optional[tuple[Scalar, ...]] = None

    def bounds(self, kind: str):
        """The [low, high] of a range kind, or the choices."""
        return getattr(self, "integer" if kind == "int" else kind)

    @model_validator(mode="after")
    def _one_distribution(self) -> "Param":
        given = [k for k in KINDS if self.bounds(k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of log_uniform, uniform, int, choice"
                             + (f" (got {', '.join(given)})" if given else ""))
        kind = given[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice needs at least one value")
            if len({json.dumps(v) for v in self.choice}) != len(self.choice):
                raise ValueError(f"choice values repeat ({list(self.choice)})")
        else:
            low, high = self.bounds(kind)
            if not low < high:
                raise ValueError(f"{kind}: low must be below high (got [{low}, {high}])")
            if kind == "log_uniform" and low <= 0:
                raise ValueError(f"log_uniform: low must be > 0 (got {low})")
        return self

    @property
    def kind(self) -> str:
        """``log_uniform``, ``uniform``, ``int`` or ``choice``."""
        return next(k for k in KINDS if self.bounds(k) is not None)

    def probe_values(self) -> list:
        """The values checked against the config schema: both ends of a range, or every choice."""
        return list(self.bounds(self.kind))


class Objective(Section):
    """What a trial is worth: one key of trkx-train's epoch records, optimised in one direction."""

    metric: str = "val_f1"  # e.g. val_f1, val_loss, val_efficiency, val_purity (trkx_tf/train/loop.py records)
    direction: Literal["maximize", "minimize"] = "maximize"
    reduce: Literal["last", "best"] = "last"  # the trial's value: its last epoch's, or its best epoch's


class SamplerSpec(Section):
    """Optuna sampler: ``tpe`` (default), ``random`` or ``grid`` (choice-only spaces)."""

    name: Literal["tpe", "random", "grid"] = "tpe"
    seed: Optional[int] = None  # combined with the worker id and the trials already in the study
    startup_trials: int = Field(4, ge=0)  # tpe: random trials before the model-based ones


class PrunerSpec(Section):
    """Optuna pruner over the per-epoch objective (step = epoch)."""

    name: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    startup_trials: int = Field(2, ge=0)  # median: trials completed before any is pruned
    warmup_epochs: int = Field(1, ge=0)  # median: epochs of a trial before it can be pruned
    min_epochs: int = Field(1, ge=1)  # successive_halving / hyperband: the smallest resource (epochs)
    reduction_factor: int = Field(3, ge=2)  # successive_halving / hyperband


class StudySpec(Section):
    """A whole study file."""

    objective: Objective = Objective()
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    params: dict[str, Param]
    enqueue: tuple[dict[str, Scalar], ...] = ()  # parameter sets run first (each a subset of params)


# ---------------------------------------------------------------------------------------------------- schema
def _field_type(key: str) -> Any:
    """The annotation of a dotted config key, or None when the key is not in the schema (or is a section)."""
    model: Any = Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        ann = fields[part].annotation
        if i == len(parts) - 1:
            return None if isinstance(ann, type) and issubclass(ann, Section) else ann
        model = ann
    return None


def _base_types(ann: Any) -> set:
    """The plain types an annotation admits (Optional and Literal unwrapped)."""
    origin = typing.get_origin(ann)
    if origin is Union:
        return set().union(*(_base_types(a) for a in typing.get_args(ann)))
    if origin is Literal:
        return {type(a) for a in typing.get_args(ann)}
    return {origin or ann}


def _format(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "<top level>"
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'"
    return f"{source}: {key}: {err['msg'].removeprefix('Value error, ')}"


def override(key: str, value: Any) -> str:
    """The ``--set`` override that gives config key ``key`` the value ``value`` (JSON is YAML)."""
    return f"{key}={json.dumps(value)}"


def check_param(key: str, param: Param, base_config: Optional[str], base_overrides: Sequence[str],
                source: str) -> None:
    """Checks one parameter against the config schema.

    Args:
      key: the dotted config key.
      param: its distribution.
      base_config: the base config file (None: the built-in defaults).
      base_overrides: the ``--set`` overrides every trial gets.
      source: the study file's name, for messages.

    Raises:
      SearchSpaceError: the key is unknown or reserved, the distribution does not fit the key's type, or a range
        end or a choice is refused by the schema.
    """
    if key in RESERVED_KEYS:
        raise SearchSpaceError(f"{source}: params.{key}: set by trkx-hpo for every trial, cannot be tuned")
    ann = _field_type(key)
    if ann is None:
        raise SearchSpaceError(f"{source}: params.{key}: unknown config key (see trkx_tf/config.py)")
    types = _base_types(ann)
    kind = param.kind
    if kind in ("log_uniform", "uniform") and float not in types:
        hint = " (an integer key: use int or choice)" if int in types else ""
        raise SearchSpaceError(f"{source}: params.{key}: {kind} needs a float key{hint}")
    if kind == "int" and not types & {int, float}:
        raise SearchSpaceError(f"{source}: params.{key}: int needs a numeric key")
    for value in param.probe_values():
        try:
            load_config(base_config, [*base_overrides, override(key, value)])
        except ConfigError as exc:
            msg = str(exc).split(": ", 1)[-1]
            raise SearchSpaceError(f"{source}: params.{key}: {kind} value {value!r} refused: {msg}") from None


def load_space(path: os.PathLike | str, base_config: Optional[str] = None,
               base_overrides: Sequence[str] = ()) -> StudySpec:
    """Reads a study file and validates it against the config schema.

    Args:
      path: the study file (YAML).
      base_config: the base config file every trial starts from (None: the built-in defaults).
      base_overrides: the ``--set`` overrides every trial gets.

    Returns:
      The validated :class:`StudySpec`.

    Raises:
      SearchSpaceError: unreadable file, not YAML, an unknown key (of the study file or of the config), a bad
        range or choice, an enqueued value outside its parameter's range. The message is one line naming the file
        and the key.
      ConfigError: the base config or an override is itself invalid.
    """
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise SearchSpaceError(f"{source}: cannot read the study file ({exc.strerror})") from None
    except yaml.YAMLError:
        raise SearchSpaceError(f"{source}: not valid YAML") from None
    if not isinstance(data, dict):
        raise SearchSpaceError(f"{source}: top level must be a mapping (objective, sampler, pruner, params, enqueue)")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise SearchSpaceError(_format(exc, source)) from None
    if not spec.params:
        raise SearchSpaceError(f"{source}: params: empty search space")
    load_config(base_config, base_overrides)  # the base itself first: its errors name its own file
    for key, param in spec.params.items():
        check_param(key, param, base_config, base_overrides, source)
    if spec.sampler.name == "grid" and any(p.kind != "choice" for p in spec.params.values()):
        raise SearchSpaceError(f"{source}: sampler.name: grid needs choice parameters only")
    for i, fixed in enumerate(spec.enqueue):
        for key, value in fixed.items():
            if key not in spec.params:
                raise SearchSpaceError(f"{source}: enqueue.{i}.{key}: not a parameter of this space")
            if not contains(spec.params[key], value):
                raise SearchSpaceError(f"{source}: enqueue.{i}.{key}: {value!r} is outside the parameter's range")
    return spec


def contains(param: Param, value: Any) -> bool:
    """Whether ``value`` lies in the parameter's range (or is one of its choices)."""
    kind = param.kind
    if kind == "choice":
        return json.dumps(value) in {json.dumps(v) for v in param.choice}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "int" and not float(value).is_integer():
        return False
    low, high = param.bounds(kind)
    return low <= value <= high
