"""Candidate-edge builders: edge efficiency, purity and edges per event, side by side in one run.

The module map is learned from simulated training events only, then measured on held-out simulated events and on
the real TrackML event 1000 (a test event: nothing is tuned on it). Efficiencies are over the truth graph's edges
(docs/graphs.md); the target is >= 99 % of the true edges of particles with pT > 0.5 GeV. For those edges the
losses are split by cause (``ModuleMapBuilder.explain``): module pair not connected, outside the dphi window,
outside the z0 window.

    trkx-simulate --detector ../shared/trackml/detectors.csv.gz \\
        --events 300 --pileup 200 --seed 7 --no-cells --out /work/data/simt/train
    trkx-simulate --detector ../shared/trackml/detectors.csv.gz \\
        --events 20 --pileup 200 --seed 7 --first-event 5000 --no-cells --out /work/data/simt/eval
    python benchmarks/graphs_builders.py --train /work/data/simt/train --eval /work/data/simt/eval \\
        --real ../shared/trackml --curve 100,200 --variant "neighbours 8=neighbours=8" --variant "margin 0.1=margin=0.1"

Every ``--variant "NAME=key=value[,key=value]"`` evaluates the map learned from all training events with other
window settings (``graph.module_map`` keys that do not change the learning: margin, rare_margin, min_count,
neighbours), on the same events, in the same run. ``--quantiles 0.003,0.01`` also fits maps with other layer-pair
tail cuts (``graph.module_map.quantile``), ``--skip-layers 0,1`` maps that also learn the module pairs of particles
that missed the hits of up to 0, 1 layers (``graph.module_map.skip_layers``); each extra map is measured with every
variant. The training events are read once (with the skip edges of the largest ``skip_layers``) and every map is
fitted from them.
``--real-variants`` also measures the variants on event 1000 (measured only: choose the settings on the simulated
rows).

The embedding builder is measured with ``--embedding-model CKPT`` (a checkpoint of ``trkx-train --set
train.model=embedding``; radius and neighbours from ``graph.embedding``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

WINDOW_KEYS = ("margin", "rare_margin", "min_count", "neighbours")
PT_REPORT = 0.5


def row(name: str, data: str, m: dict) -> str:
    def pct(x):
        return "   n/a" if x is None else f"{100 * x:6.2f}"

    lost = m.get("lost")
    lost_s = "   -      -      -  " if lost is None else " ".join(f"{100 * x:5.2f}" for x in lost)
    return (f"{name:<26} {data:<34} {m['events']:>3} {m['edges_per_event']:>10,.0f} "
            f"{m['true_edges_per_event']:>9,.0f} {pct(m['efficiency'])} % {pct(m['efficiency_pt'])} % "
            f"{pct(m['purity'])} %  {lost_s}  {m['seconds_per_event']:>6.2f}")


HEADER = (f"{'builder':<26} {'events':<34} {'n':>3} {'edges/ev':>10} {'true/ev':>9} "
          f"{'eff(all)':>8} {'eff(pT>.5)':>10} {'purity':>8}  lost(pT>.5) %: pair  dphi  z0  {'s/ev':>6}")


def parse_variant(spec: str) -> tuple[str, dict]:
    name, _, settings = spec.partition("=")
    out = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        if key not in WINDOW_KEYS:
            raise SystemExit(f"--variant {spec!r}: {key!r} is not one of {', '.join(WINDOW_KEYS)} (keys that change "
                             f"the learning: --quantiles, --skip-layers)")
        out[key] = int(value) if key in ("min_count", "neighbours") else float(value)
    return name, out


# ---------------------------------------------------------------------------------------- per-event workers
_W: dict = {}


def _init(map_path: str, settings: list) -> None:
    from trkx_tf.graphs.candidates import ModuleMapBuilder
    from trkx_tf.graphs.module_map import ModuleMap

    mm = ModuleMap.load(map_path)
    _W["builders"] = [ModuleMapBuilder(mm, **s) for s in settings]


def _measure(args) -> list[dict]:
    """Counts of one event for every builder: edges, true, found, true/found above pT 0.5, losses by cause."""
    from trkx_tf.graphs.truth import label_edges, truth_graph
    from trkx_tf.trackml.io import read_event

    folder, event_id = args
    ev = read_event(folder, event_id, parts=("hits", "particles", "truth"))
    tg = truth_graph(ev.hits, ev.particles, ev.truth)
    hi = tg.pt > PT_REPORT
    out = []
    for builder in _W["builders"]:
        t0 = time.perf_counter()
        s, r = builder.build(ev.hits)
        seconds = time.perf_counter() - t0
        labels, _, pt = label_edges(s, r, tg)
        why = builder.explain(ev.hits, tg.senders[hi], tg.receivers[hi])
        out.append({"edges": len(s), "true": tg.n_true, "found": int(labels.sum()), "true_pt": int(hi.sum()),
                    "found_pt": int(np.sum((labels == 1) & (pt > PT_REPORT))), "seconds": seconds,
                    "why": np.bincount(why, minlength=4)})
    return out


def read_samples(folder, ids, workers, skip_layers: int = 0) -> list:
    """The training samples of events ``ids``, read once: every map of the run is fitted from them."""
    from trkx_tf.graphs.event_graphs import edge_sample_task

    tasks = [(str(folder), int(e), skip_layers) for e in ids]
    if workers > 1:
        with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            samples = list(pool.map(edge_sample_task, tasks, chunksize=4))
    else:
        samples = [edge_sample_task(t) for t in tasks]
    return [s for s in samples if s is not None]  # events without truth teach nothing


def measure(folder, ids, map_path, settings, workers) -> list[dict]:
    """builder metrics (one dict per setting) over events ``ids`` of ``folder``."""
    tasks = [(str(folder), int(e)) for e in ids]
    if workers > 1 and len(tasks) > 1:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx, initializer=_init,
                                    initargs=(str(map_path), settings)) as pool:
            per_event = list(pool.map(_measure, tasks))
    else:
        _init(str(map_path), settings)
        per_event = [_measure(t) for t in tasks]
    out = []
    for k in range(len(settings)):
        ev = [p[k] for p in per_event]
        tot = {key: sum(e[key] for e in ev) for key in ("edges", "true", "found", "true_pt", "found_pt", "seconds")}
        why = sum(e["why"] for e in ev)
        n = len(ev)
        out.append({
            "events": n, "edges_per_event": tot["edges"] / n, "true_edges_per_event": tot["true"] / n,
            "efficiency": tot["found"] / tot["true"] if tot["true"] else None,
            "efficiency_pt": tot["found_pt"] / tot["true_pt"] if tot["true_pt"] else None,
            "purity": tot["found"] / tot["edges"] if tot["edges"] else None,
            "seconds_per_event": tot["seconds"] / n,
            "lost": (why[1:] / max(tot["true_pt"], 1)).tolist(),
        })
    return out


def embedding_rows(cfg, ckpt: str, folders: list[tuple[str, Path, list]]) -> list[str]:
    """The embedding builder's rows (graph.embedding radius / max_neighbours) on each (label, folder, ids)."""
    from trkx_tf.graphs.candidates import make_builder
    from trkx_tf.graphs.event_graphs import event_graph
    from trkx_tf.graphs.summary import builder_metrics
    from trkx_tf.reco.build import embedding_function
    from trkx_tf.trackml.io import read_event

    cfg_e = cfg.model_copy(update={"graph": cfg.graph.model_copy(update={"builder": "embedding"})})
    cfg_e = cfg_e.model_copy(update={"graph": cfg_e.graph.model_copy(update={
        "embedding": cfg_e.graph.embedding.model_copy(update={"model": ckpt})})})
    builder = make_builder(cfg_e.graph, embed=embedding_function(cfg_e))
    rows = []
    for label, folder, ids in folders:
        stats = []
        for e in ids:
            ev = read_event(folder, e, parts=("hits", "particles", "truth"))
            stats.append(event_graph(ev, builder, cfg_e.graph, with_cells=False)[1])
        name = f"embedding r={cfg.graph.embedding.radius:g} k={cfg.graph.embedding.max_neighbours}"
        rows.append(row(name, label, builder_metrics(stats)))
    return rows


