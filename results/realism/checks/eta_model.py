"""pT 0.5-1 and > 1 GeV particles with hits per |eta| bin, simulated (N events of seed SEED, noise 0.175, default
hit_efficiency) over the real labelled events' mean (16 events, checks/eta.txt), for PhysicsModel overrides.
Usage: SEED=1 PYTHONPATH=. python results/realism/checks/eta_model.py 4 "pt_power=6.88;pt_power_eta_slope=0" "pt_power_eta_slope=1.2" ..."""
import numpy as np, dataclasses, sys, yaml
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event
bins = np.array([0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
real = np.array([[297, 295, 299, 292, 280, 267, 223, 225], [160, 155, 159, 154, 144, 123, 101, 95]], float)
def tab(parts):
    pt = np.hypot(parts.px, parts.py).to_numpy(); eta = np.abs(np.arcsinh(parts.pz.to_numpy()/pt)); nh = parts.nhits.to_numpy()
    return np.array([np.histogram(eta[(pt > 0.5) & (pt <= 1) & (nh > 0)], bins)[0], np.histogram(eta[(pt > 1) & (nh > 0)], bins)[0]])
g = Geometry.load("../shared/trackml/detectors.csv.gz")
n = int(sys.argv[1]); import os; SEED = int(os.environ.get("SEED", "1"))
for spec in sys.argv[2:]:
    kw = {k: yaml.safe_load(v) for k, v in (i.split("=") for i in spec.split(";") if i)}
    m = dataclasses.replace(PhysicsModel(), **kw)
    parts = [simulate_event(g, i, event_rng(SEED, i), 200, 0.175, cells=False, model=m).particles for i in range(n)]
    sim = np.mean([tab(p) for p in parts], 0)
    pt = np.concatenate([np.hypot(p.px, p.py)[p.nhits > 0] for p in parts])
    print(spec or "(defaults)", "sum 0.5-1 / >1:", sim.sum(1).round(0), "real", real.sum(1), "median pT", round(float(np.median(pt)), 4))
    print("   0.5-1 sim/real", np.round(sim[0] / real[0], 3), "\n   >1    sim/real", np.round(sim[1] / real[1], 3), flush=True)
