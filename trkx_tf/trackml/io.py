"""Reading, validating and writing TrackML events and the detector geometry file.

An event is four CSV files in one folder, named the TrackML way, each plain (``.csv``) or gzip-compressed
(``.csv.gz``)::

    event{event_id:09d}-hits.csv       hit_id, x, y, z, volume_id, layer_id, module_id
    event{event_id:09d}-particles.csv  particle_id, vx, vy, vz, px, py, pz, q, nhits
    event{event_id:09d}-truth.csv      hit_id, particle_id, tx, ty, tz, tpx, tpy, tpz, weight
    event{event_id:09d}-cells.csv      hit_id, ch0, ch1, value

and, for the real labelled events (``../shared/trackml/labelled``), a partial truth instead of the truth::

    event{event_id:09d}-partial-truth.csv  hit_id, group, pt_min

Only the hits file is required; test events have no particles or truth, and no real event here has cells.
Lengths are in mm, momenta in GeV, particle_id 0 marks a noise hit in truth. The partial truth labels a subset of
the hits (its rules: :mod:`trkx_tf.trackml.partial`): ``group`` (an integer >= 1) joins the labelled hits of one
particle, ``pt_min`` is 1.0 for particles with pT > 1 GeV and 0.5 for 0.5 < pT <= 1 GeV. A hit without a row is
*unlabelled*, not noise.

Shape vocabulary (used by every docstring of ``trkx_tf.trackml``): ``n_hits`` rows in hits and truth,
``n_particles`` rows in particles, ``n_cells`` rows in cells, ``n_labelled`` rows in partial truth, ``n_modules``
rows in detectors.

Every problem with a file raises :class:`~trkx_tf.errors.DataError` with a one-line message naming the file, the
column and the first offending rows (0-based data-row numbers, header excluded).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError, first_line
from trkx_tf.files import atomic_path

PARTS = ("hits", "particles", "truth", "cells", "partial-truth")

#: The :class:`Event` attribute of each part (the part name is the file-name suffix).
ATTRS = {part: part.replace("-", "_") for part in PARTS}

#: The two ``pt_min`` classes of a partial truth (GeV).
PT_MIN_CLASSES = (0.5, 1.0)

#: Column order and dtype of each part, as in the TrackML challenge.
SCHEMAS: dict[str, dict[str, str]] = {
    "hits": {
        "hit_id": "int32", "x": "float32", "y": "float32", "z": "float32",
        "volume_id": "int32", "layer_id": "int32", "module_id": "int32",
    },
    "particles": {
        "particle_id": "int64", "vx": "float32", "vy": "float32", "vz": "float32",
        "px": "float32", "py": "float32", "pz": "float32", "q": "int32", "nhits": "int32",
    },
    "truth": {
        "hit_id": "int32", "particle_id": "int64", "tx": "float32", "ty": "float32", "tz": "float32",
        "tpx": "float32", "tpy": "float32", "tpz": "float32", "weight": "float32",
    },
    "cells": {"hit_id": "int32", "ch0": "int32", "ch1": "int32", "value": "float32"},
    "partial-truth": {"hit_id": "int32", "group": "int64", "pt_min": "float32"},
}

#: Float columns that may hold NaN (the rebuilt real truth leaves tpx/tpy/tpz empty for some hits); every other
#: column must be finite.
NAN_ALLOWED = {"truth": ("tx", "ty", "tz", "tpx", "tpy", "tpz")}

DETECTOR_COLUMNS: dict[str, str] = {
    "volume_id": "int32", "layer_id": "int32", "module_id": "int32",
    "cx": "float64", "cy": "float64", "cz": "float64",
    "rot_xu": "float64", "rot_xv": "float64", "rot_xw": "float64",
    "rot_yu": "float64", "rot_yv": "float64", "rot_yw": "float64",
    "rot_zu": "float64", "rot_zv": "float64", "rot_zw": "float64",
    "module_t": "float64", "module_minhu": "float64", "module_maxhu": "float64", "module_hv": "float64",
    "pitch_u": "float64", "pitch_v": "float64",
}



@dataclass(frozen=True)
class Event:
    """One TrackML event.

    Attributes:
      event_id: the number in the file names.
      hits: ``[n_hits]`` rows: hit_id int32 (unique, 1..n_hits when simulated), x, y, z float32 (mm),
        volume_id, layer_id, module_id int32.
      particles: ``[n_particles]`` rows: particle_id int64, vx, vy, vz float32 (mm), px, py, pz float32 (GeV),
        q int32, nhits int32; None where the event has no particles file.
      truth: ``[n_hits]`` rows: hit_id int32, particle_id int64 (0 = noise), tx, ty, tz, tpx, tpy, tpz float32,
        weight float32; None where the event has no truth file.
      cells: ``[n_cells]`` rows: hit_id int32, ch0, ch1 int32 (pixel indices along u and v), value float32;
        None where the event has no cells file.
      partial_truth: ``[n_labelled]`` rows: hit_id int32 (unique, each a hit of the event), group int64 (>= 1),
        pt_min float32 (0.5 or 1.0); None where the event has no partial-truth file.
    """

    event_id: int
    hits: pd.DataFrame
    particles: Optional[pd.DataFrame] = None
    truth: Optional[pd.DataFrame] = None
    cells: Optional[pd.DataFrame] = None
    partial_truth: Optional[pd.DataFrame] = None


def event_prefix(event_id: int) -> str:
    """``event000001000`` for event 1000."""
    return f"event{int(event_id):09d}"


def _rows(mask: np.ndarray, limit: int = 3) -> str:
    """``"3 rows (first: 17, 52, 90)"`` for a boolean row mask."""
    idx = np.flatnonzero(mask)
    first = ", ".join(str(i) for i in idx[:limit])
    return f"{len(idx)} row{'s' if len(idx) != 1 else ''} (first: {first})"


def find_part(folder: os.PathLike | str, event_id: int, part: str) -> Optional[Path]:
    """``<folder>/event<ID:09d>-<part>.csv`` or its ``.csv.gz``, whichever exists (plain first), else None."""
    stem = Path(folder) / f"{event_prefix(event_id)}-{part}.csv"
    for path in (stem, stem.with_name(stem.name + ".gz")):
        if path.is_file():
            return path
    return None


def event_ids_with(folder: os.PathLike | str, part: str, what: str = "events") -> list[int]:
    """Event ids that have an ``event<ID>-<part>.csv[.gz]`` file in a folder, sorted, each once.

    Raises:
      DataError: the folder does not exist (named as the ``what`` folder in the message).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found")
    pattern = re.compile(rf"^event(\d+)-{re.escape(part)}\.csv(\.gz)?$")
    return sorted({int(m.group(1)) for name in os.listdir(folder) if (m := pattern.match(name))})


