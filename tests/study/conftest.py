"""Fixtures of the study tests: the real TrackML geometry (skips without ../shared/trackml)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def geometry(shared_trackml):
    from trkx_tf.trackml.geometry import Geometry

    return Geometry.load(shared_trackml / "detectors.csv.gz")
