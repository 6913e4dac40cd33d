"""``trkx-study systematics`` as a library: the Exa.TrkX paper's robustness studies (arXiv 2103.06995, section
4.1.2) and a field error, run with trained models on test events made for them.

Studies and their points (the ``systematics`` config section; every simulated point uses the same seed and event
ids, so the points differ only by what they vary, and its events are simulated once into
``<work_dir>/events/<setting>`` and reused while their setting is unchanged):

=============  ==========================================================================  =====================
study          points                                                                      models
=============  ==========================================================================  =====================
noise          ``noise_fractions`` of noise hits at μ = ``pileup`` (the paper's Table 1,   every model
               Figure 7)
pileup         μ in ``pileups`` at the standard noise (the paper's Figure 6)                the first model
misalignment   each group of ``shift_layers`` built ``shifts`` mm along x (and 0 mm); with    the first model
               ``misalignment: shift_hits`` the nominal events with those layers' hits
               moved instead
field          the field ``1 + field_errors`` times what reconstruction assumes (and 1)     the first model
real           the real event ``real_event`` as recorded, with noise hits added up to     the first model
               ``real_noise_fractions`` (spread over the layers like its own noise), and
               with the first layer group shifted by ``real_shift`` mm
=============  ==========================================================================  =====================

Each model is a config naming its checkpoints, module map and thresholds (``systematics.models``; the first is the
standard model). The study builds each model's :class:`~trkx_tf.reco.pipeline.Pipeline` once and runs
:func:`~trkx_tf.reco.pipeline.infer` and :func:`~trkx_tf.reco.evaluate.evaluate` (trkx-infer and trkx-eval as
libraries) on every point, into ``<work_dir>/reco/<model>/<point>``; a point whose model settings, checkpoint and
module-map files and events are unchanged (``study-reco.json``) is read back instead of run again. The real event
is only reconstructed and scored; nothing here trains. :mod:`trkx_tf.study.report` writes ``study.md`` and the plots.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from trkx_tf.config import Config, load_config
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.files import write_text_atomic

log = logging.getLogger("trkx_tf.study.systematics")

STUDIES = ("noise", "pileup", "misalignment", "field", "real")
STAMP_FILE = "study-events.json"
RESULTS_FILE = "results.json"


@dataclasses.dataclass(frozen=True)
class SimSetting:
    """What the simulated events of a point are: μ, noise fraction, layer shifts ``(volume, layer, dx)``, field
    error."""

    pileup: float
    noise: float
    shifts: tuple[tuple[int, int, float], ...] = ()
    field_error: float = 0.0

    def slug(self) -> str:
        """A folder name for the setting."""
        parts = [f"mu{self.pileup:g}", f"noise{self.noise:g}"]
        if self.shifts:
            parts.append("shift" + "_".join(f"{v}-{lay}-{dx:g}" for v, lay, dx in self.shifts))
        if self.field_error:
            parts.append(f"field{self.field_error:+g}")
        return "-".join(parts)


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of a study.

    Attributes:
      study: one of :data:`STUDIES`.
      label: how the tables name it.
      value: its x value (noise fraction, μ, shift in mm, field error, or the real variant's noise fraction).
      group: the layer group of a misalignment point, the kind of a real variant, else "".
      models: the models reconstructing it.
      sim: the simulated events' setting (None for a real variant).
      real: the real variant's name (None for simulated points).
      hit_shifts: ``(volume, layer, dx)`` moves of the simulated events' hits after the simulation
        (:func:`~trkx_tf.trackml.simulate.systematics.shift_hits`); () for none.
    """

    study: str
    label: str
    value: float
    group: str
    models: tuple[str, ...]
    sim: Optional[SimSetting] = None
    real: Optional[str] = None
    hit_shifts: tuple[tuple[int, int, float], ...] = ()

    def events_slug(self) -> str:
        """The folder name of a simulated point's events."""
        moved = "_".join(f"{v}-{lay}-{dx:g}" for v, lay, dx in self.hit_shifts)
        return self.sim.slug() + (f"-hitshift{moved}" if moved else "")

    def key(self) -> str:
        """A folder name unique within the study."""
        return f"{self.study}-{self.real}" if self.real else f"{self.study}-{self.events_slug()}"


