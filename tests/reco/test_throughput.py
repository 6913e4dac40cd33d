"""The TrackML Throughput-phase figure of merit that trkx-eval reports from trkx-infer's timings."""

import json

import pytest

from trkx_tf.errors import DataError
from trkx_tf.reco.evaluate import throughput
from trkx_tf.trackml.score import throughput_score


def test_throughput_score_formula():
    assert throughput_score(0.944, 0.56) == pytest.approx(1.172, abs=2e-3)  # the challenge's winner
    assert throughput_score(0.9, 10.0) < throughput_score(0.9, 1.0)  # faster scores more
    assert throughput_score(0.5, 1.0) == 0.0 and throughput_score(0.2, 1.0) == 0.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(DataError, match="positive"):
            throughput_score(0.9, bad)


def test_throughput_from_timings(tmp_path):
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"events": [
        {"event_id": 1, "seconds": {"loading": 0.5, "total": 2.0}},
        {"event_id": 2, "seconds": {"loading": 1.5, "total": 4.0}},
        {"event_id": 3, "seconds": {"loading": 9.0, "total": 90.0}},
    ]}))
    tp = throughput(path, [1, 2], 0.8)
    assert tp["events"] == 2 and tp["seconds_per_event"] == pytest.approx(3.0)
    assert tp["stages"]["loading"] == pytest.approx(1.0)
    assert tp["score"] == pytest.approx(throughput_score(0.8, 3.0))
    assert throughput(path, [7], 0.8) is None
    path.write_text("{not json")
    with pytest.raises(DataError, match="timings file"):
        throughput(path, [1], 0.8)
