"""Losses: weighted binary cross-entropy on edge logits and the embedding's pair hinge loss.

Normalisation rule (the reason for the ``weight_sum_fn`` hook): a loss is ``sum_i w_i * l_i / W`` where ``W``
is the sum of the valid weights of the **global** batch. On one process ``W`` is the local sum. A distributed
backend passes its all-reduce as ``weight_sum_fn`` so every rank divides by the same global ``W``; the sum over
ranks of the per-rank losses (and gradients) is then exactly the loss (and gradient) of the global batch, on
graphs of any size. Averaging per-rank mean losses instead would weight small graphs' edges more.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``E``); ``T`` message-passing steps, ``P`` pairs.
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

WeightSumFn = Callable[[tf.Tensor], tf.Tensor]

#: Floor of the weight sum, so a batch with no valid weight gives loss 0 instead of NaN.
MIN_WEIGHT_SUM = 1e-12


def _local(x: tf.Tensor) -> tf.Tensor:
    return x


def edge_weights(labels: tf.Tensor, weights: tf.Tensor, mask: tf.Tensor, true_weight: float = 1.0,
                 fake_weight: float = 1.0) -> tf.Tensor:
    """The effective loss weight of every edge: ``mask * weight * (true_weight if true else fake_weight)``.

    Args:
      labels: [E] 0/1.
      weights: [E] per-edge weights from the shards (0 for padding and neutral edges).
      mask: [E] 1 for real edges.
      true_weight: class weight of true edges.
      fake_weight: class weight of fake edges.

    Returns:
      [E] float32.
    """
    labels = tf.cast(labels, tf.float32)
    cls = labels * true_weight + (1.0 - labels) * fake_weight
    return tf.cast(mask, tf.float32) * tf.cast(weights, tf.float32) * cls


def bce_sums(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``sum_e w_e * BCE(logit_e, label_e)``, averaged over steps when logits have a step axis.

    Args:
      logits: [E] or [T, E] float32.
      labels: [E] 0/1.
      weights: [E] effective weights (:func:`edge_weights`).

    Returns:
      Scalar float32 (not normalised).
    """
    logits = tf.convert_to_tensor(logits)
    labels = tf.cast(labels, tf.float32)
    if logits.shape.rank == 2:
        labels = tf.broadcast_to(labels, tf.shape(logits))
    per_edge = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    total = tf.reduce_sum(per_edge * weights, axis=-1)
    return tf.reduce_mean(total) if logits.shape.rank == 2 else total


def weighted_bce(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor, mask: tf.Tensor,
                 true_weight: float = 1.0, fake_weight: float = 1.0,
                 weight_sum_fn: Optional[WeightSumFn] = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Weighted binary cross-entropy on logits, normalised by the (global) sum of valid weights.

    With logits of every message-passing step ([T, E]) the loss is the mean over steps.

    Args:
      logits: [E] or [T, E].
      labels: [E] 0/1.
      weights: [E] per-edge weights from the shards.
      mask: [E] 1 for real edges, 0 for padding.
      true_weight: class weight of true edges.
      fake_weight: class weight of fake edges.
      weight_sum_fn: maps the local weight sum (scalar) to the global one; None keeps it local.

    Returns:
      ``(loss, loss_sum, weight_sum)``: the normalised loss, the local unnormalised sum and the local weight
      sum (scalars; the two sums let an epoch's loss be computed exactly as sum/sum).
    """
    w = edge_weights(labels, weights, mask, true_weight, fake_weight)
    loss_sum = bce_sums(logits, labels, w)
    weight_sum = tf.reduce_sum(w)
    total = (weight_sum_fn or _local)(weight_sum)
    return loss_sum / tf.maximum(total, MIN_WEIGHT_SUM), loss_sum, weight_sum


def pair_hinge_terms(distance_sq: tf.Tensor, labels: tf.Tensor, margin: float) -> tf.Tensor:
    """Per-pair hinge loss of metric learning: ``d^2`` for true pairs, ``max(0, margin^2 - d^2)`` for others.

    Args:
      distance_sq: [P] squared embedding distances.
      labels: [P] 1 for true pairs, 0 for fake ones.
      margin: the hinge margin (a distance, not squared).

    Returns:
      [P] float32.
    """
    labels = tf.cast(labels, tf.float32)
    d2 = tf.cast(distance_sq, tf.float32)
    return labels * d2 + (1.0 - labels) * tf.nn.relu(margin * margin - d2)


def pair_hinge_loss(embeddings: tf.Tensor, pair_i: tf.Tensor, pair_j: tf.Tensor, labels: tf.Tensor,
                    weights: tf.Tensor, margin: float,
                    weight_sum_fn: Optional[WeightSumFn] = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Weighted pair hinge loss, normalised like :func:`weighted_bce`.

    Args:
      embeddings: [N, D].
      pair_i: [P] int32 first node of each pair.
      pair_j: [P] int32 second node.
      labels: [P] 1 for true pairs.
      weights: [P] pair weights (0 for padding pairs).
      margin: hinge margin.
      weight_sum_fn: local-to-global weight sum, or None.

    Returns:
      ``(loss, loss_sum, weight_sum)`` as in :func:`weighted_bce`.
    """
    emb = tf.cast(embeddings, tf.float32)
    d2 = tf.reduce_sum(tf.square(tf.gather(emb, pair_i) - tf.gather(emb, pair_j)), -1)
    w = tf.cast(weights, tf.float32)
    loss_sum = tf.reduce_sum(w * pair_hinge_terms(d2, labels, margin))
    weight_sum = tf.reduce_sum(w)
    total = (weight_sum_fn or _local)(weight_sum)
    return loss_sum / tf.maximum(total, MIN_WEIGHT_SUM), loss_sum, weight_sum