def main(argv=None) -> int:
    from trkx_tf.placement import prefer_legacy_xla_cpu_runtime

    prefer_legacy_xla_cpu_runtime()  # XLA:CPU's runtime as the commands choose it, before TensorFlow runs
    from trkx_tf.config import load_config
    from trkx_tf.graphs.module_map import ModuleMap
    from trkx_tf.trackml.io import list_events

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="simulated training events (the module map is learned here)")
    ap.add_argument("--eval", required=True, help="held-out simulated events")
    ap.add_argument("--real", default=str(REPO.parent / "shared" / "trackml"), help="folder with real event 1000")
    ap.add_argument("--config", help="YAML config (graph.module_map settings)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--n-train", type=int, default=0, help="learn from the first N training events (0: all)")
    ap.add_argument("--n-eval", type=int, default=0, help="measure on the first N held-out events (0: all)")
    ap.add_argument("--curve", default="", help="also learn from these numbers of training events, e.g. 25,50,100")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=key=value[,key=value]")
    ap.add_argument("--real-variants", action="store_true", help="also measure the variants on event 1000")
    ap.add_argument("--embedding-model", help="a trained embedding checkpoint: add the embedding builder's rows")
    ap.add_argument("--no-map", action="store_true", help="skip the module map (only the embedding's rows)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quantiles", default="", help="also fit the map from all training events with these "
                    "graph.module_map.quantile values, e.g. 0.003,0.01")
    ap.add_argument("--skip-layers", default="", help="also fit the map from all training events with these "
                    "graph.module_map.skip_layers values, e.g. 0,1")
    ap.add_argument("--save-map", help="keep the module map learned with the config's settings here (.npz); "
                    "the maps of --skip-layers K go beside it as <stem>-skipK.npz")
    args = ap.parse_args(argv)

    cfg = load_config(args.config, args.overrides)
    mc = cfg.graph.module_map
    train_ids = list_events(args.train)
    if args.n_train:
        train_ids = train_ids[: args.n_train]
    eval_ids = list_events(args.eval)
    if args.n_eval:
        eval_ids = eval_ids[: args.n_eval]
    if Path(args.train).resolve() == Path(args.eval).resolve() and set(train_ids) & set(eval_ids):
        raise SystemExit("--train and --eval share events")
    real = Path(args.real)
    real_ids = [1000] if (real / "event000001000-hits.csv.gz").exists() else []
    default = {k: getattr(mc, k) for k in WINDOW_KEYS}
    variants = [("default", default)] + [(n, {**default, **s}) for n, s in map(parse_variant, args.variant)]

    print(f"module map settings: pt_min={mc.pt_min} connect_pt_min={mc.connect_pt_min} quantile={mc.quantile} "
          f"skip_layers={mc.skip_layers} " + " ".join(f"{k}={v}" for k, v in default.items()))
    for name, s in variants[1:]:
        print(f"variant {name!r}: " + " ".join(f"{k}={v}" for k, v in s.items()))
    sizes = sorted({int(x) for x in args.curve.split(",") if x.strip()} | {len(train_ids)})
    quantiles = sorted({float(x) for x in args.quantiles.split(",") if x.strip()} | {mc.quantile})
    skips = sorted({int(x) for x in args.skip_layers.split(",") if x.strip()} | {mc.skip_layers})
    if skips[0] < 0:
        raise SystemExit(f"--skip-layers {args.skip_layers}: values must be >= 0")
    if args.no_map:
        sizes, quantiles, skips = [], [], []
    t0 = time.perf_counter()
    samples = read_samples(args.train, train_ids, args.workers, max(skips)) if sizes else []
    if samples:
        print(f"read {len(samples)} simulated training events in {time.perf_counter() - t0:.0f} s", flush=True)
    # (label, training events, quantile, skip_layers, window settings of the variants measured with it)
    sk = mc.skip_layers
    tag = f", skip={sk}" if len(skips) > 1 else ""
    fits = [(f"{n} ev{tag}", n, mc.quantile, sk, variants if n == len(train_ids) else variants[:1]) for n in sizes]
    fits += [(f"{len(train_ids)} ev, q={q:g}{tag}", len(train_ids), q, sk, variants)
             for q in quantiles if q != mc.quantile]
    fits += [(f"{len(train_ids)} ev, skip={k}", len(train_ids), mc.quantile, k, variants)
             for k in skips if k != sk and not args.no_map]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, n, q, k, vs in fits:
            t0 = time.perf_counter()
            mm = ModuleMap.fit(samples[:n], pt_min=mc.pt_min, quantile=q, connect_pt_min=mc.connect_pt_min,
                               skip_layers=k)
            main_map = n == len(train_ids) and q == mc.quantile and k == sk
            path = Path(tmp) / f"map{n}_{q}_{k}.npz"
            if args.save_map and main_map:
                path = Path(args.save_map)
            elif args.save_map and n == len(train_ids) and q == mc.quantile:  # e.g. map300.npz -> map300-skip1.npz
                path = Path(args.save_map).with_name(f"{Path(args.save_map).stem}-skip{k}.npz")
            mm.save(path)
            print(f"map from {label}: {mm.n_pairs:,} module pairs in {time.perf_counter() - t0:.0f} s", flush=True)
            names = [v for v, _ in vs]
            for name, m in zip(names, measure(args.eval, eval_ids, path, [s for _, s in vs], args.workers)):
                rows.append(row(f"module_map {name}", f"sim held-out (map {label})", m))
                print(rows[-1], flush=True)
            if real_ids and (main_map or args.real_variants):
                k = len(vs) if args.real_variants else 1
                for name, m in zip(names, measure(real, real_ids, path, [s for _, s in vs][:k], 1)):
                    rows.append(row(f"module_map {name}", f"REAL 1000 (map {label})", m))
                    print(rows[-1], flush=True)
    if not real_ids and not args.no_map:
        rows.append(f"(real event 1000 not found in {real}: skipped)")
    if args.embedding_model:
        folders = [("sim mu=200 held-out", Path(args.eval), eval_ids)]
        if real_ids:
            folders.append(("REAL event 1000", real, real_ids))
        rows += embedding_rows(cfg, args.embedding_model, folders)
    print()
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