def list_events(folder: os.PathLike | str) -> list[int]:
    """Event ids in a folder: those with a hits file (``.csv`` or ``.csv.gz``), sorted, each once.

    Raises:
      DataError: the folder does not exist.
    """
    return event_ids_with(folder, "hits", "events")


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV file as a frame; a file cut short (no line end after its last data row) is refused.

    Raises:
      DataError: the file is unreadable, empty, truncated (gzip stream or last line cut short) or not CSV.
    """
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except EOFError as exc:
        raise DataError(f"{path.name}: cannot parse CSV (EOFError: {first_line(exc)}): the file is truncated; "
                        f"copy or regenerate it") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path.name}: cannot parse CSV ({exc.__class__.__name__}: {first_line(exc)})") from None
    n_lines = raw.count(b"\n")
    if n_lines >= 1 and not raw.rstrip(b" \t").endswith((b"\n", b"\r")):
        raise DataError(f"{path.name}: the last line (data row {n_lines - 1}) has no line end: the file is "
                        f"truncated; copy or regenerate it")
    try:
        return pd.read_csv(io.BytesIO(raw))
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: file is empty (no header)") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path.name}: cannot parse CSV ({exc.__class__.__name__}: {first_line(exc)})") from None


def _conform(df: pd.DataFrame, schema: dict[str, str], name: str, nan_allowed: Iterable[str] = ()) -> pd.DataFrame:
    """Checks columns, numeric types and finiteness, and returns the schema's columns with the schema's dtypes."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise DataError(f"{name}: missing column{'s' if len(missing) > 1 else ''} "
                        + ", ".join(repr(c) for c in missing))
    if len(df) == 0:
        return pd.DataFrame({col: np.zeros(0, dtype) for col, dtype in schema.items()})
    out = {}
    nan_allowed = set(nan_allowed)
    for col, dtype in schema.items():
        series = df[col]
        if pd.api.types.is_bool_dtype(series):
            raise DataError(f"{name}: column {col!r} holds booleans, expected numbers")
        if not pd.api.types.is_numeric_dtype(series):
            numeric = pd.to_numeric(series, errors="coerce")
            bad = numeric.isna().to_numpy() & series.notna().to_numpy()
            raise DataError(f"{name}: column {col!r} is not numeric in {_rows(bad)}")
        values = series.to_numpy(dtype=np.float64) if dtype.startswith("float") else series.to_numpy()
        if values.dtype.kind == "f":
            nan = np.isnan(values)
            if col not in nan_allowed and nan.any():
                raise DataError(f"{name}: column {col!r} has NaN in {_rows(nan)}")
            inf = np.isinf(values)
            if inf.any():
                raise DataError(f"{name}: column {col!r} has inf in {_rows(inf)}")
            if dtype == "float32":
                with np.errstate(invalid="ignore"):
                    big = np.abs(values) > np.finfo(np.float32).max
                if big.any():
                    raise DataError(f"{name}: column {col!r} overflows float32 in {_rows(big)}")
            if dtype.startswith("int"):
                frac = values != np.round(values)
                if frac.any():
                    raise DataError(f"{name}: column {col!r} is not integer in {_rows(frac)}")
        if dtype.startswith("int"):
            info = np.iinfo(dtype)
            ints = values.astype(np.float64) if values.dtype.kind == "f" else values
            over = (ints < info.min) | (ints > info.max)
            if over.any():
                raise DataError(f"{name}: column {col!r} overflows {dtype} in {_rows(over)}")
        out[col] = values.astype(dtype)
    return pd.DataFrame(out)