@dataclasses.dataclass(frozen=True)
class StudyModel:
    """A trained model set: its name and its resolved config."""

    name: str
    cfg: Config


def layer_group_name(group: Sequence[Sequence[int]]) -> str:
    """``((8, 2),)`` → ``"1 layer (8/2)"``; longer groups list every (volume/layer)."""
    layers = ", ".join(f"{v}/{lay}" for v, lay in group)
    return f"{len(group)} layer{'s' if len(group) != 1 else ''} ({layers})"


def study_points(cfg: Config, models: Sequence[str]) -> list[Point]:
    """The points of the studies ``systematics.studies`` selects (see the module docstring).

    Args:
      cfg: the study's config.
      models: the model names, the standard one first.

    Returns:
      The points, study by study in :data:`STUDIES` order.

    Raises:
      ConfigError: no model, a layer group that is empty, or real variants without ``systematics.real_dir``.
    """
    if not models:
        raise ConfigError("systematics: no model to run")
    s = cfg.systematics
    mu = cfg.simulate.pileup if s.pileup is None else s.pileup
    noise = cfg.simulate.noise_fraction if s.noise_fraction is None else s.noise_fraction
    first = (models[0],)
    nominal = SimSetting(mu, noise)
    points: list[Point] = []
    if "noise" in s.studies:
        for f in s.noise_fractions:
            points.append(Point("noise", f"{100 * f:g} %", f, "", tuple(models), SimSetting(mu, f)))
    if "pileup" in s.studies:
        for p in s.pileups:
            points.append(Point("pileup", f"μ = {p:g}", p, "", first, SimSetting(p, noise)))
    if "misalignment" in s.studies:
        if any(len(g) == 0 for g in s.shift_layers):
            raise ConfigError("systematics.shift_layers: a layer group is empty")
        points.append(Point("misalignment", "nominal", 0.0, "", first, nominal))
        for group in s.shift_layers:
            for dx in s.shifts:
                shifts = tuple((int(v), int(lay), float(dx)) for v, lay in group)
                if s.misalignment == "shift_hits":
                    points.append(Point("misalignment", f"{dx:g} mm", dx, layer_group_name(group), first, nominal,
                                        hit_shifts=shifts))
                else:
                    points.append(Point("misalignment", f"{dx:g} mm", dx, layer_group_name(group), first,
                                        SimSetting(mu, noise, shifts)))
    if "field" in s.studies:
        points.append(Point("field", "nominal", 0.0, "", first, nominal))
        for e in s.field_errors:
            points.append(Point("field", f"{100 * e:+g} %", e, "", first, SimSetting(mu, noise, (), e)))
    if "real" in s.studies:
        if not s.real_dir:
            raise ConfigError("systematics: the real study needs systematics.real_dir (the real test event's folder)")
        points.append(Point("real", "as recorded", 0.0, "recorded", first, real="recorded"))
        for f in s.real_noise_fractions:
            points.append(Point("real", f"noise hits added up to {100 * f:g} %", f, "noise", first,
                                real=f"noise{f:g}"))
        if s.shift_layers:
            group = s.shift_layers[0]
            points.append(Point("real", f"{layer_group_name(group)} shifted {s.real_shift:g} mm", s.real_shift,
                                "shift", first, real=f"shift{s.real_shift:g}"))
    return points


