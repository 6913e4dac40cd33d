"""Hits per event on the innermost pixel barrel layer (volume 8, layer 2) by |z| (mm): 6 real labelled events
(1001-1010) against 3 simulated events (seed 1, noise 0.175, defaults); and the labelled hits there.
(The .txt was made before max_v_slope existed: pass model=PhysicsModel(max_v_slope=0) to simulate_event to
reproduce it.) Usage: PYTHONPATH=. python results/realism/checks/layer2_z.py"""
import numpy as np
from trkx_tf.graphs.truth import event_partial_truth
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.io import list_events, read_event
from trkx_tf.trackml.simulate import event_rng, simulate_event

bins = np.array([0, 100, 200, 300, 400, 450, 500])


def hist(events):
    all_, lab = [], []
    for ev in events:
        h = ev.hits
        on = (h["volume_id"] == 8) & (h["layer_id"] == 2)
        all_.append(np.histogram(np.abs(h.loc[on, "z"]), bins)[0])
        ids = set(event_partial_truth(ev)["hit_id"])
        l2 = on & h["hit_id"].isin(ids)
        lab.append(np.histogram(np.abs(h.loc[l2, "z"]), bins)[0])
    return np.mean(all_, 0), np.mean(lab, 0)


real = [read_event("../shared/trackml/labelled", e, parts=("hits", "partial-truth"))
        for e in list_events("../shared/trackml/labelled")[:6]]
g = Geometry.load("../shared/trackml/detectors.csv.gz")
sim = [simulate_event(g, i, event_rng(1, i), 200, 0.175, cells=False) for i in range(3)]
(ra, rl), (sa, sl) = hist(real), hist(sim)
print("|z| bins        ", bins)
print("all hits  real  ", ra.round(0), "\n          sim   ", sa.round(0), "\n          sim/real", (sa / ra).round(3))
print("labelled  real  ", rl.round(0), "\n          sim   ", sl.round(0), "\n          sim/real", (sl / rl).round(3))
