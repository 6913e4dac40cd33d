"""Do the partial-truth metrics follow the full ones? A check of the metric on event 1000 (nothing is tuned here).

Event 1000 has a full truth. This script makes its partial truth by the labelled events' rules
(``trkx_tf.trackml.partial.partial_truth_from_full``) and prints:

1. the rules against the real labels: labelled hits and groups of event 1000 per 1000 hits, beside the mean and
   range of the 48 real labelled events (``../shared/trackml/labelled``, partial-truth files as released), and
   the share of the labelled truth graph's edges that are edges of the full truth graph;
2. track efficiency, full (technical: >= 5 hits, double majority, tracks >= 5 hits) against partial (labelled
   groups >= 3 hits), per class (all = pT > 0.5 GeV, pT > 1, 0.5 < pT <= 1), for reconstructions made from the
   truth (itself, and deterministic corruptions: ``trkx_tf.reco.partial_check.corrupted_tracks``) and for a
   real submission (default: the released one, ``results/event1000/event000001000-submission.csv``);
3. edge efficiency and purity per stage, full against partial, on synthetic stage edges made from the truth
   graph (``synthetic_stage_edges``) and, with ``--edges``, on a real ``event000001000-edges.npz`` of
   ``trkx-infer``.

    python benchmarks/partial_truth_check.py [--trackml ../shared/trackml] [--submission S.csv] [--edges E.npz]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]  # the default paths below; trkx_tf is the installed package


def pct(x) -> str:
    return "   n/a" if x is None else f"{100 * x:6.2f}"


def real_label_stats(folder: Path) -> dict:
    """Labelled hits and groups per 1000 hits (and per event) of the real labelled events."""
    import pandas as pd

    from trkx_tf.trackml.io import event_ids_with, read_event

    rows = []
    for eid in event_ids_with(folder, "partial-truth", "labelled events"):
        ev = read_event(folder, eid, parts=("hits", "partial-truth"))
        p = ev.partial_truth
        cls = p.groupby("group")["pt_min"].first()
        rows.append({"event": eid, "hits": len(ev.hits), "labelled": len(p), "groups": int(p["group"].nunique()),
                     "groups_1.0": int((cls == 1.0).sum()), "groups_0.5": int((cls == 0.5).sum())})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trackml", default=str(REPO.parent / "shared" / "trackml"), help="folder with event 1000")
    ap.add_argument("--labelled", default=None, help="real labelled events (default: <trackml>/labelled; "
                                                     "'none' to skip)")
    ap.add_argument("--event", type=int, default=1000)
    ap.add_argument("--submission", default=str(REPO / "results" / "event1000" / "event000001000-submission.csv"),
                    help="a real submission of the event ('none' to skip)")
    ap.add_argument("--edges", default=None, help="a real event<ID>-edges.npz of trkx-infer for the event")
    ap.add_argument("--json", default=None, help="write every number here")
    args = ap.parse_args(argv)

    from trkx_tf.config import EvalConfig
    from trkx_tf.graphs.truth import hit_particle_ids, match_truth, truth_graph
    from trkx_tf.reco import partial as P
    from trkx_tf.reco import partial_check as C
    from trkx_tf.reco.evaluate import submission_tracks
    from trkx_tf.reco.outputs import read_edges
    from trkx_tf.trackml.io import read_event
    from trkx_tf.trackml.partial import partial_truth_from_full
    from trkx_tf.trackml.score import read_submission

    trackml = Path(args.trackml)
    ev = read_event(trackml, args.event, parts=("hits", "particles", "truth"))
    partial = partial_truth_from_full(ev.hits, ev.particles, ev.truth)
    lab = P.labelled_hits(ev.hits, partial)
    s, r = P.labelled_truth_graph(lab)
    in_full = float((match_truth(s, r, truth_graph(ev.hits, ev.particles, ev.truth)) >= 0).mean())
    cls = partial.groupby("group")["pt_min"].first()
    mine = {"hits": len(ev.hits), "labelled": len(partial), "groups": int(partial["group"].nunique()),
            "groups_1.0": int((cls == 1.0).sum()), "groups_0.5": int((cls == 0.5).sum())}
    out = {"event": args.event, "rules": {"event": mine, "labelled_truth_edges": len(s),
                                          "labelled_truth_edges_in_full_truth_graph": in_full}}
    print(f"== 1. the README's rules on event {args.event} ({mine['hits']} hits)")
    print(f"labelled truth graph: {len(s)} edges, {100 * in_full:.3f} % of them edges of the full truth graph")
    labelled = Path(args.labelled) if args.labelled else trackml / "labelled"
    if args.labelled != "none" and labelled.is_dir():
        real = real_label_stats(labelled)
        print(f"{'per 1000 hits':<16} {'event ' + str(args.event):>11} {'real mean':>10} {'real min':>9} "
              f"{'real max':>9}   ({len(real)} real labelled events)")
        out["rules"]["real"] = {}
        for key in ("labelled", "groups", "groups_1.0", "groups_0.5"):
            per = 1000 * real[key] / real["hits"]
            out["rules"]["real"][key] = {"mean_per_1000_hits": float(per.mean()), "min": float(per.min()),
                                         "max": float(per.max()), "mean_per_event": float(real[key].mean())}
            print(f"{key:<16} {1000 * mine[key] / mine['hits']:11.2f} {per.mean():10.2f} {per.min():9.2f} "
                  f"{per.max():9.2f}")
    else:
        print(f"(no real labelled events at {labelled}: rules not compared)")

    cfg = EvalConfig()
    pid = hit_particle_ids(ev.hits, ev.truth)
    recos = {kind: C.corrupted_tracks(pid, kind) for kind in C.CORRUPTIONS}
    if args.submission != "none" and Path(args.submission).is_file():
        sub = read_submission(args.submission)
        recos["submission"] = submission_tracks(ev, sub[sub["event_id"] == args.event])
    print("\n== 2. track efficiency %, full (technical) vs partial (labelled), per class")
    print(f"{'reconstruction':<16}" + "".join(f" {c + ' full':>17} {'partial':>8}" for c in P.CLASSES))
    out["tracks"] = {}
    for name, hit_track in recos.items():
        t = C.compare(ev, partial, hit_track, cfg)["tracks"]
        out["tracks"][name] = t
        print(f"{name:<16}" + "".join(f" {pct(t[c]['full']):>17} {pct(t[c]['partial']):>8}" for c in P.CLASSES))
    first = out["tracks"]["truth"]
    print("denominators: " + ", ".join(f"{c}: {first[c]['full_particles']} particles / {first[c]['partial_groups']} "
                                       f"groups" for c in P.CLASSES))

    edge_sets = {"synthetic": C.synthetic_stage_edges(ev)}
    if args.edges:
        edge_sets["trkx-infer"] = read_edges(args.edges)
    out["edges"] = {}
    for name, edges in edge_sets.items():
        e = C.compare(ev, partial, recos["truth"], cfg, edges)["edges"]
        out["edges"][name] = e
        print(f"\n== 3. edges ({name}, {edges.n_edge} candidate edges): efficiency / purity %, full (all hits; "
              f"labelled hits only) vs partial")
        print(f"{'stage':<8} {'class':<11} {'eff full':>9} {'full lab':>9} {'partial':>8} {'pur full':>9} "
              f"{'full lab':>9} {'partial':>8}")
        for stage, by in e.items():
            for c, v in by.items():
                print(f"{stage:<8} {c:<11} {pct(v['full_eff']):>9} {pct(v['full_eff_labelled_hits']):>9} "
                      f"{pct(v['partial_eff']):>8} {pct(v['full_purity']):>9} "
                      f"{pct(v['full_purity_labelled_hits']):>9} {pct(v['partial_purity']):>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=lambda x: x.item()
                                              if isinstance(x, np.generic) else str(x)) + "\n")
        print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
