"""Hits per event on the innermost pixel barrel layer (8:2) by the |eta| of their position (asinh(|z|/r)): 6 real
labelled events against 3 simulated events (seed 1, noise 0.175, defaults but max_v_slope = argv[1]), with four hit
figures of the simulated events. Usage: PYTHONPATH=. python results/realism/checks/layer2_eta.py 10"""
import numpy as np
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.io import list_events, read_event
from trkx_tf.trackml.simulate import event_rng, simulate_event
# hits per event on barrel layers by eta of the hit position (asinh(|z|/r)); argv[1]: max_v_slope
bins = np.array([0, 1.5, 2.0, 2.25, 2.5, 2.75, 2.9, 3.0, 3.1, 3.2, 3.3, 3.5])
def hist(evs, lay):
    out = []
    for ev in evs:
        h = ev.hits; on = (h.volume_id == 8) & (h.layer_id == lay)
        r = np.hypot(h.x[on], h.y[on]); eta = np.arcsinh(np.abs(h.z[on]) / r)
        out.append(np.histogram(eta, bins)[0])
    return np.mean(out, 0)
real = [read_event("../shared/trackml/labelled", e, parts=("hits",)) for e in list_events("../shared/trackml/labelled")[:6]]
g = Geometry.load("../shared/trackml/detectors.csv.gz")
import sys
from trkx_tf.trackml.simulate import PhysicsModel
m = PhysicsModel(max_v_slope=float(sys.argv[1]))
sim = [simulate_event(g, i, event_rng(1, i), 200, 0.175, cells=False, model=m) for i in range(3)]
from trkx_tf.study.realism import global_figures
print({k: round(np.mean([global_figures(e.hits)[k] for e in sim]), 4) for k in ("share vol 8", "share vol 17", "close pairs/hit pixel", "close pairs/hit short strip")})
print("eta bins", bins)
for lay in (2,):
    r, s = hist(real, lay), hist(sim, lay)
    print(lay, "real", r.round(0), "\n   sim ", s.round(0), "\n   ratio", (s / np.maximum(r, 1e-9)).round(2))
