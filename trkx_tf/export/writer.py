"""``trkx-export``'s library side: trained edge classifiers written as a SavedModel and as ONNX, with a manifest.

:func:`export_models` takes the config and a checkpoint per model kind (``filter``, ``gnn``), exactly what
``trkx-infer`` restores (:func:`trkx_tf.train.checkpoints.load_edge_model`), and writes into the output folder::

    export.json                  the manifest: per model its inputs (names, dtypes, shapes), the node and edge
                                 feature names and scales, the thresholds of the config, versions, source
    filter/saved_model/          TensorFlow SavedModel, signature "serving_default" (trkx_tf/export/serving.py)
    filter/model.onnx            the same graph as ONNX (opset 17, trkx_tf/export/onnx_graph.py)
    gnn/saved_model/, gnn/model.onnx

:func:`export_trained` is the same from models already built (:class:`TrainedModel`): the entry for weights that
come from elsewhere than a checkpoint (a released model restored by name).

Each model folder is written beside its final place and renamed onto it, so a reader never sees half an export;
the folder is locked while ``trkx-export`` writes (one writer at a time). The models are traced in float32 with
the XLA kernels (:func:`trkx_tf.export.serving.xla_kernels`), whatever ``infer.compute_dtype`` says.

Before anything is written, each ONNX graph is run by ONNX Runtime on a small graph and compared with the
TensorFlow function that the SavedModel holds; a difference above :data:`ROUNDTRIP_TOLERANCE` is a bug
(RuntimeError). Shape vocabulary: :mod:`trkx_tf.graphs.batch`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from trkx_tf.errors import CheckpointError, ConfigError
from trkx_tf.export.onnx_graph import OPSET, to_onnx
from trkx_tf.export.serving import OUTPUT, SIGNATURE_KEY, input_names, native_op_types, serving_module, xla_kernels
from trkx_tf.files import OutputLock, check_output_folder, write_bytes_atomic, write_text_atomic
from trkx_tf.graphs.features import EDGE_FEATURES, edge_features, feature_names

log = logging.getLogger("trkx_tf.export")

KINDS = ("filter", "gnn")
MANIFEST = "export.json"
SAVED_MODEL = "saved_model"
ONNX_FILE = "model.onnx"
#: The largest |ONNX Runtime - TensorFlow| score difference the export's own round-trip check accepts.
ROUNDTRIP_TOLERANCE = 1e-4


@dataclasses.dataclass
class ExportedModel:
    """One exported model.

    Attributes:
      kind: ``"filter"`` or ``"gnn"``.
      source: where its weights came from (the checkpoint prefix it was restored from).
      features: the names of its F node features (:func:`~trkx_tf.graphs.features.feature_names`).
      uses_edges: whether it takes the ``edges`` input.
      saved_model: the SavedModel folder.
      onnx: the ONNX file.
      onnx_ops: the ONNX operators of its graph, sorted.
      roundtrip_diff: the largest |ONNX Runtime - TensorFlow| score of the export's round-trip check.
    """

    kind: str
    source: str
    features: tuple[str, ...]
    uses_edges: bool
    saved_model: Path
    onnx: Path
    onnx_ops: tuple[str, ...]
    roundtrip_diff: float

    def inputs(self) -> list[dict]:
        """The serving inputs as the manifest records them (name, dtype, shape in the shape vocabulary)."""
        shapes = {"nodes": ["n_node", len(self.features)], "edges": ["n_edge", len(EDGE_FEATURES)],
                  "senders": ["n_edge"], "receivers": ["n_edge"]}
        dtypes = {"nodes": "float32", "edges": "float32", "senders": "int32", "receivers": "int32"}
        return [{"name": n, "dtype": dtypes[n], "shape": shapes[n]} for n in input_names(self.uses_edges)]

    def format(self) -> str:
        """One line for the console."""
        ins = ", ".join(f"{i['name']} [{', '.join(map(str, i['shape']))}] {i['dtype']}" for i in self.inputs())
        return (f"{self.kind}: {self.saved_model} + {self.onnx} ({ins} -> {OUTPUT} [n_edge] float32; "
                f"ONNX Runtime vs TensorFlow max |diff| {self.roundtrip_diff:.1e})")


@dataclasses.dataclass
class TrainedModel:
    """A built edge classifier to export.

    Attributes:
      kind: ``"filter"`` or ``"gnn"``.
      model: the built module, weights in place, of the shape ``cfg.model`` says.
      source: where its weights came from (for the manifest).
      features: the names of its F node features (:func:`~trkx_tf.graphs.features.feature_names`).
    """

    kind: str
    model: object
    source: str
    features: tuple[str, ...]


def _restore(cfg, kind: str, checkpoint: str) -> TrainedModel:
    """The model of ``kind`` restored from ``checkpoint``, float32.

    F is one of the toolkit's two node-feature sets (with or without cells, :func:`feature_names`): the one the
    checkpoint fits, the config's ``graph.use_cells`` tried first.

    Raises:
      CheckpointError: no checkpoint there, or it fits the configured model with neither feature set.
    """
    from trkx_tf.train.checkpoints import load_edge_model, resolve_checkpoint

    resolve_checkpoint(checkpoint)  # a missing checkpoint fails once, before any model is built
    candidates = [feature_names(True), feature_names(False)] if cfg.graph.use_cells else [feature_names(False)]
    first_error: Optional[CheckpointError] = None
    for names in candidates:
        try:
            model, prefix = load_edge_model(kind, cfg.model, checkpoint, len(names), "float32")
            return TrainedModel(kind, model, prefix, names)
        except CheckpointError as exc:
            first_error = first_error or exc
    raise first_error


def restore_checkpoints(cfg, checkpoints: Mapping[str, Optional[str]]) -> list[TrainedModel]:
    """The models of the given checkpoints, restored as ``trkx-infer`` restores them (in float32).

    Args:
      cfg: the whole config (``model``, ``graph``).
      checkpoints: kind (``"filter"``, ``"gnn"``) -> checkpoint prefix or folder; None entries are skipped.

    Returns:
      A :class:`TrainedModel` per kind given, in the order filter, gnn.

    Raises:
      ConfigError: no checkpoint given, or an unknown kind.
      CheckpointError: a checkpoint is missing or does not fit the configured model.
    """
    wanted = {k: str(v) for k, v in checkpoints.items() if v}
    unknown = sorted(set(wanted) - set(KINDS))
    if unknown:
        raise ConfigError(f"cannot export {', '.join(unknown)}: the exported models are {', '.join(KINDS)}")
    if not wanted:
        raise ConfigError("nothing to export: give a filter and/or a GNN checkpoint (--filter-ckpt, --gnn-ckpt, "
                          "or infer.filter_ckpt / infer.gnn_ckpt)")
    with xla_kernels():  # the restore's warm-up call runs the XLA kernels too (no native library is loaded)
        return [_restore(cfg, kind, wanted[kind]) for kind in KINDS if kind in wanted]


def _probe_graph(n_features: int, seed: int = 0) -> dict:
    """A small random graph with plausible hit features (r, φ, z scaled as in training) for the round-trip check."""
    rng = np.random.default_rng(seed)
    n_node, n_edge = 24, 60
    nodes = np.zeros((n_node, n_features), np.float32)
    nodes[:, 0] = rng.uniform(0.03, 1.0, n_node)
    nodes[:, 1] = rng.uniform(-1.0, 1.0, n_node)
    nodes[:, 2] = rng.uniform(-3.0, 3.0, n_node)
    nodes[:, 3:] = rng.uniform(0.0, 3.0, (n_node, n_features - 3))
    senders = rng.integers(0, n_node, n_edge).astype(np.int32)
    receivers = rng.integers(0, n_node, n_edge).astype(np.int32)
    return {"nodes": nodes, "senders": senders, "receivers": receivers,
            "edges": edge_features(nodes, senders, receivers)}


def _roundtrip(onnx_bytes: bytes, concrete, names, n_features: int) -> float:
    """max |ONNX Runtime - TensorFlow| over the scores of :func:`_probe_graph`."""
    import onnxruntime as ort

    probe = _probe_graph(n_features)
    feeds = {n: probe[n] for n in names}
    expected = concrete(*[feeds[n] for n in names])[OUTPUT].numpy()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], feeds)[0]
    return float(np.max(np.abs(got - expected)))


def saved_graph_def(folder: Path):
    """The GraphDef (function library included) of a SavedModel's first meta graph."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((folder / "saved_model.pb").read_bytes())
    return saved.meta_graphs[0].graph_def


