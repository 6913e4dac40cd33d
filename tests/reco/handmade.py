"""A hand-made event whose track metrics and TrackML scores are known exactly (see test_metrics.py).

Particles (pid: pT GeV, hits, weight of each hit):
  1: 2.0, 6 hits, 0.05    2: 0.7, 5 hits, 0.04    3: 0.3, 4 hits, 0.025    4: 1.5, 6 hits, 0.05
  5: 0.8, 6 hits, 1/60    noise: 2 hits, 0
Hits are numbered 1..29 in that order (noise: 22, 23; particle 5: 24..29).

Submission (tracks of >= 5 hits count):
  T1 = particle 1's six hits                     -> matches 1
  T2 = three hits of 2 + the two noise hits       -> matches 2 (3/5 of the track, 3/5 of the particle)
  T3 = the other two hits of 2 + particle 3's four -> matches 3 (4/6, 4/4)
  T4 = hits 16-18 of particle 4 (3 hits: ignored)
  T6 = hits 24-26 of 5 + hits 19, 20 of 4         -> fake (3/5 of the track but only 3/6 of particle 5)
  T7 = hits 27-29 of 5 + hit 21 of 4 (4 hits: ignored)
"""

import numpy as np
import pandas as pd

from trkx_tf.trackml.io import Event

PARTICLES = {1: (2.0, 6, 0.05), 2: (0.7, 5, 0.04), 3: (0.3, 4, 0.025), 4: (1.5, 6, 0.05), 5: (0.8, 6, 1 / 60)}
HIT_PARTICLE = [1] * 6 + [2] * 5 + [3] * 4 + [4] * 6 + [0, 0] + [5] * 6
TRACKS = {1: range(1, 7), 2: [7, 8, 9, 22, 23], 3: [10, 11, 12, 13, 14, 15], 4: [16, 17, 18],
          6: [24, 25, 26, 19, 20], 7: [27, 28, 29, 21]}


def make_event(event_id: int = 5) -> Event:
    n = len(HIT_PARTICLE)
    hit_id = np.arange(1, n + 1)
    pid = np.array(HIT_PARTICLE, np.int64)
    # hits on a line per particle, r growing with the hit's rank (geometry is irrelevant to the track metrics)
    rank = np.concatenate([np.arange((pid == p).sum()) for p in [1, 2, 3, 4, 0, 5]])
    phi = pid * 0.7
    r = 30.0 + 40.0 * rank
    hits = pd.DataFrame({"hit_id": hit_id, "x": r * np.cos(phi), "y": r * np.sin(phi), "z": 0.5 * r,
                         "volume_id": 8, "layer_id": 2 * (rank + 1), "module_id": 1 + pid})
    parts = []
    for p, (pt, nh, _) in PARTICLES.items():
        parts.append({"particle_id": p, "vx": 0.0, "vy": 0.0, "vz": 0.0, "px": pt * np.cos(0.7 * p),
                      "py": pt * np.sin(0.7 * p), "pz": 0.3 * pt, "q": 1, "nhits": nh})
    particles = pd.DataFrame(parts)
    weight = np.array([PARTICLES[p][2] if p else 0.0 for p in pid])
    truth = pd.DataFrame({"hit_id": hit_id, "particle_id": pid, "tx": hits["x"], "ty": hits["y"], "tz": hits["z"],
                          "tpx": 0.0, "tpy": 0.0, "tpz": 0.0, "weight": weight})
    return Event(event_id, hits, particles, truth)


def make_submission(event_id: int = 5) -> pd.DataFrame:
    track = np.zeros(len(HIT_PARTICLE), np.int64)
    for t, hits in TRACKS.items():
        track[np.asarray(list(hits)) - 1] = t
    return pd.DataFrame({"event_id": event_id, "hit_id": np.arange(1, len(track) + 1), "track_id": track})
