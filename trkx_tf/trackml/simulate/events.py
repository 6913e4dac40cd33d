"""Events of the simulator: one event from the steps of :mod:`trkx_tf.trackml.simulate` (:func:`simulate_event`),
and many written to a folder in worker processes (:func:`simulate_events`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.config import SimulateConfig, schema_default
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.processes import map_in_processes
from trkx_tf.ranks import SINGLE, Ranks
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.io import Event, write_event
from trkx_tf.trackml.score import hit_weights
from trkx_tf.trackml.simulate.physics import MAX_PILEUP, Particles, PhysicsModel, generate_primaries, tsallis_sampler
from trkx_tf.trackml.simulate.propagation import propagate, secondaries
from trkx_tf.trackml.simulate.response import check_model, detected_rows, digitise, noise, shallow_rows
from trkx_tf.trackml.simulate.systematics import LayerShift, field_model, misaligned


def event_rng(seed: int, event_id: int) -> np.random.Generator:
    """The random stream of one event: ``SeedSequence([seed, event_id])``, whoever simulates it."""
    if seed < 0 or event_id < 0:
        raise DataError(f"simulate: seed and event id must be >= 0, got seed {seed}, event {event_id}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(event_id)]))


def simulate_event(
    geometry: Geometry,
    event_id: int,
    rng: np.random.Generator,
    pileup: float = schema_default(SimulateConfig, "pileup"),
    noise_fraction: float = schema_default(SimulateConfig, "noise_fraction"),
    cells: bool = True,
    model: PhysicsModel = PhysicsModel(),
    built: Optional[Geometry] = None,
) -> Event:
    """Simulates one event.

    Args:
      geometry: the detector (:meth:`Geometry.load` of ``detectors.csv``).
      event_id: the event's number.
      rng: its random stream (see :func:`event_rng`).
      pileup: mean number of pile-up vertices (Poisson), besides the one hard-scatter vertex.
      noise_fraction: noise hits as a fraction of all hits, in [0, 1).
      cells: also make the cells part.
      model: the physics parameters.
      built: the detector as built, when it differs from ``geometry`` (misaligned layers,
        :func:`~trkx_tf.trackml.simulate.systematics.misaligned`): the particles cross its modules, and the hits are
        reported in ``geometry``, the nominal detector that reconstruction assumes; the truth keeps the true
        crossing points. None: ``geometry`` itself.

    Returns:
      An :class:`~trkx_tf.trackml.io.Event` with hits, particles, truth and (with ``cells``) cells; hits are sorted
      by (volume_id, layer_id, module_id) in random order within a module, hit_id = 1..n_hits.

    Raises:
      DataError: a parameter is out of range.
    """
    if not 0.0 <= noise_fraction < 1.0:
        raise DataError(f"simulate: noise_fraction must be in [0, 1), got {noise_fraction}")
    if pileup < 0:
        raise DataError(f"simulate: pileup must be >= 0, got {pileup}")
    check_model(model)
    actual = geometry if built is None else built
    if actual.n_modules != geometry.n_modules:
        raise DataError(f"simulate: the detector as built has {actual.n_modules} modules, the nominal one "
                        f"{geometry.n_modules}")
    samplers = {
        "prompt": tsallis_sampler(model.pt_temperature, model.pt_power, model.pt_min, model.pt_power_eta_slope,
                                  model.pt_power_eta_start),
        "decay": tsallis_sampler(model.decay_pt_temperature, model.decay_pt_power, model.pt_min),
        "secondary": tsallis_sampler(model.secondary_pt_temperature, np.inf, model.pt_min),
    }
    prim = generate_primaries(rng, pileup, model, samplers)
    hits1 = propagate(actual, prim, 0.0, rng, model, model.interaction_probability)
    sec = secondaries(actual, prim, hits1, rng, model, samplers["secondary"])
    hits2 = propagate(actual, sec, 1e-3, rng, model, model.secondary_stop_probability)
    parts = Particles.concat([prim, sec])
    particle = np.concatenate([hits1.particle, hits2.particle + len(prim.pid)])
    module = np.concatenate([hits1.module, hits2.module])
    true_xyz = np.concatenate([hits1.xyz, hits2.xyz])
    true_local = np.concatenate([hits1.local, hits2.local])
    mom = np.concatenate([hits1.mom, hits2.mom])
    # too shallow crossings, then the hit efficiency: a crossing may leave no hit (after the secondaries: they start
    # at crossings regardless)
    steep = shallow_rows(actual, module, mom, model)
    if steep is not None:
        particle, module, true_xyz, true_local, mom = (a[steep] for a in (particle, module, true_xyz, true_local, mom))
    detected = detected_rows(len(particle), rng, model)
    if detected is not None:
        particle, module, true_xyz, true_local, mom = (a[detected] for a in (particle, module, true_xyz,
                                                                               true_local, mom))
    n_sig = len(particle)
    direction = mom / np.maximum(np.linalg.norm(mom, axis=1), 1e-12)[:, None]
    measured, c_row, c0, c1, cval = digitise(geometry, module, true_local, direction, rng)
    n_noise = int(round(noise_fraction / (1.0 - noise_fraction) * n_sig))
    n_module, n_local, n_c0, n_c1, n_val = noise(geometry, n_noise, rng, model)
    all_module = np.concatenate([module, n_module])
    all_local = np.concatenate([measured, n_local])
    xyz = geometry.to_global(all_module, all_local)  # the nominal detector: where reconstruction puts the hits
    n_hits = n_sig + n_noise
    if n_hits == 0:
        raise DataError(f"simulate: event {event_id} has no hits (pileup {pileup})")
    # hit order: by module, random within a module; hit_id = 1..n
    order = np.lexsort((rng.random(n_hits), geometry.module_id[all_module], geometry.layer_id[all_module],
                        geometry.volume_id[all_module]))
    hit_id = np.empty(n_hits, np.int32)
    hit_id[order] = np.arange(1, n_hits + 1, dtype=np.int32)
    hits = pd.DataFrame({
        "hit_id": hit_id[order],
        "x": xyz[order, 0].astype(np.float32), "y": xyz[order, 1].astype(np.float32),
        "z": xyz[order, 2].astype(np.float32),
        "volume_id": geometry.volume_id[all_module[order]], "layer_id": geometry.layer_id[all_module[order]],
        "module_id": geometry.module_id[all_module[order]],
    })
    pid_hit = np.concatenate([parts.pid[particle], np.zeros(n_noise, np.int64)])
    t_xyz = np.concatenate([true_xyz, xyz[n_sig:]])
    t_mom = np.concatenate([mom, np.zeros((n_noise, 3))])
    nhits = np.bincount(particle, minlength=len(parts.pid)).astype(np.int32)
    particles = pd.DataFrame({
        "particle_id": parts.pid,
        "vx": parts.vertex[:, 0].astype(np.float32), "vy": parts.vertex[:, 1].astype(np.float32),
        "vz": parts.vertex[:, 2].astype(np.float32),
        "px": parts.momentum[:, 0].astype(np.float32), "py": parts.momentum[:, 1].astype(np.float32),
        "pz": parts.momentum[:, 2].astype(np.float32),
        "q": parts.q.astype(np.int32), "nhits": nhits,
    })
    truth = pd.DataFrame({
        "hit_id": hit_id[order],
        "particle_id": pid_hit[order],
        "tx": t_xyz[order, 0].astype(np.float32), "ty": t_xyz[order, 1].astype(np.float32),
        "tz": t_xyz[order, 2].astype(np.float32),
        "tpx": t_mom[order, 0].astype(np.float32), "tpy": t_mom[order, 1].astype(np.float32),
        "tpz": t_mom[order, 2].astype(np.float32),
    })
    truth["weight"] = hit_weights(truth, particles).astype(np.float32)
    cells_df = None
    if cells:
        cell_hit = np.concatenate([c_row, n_sig + np.arange(n_noise)])
        cells_df = pd.DataFrame({
            "hit_id": hit_id[cell_hit],
            "ch0": np.concatenate([c0, n_c0]).astype(np.int32),
            "ch1": np.concatenate([c1, n_c1]).astype(np.int32),
            "value": np.concatenate([cval, n_val]).astype(np.float32),
        }).sort_values(["hit_id", "ch0", "ch1"], kind="stable").reset_index(drop=True)
    return Event(int(event_id), hits, particles, truth, cells_df)


@dataclass(frozen=True)
class EventSummary:
    """What one simulated event holds, for progress reports."""

    event_id: int
    n_hits: int
    n_particles: int
    seconds: float


_WORKER_GEOMETRY: Optional[Geometry] = None
_WORKER_BUILT: Optional[Geometry] = None


def _init_worker(geometry: Geometry, built: Optional[Geometry] = None) -> None:
    global _WORKER_GEOMETRY, _WORKER_BUILT
    _WORKER_GEOMETRY, _WORKER_BUILT = geometry, built


def _simulate_and_write(args) -> EventSummary:
    out_dir, event_id, seed, pileup, noise_fraction, cells, compress, model = args
    start = time.perf_counter()
    event = simulate_event(_WORKER_GEOMETRY, event_id, event_rng(seed, event_id), pileup, noise_fraction, cells,
                           model, built=_WORKER_BUILT)
    write_event(out_dir, event, compress=compress)
    return EventSummary(event_id, len(event.hits), int((event.particles["nhits"] > 0).sum()),
                        time.perf_counter() - start)


def simulate_events(
    out_dir: os.PathLike | str,
    detector: os.PathLike | str | Geometry,
    n_events: int,
    pileup: float = schema_default(SimulateConfig, "pileup"),
    seed: int = 0,
    noise_fraction: float = schema_default(SimulateConfig, "noise_fraction"),
    workers: int = 0,
    first_event: int = 0,
    cells: bool = True,
    compress: bool = False,
    progress: bool = True,
    model: PhysicsModel = PhysicsModel(),
    misalignment: Sequence[LayerShift] = (),
    field_error: float = 0.0,
    ranks: Ranks = SINGLE,
) -> list[EventSummary]:
    """Simulates events ``first_event .. first_event + n_events - 1`` and writes them to ``out_dir``.

    Args:
      out_dir: destination folder (created if needed).
      detector: ``detectors.csv[.gz]`` path, or a loaded :class:`Geometry`.
      n_events: how many events.
      pileup, noise_fraction, cells, model: as in :func:`simulate_event`.
      seed: the run's seed; event ``i`` uses :func:`event_rng` (seed, i), so the output does not depend on workers.
      workers: processes (0: one per CPU core, 1: in this process).
      first_event: id of the first event.
      compress: write ``.csv.gz``.
      progress: show a tqdm progress bar.
      misalignment: ``(volume_id, layer_id, dx)`` layer shifts of the detector as built (mm along global x), see
        :mod:`~trkx_tf.trackml.simulate.systematics`; the hits are reported in the nominal detector.
      field_error: the field the events are simulated in is ``model.bz * (1 + field_error)``; reconstruction's
        models and module map assume the nominal ``model.bz``.
      ranks: the MPI ranks sharing the events (:mod:`trkx_tf.ranks`; event i to rank i mod size, each with its
        ``workers`` processes): the same files whatever the number of ranks; a rank that fails fails every rank.

    Returns:
      One :class:`EventSummary` per event, in event order (on every rank).

    Raises:
      DataError: bad arguments or an unreadable detector file.
    """
    geometry, built, out_dir, model = ranks.step(_checked, out_dir, detector, n_events, pileup, seed, noise_fraction,
                                                 workers, first_event, model, misalignment, field_error)
    ids = list(range(first_event, first_event + n_events))
    tasks = [(out_dir, i, seed, pileup, noise_fraction, cells, compress, model) for i in ids]
    return ranks.map(lambda share: map_in_processes(
        _simulate_and_write, share, workers or os.cpu_count() or 1, initializer=_init_worker,
        initargs=(geometry, built), progress=progress, desc="simulate", unit="event"), tasks)


def _checked(out_dir, detector, n_events, pileup, seed, noise_fraction, workers, first_event, model, misalignment,
             field_error) -> tuple:
    """The arguments of :func:`simulate_events` checked: (geometry, built geometry, out_dir created, model)."""
    if n_events < 1:
        raise DataError(f"simulate: the number of events must be >= 1, got {n_events}")
    if workers < 0:
        raise DataError(f"simulate: workers must be >= 0, got {workers}")
    if first_event < 0:
        raise DataError(f"simulate: first_event must be >= 0, got {first_event}")
    if seed < 0:
        raise DataError(f"simulate: seed must be >= 0, got {seed}")
    if not 0.0 <= noise_fraction < 1.0:
        raise DataError(f"simulate: noise_fraction must be in [0, 1), got {noise_fraction}")
    if not 0 <= pileup <= MAX_PILEUP:
        raise DataError(f"simulate: pileup must be in [0, {MAX_PILEUP:g}], got {pileup}")
    check_model(model)
    model = field_model(model, field_error)
    geometry = detector if isinstance(detector, Geometry) else Geometry.load(detector)
    built = misaligned(geometry, misalignment) if misalignment else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return geometry, built, out_dir, model


def simulate_from_config(cfg, progress: bool = True, ranks: Ranks = SINGLE) -> list[EventSummary]:
    """``trkx-simulate`` as a library: the events the config describes, written to ``data.events_dir``.

    Args:
      cfg: the config (:class:`~trkx_tf.config.Config`): ``simulate.*`` (with its ``misalignment`` and
        ``field_error``), ``data.detector`` and ``data.events_dir``.
      progress: show a progress bar.
      ranks: the MPI ranks sharing the events (see :func:`simulate_events`).

    Returns:
      One :class:`EventSummary` per event, in event order.

    Raises:
      ConfigError: ``data.detector`` is not set.
      DataError: see :func:`simulate_events`.
    """
    if not cfg.data.detector:
        return ranks.step(_raise, ConfigError("data.detector is not set: name the TrackML detectors.csv[.gz] in the "
                                              "config, with --set data.detector=PATH or with --detector PATH"))
    sim = cfg.simulate
    return simulate_events(cfg.data.events_dir, cfg.data.detector, sim.events, pileup=sim.pileup, seed=sim.seed,
                           noise_fraction=sim.noise_fraction, workers=sim.workers, first_event=sim.first_event,
                           cells=sim.cells, compress=sim.compress, progress=progress,
                           misalignment=[(s.volume, s.layer, s.dx) for s in sim.misalignment],
                           field_error=sim.field_error, ranks=ranks)


def _raise(error: Exception):
    """Raises ``error`` (in a :meth:`~trkx_tf.ranks.Ranks.step`: rank 0 alone prints it)."""
    raise error
