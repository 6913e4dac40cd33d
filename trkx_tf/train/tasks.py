"""What a training step computes for each kind of model: loss terms and metric counts.

A task turns ``(model, batch)`` into ``(loss, loss_sum, weight_sum, counts)`` inside a step function, and may
prepare a batch on the host first (the embedding mines its pairs there). Both tasks are padding-aware through
the masks and weights of the batch; neither knows anything distributed (the global weight sum arrives through
``weight_sum_fn``).

Shape vocabulary: see :mod:`trkx_tf.graphs.batch`.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np
import tensorflow as tf

from trkx_tf.config import EmbeddingConfig, TrainConfig, schema_default
from trkx_tf.errors import ConfigError
from trkx_tf.graphs.batch import BATCH_KEYS
from trkx_tf.train import losses, metrics
from trkx_tf.train.losses import WeightSumFn
from trkx_tf.train.pairs import mine_pairs


def tensor_signature(batch: Mapping[str, np.ndarray]) -> dict:
    """``tf.TensorSpec`` of every entry of a (numpy) batch, named by key; the bucket's compilation key.

    For the standard keys this equals :func:`trkx_tf.graphs.batch.batch_signature` of the batch's shapes.
    """
    return {k: tf.TensorSpec(np.shape(v), tf.as_dtype(np.asarray(v).dtype), name=k) for k, v in batch.items()}


class EdgeTask:
    """Edge classification (filter, Interaction Network): weighted BCE and edge counts.

    Args:
      true_weight: class weight of true edges (default: ``train.true_weight``'s).
      fake_weight: class weight of fake edges (default: ``train.fake_weight``'s).
      threshold: score threshold of the counts (default: ``train.threshold``'s).
      all_steps: train on the logits of every message-passing step (the model must accept ``all_steps``).
      targets: ``(target purity, target efficiency)`` of the evaluation's working points (default: ``train``'s).
    """

    kind = "edge"

    def __init__(self, true_weight: float = schema_default(TrainConfig, "true_weight"),
                 fake_weight: float = schema_default(TrainConfig, "fake_weight"),
                 threshold: float = schema_default(TrainConfig, "threshold"), all_steps: bool = False,
                 targets: tuple[float, float] = (schema_default(TrainConfig, "target_purity"),
                                                 schema_default(TrainConfig, "target_efficiency"))):
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1) (got {threshold})")
        if not all(0.0 < t < 1.0 for t in targets):
            raise ConfigError(f"target purity and efficiency must be in (0, 1) (got {targets})")
        self.true_weight, self.fake_weight = float(true_weight), float(fake_weight)
        self.threshold = float(threshold)
        self.all_steps = bool(all_steps)
        self.targets = tuple(float(t) for t in targets)

    def prepare(self, batch: dict, forward: Optional[Callable] = None,
                rng: Optional[np.random.Generator] = None) -> dict:
        """Host-side preparation: keeps the batch contract's keys (and ``edges`` when present)."""
        return {k: batch[k] for k in (*BATCH_KEYS, "edges") if k in batch}

    def forward(self, model, batch: Mapping[str, tf.Tensor], weight_sum_fn: Optional[WeightSumFn] = None,
                training: bool = True):
        """Loss terms and counts of one batch.

        Args:
          model: an edge classifier ``model(batch) -> [E] logits`` (``model(batch, all_steps=True) -> [T, E]``).
          batch: padded batch of tensors.
          weight_sum_fn: local-to-global weight sum (the backend's ``reduce_sum``).
          training: use every step's logits when ``all_steps`` (evaluation uses the final logits).

        Returns:
          ``(loss, loss_sum, weight_sum, counts)``: scalars and a [4] counts vector, in evaluation (``training``
          False) followed by the [2 B] score histogram (:func:`trkx_tf.train.metrics.score_histogram`).
        """
        logits = model(batch, all_steps=True) if (self.all_steps and training) else model(batch)
        loss, loss_sum, weight_sum = losses.weighted_bce(
            logits, batch["edge_labels"], batch["edge_weights"], batch["edge_mask"],
            self.true_weight, self.fake_weight, weight_sum_fn)
        counts = metrics.edge_counts(logits, batch["edge_labels"], batch["edge_weights"], batch["edge_mask"],
                                     self.threshold)
        if not training:
            counts = tf.concat([counts, metrics.score_histogram(logits, batch["edge_labels"], batch["edge_weights"],
                                                                batch["edge_mask"])], axis=0)
        return loss, loss_sum, weight_sum, counts

    @staticmethod
    def throughput(batch: Mapping[str, np.ndarray]) -> tuple[int, int]:
        """``(real graphs, real edges)`` of a batch, for graphs/s and edges/s."""
        return int(np.count_nonzero(np.asarray(batch["n_node"]))), int(np.sum(np.asarray(batch["edge_mask"]) > 0))


class EmbeddingTask(EdgeTask):
    """Metric learning: pair hinge loss on mined pairs (:mod:`trkx_tf.train.pairs`), pair counts at the margin.

    Args:
      margin: hinge margin, also the radius of the counts and of the hard negatives.
      n_random: random pairs per real hit.
      n_knn: hard negatives per real hit (nearest neighbours within the margin).
      true_weight: class weight of true pairs.
      fake_weight: class weight of fake pairs.
      knn_start_epoch: hard negatives from this epoch on (random pairs only before).
      candidate_negatives: also use the batch's fake edges as negative pairs.
    """

    kind = "embedding"

    def __init__(self, margin: float = schema_default(EmbeddingConfig, "margin"),
                 n_random: int = schema_default(EmbeddingConfig, "random_pairs"),
                 n_knn: int = schema_default(EmbeddingConfig, "knn_pairs"),
                 true_weight: float = schema_default(TrainConfig, "true_weight"),
                 fake_weight: float = schema_default(TrainConfig, "fake_weight"),
                 knn_start_epoch: int = schema_default(EmbeddingConfig, "knn_start_epoch"),
                 candidate_negatives: bool = False):
        super().__init__(true_weight, fake_weight)
        self.targets = None  # pair counts, no score histogram: no working points
        if margin <= 0:
            raise ConfigError(f"margin must be > 0 (got {margin})")
        self.margin = float(margin)
        self.n_random, self.n_knn = int(n_random), int(n_knn)
        self.mine_from_epoch = int(knn_start_epoch)
        self.candidate_negatives = bool(candidate_negatives)

    def prepare(self, batch: dict, forward: Optional[Callable] = None,
                rng: Optional[np.random.Generator] = None) -> dict:
        """Adds the mined pairs; ``forward(batch) -> [N, D]`` gives the current embeddings for the hard negatives
        (none without it: the training loop offers it from :attr:`mine_from_epoch` on)."""
        batch = super().prepare(batch)
        emb = np.asarray(forward(batch)) if (forward is not None and self.n_knn > 0) else None
        rng = rng if rng is not None else np.random.default_rng(0)
        return {**batch, **mine_pairs(batch, emb, self.n_random, self.n_knn, rng, self.margin,
                                      self.candidate_negatives)}

    def forward(self, model, batch: Mapping[str, tf.Tensor], weight_sum_fn: Optional[WeightSumFn] = None,
                training: bool = True):
        """Loss terms and pair counts (see :meth:`EdgeTask.forward`); ``model(batch) -> [N, D]``."""
        emb = tf.cast(model(batch), tf.float32)
        labels = batch["pair_labels"]
        w = batch["pair_weights"] * (labels * self.true_weight + (1.0 - labels) * self.fake_weight)
        loss, loss_sum, weight_sum = losses.pair_hinge_loss(emb, batch["pair_i"], batch["pair_j"], labels, w,
                                                            self.margin, weight_sum_fn)
        d2 = tf.reduce_sum(tf.square(tf.gather(emb, batch["pair_i"]) - tf.gather(emb, batch["pair_j"])), -1)
        counts = metrics.pair_counts(d2, labels, w, self.margin)
        return loss, loss_sum, weight_sum, counts
