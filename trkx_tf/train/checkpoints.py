"""Checkpoints of trained models: the one place that resolves, restores and loads them.

A checkpoint is a ``tf.train.Checkpoint`` written by the training loop (:mod:`trkx_tf.train.loop`): it tracks the
model as ``model`` next to the optimizer and the loop's counters. Training resumes from it (every object must
match), inference and the graph stage load only the model from it (the other objects are ignored).

==========================================  ==================================================================
:func:`resolve_checkpoint`                  a folder (its latest checkpoint) or a prefix -> the prefix
:func:`verify_checkpoint`                   read every tensor once (CRC-32C): truncation or damage is an error
:func:`restore`                             restore a ``tf.train.Checkpoint``; a misfit is a CheckpointError
:func:`restore_model`                       restore a built model's variables, ignoring the rest
:func:`build_edge_model`                    a built filter/GNN of the configured shape, ready for a restore
:func:`load_edge_model`                     build + restore an edge classifier (inference, trkx-build)
:func:`load_embedding_model`                build + restore the embedding, F read from the checkpoint
:class:`TrainingCheckpoint`                 the training loop's: resume from the latest, save on the writer rank
==========================================  ==================================================================

This module lives in ``train/`` because the training loop writes what it reads, and it builds models through
:func:`trkx_tf.models.registry.build_model`, so it sits above ``models/`` (``models/`` never imports it).

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``F``).
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
from typing import Optional

from trkx_tf.errors import CheckpointError, ConfigError, first_line

#: The first layer's weight of the embedding MLP in a training checkpoint: its shape is [F, hidden].
_EMBEDDING_FIRST_WEIGHT = "model/mlp/linears/0/weights/0/"


def _latest(folder: str) -> Optional[str]:
    """The prefix that a folder's ``checkpoint`` state file names, or None without one.

    Unlike ``tf.train.latest_checkpoint`` (which logs an error and returns None), a state file naming a
    checkpoint whose ``.index`` is gone is an error that names that file.

    Raises:
      CheckpointError: the state file is unreadable, or the checkpoint it names has no ``.index`` file.
    """
    import tensorflow as tf

    if not os.path.exists(os.path.join(folder, "checkpoint")):
        return None
    try:
        state = tf.train.get_checkpoint_state(folder)
    except Exception as exc:  # noqa: BLE001 - a damaged text proto raises protobuf's ParseError, among others
        raise CheckpointError(f"{os.path.join(folder, 'checkpoint')}: unreadable checkpoint state file "
                              f"({type(exc).__name__}: {first_line(exc)}); remove it to start afresh") from None
    prefix = state.model_checkpoint_path if state is not None else ""
    if not prefix:
        return None
    # get_checkpoint_state already joined a relative name onto ``folder``
    if not os.path.exists(prefix + ".index"):
        raise CheckpointError(f"{prefix}.index: missing (the index file of the latest checkpoint that "
                              f"{os.path.join(folder, 'checkpoint')} names); restore it, or give an earlier "
                              f"checkpoint's prefix")
    return prefix


def verify_checkpoint(prefix: str) -> None:
    """Reads every tensor of a checkpoint once: TensorFlow checks each against the CRC-32C of its index entry.

    Args:
      prefix: a checkpoint prefix (``<prefix>.index`` exists).

    Raises:
      CheckpointError: a data file is missing, truncated or damaged, or the index is unreadable.
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{prefix}: checkpoint damaged or truncated ({type(exc).__name__}: "
                              f"{first_line(exc)}); use an earlier checkpoint or train again") from None


def resolve_checkpoint(path: os.PathLike | str) -> str:
    """The checkpoint prefix named by ``path``: the latest checkpoint of a folder, or a prefix itself.

    Args:
      path: a folder holding TensorFlow checkpoints (e.g. a run's ``checkpoints/``) or a checkpoint prefix.

    Returns:
      The prefix (``<prefix>.index`` exists).

    Raises:
      CheckpointError: nothing checkpoint-like is there, or the folder's latest checkpoint lacks its index file.
    """
    path = str(path)
    if os.path.isdir(path):
        prefix = _latest(path)
        if prefix is None:
            raise CheckpointError(f"{path}: folder holds no TensorFlow checkpoint (no 'checkpoint' state file)")
        return prefix
    if os.path.exists(path + ".index"):
        return path
    raise CheckpointError(f"{path}: checkpoint not found (expected a folder or a prefix with a .index file)")