def _conform_partial_truth(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """:func:`_conform` for a partial truth, with one message per rule for ``group`` and ``pt_min``.

    Raises:
      DataError: a missing column, a hit_id that is not an int32 integer, a group that is not a positive integer
        (empty, text, fraction, 0 or below), or a pt_min other than 0.5 or 1.0.
    """
    schema = SCHEMAS["partial-truth"]
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise DataError(f"{name}: missing column{'s' if len(missing) > 1 else ''} "
                        + ", ".join(repr(c) for c in missing))
    out = _conform(df[["hit_id"]], {"hit_id": schema["hit_id"]}, name)
    with np.errstate(invalid="ignore"):
        group = pd.to_numeric(df["group"], errors="coerce").to_numpy(np.float64)
        bad = ~((group >= 1) & (group == np.round(group)) & (group < 2.0 ** 62))
        if bad.any():
            raise DataError(f"{name}: column 'group' is not a positive integer in {_rows(bad)}")
        pt_min = pd.to_numeric(df["pt_min"], errors="coerce").to_numpy(np.float64)
        bad = ~np.isin(pt_min, PT_MIN_CLASSES)
        if bad.any():
            raise DataError(f"{name}: column 'pt_min' is not 0.5 or 1.0 in {_rows(bad)}")
    out["group"] = group.astype(schema["group"])
    out["pt_min"] = pt_min.astype(schema["pt_min"])
    return out


def _conform_part(df: pd.DataFrame, part: str, name: str) -> pd.DataFrame:
    """The part's columns with the schema's dtypes (see :func:`_conform`)."""
    if part == "partial-truth":
        return _conform_partial_truth(df, name)
    return _conform(df, SCHEMAS[part], name, NAN_ALLOWED.get(part, ()))


def _check_unique(df: pd.DataFrame, col: str, name: str) -> None:
    dup = df[col].duplicated(keep="first").to_numpy()
    if dup.any():
        raise DataError(f"{name}: column {col!r} has duplicate values in {_rows(dup)}")


def validate_event(event: Event, names: Optional[dict[str, str]] = None) -> None:
    """Checks the links between the parts of an event.

    Args:
      event: an event whose parts already have the schema's columns and dtypes.
      names: file name of each part, for the messages (default: the TrackML names).

    Raises:
      DataError: an empty event, a duplicate hit_id or particle_id, a truth, cells or partial-truth hit_id that
        is not in hits, a hit without a truth row, a truth particle_id (other than 0) that is not in particles, a
        hit_id twice in the partial truth, or a partial-truth group with two pt_min values.
    """
    pre = event_prefix(event.event_id)
    names = {p: f"{pre}-{p}.csv" for p in PARTS} | dict(names or {})
    hits = event.hits
    if len(hits) == 0:
        raise DataError(f"{names['hits']}: no hits (empty event)")
    _check_unique(hits, "hit_id", names["hits"])
    hit_ids = hits["hit_id"].to_numpy()
    if event.particles is not None:
        _check_unique(event.particles, "particle_id", names["particles"])
    if event.truth is not None:
        truth = event.truth
        _check_unique(truth, "hit_id", names["truth"])
        unknown = ~np.isin(truth["hit_id"].to_numpy(), hit_ids)
        if unknown.any():
            raise DataError(f"{names['truth']}: column 'hit_id' has values not in {names['hits']} in {_rows(unknown)}")
        if len(truth) != len(hits):
            lacking = ~np.isin(hit_ids, truth["hit_id"].to_numpy())
            raise DataError(f"{names['hits']}: column 'hit_id' has no truth row in {_rows(lacking)}")
        if event.particles is not None:
            pid = truth["particle_id"].to_numpy()
            orphan = (pid != 0) & ~np.isin(pid, event.particles["particle_id"].to_numpy())
            if orphan.any():
                raise DataError(f"{names['truth']}: column 'particle_id' has values not in {names['particles']} "
                                f"in {_rows(orphan)}")
    if event.cells is not None:
        unknown = ~np.isin(event.cells["hit_id"].to_numpy(), hit_ids)
        if unknown.any():
            raise DataError(f"{names['cells']}: column 'hit_id' has values not in {names['hits']} in {_rows(unknown)}")
    if event.partial_truth is not None:
        partial, name = event.partial_truth, names["partial-truth"]
        _check_unique(partial, "hit_id", name)
        unknown = ~np.isin(partial["hit_id"].to_numpy(), hit_ids)
        if unknown.any():
            raise DataError(f"{name}: column 'hit_id' has values not in {names['hits']} in {_rows(unknown)}")
        classes = partial.groupby("group")["pt_min"].transform("nunique").to_numpy()
        if (classes > 1).any():
            raise DataError(f"{name}: column 'pt_min' differs within one group in {_rows(classes > 1)}")


def read_event(
    folder: os.PathLike | str,
    event_id: int,
    parts: Sequence[str] = PARTS,
    validate: bool = True,
) -> Event:
    """Reads one event.

    Args:
      folder: the folder holding the event files.
      event_id: which event.
      parts: the parts to read; "hits" is always read. A missing particles, truth, cells or partial-truth file
        gives None.
      validate: check the links between parts (see :func:`validate_event`). Columns, dtypes and finiteness are
        always checked.

    Returns:
      The :class:`Event`, every part with the schema's columns and dtypes.

    Raises:
      DataError: a missing hits file, an unknown part name, a missing column, a non-numeric, NaN or inf value, a
        partial-truth group that is not a positive integer or pt_min other than 0.5 or 1.0, or (with validate) any
        problem listed in :func:`validate_event`.
    """
    folder = Path(folder)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise DataError(f"read_event: unknown part {unknown[0]!r} (expected one of {', '.join(PARTS)})")
    frames: dict[str, Optional[pd.DataFrame]] = {p: None for p in PARTS}
    names: dict[str, str] = {}
    for part in ("hits",) + tuple(p for p in PARTS if p in parts and p != "hits"):
        path = find_part(folder, event_id, part)
        if path is None:
            if part == "hits":
                raise DataError(f"{event_prefix(event_id)}-hits.csv[.gz]: file not found in {folder}")
            continue
        names[part] = path.name
        frames[part] = _conform_part(_read_csv(path), part, path.name)
    event = Event(int(event_id), **{ATTRS[p]: frames[p] for p in PARTS})
    if validate:
        validate_event(event, names)
    return event


def _write_csv_atomic(df: pd.DataFrame, path: Path, compress: bool) -> None:
    gzip = {"method": "gzip", "mtime": 0, "compresslevel": 4}
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, compression=gzip if compress else None)