def resolve_models(cfg: Config, config_path: Optional[str], overrides: Sequence[str] = ()) -> list[StudyModel]:
    """The study's models with their configs.

    Args:
      cfg: the study's config.
      config_path: the study's config file (a model without ``config`` uses it, with ``overrides``).
      overrides: the study's own ``--set`` overrides.

    Returns:
      One :class:`StudyModel` per ``systematics.models`` entry; without entries, the study's config as ``model``.

    Raises:
      ConfigError: two models with one name, or a model config that does not load.
    """
    from trkx_tf.pipeline.stages import read_set_file

    if not cfg.systematics.models:
        return [StudyModel("model", cfg)]
    out, seen = [], set()
    for m in cfg.systematics.models:
        if m.name in seen:
            raise ConfigError(f"systematics.models: the name {m.name!r} is given twice")
        seen.add(m.name)
        base, sets = (m.config, []) if m.config else (config_path, list(overrides))
        sets += list(m.set) + (read_set_file(m.set_file) if m.set_file else [])
        out.append(StudyModel(m.name, load_config(base, sets)))
    return out


def _stamp_matches(folder: Path, stamp: dict) -> bool:
    try:
        saved = json.loads((folder / STAMP_FILE).read_text())
        saved.pop("facts", None)
        return saved == json.loads(json.dumps(stamp))
    except (OSError, ValueError):
        return False


def simulate_point(cfg: Config, setting: SimSetting, folder: Path, progress: bool = True) -> list[int]:
    """The simulated test events of a setting, made unless ``folder`` holds them already (same stamp).

    Args:
      cfg: the study's config (``systematics.events``, ``first_event``, ``seed``, ``workers``, ``simulate.cells``,
        ``data.detector``).
      setting: μ, noise, layer shifts, field error.
      folder: the events folder (replaced when its stamp differs).
      progress: show the simulator's progress bar.

    Returns:
      The event ids.

    Raises:
      ConfigError: ``data.detector`` is not set.
      DataError: see :func:`~trkx_tf.trackml.simulate.simulate_events`.
    """
    from trkx_tf.trackml.simulate import simulate_events

    s = cfg.systematics
    if not cfg.data.detector:
        raise ConfigError("systematics: data.detector is not set (the TrackML detectors.csv[.gz])")
    ids = list(range(s.first_event, s.first_event + s.events))
    stamp = {"setting": dataclasses.asdict(setting), "seed": s.seed, "ids": ids, "cells": cfg.simulate.cells,
             "detector": str(Path(cfg.data.detector).resolve())}
    if _stamp_matches(folder, stamp):
        return ids
    shutil.rmtree(folder, ignore_errors=True)
    simulate_events(folder, cfg.data.detector, s.events, pileup=setting.pileup, seed=s.seed,
                    noise_fraction=setting.noise, workers=s.workers, first_event=s.first_event,
                    cells=cfg.simulate.cells, progress=progress, misalignment=setting.shifts,
                    field_error=setting.field_error)
    write_text_atomic(folder / STAMP_FILE, json.dumps(stamp, indent=1) + "\n")
    return ids


def shifted_point(source: Path, ids: Sequence[int], shifts, folder: Path) -> None:
    """A simulated point's events with some layers' hits moved (:func:`~trkx_tf.trackml.simulate.systematics.
    shift_hits`), made unless ``folder`` holds them already (same source stamp and shifts).

    Args:
      source: the simulated events (with their :data:`STAMP_FILE`).
      ids: their ids.
      shifts: ``(volume, layer, dx)`` per layer.
      folder: where the moved events go (replaced when its stamp differs).

    Raises:
      DataError: unreadable events, or a named layer without hits.
    """
    from trkx_tf.trackml.io import read_event, write_event
    from trkx_tf.trackml.simulate.systematics import shift_hits

    stamp = {"source": json.loads((source / STAMP_FILE).read_text()), "hit_shifts": [list(x) for x in shifts]}
    if _stamp_matches(folder, stamp):
        return
    shutil.rmtree(folder, ignore_errors=True)
    for i in ids:
        event = read_event(source, i)
        write_event(folder, dataclasses.replace(event, hits=shift_hits(event.hits, shifts)))
    write_text_atomic(folder / STAMP_FILE, json.dumps(stamp, indent=1) + "\n")


