"""Reading, validating and writing TrackML events (trkx_tf.trackml.io)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from trkx_tf.errors import DataError
from trkx_tf.trackml.io import SCHEMAS, Event, list_events, read_detectors, read_event, validate_event, write_event

from .conftest import make_toy_detectors, tiny_event

PRE = "event000000042"


def assert_same_event(a: Event, b: Event) -> None:
    assert a.event_id == b.event_id
    for part in ("hits", "particles", "truth", "cells"):
        x, y = getattr(a, part), getattr(b, part)
        assert (x is None) == (y is None), part
        if x is not None:
            assert list(y.columns) == list(SCHEMAS[part]), part
            assert y.dtypes.astype(str).tolist() == list(SCHEMAS[part].values()), part
            pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True), check_exact=True)


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_is_exact(tmp_path, compress):
    event = tiny_event()
    write_event(tmp_path, event, compress=compress)
    suffix = ".csv.gz" if compress else ".csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{PRE}-{part}{suffix}" for part in ("hits", "particles", "truth", "cells"))
    if compress:
        with gzip.open(tmp_path / f"{PRE}-hits.csv.gz", "rt") as fh:
            assert fh.readline().strip() == "hit_id,x,y,z,volume_id,layer_id,module_id"
    back = read_event(tmp_path, 42)
    assert_same_event(event, back)
    assert np.isnan(back.truth["tpx"].iloc[2])  # empty momenta survive as NaN
    assert list_events(tmp_path) == [42]


def test_rewrite_with_other_compression_leaves_one_version(tmp_path):
    write_event(tmp_path, tiny_event(), compress=False)
    write_event(tmp_path, tiny_event(), compress=True)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(n.endswith(".csv.gz") for n in names) and len(names) == 4
    assert not any(n.startswith(".") for n in names)  # no temporary file left behind


def test_optional_parts_missing_give_none(tmp_path):
    ev = tiny_event()
    write_event(tmp_path, Event(ev.event_id, ev.hits))
    back = read_event(tmp_path, 42)
    assert back.particles is None and back.truth is None and back.cells is None
    assert len(back.hits) == 6
    only = read_event(tmp_path, 42, parts=("hits",))
    assert only.truth is None


def test_list_events_sorted_and_unique(tmp_path):
    for eid, compress in ((7, False), (3, True), (12, False)):
        ev = tiny_event(eid)
        write_event(tmp_path, Event(eid, ev.hits), compress=compress)
    (tmp_path / "event000000099-particles.csv").write_text("particle_id\n")  # no hits file: not an event
    (tmp_path / "notes.txt").write_text("x")
    assert list_events(tmp_path) == [3, 7, 12]
    with pytest.raises(DataError, match="events folder not found"):
        list_events(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------ validation
def _write_parts(folder, **frames):
    ev = tiny_event()
    parts = {p: getattr(ev, p) for p in ("hits", "particles", "truth", "cells")}
    parts.update(frames)
    for part, df in parts.items():
        if df is not None:
            df.to_csv(folder / f"{PRE}-{part}.csv", index=False)


def test_missing_hits_file(tmp_path):
    with pytest.raises(DataError, match=rf"^{PRE}-hits\.csv\[\.gz\]: file not found in {tmp_path}$"):
        read_event(tmp_path, 42)


def test_missing_column(tmp_path):
    _write_parts(tmp_path, hits=tiny_event().hits.drop(columns=["y"]))
    with pytest.raises(DataError, match=rf"^{PRE}-hits\.csv: missing column 'y'$"):
        read_event(tmp_path, 42)


@pytest.mark.parametrize("bad,word", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_nan_or_inf_names_file_column_rows(tmp_path, bad, word):
    hits = tiny_event().hits.astype({"x": "float64"})
    hits.loc[[1, 3, 4, 5], "x"] = bad
    _write_parts(tmp_path, hits=hits)
    with pytest.raises(DataError) as err:
        read_event(tmp_path, 42)
    assert str(err.value) == f"{PRE}-hits.csv: column 'x' has {word} in 4 rows (first: 1, 3, 4)"


def test_nan_in_particle_momentum(tmp_path):
    parts = tiny_event().particles.astype({"pz": "float64"})
    parts.loc[2, "pz"] = np.nan
    _write_parts(tmp_path, particles=parts)
    with pytest.raises(DataError, match=rf"^{PRE}-particles\.csv: column 'pz' has NaN in 1 row \(first: 2\)$"):
        read_event(tmp_path, 42)


def test_nan_in_truth_particle_id(tmp_path):
    truth = tiny_event().truth.astype({"particle_id": "float64"})
    truth.loc[0, "particle_id"] = np.nan
    _write_parts(tmp_path, truth=truth)
    with pytest.raises(DataError, match=rf"^{PRE}-truth\.csv: column 'particle_id' has NaN in 1 row \(first: 0\)$"):
        read_event(tmp_path, 42)


def test_non_numeric_value(tmp_path):
    hits = tiny_event().hits.astype({"z": "object"})
    hits.loc[2, "z"] = "abc"
    _write_parts(tmp_path, hits=hits)
    with pytest.raises(DataError, match=rf"^{PRE}-hits\.csv: column 'z' is not numeric in 1 row \(first: 2\)$"):
        read_event(tmp_path, 42)


def test_duplicate_hit_id(tmp_path):
    hits = tiny_event().hits.copy()
    hits.loc[4, "hit_id"] = 2
    _write_parts(tmp_path, hits=hits, truth=None, cells=None)
    with pytest.raises(DataError,
                       match=rf"^{PRE}-hits\.csv: column 'hit_id' has duplicate values in 1 row \(first: 4\)$"):
        read_event(tmp_path, 42)


def test_truth_hit_id_not_in_hits(tmp_path):
    truth = tiny_event().truth.copy()
    truth.loc[5, "hit_id"] = 99
    _write_parts(tmp_path, truth=truth)
    with pytest.raises(DataError, match=rf"^{PRE}-truth\.csv: column 'hit_id' has values not in {PRE}-hits\.csv "
                                        r"in 1 row \(first: 5\)$"):
        read_event(tmp_path, 42)


def test_hit_without_truth_row(tmp_path):
    _write_parts(tmp_path, truth=tiny_event().truth.iloc[:4])
    with pytest.raises(DataError,
                       match=rf"^{PRE}-hits\.csv: column 'hit_id' has no truth row in 2 rows \(first: 4, 5\)$"):
        read_event(tmp_path, 42)


def test_truth_particle_not_in_particles(tmp_path):
    truth = tiny_event().truth.copy()
    truth.loc[[3, 4], "particle_id"] = 77
    _write_parts(tmp_path, truth=truth)
    with pytest.raises(DataError, match=rf"^{PRE}-truth\.csv: column 'particle_id' has values not in "
                                        rf"{PRE}-particles\.csv in 2 rows \(first: 3, 4\)$"):
        read_event(tmp_path, 42)
    # without validation the links are not checked
    assert len(read_event(tmp_path, 42, validate=False).truth) == 6


def test_cells_hit_id_not_in_hits(tmp_path):
    cells = tiny_event().cells.copy()
    cells.loc[6, "hit_id"] = 1000
    _write_parts(tmp_path, cells=cells)
    with pytest.raises(DataError, match=rf"^{PRE}-cells\.csv: column 'hit_id' has values not in {PRE}-hits\.csv"):
        read_event(tmp_path, 42)


def test_empty_event(tmp_path):
    _write_parts(tmp_path, hits=tiny_event().hits.iloc[:0], truth=None, cells=None)
    with pytest.raises(DataError, match=rf"^{PRE}-hits\.csv: no hits \(empty event\)$"):
        read_event(tmp_path, 42)
    (tmp_path / f"{PRE}-hits.csv").write_text("")
    with pytest.raises(DataError, match=rf"^{PRE}-hits\.csv: file is empty"):
        read_event(tmp_path, 42)


def test_corrupt_gzip(tmp_path):
    (tmp_path / f"{PRE}-hits.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match=rf"^{PRE}-hits\.csv\.gz: cannot parse CSV"):
        read_event(tmp_path, 42)


def test_write_rejects_missing_column(tmp_path):
    ev = tiny_event()
    with pytest.raises(DataError, match=r"hits\.csv \(writing\): missing column 'z'"):
        write_event(tmp_path, Event(42, ev.hits.drop(columns=["z"])))


def test_validate_event_in_memory():
    ev = tiny_event()
    validate_event(ev)  # a good event passes
    bad = Event(ev.event_id, ev.hits, ev.particles.iloc[:1], ev.truth, ev.cells)
    with pytest.raises(DataError, match="particle_id' has values not in"):
        validate_event(bad)


# ------------------------------------------------------------------------------------------------ detectors
def test_read_detectors(tmp_path):
    det = make_toy_detectors()
    det.to_csv(tmp_path / "detectors.csv", index=False)
    back = read_detectors(tmp_path / "detectors.csv")
    assert len(back) == len(det) and back["module_id"].dtype == np.int32
    det.drop(columns=["pitch_v"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"^bad\.csv: missing column 'pitch_v'$"):
        read_detectors(tmp_path / "bad.csv")
    pd.concat([det, det.iloc[:1]]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(DataError, match=r"repeats in 1 row"):
        read_detectors(tmp_path / "dup.csv")
    with pytest.raises(DataError, match="detector file not found"):
        read_detectors(tmp_path / "absent.csv")


# ------------------------------------------------------------------------------------------------ real data
@pytest.mark.shared_data
def test_read_real_event_1000(shared_trackml):
    if not (shared_trackml / "event000001000-hits.csv.gz").exists():
        pytest.skip(f"event 1000 not found in {shared_trackml}")
    ev = read_event(shared_trackml, 1000)
    assert len(ev.hits) == 120_939 and len(ev.truth) == 120_939 and len(ev.particles) == 12_263
    assert ev.cells is None
    assert (ev.particles["nhits"] > 0).sum() == 10_565
    noise = (ev.truth["particle_id"] == 0).mean()
    assert abs(noise - 0.146) < 0.001
    assert ev.truth["tpx"].isna().sum() > 0  # rebuilt truth: empty momenta allowed
    assert ev.hits["hit_id"].tolist() == list(range(1, 120_940))
    for part in ("hits", "particles", "truth"):
        assert getattr(ev, part).dtypes.astype(str).tolist() == list(SCHEMAS[part].values())


@pytest.mark.shared_data
def test_read_real_detectors_and_calibration(shared_trackml):
    det = read_detectors(shared_trackml / "detectors.csv.gz")
    assert len(det) == 18_728
    cal = shared_trackml / "calibration"
    if not cal.is_dir():
        pytest.skip(f"no calibration folder in {shared_trackml}")
    ids = list_events(cal)
    assert ids == [1001, 1003, 1005, 1009, 1010, 1012]
    ev = read_event(cal, ids[0])
    assert ev.truth is None and ev.cells is None and len(ev.hits) > 90_000
