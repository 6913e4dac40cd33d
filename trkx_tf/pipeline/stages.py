"""The pipeline's stages as data: name, command, declared inputs and outputs, config slice.

:func:`pipeline_stages` turns a config into the ordered list of :class:`Stage` objects. Nothing runs here, so
tests and ``--dry-run`` can look at the commands. Every command reads the resolved config the runner writes to
``<pipeline dir>/config.yaml`` plus the stage's own ``--set`` overrides (its fixed ones, then
``pipeline.set.<stage>``), so the *effective config* of a stage is that file with those overrides, and its
*config slice* is the part of the effective config the command depends on.

===================  ===================================================================  =========================
stage                command                                                              output
===================  ===================================================================  =========================
simulate             ``trkx-simulate``: the training events                               ``data.events_dir``
events               ``trkx-pipeline link-events``: instead, the training events of       ``data.events_dir``
                     ``pipeline.events.dirs`` (less the validation and test sets' ids)
simulate_<set>       ``trkx-simulate``: an event set with ``simulate: N`` (map, val, test) the set's ``dir``
module_map           ``trkx-pipeline learn-map``: module map from the training split or   ``<dir>/module_map.npz``
                     ``pipeline.map_events`` (absent when ``graph.module_map.path`` is set)
build                ``trkx-build``: shards of every candidate edge                        ``data.shards_dir``
build_real           ``trkx-build --real`` (with ``data.real``): the real labelled events'  ``data.real.shards_dir``
                     masked-label shards, mixed into both trainings
train_filter         ``trkx-train`` (under ``pipeline.launcher``): the edge filter          ``<out>/<name>-filter``
gnn_events           ``trkx-pipeline link-events``: the first ``pipeline.gnn_events``        ``<dir>/gnn-events``
build_filtered       ``trkx-build --filter-ckpt``: the edges the filter keeps               filtered shards
build_real_filtered  the same for the real labelled events (with ``data.real``)             ``<real shards>-filtered``
train_gnn            ``trkx-train`` (under ``pipeline.launcher``): the GNN                  ``<out>/<name>-gnn``
thresholds           ``trkx-pipeline thresholds`` on ``pipeline.validation``                ``<dir>/thresholds``
infer_<set>          ``trkx-infer`` on a ``pipeline.test`` set, with the chosen thresholds   ``<dir>/infer/<set>``
eval_<set>           ``trkx-eval`` of those tracks                                           ``<dir>/eval/<set>``
release              ``trkx-release`` (``pipeline.release``): weights, map, thresholds,      ``<out>/<name>``
                     the test sets' metrics and these commands in a model card
===================  ===================================================================  =========================
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import yaml
from pydantic import ValidationError

from trkx_tf.config import Config, EventSetConfig, config_to_dict
from trkx_tf.errors import ConfigError
from trkx_tf.pipeline.hashing import PathSpec

PIPELINE_FILE = "pipeline.json"
CONFIG_FILE = "config.yaml"
MODULE_MAP_FILE = "module_map.npz"
THRESHOLDS_FILE = "thresholds.yaml"
THRESHOLDS_TABLE = "thresholds.json"
#: config keys of every training stage besides its model's section
_TRAIN_KEYS = ("train", "backend", "run.seed", "pipeline.launcher", "pipeline.np")
#: config keys of whole-event inference (graph construction, both models, the scorer's arithmetic)
_INFER_KEYS = ("graph.builder", "graph.use_cells", "graph.r_scale", "graph.z_scale", "graph.module_map",
               "graph.embedding", "model.filter", "model.gnn", "infer")
#: config keys of the real labelled events' shards (which events, how they are split; not the mixing fraction)
_REAL_SPLIT_KEYS = ("data.real.events_dir", "data.real.train_events", "data.real.val_events")
_MAP_LEARN_KEYS = ("graph.builder", "graph.module_map.pt_min", "graph.module_map.connect_pt_min",
                   "graph.module_map.quantile", "graph.module_map.skip_layers")


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
      name: unique stage name (``--from``, ``--to``, ``--only``, ``pipeline.set`` use it).
      argv: the command line, launcher included; console scripts by name (found on ``PATH``, the environment's
        ``bin`` first), so the recorded command does not depend on where the environment lives.
      overrides: the stage's ``--set`` overrides (already in ``argv``): with the pipeline's config file they
        make the stage's effective config.
      config_keys: the dotted keys (sections or leaves) of the effective config the command depends on.
      inputs: files and folders the command reads.
      outputs: files and folders it writes, hashed into ``pipeline.json``.
      owns: what is removed before a clean rerun (outputs, or the folders holding them).
      env: extra environment variables of the command.
      set_files: YAML files of ``KEY: value`` overrides read when the stage starts and appended to ``argv`` as
        ``--set KEY=value`` (the chosen thresholds).
      resumable: an interrupted run of this stage resumes from what it left (training: its checkpoints) when its
        hash is unchanged, instead of starting clean.
      after: names of the stages whose outputs it reads (upstream), derived from the paths.
    """

    name: str
    argv: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    config_keys: tuple[str, ...] = ()
    inputs: tuple[PathSpec, ...] = ()
    outputs: tuple[PathSpec, ...] = ()
    owns: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    set_files: tuple[str, ...] = ()
    resumable: bool = False
    after: tuple[str, ...] = ()