def _export_one(cfg, trained: TrainedModel, staging: Path) -> ExportedModel:
    import tensorflow as tf

    kind, model, names = trained.kind, trained.model, trained.features
    uses_edges = bool(getattr(cfg.model, kind).edge_features)
    inputs = input_names(uses_edges)
    # everything that traces (the serving function, the SavedModel's own retracing of it) happens with the XLA
    # kernels; gradients are not saved (serving needs none)
    with xla_kernels():
        module = serving_module(model, len(names), uses_edges)
        concrete = module.serve.get_concrete_function()
        tf.saved_model.save(module, str(staging / SAVED_MODEL), signatures={SIGNATURE_KEY: concrete},
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    native = native_op_types(saved_graph_def(staging / SAVED_MODEL))
    if native:
        raise RuntimeError(f"{kind}: the SavedModel holds native ops {native} (traced outside xla_kernels?)")
    onnx_model = to_onnx(concrete, inputs, OUTPUT, f"the {kind} ({type(model).__name__})")
    onnx_bytes = onnx_model.SerializeToString()
    diff = _roundtrip(onnx_bytes, concrete, inputs, len(names))
    if not diff <= ROUNDTRIP_TOLERANCE:
        raise RuntimeError(f"{kind}: ONNX Runtime and TensorFlow differ by {diff:.3g} on the round-trip check")
    write_bytes_atomic(staging / ONNX_FILE, onnx_bytes)
    return ExportedModel(kind, trained.source, names, uses_edges, staging / SAVED_MODEL, staging / ONNX_FILE,
                         tuple(sorted({n.op_type for n in onnx_model.graph.node})), diff)


def _replace_folder(staging: Path, final: Path) -> None:
    """Moves ``staging`` onto ``final`` (an old ``final`` is moved aside first, then removed)."""
    old = None
    if final.exists() or final.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old", dir=final.parent))
        os.replace(final, old / final.name)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def manifest(cfg, models: list[ExportedModel]) -> dict:
    """The ``export.json`` record of exported models (see the module docstring)."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    return {
        "format": 1,
        "signature": SIGNATURE_KEY,
        "onnx_opset": OPSET,
        "versions": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__},
        "node_features": {"r_scale_mm": cfg.graph.r_scale, "z_scale_mm": cfg.graph.z_scale,
                          "definitions": "trkx_tf/graphs/features.py (hit_features); docs/export.md"},
        "edge_features": list(EDGE_FEATURES),
        "thresholds": {"filter": cfg.infer.filter_threshold, "gnn": cfg.infer.gnn_threshold},
        "models": {m.kind: {"source": m.source, "features": list(m.features), "inputs": m.inputs(),
                            "output": {"name": OUTPUT, "dtype": "float32", "shape": ["n_edge"]},
                            "saved_model": f"{m.kind}/{SAVED_MODEL}", "onnx": f"{m.kind}/{ONNX_FILE}",
                            "onnx_ops": list(m.onnx_ops), "roundtrip_max_abs_diff": m.roundtrip_diff}
                   for m in models},
    }


def _check_stack() -> None:
    missing = [m for m in ("tf2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"trkx-export needs {', '.join(missing)}: pip install -r requirements.txt -c constraints.txt")


def export_trained(cfg, out_dir: os.PathLike | str, models: Sequence[TrainedModel]) -> list[ExportedModel]:
    """Exports built models (see the module docstring for what is written where).

    Args:
      cfg: the whole config (``model``: the models' shapes and inputs; ``graph``, ``infer``: for the manifest).
      out_dir: the output folder (created; an earlier export of the same kind in it is replaced).
      models: the models, at most one per kind.

    Returns:
      The :class:`ExportedModel` of each, in the order given.

    Raises:
      ConfigError: no model, two of one kind, tf2onnx / onnx / onnxruntime not installed, or a model whose graph
        has no ONNX form.
      OutputError: ``out_dir`` is a file (or lies under one).
      OutputLockedError: another ``trkx-export`` writes into ``out_dir``.
    """
    _check_stack()
    kinds = [m.kind for m in models]
    if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(KINDS):
        raise ConfigError(f"export needs one model per kind of {', '.join(KINDS)} (got {kinds or 'none'})")
    out = check_output_folder(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exported = []
    with OutputLock(out, ".trkx-export.lock", "trkx-export"):
        for trained in models:
            staging = Path(tempfile.mkdtemp(prefix=f".{trained.kind}.tmp", dir=out))
            try:
                model = _export_one(cfg, trained, staging)
                _replace_folder(staging, out / trained.kind)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            model.saved_model, model.onnx = out / model.kind / SAVED_MODEL, out / model.kind / ONNX_FILE
            exported.append(model)
            log.info("%s exported from %s", model.kind, model.source)
        write_text_atomic(out / MANIFEST, json.dumps(manifest(cfg, exported), indent=2) + "\n")
    return exported


def export_models(cfg, out_dir: os.PathLike | str, checkpoints: Mapping[str, Optional[str]]) -> list[ExportedModel]:
    """Exports the models of the given checkpoints: :func:`restore_checkpoints`, then :func:`export_trained`.

    Args:
      cfg: the whole config (``model``, ``graph``, ``infer``); the models are built as ``cfg.model`` says.
      out_dir: the output folder (created; an earlier export of the same kind in it is replaced).
      checkpoints: kind (``"filter"``, ``"gnn"``) -> checkpoint prefix or folder; None entries are skipped.

    Returns:
      The :class:`ExportedModel` of each kind exported, in the order filter, gnn.

    Raises:
      ConfigError: no checkpoint given, an unknown kind, tf2onnx / onnx / onnxruntime not installed, or a model
        whose graph has no ONNX form.
      CheckpointError: a checkpoint is missing or does not fit the configured model.
      OutputError: ``out_dir`` is a file (or lies under one).
      OutputLockedError: another ``trkx-export`` writes into ``out_dir``.
    """
    _check_stack()
    check_output_folder(out_dir)  # before the models are built
    return export_trained(cfg, out_dir, restore_checkpoints(cfg, checkpoints))
