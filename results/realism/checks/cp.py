"""Close pairs per hit (3 mm) in the pixel volumes 7, 8, 9, the pixel-barrel share, and the close pairs of barrel
layers 2, 4, 6, 8: real labelled events 1001-1010 (five) against 3 simulated events (seed 1, noise 0.175, defaults).
Usage: PYTHONPATH=. python results/realism/checks/cp.py"""
import numpy as np
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.io import read_event
from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event
from trkx_tf.study.realism import close_pairs
g = Geometry.load("../shared/trackml/detectors.csv.gz")
def row(tag, evs):
    out = []
    for h in evs:
        out.append([close_pairs(h, (v,), 3.0) for v in (7, 8, 9)] + [ (h.volume_id==8).mean()] + [close_pairs(h[(h.volume_id==8)&(h.layer_id==l)], (8,), 3.0) for l in (2,4,6,8)])
    print(tag, np.round(np.mean(out, 0), 4))
row("real", [read_event("../shared/trackml/labelled", e, parts=("hits",)).hits for e in (1001,1003,1005,1009,1010)])
row("sim ", [simulate_event(g, i, event_rng(1,i), 200, 0.175, cells=False).hits for i in range(3)])
