"""Skip shares and hit figures of simulated events for PhysicsModel overrides (the realism module's event_figures).

Usage: PYTHONPATH=. python results/realism/checks/scan.py N_EVENTS "KEY=VALUE;KEY=VALUE" ... (noise=F sets the noise
fraction, default 0.146; the events are ids 0..N-1 of seed 1, as in benchmarks/simulate_calibration.py)."""
import sys, dataclasses, yaml, numpy as np
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event
from trkx_tf.study.realism import event_figures
g = Geometry.load("../shared/trackml/detectors.csv.gz")
keys = ["share vol 7","share vol 8","share vol 13","share vol 16","share vol 17","close pairs/hit pixel","close pairs/hit short strip","close pairs/hit long strip","particles skipping a layer","doublets skipping a layer","mean labelled hits/particle"]
print("config".ljust(50), " ".join(k.replace("share ","").replace("close pairs/hit ","cp ")[:11].rjust(11) for k in keys))
n = int(sys.argv[1])
for spec in sys.argv[2:]:
    kw = {}
    nf = 0.146
    for item in spec.split(";"):
        if not item: continue
        k, v = item.split("=")
        if k == "noise": nf = float(v); continue
        v = yaml.safe_load(v); kw[k] = tuple(v) if isinstance(v, list) else v
    m = dataclasses.replace(PhysicsModel(), **kw)
    figs = [event_figures(simulate_event(g, i, event_rng(1, i), 200, nf, cells=False, model=m)).scalars for i in range(n)]
    print(spec.ljust(50), " ".join(f"{np.mean([f[k] for f in figs]):11.4f}" for k in keys), flush=True)