def real_variant(cfg: Config, name: str, folder: Path) -> tuple[Path, dict]:
    """A variant of the real test event: as recorded, with noise hits added, or with a layer group shifted.

    The noise hits follow the event's own noise over its layers (:func:`~trkx_tf.trackml.simulate.systematics.
    inject_noise`), drawn from ``systematics.seed``; the shift moves the hits of ``shift_layers[0]`` by
    ``-real_shift`` mm in x (:func:`~trkx_tf.trackml.simulate.systematics.shift_hits`). The truth is unchanged.

    Args:
      cfg: the study's config.
      name: ``recorded``, ``noise<f>`` or ``shift<dx>`` (as :func:`study_points` names them).
      folder: where a made variant is written (not used for ``recorded``).

    Returns:
      (the events folder, facts: hits, noise hits, noise fraction).

    Raises:
      DataError: the real event or its truth is missing, or the fraction is below the event's own.
    """
    from trkx_tf.trackml.geometry import Geometry
    from trkx_tf.trackml.io import read_event, write_event
    from trkx_tf.trackml.simulate.systematics import inject_noise, shift_hits

    s = cfg.systematics
    src = Path(s.real_dir)
    stamp = {"variant": name, "seed": s.seed, "event": s.real_event, "shift_layers": s.shift_layers[:1],
             "detector": str(cfg.data.detector),
             "source": [f for f in _file_id(src) if f"{s.real_event:09d}" in f[0]] if src.is_dir() else []}
    if name != "recorded" and _stamp_matches(folder, stamp):
        facts = json.loads((folder / STAMP_FILE).read_text())["facts"]
        return folder, facts
    event = read_event(src, s.real_event, parts=("hits", "particles", "truth"))
    if event.truth is None or event.particles is None:
        raise DataError(f"{src}: event {s.real_event} needs its truth and particles files to be scored")
    if name == "recorded":
        out, where = event, src
    else:
        if name.startswith("noise"):
            if not cfg.data.detector:
                raise ConfigError("systematics: data.detector is not set (the noise hits are placed on its modules)")
            rng = np.random.default_rng(np.random.SeedSequence([s.seed, s.real_event]))
            out = inject_noise(event, float(name[5:]), Geometry.load(cfg.data.detector), rng)
        elif name.startswith("shift"):
            shifts = [(v, lay, float(name[5:])) for v, lay in s.shift_layers[0]]
            out = dataclasses.replace(event, hits=shift_hits(event.hits, shifts))
        else:
            raise ConfigError(f"systematics: unknown real variant {name!r}")
        shutil.rmtree(folder, ignore_errors=True)
        write_event(folder, out)
        where = folder
    n_noise = int((out.truth["particle_id"].to_numpy(np.int64) == 0).sum())
    facts = {"hits": len(out.hits), "noise_hits": n_noise, "noise_fraction": n_noise / len(out.hits)}
    if name != "recorded":
        write_text_atomic(folder / STAMP_FILE, json.dumps({**stamp, "facts": facts}, indent=1) + "\n")
    return where, facts


def compact_metrics(summary: dict) -> dict:
    """What the report needs of an evaluation summary (:func:`~trkx_tf.reco.evaluate.evaluate`)."""
    return {
        "tracks": summary["tracks"],
        "score": summary["score"],
        "edges": summary.get("edges"),
        "per_event": [{"event_id": e["event_id"], "n_hits": e["n_hits"],
                       "tracks": {sel: {"technical_efficiency": t["technical_efficiency"], "purity": t["purity"]}
                                  for sel, t in e["tracks"].items()}}
                      for e in summary["per_event"]],
        "technical_efficiency_vs_pt": summary["histograms"]["technical_efficiency_vs_pt"],
    }


