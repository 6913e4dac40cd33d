"""``trkx-build`` as a library: the graph stage fed by the trained models it may use.

:func:`trkx_tf.graphs.build.build_shards` only takes plain callables. This module supplies them from the config:
the embedding of ``graph.builder: embedding`` (``graph.embedding.model``) as an ``embed`` function, and with
``graph.filter_ckpt`` the trained edge filter as the scorer :mod:`trkx_tf.reco.scorers` makes for inference, so
the GNN trains on the edges that the filter keeps at inference time.

Real labelled events (``data.real``, :func:`build_real_graphs`) are built into their own folder with the split the
config states (``train_events`` / ``val_events``) and masked labels from their partial truth; their graph stage
must be the simulated shards' (a module map cannot be learned without a full truth).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Optional

import numpy as np

from trkx_tf.errors import ConfigError
from trkx_tf.ranks import SINGLE


def embedding_function(cfg) -> Callable[[np.ndarray], np.ndarray]:
    """The trained embedding named by ``graph.embedding.model``, as the ``embed`` function of the embedding
    builder (:class:`~trkx_tf.graphs.candidates.EmbeddingBuilder`).

    Args:
      cfg: the whole config.

    Returns:
      ``embed(nodes [n_node, F]) -> [n_node, D]`` float32 (:func:`trkx_tf.models.embedding.embed_hits` of the
      restored model).

    Raises:
      ConfigError: ``graph.embedding.model`` is not set.
      CheckpointError: the checkpoint is missing or does not fit ``model.embedding``.
    """
    if not cfg.graph.embedding.model:
        raise ConfigError("graph.builder=embedding needs graph.embedding.model (a trained embedding checkpoint)")
    from trkx_tf.models.embedding import embed_hits
    from trkx_tf.train.checkpoints import load_embedding_model

    return functools.partial(embed_hits, load_embedding_model(cfg.graph.embedding.model, cfg))


def filter_factory(cfg):
    """With ``graph.filter_ckpt``: ``factory(F) -> scorer``, the trained filter restored for graphs of F node
    features (at ``infer.threads`` TensorFlow threads, as in inference); None without it."""
    if not cfg.graph.filter_ckpt:
        return None

    def factory(n_features: int):
        from trkx_tf.placement import set_threads
        from trkx_tf.reco.scorers import load_scorer

        set_threads(cfg.infer.threads)
        return load_scorer(cfg, "filter", cfg.graph.filter_ckpt, n_features)

    return factory


def build_graphs(cfg, input_dir: os.PathLike | str, out_dir: os.PathLike | str, *,
                 workers: Optional[int] = None, progress: bool = True, ranks=None):
    """Builds the graph shards of ``input_dir``'s events into ``out_dir`` with the models the config names.

    Args:
      cfg: the whole config.
      input_dir: TrackML events.
      out_dir: the shards folder.
      workers: processes (None: ``graph.workers``; 0: one per core).
      progress: progress bars on stderr.
      ranks: the MPI ranks sharing the build (:func:`trkx_tf.ranks.ranks_from_env`; None: this process alone).

    Returns:
      The :class:`~trkx_tf.graphs.build.BuildSummary`.

    Raises:
      ConfigError, CheckpointError, DataError: see :func:`embedding_function` and
        :func:`trkx_tf.graphs.build.build_shards`.
    """
    from trkx_tf.graphs.build import build_shards

    embed = embedding_function(cfg) if cfg.graph.builder == "embedding" else None
    return build_shards(cfg, input_dir, out_dir, workers=workers, progress=progress, embed=embed,
                        edge_filter=filter_factory(cfg), ranks=ranks or SINGLE)


def build_real_graphs(cfg, *, input_dir: Optional[os.PathLike | str] = None,
                      out_dir: Optional[os.PathLike | str] = None, workers: Optional[int] = None,
                      progress: bool = True, ranks=None):
    """Builds the masked-label shards of the real labelled events of ``data.real``.

    Args:
      cfg: the whole config; ``data.real`` names the events, the shards folder and the train/val split.
      input_dir: the events (None: ``data.real.events_dir``).
      out_dir: the shards folder (None: ``data.real.shards_dir``).
      workers: processes (None: ``graph.workers``; 0: one per core).
      progress: progress bars on stderr.
      ranks: as in :func:`build_graphs`.

    Returns:
      The :class:`~trkx_tf.graphs.build.BuildSummary` (builder metrics restricted to the labelled edges).

    Raises:
      ConfigError: no ``data.real`` section, or a module-map build without ``graph.module_map.path``.
      DataError: too few events for the split, the test event in it, or see :func:`build_graphs`.
    """
    from trkx_tf.graphs.build import build_shards
    from trkx_tf.graphs.event_splits import split_real_events
    from trkx_tf.trackml.io import list_events

    real = cfg.data.real
    if real is None:
        raise ConfigError("trkx-build --real needs a data.real section (events_dir, shards_dir, train_events, "
                          "val_events)")
    if cfg.graph.builder == "module_map" and not cfg.graph.module_map.path:
        raise ConfigError("trkx-build --real: the real events have no full truth to learn a module map from; give "
                          "the simulated shards' map (--module-map <shards>/module_map.npz)")
    input_dir = real.events_dir if input_dir is None else input_dir
    splits = split_real_events(list_events(input_dir), real.train_events, real.val_events)
    embed = embedding_function(cfg) if cfg.graph.builder == "embedding" else None
    return build_shards(cfg, input_dir, real.shards_dir if out_dir is None else out_dir, workers=workers,
                        progress=progress, embed=embed, edge_filter=filter_factory(cfg), splits=splits,
                        ranks=ranks or SINGLE)
