"""Reading and validating a partial truth (``event<ID>-partial-truth.csv[.gz]``), and making one from full truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trkx_tf.cli.eval import main as eval_main
from trkx_tf.errors import DataError
from trkx_tf.trackml.io import SCHEMAS, Event, read_event, write_event
from trkx_tf.trackml.partial import partial_truth_from_full

from .conftest import tiny_event

PRE = "event000000042"
NAME = f"{PRE}-partial-truth.csv"


def hand_made_partial() -> pd.DataFrame:
    """Hits 1, 2, 3 in group 3 (pT > 1 GeV), hits 4 and 5 in group 1 (0.5-1 GeV); hit 6 unlabelled."""
    return pd.DataFrame({"hit_id": [1, 2, 3, 4, 5], "group": [3, 3, 3, 1, 1], "pt_min": [1.0, 1.0, 1.0, 0.5, 0.5]})


def write_labelled(folder, partial: pd.DataFrame | None = None, text: str | None = None, gz: bool = False) -> None:
    """The tiny event's hits only, plus a partial truth written as given (frame or raw text)."""
    ev = tiny_event()
    write_event(folder, Event(ev.event_id, ev.hits))
    path = folder / (NAME + (".gz" if gz else ""))
    if text is not None:
        path.write_text(text)
    else:
        (hand_made_partial() if partial is None else partial).to_csv(path, index=False)


@pytest.mark.parametrize("gz", [False, True])
def test_reads_a_hand_made_partial_truth(tmp_path, gz):
    write_labelled(tmp_path, gz=gz)
    ev = read_event(tmp_path, 42)
    assert ev.truth is None and ev.particles is None
    p = ev.partial_truth
    assert list(p.columns) == ["hit_id", "group", "pt_min"]
    assert p.dtypes.astype(str).tolist() == list(SCHEMAS["partial-truth"].values())
    assert p["hit_id"].tolist() == [1, 2, 3, 4, 5] and p["group"].tolist() == [3, 3, 3, 1, 1]
    assert p["pt_min"].tolist() == [1.0, 1.0, 1.0, 0.5, 0.5]
    # asked only for other parts: not read
    assert read_event(tmp_path, 42, parts=("hits",)).partial_truth is None


def test_write_event_round_trips_a_partial_truth(tmp_path):
    ev = tiny_event()
    partial = hand_made_partial().astype({"hit_id": "int32", "group": "int64", "pt_min": "float32"})
    write_event(tmp_path, Event(ev.event_id, ev.hits, partial_truth=partial), compress=True)
    assert (tmp_path / f"{NAME}.gz").is_file()
    back = read_event(tmp_path, 42).partial_truth
    pd.testing.assert_frame_equal(back, partial, check_exact=True)


def test_an_empty_partial_truth_is_valid(tmp_path):
    write_labelled(tmp_path, text="hit_id,group,pt_min\n")
    p = read_event(tmp_path, 42).partial_truth
    assert len(p) == 0 and list(p.columns) == ["hit_id", "group", "pt_min"]


