"""Barrel -> end-cap labelled doublets per event by (inner barrel layer, first disk) and their dr: 8 real labelled
events (1001-1039) against 4 simulated events (seed 1, noise 0.175, defaults).
(The .txt was made before max_v_slope existed: pass model=PhysicsModel(max_v_slope=0) to simulate_event to
reproduce it.) Usage: PYTHONPATH=. python results/realism/checks/barrel_endcap.py"""
import numpy as np
import pandas as pd
from trkx_tf.graphs.truth import event_partial_truth
from trkx_tf.study.realism import labelled_doublets
from trkx_tf.trackml.geometry import Geometry
from trkx_tf.trackml.io import list_events, read_event
from trkx_tf.trackml.simulate import event_rng, simulate_event


def table(events):
    rows = []
    for ev in events:
        d = labelled_doublets(ev.hits, event_partial_truth(ev))
        d = d[d["cls"] == "barrel-endcap"]
        lay = ev.hits["layer_id"].to_numpy()
        rows.append(pd.DataFrame({"inner": lay[d["sender"]], "disk": lay[d["receiver"]], "small_dr": d["dr"] < 12}))
    t = pd.concat(rows)
    return (t.groupby(["inner", "disk"]).size() / len(events)).rename("per event"), t["small_dr"].sum() / len(events)


real_ids = list_events("../shared/trackml/labelled")[:8]
real = [read_event("../shared/trackml/labelled", e, parts=("hits", "partial-truth")) for e in real_ids]
g = Geometry.load("../shared/trackml/detectors.csv.gz")
sim = [simulate_event(g, i, event_rng(1, i), 200, 0.175, cells=False) for i in range(4)]
(rt, rs), (st, ss) = table(real), table(sim)
out = pd.concat([rt.rename("real"), st.rename("sim")], axis=1).fillna(0).round(1)
print(out[(out["real"] >= 2) | (out["sim"] >= 2)].to_string())
print(f"dr < 12 mm per event: real {rs:.1f}, sim {ss:.1f}")