class _Pipelines:
    """Each model's reconstruction pipeline, built once (per cell-feature use)."""

    def __init__(self):
        self._cache: dict = {}

    def get(self, model: StudyModel, events_dir: Path, ids: Sequence[int]):
        from trkx_tf.graphs.features import feature_names, uses_cells
        from trkx_tf.reco.pipeline import make_pipeline, warm_up

        with_cells = uses_cells(events_dir, ids, model.cfg.graph.use_cells)
        key = (model.name, with_cells)
        if key not in self._cache:
            pipe = make_pipeline(model.cfg, with_cells=with_cells)
            warm_up(pipe, len(feature_names(with_cells)))
            self._cache[key] = pipe
        return self._cache[key]


RECO_STAMP_FILE = "study-reco.json"


def _file_id(path) -> list:
    """(path, size, mtime) of a file, or of every file directly in a folder (what a rerun compares)."""
    p = Path(path)
    files = sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]
    return [[str(q), q.stat().st_size, q.stat().st_mtime_ns] for q in files if q.exists()]


def reco_stamp(model: StudyModel, events_dir: Path, ids: Sequence[int]) -> dict:
    """What a point's reconstruction depends on: the model's settings, its checkpoint and module-map files, the
    events (their stamp, or the files of a real event)."""
    cfg = model.cfg
    files = []
    for path in (cfg.infer.filter_ckpt, cfg.infer.gnn_ckpt, cfg.infer.module_map or cfg.graph.module_map.path):
        if path:
            p = Path(path)
            files += _file_id(p) if p.exists() else _file_id(p.parent) if p.parent.exists() else [[str(p)]]
    stamp_file = events_dir / STAMP_FILE
    events = (json.loads(stamp_file.read_text()) if stamp_file.is_file()
              else [f for f in _file_id(events_dir) if any(f"{i:09d}" in f[0] for i in ids)])
    return {"config": {k: getattr(cfg, k).model_dump(mode="json") for k in ("graph", "model", "infer", "eval")},
            "files": files, "events": events, "ids": list(ids)}


def reconstruct(model: StudyModel, pipeline, events_dir: Path, ids: Sequence[int], out: Path) -> dict:
    """trkx-infer and trkx-eval (as libraries) of some events with one model.

    A point whose :func:`reco_stamp` matches the one in ``out`` is not run again: its metrics are read back.

    Args:
      model: the model.
      pipeline: its :class:`~trkx_tf.reco.pipeline.Pipeline`, or a callable returning it (built when needed).
      events_dir, ids: the events.
      out: the point's folder (``infer/``, ``eval/``, the stamp).

    Returns:
      :func:`compact_metrics` of the evaluation, with ``"seconds"``: the inference's total wall time.
    """
    from trkx_tf.reco.evaluate import evaluate
    from trkx_tf.reco.pipeline import infer

    stamp = reco_stamp(model, events_dir, ids)
    try:
        saved = json.loads((out / RECO_STAMP_FILE).read_text())
        if saved["stamp"] == json.loads(json.dumps(stamp)):
            return saved["metrics"]
    except (OSError, ValueError, KeyError):
        pass
    if callable(pipeline) and not hasattr(pipeline, "run"):
        pipeline = pipeline()
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    infer(model.cfg, events_dir, out / "infer", events=ids, pipeline=pipeline, progress=False)
    seconds = time.perf_counter() - t0
    summary = evaluate(events_dir, out / "infer", out / "eval", model.cfg.eval, events=ids, progress=False)
    metrics = {**compact_metrics(summary), "seconds": round(seconds, 3)}
    write_text_atomic(out / RECO_STAMP_FILE, json.dumps({"stamp": stamp, "metrics": metrics}) + "\n")
    return metrics


@dataclasses.dataclass
class StudyResult:
    """What :func:`run_systematics` wrote: the report, the results file, the plots."""

    report: str
    results: str
    plots: list