BAD_CASES = {
    "hit_absent": (lambda p: p.assign(hit_id=[1, 2, 3, 4, 99]),
                   rf"^{NAME}: column 'hit_id' has values not in {PRE}-hits\.csv in 1 row \(first: 4\)$"),
    "duplicate_hit": (lambda p: p.assign(hit_id=[1, 2, 2, 4, 5]),
                      rf"^{NAME}: column 'hit_id' has duplicate values in 1 row \(first: 2\)$"),
    "group_zero": (lambda p: p.assign(group=[3, 0, 3, -1, 1]),
                   rf"^{NAME}: column 'group' is not a positive integer in 2 rows \(first: 1, 3\)$"),
    "group_fraction": (lambda p: p.assign(group=[3, 3, 2.5, 1, 1]),
                       rf"^{NAME}: column 'group' is not a positive integer in 1 row \(first: 2\)$"),
    "group_text": (lambda p: p.assign(group=["3", "3", "3", "x", "1"]),
                   rf"^{NAME}: column 'group' is not a positive integer in 1 row \(first: 3\)$"),
    "pt_min": (lambda p: p.assign(pt_min=[1.0, 1.0, 2.0, 0.5, 0.7]),
               rf"^{NAME}: column 'pt_min' is not 0\.5 or 1\.0 in 2 rows \(first: 2, 4\)$"),
    "missing_column": (lambda p: p.drop(columns=["pt_min"]), rf"^{NAME}: missing column 'pt_min'$"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_partial_truth_is_one_line_naming_the_file(tmp_path, case):
    change, message = BAD_CASES[case]
    write_labelled(tmp_path, change(hand_made_partial()))
    with pytest.raises(DataError, match=message) as err:
        read_event(tmp_path, 42)
    assert "\n" not in str(err.value)


def test_empty_group_and_two_classes_in_one_group(tmp_path):
    write_labelled(tmp_path, text="hit_id,group,pt_min\n1,3,1.0\n2,,1.0\n")
    with pytest.raises(DataError, match=rf"^{NAME}: column 'group' is not a positive integer in 1 row \(first: 1\)$"):
        read_event(tmp_path, 42)
    write_labelled(tmp_path, hand_made_partial().assign(pt_min=[1.0, 0.5, 1.0, 0.5, 0.5]))
    with pytest.raises(DataError, match=rf"^{NAME}: column 'pt_min' differs within one group in 3 rows"):
        read_event(tmp_path, 42)
    # without validation the per-column rules still hold, the links to hits are not checked
    write_labelled(tmp_path, hand_made_partial().assign(hit_id=[1, 2, 3, 4, 99]))
    assert read_event(tmp_path, 42, validate=False).partial_truth["hit_id"].max() == 99


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_trkx_eval_exits_2_on_a_bad_partial_truth(tmp_path, case, capsys):
    events, subs = tmp_path / "events", tmp_path / "subs"
    events.mkdir()
    write_labelled(events, BAD_CASES[case][0](hand_made_partial()))
    subs.mkdir()
    pd.DataFrame({"event_id": 42, "hit_id": np.arange(1, 7), "track_id": 1}).to_csv(
        subs / f"{PRE}-submission.csv", index=False)
    code = eval_main(["--input", str(events), "--submissions", str(subs), "--out", str(tmp_path / "out"),
                      "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and NAME in err[0], err


def test_partial_truth_from_full_follows_the_rules():
    """Hand-made: every rule of the labelled events' README, one hit at a time."""
    hits = pd.DataFrame({
        "hit_id": np.arange(1, 13),
        #            p1 (2 GeV): barrel l2, l2 again (larger r), l4, endcap 9; strip
        #            p2 (0.7 GeV): barrel l2, l4, endcap 7
        #            p3 (0.7 GeV): barrel l2 only + endcap -> fewer than 2 labelled hits
        #            p4 (0.3 GeV), noise
        "x": [32.0, 35.0, 72.0, 100.0, 300.0, 33.0, 71.0, 90.0, 31.0, 95.0, 30.0, 50.0],
        "y": np.zeros(12),
        "z": [1.0, 1.1, 2.0, 600.0, 700.0, -1.0, -2.0, -600.0, 0.0, 650.0, 0.0, 0.0],
        "volume_id": [8, 8, 8, 9, 13, 8, 8, 7, 8, 9, 8, 8],
        "layer_id": [2, 2, 4, 2, 2, 2, 4, 2, 2, 2, 2, 4],
    })
    truth = pd.DataFrame({"hit_id": hits["hit_id"], "particle_id": [10, 10, 10, 10, 10, 20, 20, 20, 30, 30, 40, 0]})
    particles = pd.DataFrame({"particle_id": [10, 20, 30, 40], "px": [2.0, 0.7, 0.0, 0.3], "py": [0.0, 0.0, 0.7, 0.0]})
    p = partial_truth_from_full(hits, particles, truth)
    assert p["hit_id"].tolist() == [1, 3, 4, 6, 7]
    assert p["group"].tolist() == [1, 1, 1, 2, 2]
    assert p["pt_min"].tolist() == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert p.dtypes.astype(str).tolist() == list(SCHEMAS["partial-truth"].values())
    # pT exactly 1 GeV is the 0.5 class (0.5 < pT <= 1), exactly 0.5 GeV is not labelled
    particles2 = particles.assign(px=[1.0, 0.5, 0.0, 0.3])
    p2 = partial_truth_from_full(hits, particles2, truth)
    assert p2["hit_id"].tolist() == [1, 3] and p2["pt_min"].tolist() == [0.5, 0.5]
    with pytest.raises(DataError, match="particle 40 is not in particles"):
        partial_truth_from_full(hits, particles.iloc[:3], truth)


def test_partial_truth_from_full_round_trips_through_the_reader(tmp_path):
    ev = tiny_event()
    partial = partial_truth_from_full(ev.hits, ev.particles, ev.truth)
    # particle 11: pT = hypot(0.3, 0.4) in float32 = 0.50000001 GeV, the 0.5 class: its barrel hits 2 and 3 (not
    # hit 1, volume 7); particle 22 (pT 2 GeV): its pixel hits 4 (volume 8) and 5 (volume 9)
    assert partial["hit_id"].tolist() == [2, 3, 4, 5] and partial["group"].tolist() == [1, 1, 2, 2]
    assert partial["pt_min"].tolist() == [0.5, 0.5, 1.0, 1.0]
    write_event(tmp_path, Event(ev.event_id, ev.hits, partial_truth=partial))
    pd.testing.assert_frame_equal(read_event(tmp_path, 42).partial_truth, partial, check_exact=True)