def restore(checkpoint, prefix: str, what: str, *, partial: bool) -> None:
    """Restores ``checkpoint`` (a ``tf.train.Checkpoint`` of built objects) from ``prefix``.

    Args:
      checkpoint: the objects to restore, every variable already created.
      prefix: a checkpoint prefix (see :func:`resolve_checkpoint`).
      what: how the error names the objects, e.g. ``"this model"``.
      partial: ignore objects of the checkpoint that ``checkpoint`` does not track (a model out of a training
        checkpoint); every object of ``checkpoint`` must still be found, with the right shapes.

    Raises:
      CheckpointError: the checkpoint is damaged or truncated (:func:`verify_checkpoint`) or does not fit
        (missing variables, other shapes).
    """
    import tensorflow as tf

    verify_checkpoint(prefix)
    try:
        status = checkpoint.restore(prefix)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise CheckpointError(f"{prefix}: does not fit {what} ({type(exc).__name__}: {first_line(exc)})") from None


def restore_model(model, path: os.PathLike | str) -> str:
    """Restores a built model's variables from a checkpoint that tracks it as ``model``.

    Extra objects of the checkpoint (optimizer, step counters) are ignored; every variable of the model must
    be found with the right shape.

    Args:
      model: a built Sonnet module (see :func:`build_edge_model`).
      path: a checkpoint prefix or a folder (its latest checkpoint).

    Returns:
      The prefix restored.

    Raises:
      CheckpointError: no checkpoint, or it does not fit the model (missing variables, other shapes).
    """
    import tensorflow as tf

    prefix = resolve_checkpoint(path)
    restore(tf.train.Checkpoint(model=model), prefix,
            f"the configured {type(model).__name__} (check the model section of the config)", partial=True)
    return prefix


def build_edge_model(kind: str, model_cfg, n_features: int, compute_dtype: str = "float32"):
    """A built (variables created) edge classifier of the configured shape, ready for a checkpoint restore.

    Args:
      kind: ``"filter"`` (:class:`~trkx_tf.models.filter.EdgeFilter`) or ``"gnn"``
        (:class:`~trkx_tf.models.interaction.InteractionNetwork`).
      model_cfg: the ``model`` config section (read by :func:`trkx_tf.models.registry.build_model` only).
      n_features: F.
      compute_dtype: ``"float32"`` or ``"bfloat16"`` (``infer.compute_dtype``; variables stay float32, so a
        checkpoint trained in float32 restores either way).

    Returns:
      The Sonnet module, built with one warm-up call on a 2-node, 1-edge graph (Sonnet creates variables lazily;
      a checkpoint restore needs them to exist).

    Raises:
      ConfigError: a kind other than filter or gnn.
    """
    import tensorflow as tf

    from trkx_tf.graphs.features import EDGE_FEATURES
    from trkx_tf.models.registry import build_model

    if kind not in ("filter", "gnn"):
        raise ConfigError(f"unknown edge model {kind!r} (expected 'filter' or 'gnn')")
    model = build_model(model_cfg, kind, compute_dtype=compute_dtype)
    warm = {"nodes": tf.zeros([2, n_features]), "senders": tf.constant([0], tf.int32),
            "receivers": tf.constant([1], tf.int32), "n_node": tf.constant([2], tf.int32),
            "n_edge": tf.constant([1], tf.int32), "edge_mask": tf.ones([1]),
            "edges": tf.zeros([1, len(EDGE_FEATURES)])}
    model(warm)
    return model


def load_edge_model(kind: str, model_cfg, path: os.PathLike | str, n_features: int,
                    compute_dtype: str = "float32"):
    """A trained edge classifier: built as ``model_cfg`` says (:func:`build_edge_model`), restored from ``path``.

    Args:
      kind: ``"filter"`` or ``"gnn"``.
      model_cfg: the ``model`` config section.
      path: a checkpoint prefix or folder, or a release folder (``models/NAME``: its weights that fit the model).
      n_features: F.
      compute_dtype: see :func:`build_edge_model`.

    Returns:
      ``(model, prefix)``: the restored module and the checkpoint prefix (or release weights file) it came from.

    Raises:
      ConfigError: an unknown kind.
      CheckpointError: no checkpoint, or it does not fit the configured model.
      DataError: a damaged release file.
    """
    from trkx_tf.release import initial_weights

    model = build_edge_model(kind, model_cfg, n_features, compute_dtype)
    return model, initial_weights(model, path)


