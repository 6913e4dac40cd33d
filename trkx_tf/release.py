"""Released models: trained weights checked into the repository, small and documented, loaded by name.

A release is a folder ``models/<name>/`` (the top-level ``models/`` of the repository, :data:`RELEASES_DIR`)::

    release.json    the model card, machine-readable (format below)
    MODEL_CARD.md   the same card for people (written from release.json)
    config.yaml     the resolved config inference runs with: the models' shapes, the graph's features and scales,
                    the candidate-edge builder, the chosen thresholds and labelling (``trkx-infer --model NAME``
                    reads it instead of ``--config``; ``--set`` overrides still apply on top)
    filter.npz      the edge filter's weights (absent for a release without a filter)
    gnn.npz         the GNN's weights
    module_map.npz  the module map of the candidate-edge builder (absent when the map is byte-identical to a sibling
                    release's: the card's ``module_map.release`` names that release, whose file is used and
                    checksum-checked; a fine-tuned release shares its base's map this way)

Weights only: each ``<kind>.npz`` is ``np.savez_compressed`` of one float32 array per model variable, keyed by the
variable's attribute path in the Sonnet module (``_mlp/_layers/0/w``, what :func:`model_weights` returns); no
optimizer state, no step counters, no pickles, no TensorFlow graph. :func:`load_weights` builds the configured model
(:func:`trkx_tf.train.checkpoints.build_edge_model`) and assigns every array, refusing a missing, extra or
misshapen one. The module map is :meth:`trkx_tf.graphs.module_map.ModuleMap.save`'s arrays, compressed.

``release.json`` (``format`` 1): ``name``, ``format``, ``created`` (UTC), ``description``, ``models`` (kind ->
{file, variables, parameters, sha256}), ``module_map`` ({file, pairs, events, sha256; ``release`` when shared}),
``features`` (names, F), ``training`` (``data``: what the models were trained on; ``config``: the training config
file; ``commands``: the commands that made them; ``commit``: the repository's commit; ``stage_seconds``: each
pipeline stage's wall time, when made by ``trkx-pipeline``), ``metrics`` (evaluated set -> ``trkx-eval``'s headline
numbers; ``event1000`` when measured), ``test_event`` (the statement that event 1000 of
the TrackML training sample is test-only: never trained, tuned or selected on), ``size_bytes``.

:func:`export_release` writes a release from checkpoints (``trkx-release``), checks that the released weights score
a graph exactly as the checkpoints do, and refuses one over :data:`MAX_RELEASE_BYTES`. Importing this module
changes nothing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from trkx_tf.errors import CheckpointError, ConfigError, DataError, OutputError

#: the repository's released models (``trkx-infer --model NAME`` looks here first)
RELEASES_DIR = Path(__file__).resolve().parents[1] / "models"
RELEASE_FILE = "release.json"
CARD_FILE = "MODEL_CARD.md"
CONFIG_FILE = "config.yaml"
MODULE_MAP_FILE = "module_map.npz"
FORMAT = 1
#: the largest release (all files) :func:`export_release` writes: 20 MB
MAX_RELEASE_BYTES = 20 * 1000 * 1000
KINDS = ("filter", "gnn")
TEST_EVENT_STATEMENT = ("Event 1000 (event000001000 of the TrackML training sample) is the test event: it was never "
                        "used to train, tune or select anything; its numbers are measured once, for reporting only.")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_weights(model) -> dict[str, np.ndarray]:
    """Every variable of a built Sonnet module, keyed by its attribute path.

    Args:
      model: a built module (variables created).

    Returns:
      ``{"_mlp/_layers/0/w": array, ...}`` (float32 copies), in the module's order.
    """
    import tensorflow as tf

    out = {}
    for path, var in model._flatten(predicate=lambda v: isinstance(v, tf.Variable), with_path=True):
        out["/".join(str(p) for p in path)] = np.asarray(var.numpy(), np.float32)
    return out


def load_weights(model, arrays: Mapping[str, np.ndarray], what: str) -> None:
    """Assigns released weights to a built module, every variable exactly once.

    Args:
      model: the built module (:func:`~trkx_tf.train.checkpoints.build_edge_model`).
      arrays: attribute path -> array (:func:`model_weights`' keys).
      what: how errors name the weights (their file).

    Raises:
      CheckpointError: a variable without an array, an array without a variable, or another shape.
    """
    import tensorflow as tf

    variables = {"/".join(str(p) for p in path): var
                 for path, var in model._flatten(predicate=lambda v: isinstance(v, tf.Variable), with_path=True)}
    missing = sorted(set(variables) - set(arrays))
    extra = sorted(set(arrays) - set(variables))
    if missing or extra:
        raise CheckpointError(f"{what}: the weights do not fit the configured {type(model).__name__} ("
                              + (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}")
                              + f"; {len(missing)} missing, {len(extra)} unexpected): check the release's config.yaml")
    for name, var in variables.items():
        value = np.asarray(arrays[name])
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"{what}: {name} has shape {tuple(value.shape)}, the configured "
                                  f"{type(model).__name__} needs {tuple(var.shape)}")
        var.assign(value.astype(var.dtype.as_numpy_dtype))


def initial_weights(model, path: os.PathLike | str) -> str:
    """Sets a built model's starting weights for fine-tuning (``train.init_checkpoint``).

    Args:
      model: the built module (its variables created).
      path: a release folder (the one ``<kind>.npz`` of it whose variables are exactly the model's, checksum
        checked) or a checkpoint prefix or folder (:func:`~trkx_tf.train.checkpoints.restore_model`).

    Returns:
      What the weights came from: the release's weights file, or the checkpoint prefix.

    Raises:
      DataError: an unreadable or damaged release file.
      CheckpointError: no weights of the release fit the model, or the checkpoint does not fit it.
    """
    from trkx_tf.files import load_npz
    from trkx_tf.train.checkpoints import restore_model

    release = Path(path)
    if not (release / RELEASE_FILE).is_file():
        return restore_model(model, path)
    card = read_card(release)
    _check_files(release, card)
    names = set(model_weights(model))
    for kind, entry in card.get("models", {}).items():
        file = release / entry["file"]
        arrays = load_npz(file, f"{kind} weights")
        if set(arrays) == names:
            load_weights(model, arrays, str(file))
            return str(file)
    raise CheckpointError(f"{release}: none of the release's weights ({', '.join(card.get('models', {})) or 'none'}) "
                          f"has the variables of the configured {type(model).__name__} (check the model section "
                          f"against the release's config.yaml)")


def resolve_release(name: str, folder: Optional[os.PathLike | str] = None) -> Path:
    """The folder of a release: a folder path given as such, else ``<folder>/<name>`` (default :data:`RELEASES_DIR`).

    Raises:
      ConfigError: no such release (the message lists the released ones).
    """
    given = Path(name)
    if (given / RELEASE_FILE).is_file():
        return given
    root = Path(folder) if folder is not None else RELEASES_DIR
    if _NAME.match(name) and (root / name / RELEASE_FILE).is_file():
        return root / name
    known = [r["name"] for r in list_releases(root)]
    raise ConfigError(f"no released model {name!r} (released in {root}: {', '.join(known) or 'none'}; or give the "
                      f"folder of a release)")


def read_card(release: os.PathLike | str) -> dict:
    """A release's ``release.json``.

    Raises:
      DataError: unreadable, or another format.
    """
    path = Path(release) / RELEASE_FILE
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable release card ({exc})") from None
    if card.get("format") != FORMAT:
        raise DataError(f"{path}: release format {card.get('format')!r}, this trkx-tf reads format {FORMAT}")
    return card


def list_releases(folder: Optional[os.PathLike | str] = None) -> list[dict]:
    """The releases of a folder (default :data:`RELEASES_DIR`), sorted by name: their cards (unreadable ones
    are listed with an ``error``)."""
    root = Path(folder) if folder is not None else RELEASES_DIR
    out = []
    for sub in sorted(root.glob(f"*/{RELEASE_FILE}")):
        try:
            out.append(read_card(sub.parent))
        except DataError as exc:
            out.append({"name": sub.parent.name, "error": str(exc)})
    return out


def format_releases(cards: Sequence[dict]) -> str:
    """Lines for ``trkx-info``: one per release, with its headline metrics."""
    if not cards:
        return "Released models  none"
    lines = ["Released models  (trkx-infer --model NAME --input EVENTS --out DIR)"]
    for c in cards:
        if "error" in c:
            lines.append(f"  {c['name']:<16} unreadable: {c['error']}")
            continue
        kinds = "+".join(k for k in KINDS if k in c.get("models", {}))
        m = c.get("metrics", {})
        shown = []
        for key, rec in m.items():
            eff = rec.get("technical_efficiency")
            if eff is not None:
                shown.append(f"{key}: tech. eff. {100 * eff:.1f} %" + (f", score {rec['score']:.3f}"
                                                                       if rec.get("score") is not None else ""))
        lines.append(f"  {c['name']:<16} {kinds}, {c.get('size_bytes', 0) / 1e6:.1f} MB, "
                     f"{c.get('description', '')}" + (f" [{'; '.join(shown)}]" if shown else ""))
    return "\n".join(lines)


def release_config(release: os.PathLike | str, overrides: Sequence[str] = ()):
    """The config a release's models run with (its ``config.yaml``), with ``overrides`` on top.

    Raises:
      ConfigError: a bad override.
    """
    from trkx_tf.config import load_config

    return load_config(Path(release) / CONFIG_FILE, overrides)


def release_pipeline(cfg, release: os.PathLike | str):
    """The inference pipeline of a release: its module map, its weights, ``cfg``'s thresholds and labelling.

    Args:
      cfg: the config (:func:`release_config`; ``model`` must be the release's).
      release: the release folder (:func:`resolve_release`).

    Returns:
      A :class:`~trkx_tf.reco.pipeline.Pipeline`, its models traced once.

    Raises:
      DataError: an unreadable file of the release, or a checksum that does not match its card.
      CheckpointError: weights that do not fit the configured models.
    """
    from trkx_tf.graphs.candidates import make_builder
    from trkx_tf.graphs.features import feature_names
    from trkx_tf.graphs.module_map import ModuleMap
    from trkx_tf.reco.numpy_engine import numpy_scorer, uses_numpy_engine
    from trkx_tf.reco.pipeline import Pipeline, warm_up
    from trkx_tf.reco.scorers import scorer_for_model
    from trkx_tf.train.checkpoints import build_edge_model
    from trkx_tf.files import load_npz

    release = Path(release)
    card = read_card(release)
    _check_files(release, card)
    if cfg.graph.builder != "module_map":
        raise ConfigError("a release runs with the module-map builder (graph.builder=module_map)")
    n_features = int(card["features"]["n_features"])
    with_cells = card["features"]["names"] != list(feature_names(False))
    numpy_engine = uses_numpy_engine(cfg)
    scorers = {}
    for kind in KINDS:
        if kind not in card["models"]:
            continue
        file = release / card["models"][kind]["file"]
        arrays = load_npz(file, f"{kind} weights")
        if numpy_engine:  # no TensorFlow in this process
            scorers[kind] = numpy_scorer(cfg, kind, arrays, n_features)
            continue
        model = build_edge_model(kind, cfg.model, n_features, cfg.infer.compute_dtype)
        load_weights(model, arrays, str(file))
        scorers[kind] = scorer_for_model(cfg, kind, model, n_features)
    if "gnn" not in scorers:
        raise DataError(f"{release}: the release has no GNN weights")
    builder = make_builder(cfg.graph, module_map=ModuleMap.load(module_map_file(release, card)))
    icfg = cfg.infer
    pipeline = Pipeline(builder, scorers["gnn"], scorers.get("filter"), filter_threshold=icfg.filter_threshold,
                        gnn_threshold=icfg.gnn_threshold, labelling=icfg.labelling, with_cells=with_cells,
                        r_scale=cfg.graph.r_scale, z_scale=cfg.graph.z_scale,
                        engine="numpy" if numpy_engine else "tensorflow")
    warm_up(pipeline, n_features)
    return pipeline


def module_map_file(release: os.PathLike | str, card: Mapping) -> Path:
    """The module map of a release: its own ``module_map.npz``, or the one of the release it shares it with
    (``module_map.release``, a sibling folder)."""
    entry = card.get("module_map", {})
    owner = Path(release).parent / entry["release"] if entry.get("release") else Path(release)
    return owner / entry.get("file", "")


def _check_files(release: Path, card: dict) -> None:
    paths = [(release / entry.get("file", ""), entry) for entry in card.get("models", {}).values()]
    paths.append((module_map_file(release, card), card.get("module_map", {})))
    for path, entry in paths:
        if not path.is_file():
            raise DataError(f"{path}: a file of the release is missing")
        if entry.get("sha256") and _sha256(path) != entry["sha256"]:
            raise DataError(f"{path}: checksum does not match {release / RELEASE_FILE} (a damaged or edited file)")


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

    if not _NAME.match(name):
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
                            "parameters": int(sum(w.size for w in weights.values())), "sha256": _sha256(path),
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
                           "sha256": _sha256(mm_path)},
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