def run_systematics(cfg: Config, config_path: Optional[str] = None, overrides: Sequence[str] = (),
                    command: str = "", progress: bool = True) -> StudyResult:
    """Runs the studies of ``systematics.studies`` and writes ``study.md``, ``results.json`` and the plots.

    Args:
      cfg: the study's config.
      config_path, overrides: the config file and ``--set`` overrides it came from (models without their own
        config use them; the report records them).
      command: the command line, for the report.
      progress: show progress bars (simulation) and one log line per point.

    Returns:
      The :class:`StudyResult`.

    Raises:
      ConfigError: see :func:`study_points` and :func:`resolve_models`; a model without checkpoints.
      DataError, CheckpointError: unreadable events, checkpoints or module maps.
    """
    from trkx_tf.study.report import write_report

    s = cfg.systematics
    models = resolve_models(cfg, config_path, overrides)
    by_name = {m.name: m for m in models}
    points = study_points(cfg, [m.name for m in models])
    work = Path(s.work_dir)
    pipelines = _Pipelines()
    records = []
    events_of: dict = {}
    done: dict = {}
    for i, point in enumerate(points):
        if point.sim is not None:
            simulated = work / "events" / point.sim.slug()
            if simulated not in events_of:
                events_of[simulated] = (simulate_point(cfg, point.sim, simulated, progress=progress), None)
            folder = work / "events" / point.events_slug()
            if folder not in events_of:  # moved hits: made from the simulated events
                shifted_point(simulated, events_of[simulated][0], point.hit_shifts, folder)
                events_of[folder] = events_of[simulated]
        else:
            made, facts = real_variant(cfg, point.real, work / "events" / f"real-{point.real}")
            folder = made
            events_of[folder] = ([s.real_event], facts)
        ids, facts = events_of[folder]
        for name in point.models:
            model = by_name[name]
            if (name, folder) not in done:  # the nominal point of several studies is reconstructed once
                pipe = (lambda m=model, f=folder, i=ids: pipelines.get(m, f, i))  # built when a point needs it
                done[(name, folder)] = reconstruct(model, pipe, folder, ids, work / "reco" / name / point.key())
            metrics = done[(name, folder)]
            records.append({"study": point.study, "label": point.label, "value": point.value,
                            "group": point.group, "model": name,
                            "setting": dataclasses.asdict(point.sim) if point.sim else None,
                            "hit_shifts": [list(x) for x in point.hit_shifts],
                            "real": point.real, "real_facts": facts, "events": list(ids), "metrics": metrics})
            t = metrics["tracks"]["all"]
            if progress:
                log.info("point %d/%d %s %s %s: tech. eff. %s, purity %s", i + 1, len(points), point.study,
                         point.label, name, _pct(t["technical_efficiency"]), _pct(t["purity"]))
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "command": command, "config": config_path, "overrides": list(overrides),
        "models": [{"name": m.name, "training_noise_fraction": m.cfg.simulate.noise_fraction,
                    "training_pileup": m.cfg.simulate.pileup, "filter_ckpt": m.cfg.infer.filter_ckpt,
                    "gnn_ckpt": m.cfg.infer.gnn_ckpt, "module_map": m.cfg.infer.module_map,
                    "filter_threshold": m.cfg.infer.filter_threshold, "gnn_threshold": m.cfg.infer.gnn_threshold,
                    "labelling": m.cfg.infer.labelling} for m in models],
        "systematics": cfg.systematics.model_dump(mode="json"),
        "pt_cuts": list(models[0].cfg.eval.pt_cuts),
        "records": records,
    }
    results_path = out / RESULTS_FILE
    write_text_atomic(results_path, json.dumps(results, indent=1) + "\n")
    report, plots = write_report(results, out)
    return StudyResult(str(report), str(results_path), [str(p) for p in plots])


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"
