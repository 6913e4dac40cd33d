"""Writing a released model (``trkx-release``): the weights of checkpoints, the module map, the config inference
runs with, and the model card, checked and replaced whole. The format, and reading a release, is
:mod:`trkx_tf.release`. Importing this module changes nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from trkx_tf.errors import CheckpointError, ConfigError, OutputError
from trkx_tf.release import (CARD_FILE, CONFIG_FILE, FORMAT, MODULE_MAP_FILE, NAME_PATTERN, RELEASE_FILE,
                             list_releases, load_weights, model_weights, sha256_file)

#: the largest release (all files) :func:`export_release` writes: 20 MB
MAX_RELEASE_BYTES = 20 * 1000 * 1000
TEST_EVENT_STATEMENT = ("Event 1000 (event000001000 of the TrackML training sample) is the test event: it was never "
                        "used to train, tune or select anything; its numbers are measured once, for reporting only.")


def _git_commit(repo: Path) -> Optional[str]:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def headline_metrics(metrics: Mapping) -> dict:
    """The numbers a card quotes from ``trkx-eval``'s metrics.json: technical and physics efficiency and track
    purity per selection (``all``, ``pt>0.5`` ...), the TrackML score, the events evaluated."""
    out = {"events": metrics.get("events")}
    tracks = metrics.get("tracks", {})
    for sel, rec in tracks.items():
        if isinstance(rec, dict):
            out[sel] = {k: rec.get(k) for k in ("technical_efficiency", "physics_efficiency", "purity") if k in rec}
    score = metrics.get("score", {})
    out["score"] = score.get("all") if isinstance(score, dict) else score
    sel = "pt>0.5" if "pt>0.5" in out else next((k for k in out if isinstance(out[k], dict)), None)
    if sel is not None:
        out["technical_efficiency"] = out[sel].get("technical_efficiency")
        out["selection"] = sel
    return out


def export_release(
    cfg,
    out_dir: os.PathLike | str,
    name: str,
    *,
    gnn_ckpt: os.PathLike | str,
    module_map: os.PathLike | str,
    filter_ckpt: Optional[os.PathLike | str] = None,
    description: str = "",
    training: Optional[Mapping] = None,
    metrics: Optional[Mapping[str, Mapping]] = None,
    max_bytes: int = MAX_RELEASE_BYTES,
) -> Path:
    """Writes the release ``<out_dir>/<name>`` from checkpoints (format: the module docstring).

    Args:
      cfg: the config the models were trained and are run with (its ``model``, ``graph`` and ``infer`` sections; the
        thresholds and labelling become the release's). Checkpoint paths of ``infer`` are cleared in the saved copy.
      out_dir: the releases folder (e.g. ``models``).
      name: the release's name (letters, digits, ``_.-``).
      gnn_ckpt, filter_ckpt: checkpoint prefixes or folders (no filter: ``filter_ckpt=None``).
      module_map: the module map the models were trained with.
      description: one line for ``trkx-info``.
      training: ``{"data", "config", "commands", "commit"}`` (commit: the repository's HEAD when None).
      metrics: evaluated set -> ``trkx-eval`` metrics.json content (quoted through :func:`headline_metrics`).
      max_bytes: the largest release written.

    Returns:
      The release folder (replaced whole if it existed: written beside it, then renamed).

    Raises:
      ConfigError: a bad name, or another builder than the module map's.
      CheckpointError: a checkpoint missing or not fitting the configured model.
      DataError: the module map cannot be read.
      OutputError: the release would be larger than ``max_bytes``.
    """
    from trkx_tf.config import config_to_dict
    from trkx_tf.graphs.features import feature_names
    from trkx_tf.graphs.module_map import ModuleMap
    from trkx_tf.train.checkpoints import load_edge_model, resolve_checkpoint

    if not NAME_PATTERN.match(name):
        raise ConfigError(f"release name {name!r}: use letters, digits, '_', '.' and '-'")
    if cfg.graph.builder != "module_map":
        raise ConfigError("trkx-release: only module-map releases are supported (graph.builder=module_map)")
    names = _checkpoint_features(cfg, gnn_ckpt)
    n_features = len(names)
    mm = ModuleMap.load(module_map)
    ckpts = {"gnn": gnn_ckpt, **({"filter": filter_ckpt} if filter_ckpt else {})}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        models = {}
        for kind, ckpt in ckpts.items():
            model, prefix = load_edge_model(kind, cfg.model, ckpt, n_features)
            weights = model_weights(model)
            path = work / f"{kind}.npz"
            np.savez_compressed(path, **weights)
            _check_roundtrip(cfg, kind, model, path, n_features)
            models[kind] = {"file": path.name, "variables": len(weights),
                            "parameters": int(sum(w.size for w in weights.values())), "sha256": sha256_file(path),
                            "checkpoint": str(resolve_checkpoint(prefix))}
        mm_path = work / MODULE_MAP_FILE
        with np.load(module_map, allow_pickle=False) as data:
            np.savez_compressed(mm_path, **{k: data[k] for k in data.files})
        ModuleMap.load(mm_path)  # readable as saved
        data = config_to_dict(cfg)
        data["infer"].update(filter_ckpt=None, gnn_ckpt=None, module_map=None, seed_ckpt=None)
        data["graph"]["module_map"]["path"] = None
        data["graph"]["use_cells"] = list(names) != list(feature_names(False))
        import yaml

        (work / CONFIG_FILE).write_text(
            f"# the config of the released models {name} (trkx-infer --model {name} reads it); see {RELEASE_FILE}\n"
            + yaml.safe_dump(data, sort_keys=False))
        training = dict(training or {})
        if training.get("commit") is None:
            training["commit"] = _git_commit(Path(__file__).resolve().parents[1])
        card = {
            "name": name, "format": FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "description": description,
            "models": models,
            "module_map": {"file": MODULE_MAP_FILE, "pairs": int(mm.n_pairs), "events": int(mm.n_events),
                           "sha256": sha256_file(mm_path)},
            "features": {"names": list(names), "n_features": n_features, "r_scale": cfg.graph.r_scale,
                         "z_scale": cfg.graph.z_scale},
            "inference": {k: data["infer"][k] for k in ("filter_threshold", "gnn_threshold", "labelling")},
            "model_config": data["model"],
            "training": training,
            "metrics": {k: headline_metrics(v) for k, v in (metrics or {}).items()},
            "test_event": TEST_EVENT_STATEMENT,
        }
        shared = _same_module_map(out_dir, name, card["module_map"]["sha256"])
        if shared:  # byte-identical to a sibling release's map: stored once, referenced here
            mm_path.unlink()
            card["module_map"]["release"] = shared
        card["size_bytes"] = 0
        (work / CARD_FILE).write_text(format_card(card))
        card["size_bytes"] = sum(p.stat().st_size for p in work.iterdir()) + 4096  # + the card itself, about
        if card["size_bytes"] > max_bytes:
            raise OutputError(f"release {name}: {card['size_bytes'] / 1e6:.1f} MB, over the limit of "
                              f"{max_bytes / 1e6:.0f} MB (smaller models, or a smaller module map)")
        (work / CARD_FILE).write_text(format_card(card))
        (work / RELEASE_FILE).write_text(json.dumps(card, indent=1) + "\n")
        os.chmod(work, 0o755)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=out_dir))
            os.replace(final, old / name)
            os.replace(work, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _same_module_map(out_dir: Path, name: str, sha256: str) -> Optional[str]:
    """The release in ``out_dir`` (not ``name``) that holds a module map file with this checksum, if any."""
    for card in list_releases(out_dir):
        entry = card.get("module_map", {})
        if card.get("name") != name and not entry.get("release") and entry.get("sha256") == sha256 \
                and (out_dir / card["name"] / entry.get("file", "")).is_file():
            return card["name"]
    return None


def _checkpoint_features(cfg, gnn_ckpt) -> list[str]:
    """The node features the GNN checkpoint was trained with: without the cell features when ``graph.use_cells`` is
    false, else with or without them, whichever the checkpoint fits."""
    from trkx_tf.graphs.features import feature_names
    from trkx_tf.train.checkpoints import load_edge_model

    choices = [True, False] if cfg.graph.use_cells else [False]  # True: cells where the events have them
    for k, with_cells in enumerate(choices):
        try:
            load_edge_model("gnn", cfg.model, gnn_ckpt, len(feature_names(with_cells)))
            return list(feature_names(with_cells))
        except CheckpointError:
            if k == len(choices) - 1:
                raise
    raise AssertionError("unreachable")


def _check_roundtrip(cfg, kind: str, model, path: Path, n_features: int) -> None:
    """The released weights, loaded into a fresh model, score a small random graph exactly as the checkpoint's."""
    from trkx_tf.files import load_npz
    from trkx_tf.reco.scorers import scorer_for_model
    from trkx_tf.train.checkpoints import build_edge_model

    fresh = build_edge_model(kind, cfg.model, n_features)
    load_weights(fresh, load_npz(path, f"{kind} weights"), str(path))
    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(12, n_features)).astype(np.float32)
    s, r = rng.integers(0, 12, 40).astype(np.int32), rng.integers(0, 12, 40).astype(np.int32)
    a = scorer_for_model(cfg, kind, model, n_features)(nodes, s, r)
    b = scorer_for_model(cfg, kind, fresh, n_features)(nodes, s, r)
    if not np.array_equal(a, b):
        raise RuntimeError(f"{kind}: released weights score differently from the checkpoint (a bug)")


def format_card(card: Mapping) -> str:
    """``MODEL_CARD.md``: the card for people."""
    t = card.get("training", {})
    lines = [f"# Released model `{card['name']}`", "", card.get("description", ""), "",
             f"Run it: `trkx-infer --model {card['name']} --input EVENTS --out DIR` (no training needed; "
             f"`trkx-info` lists the releases).", "",
             "## Test event", "", card["test_event"], "", "## Models", ""]
    for kind, m in card.get("models", {}).items():
        lines.append(f"- `{m['file']}`: {kind}, {m['parameters']:,} parameters in {m['variables']} arrays "
                     f"(float32, weights only)")
    mm = card.get("module_map", {})
    where = f"`../{mm['release']}/{mm.get('file')}` (shared with the release {mm['release']})" if mm.get("release") \
        else f"`{mm.get('file')}`"
    lines.append(f"- {where}: module map, {mm.get('pairs', 0):,} module pairs learned from "
                 f"{mm.get('events')} training events")
    lines += ["", f"Node features: {', '.join(card['features']['names'])} (r/{card['features']['r_scale']:g}, "
              f"z/{card['features']['z_scale']:g}). Inference: filter threshold "
              f"{card['inference']['filter_threshold']}, GNN threshold {card['inference']['gnn_threshold']}, "
              f"labelling {card['inference']['labelling']}. Model shapes: `config.yaml` (model section).", "",
              "## Training", "", f"- data: {t.get('data', 'not recorded')}",
              f"- config: {t.get('config', 'not recorded')}", f"- commit: {t.get('commit', 'not recorded')}"]
    if t.get("note"):
        lines.append(f"- note: {t['note']}")
    if t.get("stage_seconds"):
        total = sum(t["stage_seconds"].values())
        lines.append(f"- wall time per pipeline stage (last run; {total / 60:.0f} min in all): "
                     + ", ".join(f"{k} {v:,.0f} s" for k, v in t["stage_seconds"].items()))
    if t.get("commands"):
        lines += ["- commands:", "", "```", *t["commands"], "```"]
    lines += ["", "## Metrics", ""]
    if not card.get("metrics"):
        lines.append("None recorded.")
    for key, m in card.get("metrics", {}).items():
        sel = m.get("selection", "pt>0.5")
        rec = m.get(sel, {}) if isinstance(m.get(sel), dict) else {}
        parts = [f"{k.replace('_', ' ')} {100 * v:.2f} %" for k, v in rec.items() if v is not None]
        score = f", TrackML score {m['score']:.4f}" if m.get("score") is not None else ""
        lines.append(f"- {key} (events {m.get('events')}), {sel}: {', '.join(parts)}{score}")
    lines.append("")
    return "\n".join(lines)
