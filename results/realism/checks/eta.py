"""pT 0.5-1 and > 1 GeV particles with hits per |eta| bin: the first 16 labelled events' particles files against 4
simulated events (seed 1, noise 0.175, defaults). eta.txt was made before the eta-dependent spectrum (pt_power 6.88,
slope 0; hit_efficiency 0.992). Usage: PYTHONPATH=. python results/realism/checks/eta.py"""
import numpy as np, pandas as pd, glob
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.simulate import event_rng, simulate_event
bins = np.array([0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
def tab(parts):
    pt = np.hypot(parts.px, parts.py).to_numpy(); eta = np.abs(np.arcsinh(parts.pz.to_numpy()/pt)); nh = parts.nhits.to_numpy()
    r = []
    for lo in (0.5, 1.0):
        s = (pt > lo) & (nh > 0) & ((pt <= 1.0) if lo == 0.5 else True)
        r.append(np.histogram(eta[s], bins)[0])
    return np.array(r)
files = sorted(glob.glob("../shared/trackml/labelled/*-particles.csv.gz"))[:16]
real = np.mean([tab(pd.read_csv(f)) for f in files], 0)
g = Geometry.load("../shared/trackml/detectors.csv.gz")
sim = np.mean([tab(simulate_event(g, i, event_rng(1, i), 200, 0.175, cells=False).particles) for i in range(4)], 0)
print("eta bins", bins)
for k, name in enumerate(("0.5-1", ">1")):
    print(name, "real", np.round(real[k]), "\n      sim ", np.round(sim[k]), "\n      sim/real", np.round(sim[k]/real[k], 3))