def load_embedding_model(path: os.PathLike | str, cfg):
    """A trained embedding model: built from ``model_cfg.embedding``, weights restored from a checkpoint.

    The number of node features F is read from the checkpoint (the shape of the first layer's weight), so the
    caller does not need to know it.

    Args:
      path: a checkpoint prefix, or a folder (its latest checkpoint, e.g. a run's ``checkpoints/``), written by
        the training loop (the model tracked as ``model``).
      cfg: the config (:class:`~trkx_tf.config.Config`); only ``cfg.model.embedding`` is read, by the registry.

    Returns:
      The restored :class:`~trkx_tf.models.embedding.EmbeddingMLP`.

    Raises:
      CheckpointError: no checkpoint there, it holds no embedding model, or it does not fit ``model.embedding``.
    """
    import tensorflow as tf

    from trkx_tf.models.registry import build_model

    prefix = resolve_checkpoint(path)
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    first = [k for k in shapes if k.startswith(_EMBEDDING_FIRST_WEIGHT)]
    if not first:
        raise CheckpointError(f"{prefix}: holds no embedding model (no model/mlp/linears/0 weight)")
    model = build_model(cfg.model, "embedding")
    model.embed(tf.zeros([1, int(shapes[first[0]][0])]))
    restore(tf.train.Checkpoint(model=model), prefix, "model.embedding of the config", partial=True)
    return model


class TrainingCheckpoint:
    """The checkpoint of a training run: model, optimizer, the loop's counters (and a loss scale), kept in the
    run's ``checkpoints/`` folder by a ``tf.train.CheckpointManager``.

    Every rank restores the same latest checkpoint; only the writer rank saves, then all ranks meet at a barrier.

    Args:
      objects: name -> trackable (``model``, ``optimizer``, ``state``, optionally ``loss_scale``), all built.
      folder: the run's ``checkpoints/`` folder, or None (nothing is saved or restored).
      keep: checkpoints kept by the manager.
      backend: the distributed hooks (``is_writer``, ``barrier``).
    """

    def __init__(self, objects: dict, folder: Optional[os.PathLike | str], keep: int, backend):
        import tensorflow as tf

        self.checkpoint = tf.train.Checkpoint(**objects)
        self.backend = backend
        self.folder = None if folder is None else str(folder)
        self.manager = None if folder is None else tf.train.CheckpointManager(self.checkpoint, self.folder,
                                                                               max_to_keep=keep)

    def restore_latest(self) -> Optional[str]:
        """Restores the folder's latest checkpoint, if there is one; returns its prefix or None.

        Raises:
          CheckpointError: the latest checkpoint's index is missing, its data is damaged or truncated, or it does
            not fit the objects (every object must match).
        """
        if self.folder is None:
            return None
        latest = _latest(self.folder)
        if latest:
            restore(self.checkpoint, latest, "this model", partial=False)
        return latest

    def save(self, step: int) -> None:
        """The writer rank saves checkpoint number ``step``; every rank then waits at a barrier.

        Raises:
          OSError: ENOSPC / EDQUOT, the disk filled up during the save; the save's temporary files are removed and
            the ``checkpoint`` state file still names the previous checkpoint (TensorFlow writes it last).
        """
        import tensorflow as tf

        if self.manager is not None and self.backend.is_writer:
            try:
                self.manager.save(checkpoint_number=int(step))
            except tf.errors.OpError as exc:
                text = str(exc)
                if "No space left on device" not in text and "Disk quota exceeded" not in text:
                    raise
                for temp in glob.glob(os.path.join(glob.escape(self.folder), f"ckpt-{int(step)}*_temp*")):
                    shutil.rmtree(temp, ignore_errors=True)
                raise OSError(errno.ENOSPC, "No space left on device",
                              os.path.join(self.folder, f"ckpt-{int(step)}")) from None
        self.backend.barrier()
