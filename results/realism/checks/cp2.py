"""Pixel close pairs by volume and layer, strip close pairs, hit shares and particle counts of 3 simulated events
(seed 1, noise 0.175) for PhysicsModel overrides. Usage: PYTHONPATH=. python results/realism/checks/cp2.py "" "secondary_angle=0.8" "secondary_probability=0.04"
Columns: close pairs vol 7, 8, 9, pixel, short strip, long strip; share vol 8, 17; particles with hits; mean nhits;
close pairs of barrel layers 4, 6, 8."""
import numpy as np, sys, dataclasses, yaml
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event
from trkx_tf.study.realism import close_pairs
g = Geometry.load("../shared/trackml/detectors.csv.gz")
for spec in sys.argv[1:]:
    kw = {k: yaml.safe_load(v) for k, v in (i.split("=") for i in spec.split(";") if i)}
    m = dataclasses.replace(PhysicsModel(), **kw)
    out = []
    for i in range(3):
        ev = simulate_event(g, i, event_rng(1,i), 200, 0.175, cells=False, model=m); h = ev.hits
        nh = ev.particles.nhits.to_numpy()
        out.append([close_pairs(h, (v,), 3.0) for v in (7, 8, 9)] + [close_pairs(h, (7,8,9), 3.0), close_pairs(h, (12,13,14), 6.0), close_pairs(h, (16,17,18), 15.0), (h.volume_id==8).mean(), (h.volume_id==17).mean(), (nh>0).sum(), nh[nh>0].mean()] + [close_pairs(h[(h.volume_id==8)&(h.layer_id==l)], (8,), 3.0) for l in (4,6,8)])
    print(spec.ljust(45), np.round(np.mean(out, 0), 4), flush=True)