def set_args(overrides: Sequence[str]) -> list[str]:
    """``["--set", o1, "--set", o2, …]``."""
    return [arg for item in overrides for arg in ("--set", item)]


def read_set_file(path: os.PathLike | str) -> list[str]:
    """The ``KEY=value`` overrides of a YAML mapping file (``infer.gnn_threshold: 0.3`` → ``infer.gnn_threshold=0.3``).

    Raises:
      ConfigError: the file is unreadable or not a flat mapping of dotted keys to scalars.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the overrides ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or any(isinstance(v, (dict, list)) for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of dotted keys to single values")
    return [f"{k}={json.dumps(v)}" for k, v in data.items()]


def effective_config(cfg: Config, overrides: Sequence[str], source: str = "stage") -> Config:
    """``cfg`` with ``KEY=VALUE`` overrides applied (values parsed as YAML), validated.

    Raises:
      ConfigError: an override is malformed or gives a bad key or value (the message names ``source``).
    """
    data = config_to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: override {item!r}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"{source}: override {item!r}: value is not valid YAML") from None
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{source}: {where}: {err['msg']}") from None


def config_slice(cfg: Config, keys: Sequence[str]) -> dict:
    """``{dotted key: value}`` of some keys (sections or leaves) of a config, as JSON-able data.

    Raises:
      ConfigError: a key is not in the schema.
    """
    data = config_to_dict(cfg)
    out = {}
    for key in keys:
        node = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"pipeline: config key {key!r} is not in the schema")
            node = node[part]
        out[key] = node
    return out


def pipeline_dir(cfg: Config) -> Path:
    """The pipeline's folder: ``pipeline.dir``, or ``<run.out_dir>/<run.name>``."""
    return Path(cfg.pipeline.dir) if cfg.pipeline.dir else Path(cfg.run.out_dir) / cfg.run.name


def _events_spec(es: EventSetConfig) -> PathSpec:
    from trkx_tf.trackml.io import event_prefix

    return PathSpec(es.dir, tuple(f"{event_prefix(i)}-*" for i in es.ids))


def _events_args(es: EventSetConfig) -> list[str]:
    return ["--events", *map(str, es.ids)] if es.ids else []


def _train_argv(cfg: Config, config_path: str, overrides: Sequence[str]) -> tuple[tuple[str, ...], dict]:
    """The training command under ``pipeline.launcher`` (see :mod:`trkx_tf.scaling.launchers`)."""
    p = cfg.pipeline
    train = ("trkx-train", "--config", config_path, *set_args(overrides))
    if p.launcher == "one":
        return train, {}
    from trkx_tf.scaling.launchers import launch_commands

    per_node = p.np
    if p.launcher == "srun":  # inside an allocation: its ranks per node (sbatch --ntasks-per-node), else one node
        try:
            per_node = int(os.environ.get("SLURM_NTASKS_PER_NODE", p.np))
        except ValueError:
            pass
    launch = launch_commands(p.launcher, p.np, config_path, overrides, backend="horovod", tasks_per_node=per_node,
                             trainer="trkx-train", horovodrun="horovodrun")[0]
    return launch.argv, dict(launch.env)


def _init_weights(cfg: Config, overrides: Sequence[str], stage: str) -> list[PathSpec]:
    """A training stage's fine-tuning checkpoint (``train.init_checkpoint`` of its effective config), an input."""
    path = effective_config(cfg, overrides, f"pipeline.set.{stage}").train.init_checkpoint
    return [PathSpec(path)] if path else []


def _under(a: str, b: str) -> bool:
    """Whether path ``a`` is ``b`` or inside it, or ``b`` inside ``a`` (as written, normalised)."""
    a, b = os.path.normpath(a), os.path.normpath(b)
    return a == b or a.startswith(b + os.sep) or b.startswith(a + os.sep)


