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

:func:`~trkx_tf.release_writer.export_release` writes a release from checkpoints (``trkx-release``), checks that the released weights score
a graph exactly as the checkpoints do, and refuses one over
:data:`~trkx_tf.release_writer.MAX_RELEASE_BYTES`; it lives in :mod:`trkx_tf.release_writer`, this module reads
releases. Importing either module changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from trkx_tf.errors import CheckpointError, ConfigError, DataError

#: the repository's released models (``trkx-infer --model NAME`` looks here first)
RELEASES_DIR = Path(__file__).resolve().parents[1] / "models"
RELEASE_FILE = "release.json"
CARD_FILE = "MODEL_CARD.md"
CONFIG_FILE = "config.yaml"
MODULE_MAP_FILE = "module_map.npz"
FORMAT = 1
KINDS = ("filter", "gnn")
#: a release name: letters, digits, ``_.-``
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def sha256_file(path: Path) -> str:
    """The hex sha256 of a release's file (the card's ``sha256`` entries)."""
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
    if NAME_PATTERN.match(name) and (root / name / RELEASE_FILE).is_file():
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
        if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
            raise DataError(f"{path}: checksum does not match {release / RELEASE_FILE} (a damaged or edited file)")
