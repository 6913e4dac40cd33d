"""Density of hits near the module edges (distance to the u and v edges, per mille of the hits per mm, bins 0, 0.05,
0.1, 0.2, 0.3, 0.5, 1, 2 mm): real labelled events 1001, 1003, 1005 against simulated events (seed 1, ids 0-1, noise
0.146, hit_efficiency 1.0). edge.txt also holds a third row made while a ``dead_edge`` field (0.3 mm inactive band
at every module edge, tried and rejected) existed in the working tree only. Usage: PYTHONPATH=. python results/realism/checks/edge.py"""
import numpy as np, dataclasses, sys
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.io import read_event
from trkx_tf.trackml.simulate import PhysicsModel, event_rng, simulate_event
g = Geometry.load("../shared/trackml/detectors.csv.gz")
def row_of(h):
    key = {(v,l,m): i for i,(v,l,m) in enumerate(zip(g.volume_id, g.layer_id, g.module_id))}
    return np.array([key[t] for t in zip(h.volume_id, h.layer_id, h.module_id)])
def edges(h):
    rows = row_of(h)
    loc = g.to_local(rows, h[["x","y","z"]].to_numpy(np.float64))
    du = g.half_width(rows, loc[:,1]) - np.abs(loc[:,0]); dv = g.hv[rows] - np.abs(loc[:,1])
    vol = h.volume_id.to_numpy()
    out = {}
    for name, vs in (("pixel",(7,8,9)),("short",(12,13,14)),("long",(16,17,18))):
        s = np.isin(vol, vs)
        out[name] = (du[s], dv[s], g.pitch_u[rows[s]], g.pitch_v[rows[s]])
    return out
bins_u = [0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0]
def show(tag, evs):
    agg = {}
    for h in evs:
        for k,(du,dv,pu,pv) in edges(h).items():
            a = agg.setdefault(k, [[],[],[],[]]); a[0].append(du); a[1].append(dv); a[2].append(pu); a[3].append(pv)
    for k,(du,dv,pu,pv) in agg.items():
        du=np.concatenate(du); dv=np.concatenate(dv)
        hu = np.histogram(du, bins_u)[0]/len(du)*1e3
        hv = np.histogram(dv, bins_u)[0]/len(dv)*1e3
        print(f"{tag:10s} {k:6s} pitch_u {np.median(np.concatenate(pu)):.3f} pitch_v {np.median(np.concatenate(pv)):.3f} n={len(du)}  u-edge per mille/bin {np.round(hu/np.diff(bins_u),2)}  v-edge {np.round(hv/np.diff(bins_u),2)}")
real = [read_event("../shared/trackml/labelled", e, parts=("hits",)).hits for e in (1001,1003,1005)]
show("real", real)
sim = [simulate_event(g, i, event_rng(1,i), 200, 0.146, cells=False, model=PhysicsModel(hit_efficiency=1.0)).hits
       for i in range(2)]
show("sim", sim)