def _held_out(dirs: Sequence[str], sets: Sequence[Optional[EventSetConfig]]) -> set[int]:
    """The ids the validation and test sets take from the training folders ``dirs`` (never linked for training).

    Raises:
      ConfigError: a set takes every event of one of the folders (it names no ids).
    """
    real = {os.path.realpath(d) for d in dirs}
    held: set[int] = set()
    for es in sets:
        if es is not None and os.path.realpath(es.dir) in real:
            if not es.ids:
                raise ConfigError(f"pipeline: event set {es.name!r} takes every event of {es.dir}, a pipeline.events "
                                  f"folder: give its ids, or drop the folder from pipeline.events.dirs")
            held.update(es.ids)
    return held


def pipeline_stages(cfg: Config) -> list[Stage]:
    """The stages of a config, in the order they run.

    Args:
      cfg: the validated config (its ``pipeline`` section and everything the commands read).

    Returns:
      The :class:`Stage` list, ``after`` filled in from the paths.

    Raises:
      ConfigError: event sets without a folder, duplicate stage names, ``pipeline.set`` naming an unknown stage,
        or a stage override that makes an invalid config.
    """
    p = cfg.pipeline
    run = pipeline_dir(cfg)
    conf = str(run / CONFIG_FILE)
    stages: list[Stage] = []

    def extra(name: str) -> tuple[str, ...]:
        return tuple(p.set.get(name, ()))

    def add(name: str, argv: Sequence[str], overrides: Sequence[str], keys: Sequence[str], inputs, outputs,
            owns=None, **kw) -> None:
        stages.append(Stage(name, tuple(argv), tuple(overrides), tuple(keys), tuple(inputs), tuple(outputs),
                            tuple(owns if owns is not None else [o.path for o in outputs]), **kw))

    def simulate(name: str, es: Optional[EventSetConfig]) -> None:
        sets = [f"data.events_dir={es.dir}" if es else f"data.events_dir={cfg.data.events_dir}"]
        if es is not None:
            sets += [f"simulate.events={es.simulate}", f"simulate.first_event={es.first_event}"]
            sets += [f"simulate.seed={es.seed}"] if es.seed is not None else []
            sets += [f"simulate.pileup={es.pileup}"] if es.pileup is not None else []
        sets += extra(name)
        out = es.dir if es else cfg.data.events_dir
        add(name, ["trkx-simulate", "--config", conf, "--quiet", *set_args(sets)], sets,
            ["simulate", "data.detector", "data.events_dir"],
            [PathSpec(cfg.data.detector)] if cfg.data.detector else [], [PathSpec(out)])

    # 1. events
    sets_by_role = [("map", p.map_events), ("validation", p.validation)] + [("test", t) for t in p.test]
    for role, es in sets_by_role:
        if es is not None and not es.dir:
            raise ConfigError(f"pipeline.{role if role != 'map' else 'map_events'}: the event set {es.name!r} "
                              f"needs a dir")
    if p.events is not None:
        held = _held_out(p.events.dirs, [p.validation, *p.test])
        skip = sorted(set(p.events.exclude) | held)
        argv = ["trkx-pipeline", "link-events", "--input", *p.events.dirs, "--out", cfg.data.events_dir]
        argv += ["--first", str(p.events.first)] if p.events.first else []
        argv += ["--exclude", *map(str, skip)] if skip else []
        add("events", argv, list(extra("events")), ["pipeline.events"], [PathSpec(d) for d in p.events.dirs],
            [PathSpec(cfg.data.events_dir)])
    elif p.simulate:
        simulate("simulate", None)
    for role, es in sets_by_role:
        if es is not None and es.simulate:
            if es.ids:
                raise ConfigError(f"pipeline: event set {es.name!r} is simulated ({es.simulate} events): leave its "
                                  f"ids empty")
            simulate(f"simulate_{es.name}", es)
    train_events = PathSpec(cfg.data.events_dir)

    # 2. module map
    map_args: list[str] = []
    map_input: list[PathSpec] = []
    if cfg.graph.builder == "module_map":
        if cfg.graph.module_map.path and p.map_events is None:
            map_path = cfg.graph.module_map.path
        else:
            map_path = str(run / MODULE_MAP_FILE)
            sets = list(extra("module_map"))
            if p.map_events is not None:
                src, argv_in, keys = _events_spec(p.map_events), ["--input", p.map_events.dir,
                                                                  *_events_args(p.map_events)], ()
            else:
                src, argv_in, keys = train_events, ["--input", cfg.data.events_dir, "--split", "train"], (
                    "data.val_fraction",)
            add("module_map", ["trkx-pipeline", "learn-map", "--config", conf, *argv_in, "--out", map_path,
                               *set_args(sets)], sets, [*_MAP_LEARN_KEYS, *keys], [src], [PathSpec(map_path)])
        map_args = ["--module-map", map_path]
        map_input = [PathSpec(map_path)]
    elif cfg.graph.embedding.model:
        map_input = [PathSpec(cfg.graph.embedding.model)]

    # 3. shards and the filter
    shards = cfg.data.shards_dir
    sets = ["graph.filter_ckpt=null", *extra("build")]
    add("build", ["trkx-build", "--config", conf, "--no-progress", "--input", cfg.data.events_dir, "--out", shards,
                  *map_args, *set_args(sets)], sets, ["graph", "data.val_fraction"], [train_events, *map_input],
        [PathSpec(shards)])
    real = cfg.data.real  # real labelled events mixed into both trainings: their masked-label shards
    real_keys = ("data.real",) if real else ()
    if real:
        sets = ["graph.filter_ckpt=null", *extra("build"), *extra("build_real")]
        add("build_real", ["trkx-build", "--config", conf, "--no-progress", "--real", "--out", real.shards_dir,
                           *map_args, *set_args(sets)], sets, ["graph", *_REAL_SPLIT_KEYS],
            [PathSpec(real.events_dir), *map_input], [PathSpec(real.shards_dir)])
    filter_run = Path(cfg.run.out_dir) / f"{cfg.run.name}-filter"
    filter_ckpt = str(filter_run / "checkpoints")
    sets = ["train.model=filter", f"run.name={cfg.run.name}-filter", f"data.shards_dir={shards}",
            *extra("train_filter")]
    argv, env = _train_argv(cfg, conf, sets)
    add("train_filter", argv, sets, ["model.filter", *_TRAIN_KEYS, *real_keys],
        [PathSpec(shards), *([PathSpec(real.shards_dir)] if real else []),
         *_init_weights(cfg, sets, "train_filter")], [PathSpec(filter_ckpt)], owns=[str(filter_run)], env=env,
        resumable=True)

    # 4. the GNN's shards: the edges the filter keeps, of all or the first gnn_events training events
    gnn_input = cfg.data.events_dir
    if p.gnn_events:
        gnn_input = str(run / "gnn-events")
        sets = list(extra("gnn_events"))
        add("gnn_events", ["trkx-pipeline", "link-events", "--input", cfg.data.events_dir, "--first",
                           str(p.gnn_events), "--out", gnn_input], sets, ["pipeline.gnn_events"], [train_events],
            [PathSpec(gnn_input)])
    filtered = p.filtered_shards_dir or f"{shards.rstrip('/')}-filtered"
    sets = [f"graph.filter_ckpt={filter_ckpt}", *extra("build_filtered")]
    add("build_filtered", ["trkx-build", "--config", conf, "--no-progress", "--input", gnn_input, "--out", filtered,
                           *map_args, *set_args(sets)], sets,
        ["graph", "data.val_fraction", "model.filter", "infer.filter_threshold", "infer.compute_dtype"],
        [PathSpec(gnn_input), PathSpec(filter_ckpt), *map_input], [PathSpec(filtered)])
    gnn_inputs = [PathSpec(filtered)]
    real_sets: list[str] = []
    if real:
        real_filtered = f"{real.shards_dir.rstrip('/')}-filtered"
        sets = [f"graph.filter_ckpt={filter_ckpt}", *extra("build_filtered"), *extra("build_real_filtered")]
        add("build_real_filtered", ["trkx-build", "--config", conf, "--no-progress", "--real", "--out",
                                    real_filtered, *map_args, *set_args(sets)], sets,
            ["graph", *_REAL_SPLIT_KEYS, "model.filter", "infer.filter_threshold", "infer.compute_dtype"],
            [PathSpec(real.events_dir), PathSpec(filter_ckpt), *map_input], [PathSpec(real_filtered)])
        gnn_inputs.append(PathSpec(real_filtered))
        real_sets = [f"data.real.shards_dir={real_filtered}"]
    gnn_run = Path(cfg.run.out_dir) / f"{cfg.run.name}-gnn"
    gnn_ckpt = str(gnn_run / "checkpoints")
    sets = ["train.model=gnn", f"run.name={cfg.run.name}-gnn", f"data.shards_dir={filtered}", *real_sets,
            *extra("train_gnn")]
    argv, env = _train_argv(cfg, conf, sets)
    add("train_gnn", argv, sets, ["model.gnn", *_TRAIN_KEYS, *real_keys],
        [*gnn_inputs, *_init_weights(cfg, sets, "train_gnn")], [PathSpec(gnn_ckpt)], owns=[str(gnn_run)], env=env,
        resumable=True)
    models = ["--filter-ckpt", filter_ckpt, "--gnn-ckpt", gnn_ckpt, *map_args]
    model_inputs = [PathSpec(filter_ckpt), PathSpec(gnn_ckpt), *map_input]

    # 5. thresholds on the validation events
    set_files: tuple[str, ...] = ()
    if p.validation is not None:
        v = p.validation
        out = run / "thresholds"
        sets = list(extra("thresholds"))
        add("thresholds", ["trkx-pipeline", "thresholds", "--config", conf, "--input", v.dir, *_events_args(v),
                           "--out", str(out), *models, *set_args(sets)], sets,
            [*_INFER_KEYS, "pipeline.thresholds", "eval"], [_events_spec(v), *model_inputs],
            [PathSpec(str(out), (THRESHOLDS_FILE, THRESHOLDS_TABLE))], owns=[str(out)])
        set_files = (str(out / THRESHOLDS_FILE),)

    # 6. inference and evaluation of the test sets
    for t in p.test:
        sub = str(run / "infer" / t.name)
        sets = list(extra(f"infer_{t.name}"))
        add(f"infer_{t.name}", ["trkx-infer", "--config", conf, "--no-progress", "--input", t.dir, *_events_args(t),
                                "--out", sub, *models, *set_args(sets)], sets, _INFER_KEYS,
            [_events_spec(t), *model_inputs, *(PathSpec(f) for f in set_files)], [PathSpec(sub)],
            set_files=set_files)
        sets = list(extra(f"eval_{t.name}"))
        out = str(run / "eval" / t.name)
        add(f"eval_{t.name}", ["trkx-eval", "--config", conf, "--no-progress", "--input", t.dir, *_events_args(t),
                               "--submissions", sub, "--out", out, *set_args(sets)], sets, ["eval"],
            [_events_spec(t), PathSpec(sub)], [PathSpec(out)])

    # 7. the release: replaced whole by trkx-release itself (written beside, then renamed), so it owns nothing
    if p.release is not None:
        r = p.release
        evals = {t.name: run / "eval" / t.name for t in p.test}
        sets = list(extra("release"))
        argv = ["trkx-release", "--config", conf, "--name", r.name, "--out", r.out, *models,
                *(["--thresholds", set_files[0]] if set_files else []),
                *(a for name, d in evals.items() for a in ("--metrics", f"{name}={d / 'metrics.json'}")),
                "--pipeline-json", str(run / PIPELINE_FILE), "--data", r.data, "--description", r.description,
                *(["--note", r.note] if r.note else []), *set_args(sets)]
        add("release", argv, sets, [*_INFER_KEYS, "pipeline.release"],
            [*model_inputs, *(PathSpec(f) for f in set_files), *(PathSpec(str(d)) for d in evals.values())],
            [PathSpec(str(Path(r.out) / r.name))], owns=[])

    names = [s.name for s in stages]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"pipeline: two event sets give the stage name {dup[0]!r}: rename one (pipeline.*.name)")
    unknown = sorted(set(p.set) - set(names))
    if unknown:
        raise ConfigError(f"pipeline.set: no stage named {unknown[0]!r} (stages: {', '.join(names)})")
    # upstream: the earlier stages owning a path a stage reads
    out = []
    for i, s in enumerate(stages):
        after = tuple(u.name for u in stages[:i]
                      if any(_under(inp.path, o) for inp in s.inputs for o in (*u.owns, *(x.path for x in u.outputs))))
        out.append(Stage(**{**s.__dict__, "after": after}))
    for s in out:  # every stage's effective config must be valid (a bad pipeline.set fails before anything runs)
        effective_config(cfg, s.overrides, f"pipeline.set.{s.name}")
    return out


def select(stages: Sequence[Stage], first: Optional[str] = None, last: Optional[str] = None,
           only: Sequence[str] = ()) -> list[str]:
    """The names of the stages ``--from``/``--to``/``--only`` select, in pipeline order.

    Raises:
      ConfigError: a name that is no stage, ``--only`` with ``--from``/``--to``, or ``--from`` after ``--to``.
    """
    names = [s.name for s in stages]
    for n in (first, last, *only):
        if n is not None and n not in names:
            raise ConfigError(f"no stage named {n!r} (stages: {', '.join(names)})")
    if only:
        if first or last:
            raise ConfigError("--only cannot be combined with --from or --to")
        return [n for n in names if n in only]
    i = names.index(first) if first else 0
    j = names.index(last) if last else len(names) - 1
    if i > j:
        raise ConfigError(f"--from {first} comes after --to {last} (order: {', '.join(names)})")
    return names[i:j + 1]