def write_event(folder: os.PathLike | str, event: Event, compress: bool = False) -> None:
    """Writes an event's parts (those that are not None), each atomically (temporary name, then rename).

    Files of the same event with the other extension (``.csv`` vs ``.csv.gz``) are removed so that a folder
    never holds two versions of one part.

    Args:
      folder: the destination folder (created if needed).
      event: the event; each part must have at least the schema's columns.
      compress: write ``.csv.gz`` instead of ``.csv``.

    Raises:
      DataError: a part lacks a schema column or has values of the wrong kind.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pre = event_prefix(event.event_id)
    for part in PARTS:
        df = getattr(event, ATTRS[part])
        if df is None:
            continue
        name = f"{pre}-{part}.csv" + (".gz" if compress else "")
        out = _conform_part(df, part, f"{name} (writing)")
        _write_csv_atomic(out, folder / name, compress)
        other = folder / (f"{pre}-{part}.csv" + ("" if compress else ".gz"))
        if other.exists():
            other.unlink()


def read_detectors(path: os.PathLike | str) -> pd.DataFrame:
    """Reads the TrackML detector geometry (``detectors.csv[.gz]``).

    Returns:
      ``[n_modules]`` rows: volume_id, layer_id, module_id int32; cx, cy, cz (module centre, mm); rot_xu … rot_zw
      (rotation local (u, v, w) -> global (x, y, z), row = global axis, column = local axis); module_t
      (thickness), module_minhu, module_maxhu (half-widths in u at v = -hv and v = +hv), module_hv (half-length
      in v), pitch_u, pitch_v (mm), all float64.

    Raises:
      DataError: the file is missing or unreadable, a column is missing or not finite, a (volume, layer, module)
        repeats, or the file has no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: detector file not found")
    det = _conform(_read_csv(path), DETECTOR_COLUMNS, path.name)
    if len(det) == 0:
        raise DataError(f"{path.name}: no modules")
    dup = det.duplicated(["volume_id", "layer_id", "module_id"]).to_numpy()
    if dup.any():
        raise DataError(f"{path.name}: (volume_id, layer_id, module_id) repeats in {_rows(dup)}")
    return det
