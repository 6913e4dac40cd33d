"""The TrackML score, hit weights and submission files (trkx_tf.trackml.score)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trkx_tf.errors import DataError
from trkx_tf.trackml.score import hit_weights, order_weight, pt_weight, read_submission, score_event, write_submission

# particles A (4 hits), B (4 hits), C (2 hits), noise (2 hits); weights A 0.1, B 0.1, C 0.1, noise 0
PID = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 0, 0], np.int64)
TRUTH = pd.DataFrame({"hit_id": np.arange(1, 13, dtype=np.int32), "particle_id": PID,
                      "weight": np.where(PID > 0, 0.1, 0.0)})


def sub(track_ids) -> pd.DataFrame:
    return pd.DataFrame({"hit_id": np.arange(1, 13, dtype=np.int32), "track_id": np.asarray(track_ids)})


@pytest.mark.parametrize("tracks,expected", [
    ([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 0, 0], 1.0),  # perfect
    ([5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 8, 9], 1.0),  # perfect, other labels, noise as singletons
    (list(range(12)), 0.0),  # all singletons: no track holds more than half of its particle
    ([1, 1, 9, 9, 2, 2, 2, 2, 3, 3, 0, 0], 0.6),  # A split 2 + 2: neither half counts
    ([1, 1, 1, 9, 2, 2, 2, 2, 3, 3, 0, 0], 0.9),  # A split 3 + 1: the 3-hit part counts with 3 hits
    ([1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0], 0.8),  # A and C merged (4 + 2): A counts, C is lost
    ([1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 0, 0], 0.2),  # A and B merged (4 + 4): a tie, neither counts
    ([1, 1, 1, 4, 2, 2, 2, 2, 3, 3, 1, 1], 0.9),  # 3 of A + 2 noise: 3/5 > 1/2, counts with A's 3 hits
    ([1, 4, 4, 4, 2, 2, 2, 2, 3, 3, 1, 1], 0.9),  # 1 of A + 2 noise: a noise track; the other 3 of A count
    ([1, 1, 4, 4, 2, 2, 2, 2, 3, 3, 1, 1], 0.6),  # 2 of A + 2 noise: no majority above half; 2 of A: half
    ([1, 1, 1, 1, 2, 2, 2, 2, 3, 9, 0, 0], 0.8),  # C split 1 + 1: 1/2 is not more than half
])
def test_hand_made_scores(tracks, expected):
    assert score_event(TRUTH, sub(tracks)) == pytest.approx(expected, abs=1e-12)


def test_score_sums_majority_weights_and_normalises():
    truth = TRUTH.assign(weight=np.array([4, 1, 1, 1, 2, 2, 2, 2, 3, 3, 0, 0], float))  # total 21
    # A split 3 (hits 1, 2, 3) + 1 (hit 4): counts the weights of hits 1-3 = 6; B perfect = 8; C lost
    score = score_event(truth, sub([1, 1, 1, 9, 2, 2, 2, 2, 5, 6, 0, 0]))
    assert score == pytest.approx((6 + 8) / 21)


def test_submission_row_order_does_not_matter():
    tracks = [1, 1, 1, 9, 2, 2, 2, 2, 3, 3, 0, 0]
    shuffled = sub(tracks).sample(frac=1.0, random_state=3)
    assert score_event(TRUTH, shuffled) == pytest.approx(0.9)


def _reference_score(truth: pd.DataFrame, submission: pd.DataFrame) -> float:
    """A plain-loop statement of the definition, to check the vectorised one."""
    track_of = dict(zip(submission["hit_id"], submission["track_id"]))
    particle_n = truth["particle_id"].value_counts().to_dict()
    tracks: dict = {}
    for h, p, w in zip(truth["hit_id"], truth["particle_id"], truth["weight"]):
        tracks.setdefault(track_of[h], []).append((p, w))
    total = 0.0
    for hits in tracks.values():
        counts: dict = {}
        for p, w in hits:
            n, s = counts.get(p, (0, 0.0))
            counts[p] = (n + 1, s + w)
        best = max(counts.items(), key=lambda kv: (kv[1][0], -kv[0]))
        n, s = best[1]
        if 2 * n > len(hits) and 2 * n > particle_n[best[0]]:
            total += s
    return total / truth["weight"].sum()


@pytest.mark.parametrize("seed", range(5))
def test_matches_plain_definition_on_random_submissions(seed):
    rng = np.random.default_rng(seed)
    n = 400
    pid = rng.integers(0, 40, n)
    truth = pd.DataFrame({"hit_id": np.arange(1, n + 1), "particle_id": pid,
                          "weight": np.where(pid > 0, rng.random(n), 0.0)})
    # start from the truth and corrupt part of it: splits, merges and random reassignments
    track = pid.copy()
    flip = rng.random(n) < 0.3
    track[flip] = rng.integers(0, 60, flip.sum())
    submission = pd.DataFrame({"hit_id": truth["hit_id"], "track_id": track})
    got = score_event(truth, submission)
    assert got == pytest.approx(_reference_score(truth, submission), abs=1e-12)
    assert 0.0 < got < 1.0


def test_score_rejects_incomplete_or_repeated_submissions():
    with pytest.raises(DataError, match=r"misses truth hits in 1 row \(first: 11\)"):
        score_event(TRUTH, sub(list(range(12))).iloc[:11])
    bad = pd.concat([sub(list(range(12))), sub(list(range(12))).iloc[:1]])
    with pytest.raises(DataError, match="duplicate values"):
        score_event(TRUTH, bad)
    extra = sub(list(range(12))).assign(hit_id=np.arange(2, 14))
    with pytest.raises(DataError, match="not in truth"):
        score_event(TRUTH, extra)
    with pytest.raises(DataError, match="missing column 'track_id'"):
        score_event(TRUTH, sub(list(range(12))).drop(columns="track_id"))


# -------------------------------------------------------------------------------------------------- weights
def test_pt_and_order_factors():
    assert pt_weight(np.array([0.01, 0.3, 0.5, 1.75, 3.0, 50.0])).tolist() == pytest.approx([0, 0.2, 0.2, 0.6, 1, 1])
    w4 = order_weight(np.arange(4), np.full(4, 4))
    assert w4 == pytest.approx(np.array([10, 16 / 3, 3, 6]) / (10 + 16 / 3 + 3 + 6))
    assert order_weight(np.arange(3), np.full(3, 3)).tolist() == [0, 0, 0]  # fewer than 4 hits
    w9 = order_weight(np.arange(9), np.full(9, 9))
    assert w9 == pytest.approx(np.array([10, 8, 6, 5, 3, 3, 3, 5, 6]) / 49)
    assert order_weight(np.array([25]), np.array([30]))[0] == 0.0  # past the 20th hit


def test_hit_weights_hand_made():
    # particle 1: 4 hits, pT 5 GeV; particle 2: 3 hits (too short); particle 3: 5 hits, pT 0.3 GeV; 2 noise hits
    particles = pd.DataFrame({"particle_id": [1, 2, 3], "vz": [10.0, 0.0, -5.0], "px": [3.0, 1.0, 0.3],
                              "py": [4.0, 0.0, 0.0]})
    pid = [1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 0, 0]
    tz = [50, 20, 11, 80, 1, 2, 3, 0, 10, 20, 30, 40, 5, 6]  # particle 1 order by |tz - 10|: 11, 20, 50, 80
    truth = pd.DataFrame({"hit_id": np.arange(1, 15), "particle_id": pid, "tz": np.array(tz, float)})
    w = hit_weights(truth, particles)
    assert w.sum() == pytest.approx(1.0)
    assert w[4:7].tolist() == [0, 0, 0] and w[12:].tolist() == [0, 0]
    p1 = np.array([10, 16 / 3, 3, 6]) / (10 + 16 / 3 + 3 + 6)
    p3 = order_weight(np.arange(5), np.full(5, 5)) * 0.2
    raw = np.zeros(14)
    raw[[2, 1, 0, 3]] = p1 * 1.0  # ranks of hits 3, 2, 1, 4
    raw[7:12] = p3
    assert w == pytest.approx(raw / raw.sum())


def test_hit_weights_rejects_unknown_particle():
    particles = pd.DataFrame({"particle_id": [1], "vz": [0.0], "px": [1.0], "py": [0.0]})
    truth = pd.DataFrame({"hit_id": [1, 2], "particle_id": [1, 5], "tz": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"not in particles in 1 row \(first: 1\)"):
        hit_weights(truth, particles)


# ------------------------------------------------------------------------------------------------ submission
@pytest.mark.parametrize("name", ["sub.csv", "sub.csv.gz"])
def test_submission_round_trip(tmp_path, name):
    df = pd.DataFrame({"event_id": [1000] * 4 + [1001] * 2, "hit_id": [1, 2, 3, 4, 1, 2],
                       "track_id": [7, 7, 8, 2**40, 0, 0]})
    write_submission(tmp_path / name, df)
    back = read_submission(tmp_path / name)
    assert back.dtypes.astype(str).tolist() == ["int64", "int32", "int64"]
    assert back.to_numpy().tolist() == df.to_numpy().tolist()


def test_submission_errors(tmp_path):
    dup = pd.DataFrame({"event_id": [1, 1], "hit_id": [3, 3], "track_id": [1, 2]})
    with pytest.raises(DataError, match=r"duplicate values in 1 row \(first: 1\)"):
        write_submission(tmp_path / "s.csv", dup)
    dup.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"^d\.csv: column 'hit_id' has duplicate values"):
        read_submission(tmp_path / "d.csv")
    dup.drop(columns="track_id").to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DataError, match=r"^m\.csv: missing column 'track_id'$"):
        read_submission(tmp_path / "m.csv")
    with pytest.raises(DataError, match="submission file not found"):
        read_submission(tmp_path / "absent.csv")


# ------------------------------------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def event1000(shared_trackml):
    from trkx_tf.trackml.io import read_event

    if not (shared_trackml / "event000001000-hits.csv.gz").exists():
        pytest.skip(f"event 1000 not found in {shared_trackml}")
    return read_event(shared_trackml, 1000)


@pytest.mark.shared_data
def test_real_truth_as_submission_scores_one(event1000):
    truth = event1000.truth
    perfect = pd.DataFrame({"hit_id": truth["hit_id"], "track_id": truth["particle_id"]})
    assert score_event(truth, perfect) == pytest.approx(1.0, abs=1e-6)
    singletons = pd.DataFrame({"hit_id": truth["hit_id"], "track_id": np.arange(len(truth))})
    assert score_event(truth, singletons) == 0.0
    # lose every hit of the particles with id parity 1: the score drops by their weight share
    odd = (truth["particle_id"] % 2 == 1) & (truth["particle_id"] != 0)
    broken = perfect.assign(track_id=np.where(odd, -np.arange(len(truth)) - 1, truth["particle_id"]))
    expected = 1.0 - truth["weight"][odd].sum() / truth["weight"].sum()
    assert score_event(truth, broken) == pytest.approx(expected, abs=1e-6)


@pytest.mark.shared_data
def test_hit_weights_match_real_event(event1000):
    w = hit_weights(event1000.truth, event1000.particles)
    ref = event1000.truth["weight"].to_numpy(np.float64)
    assert w.sum() == pytest.approx(1.0)
    close = np.isclose(w, ref, rtol=1e-3, atol=1e-9)
    assert close.mean() > 0.999
    assert np.abs(w - ref).sum() < 0.01
