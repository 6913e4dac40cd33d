"""Classification metrics kept as counts, turned into ratios only at the end.

Ratios do not average: the efficiency of two ranks is not the mean of their efficiencies. A step returns the
counts (true positives, true, predicted positive, total) of its batch; :class:`Counts` adds them over steps,
a backend sums them over ranks, and only then :meth:`Counts.ratios` divides.

An element is counted when it is real (mask 1) **and** has a positive loss weight: padding and neutral edges
(for example true edges of particles below the pT cut, which the shards give weight 0) are in no count.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``E``); ``T`` steps, ``P`` pairs.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from trkx_tf.config import TrainConfig, schema_default

#: Order of the entries of a counts vector.
COUNT_NAMES = ("true_positive", "true", "predicted", "total")


def _counts(pred: tf.Tensor, labels: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    pred = tf.cast(pred, tf.float32) * valid
    labels = tf.cast(tf.convert_to_tensor(labels) > 0.5, tf.float32) * valid
    return tf.stack([tf.reduce_sum(pred * labels), tf.reduce_sum(labels), tf.reduce_sum(pred),
                     tf.reduce_sum(valid)])


def edge_counts(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor, mask: tf.Tensor,
                threshold: float = schema_default(TrainConfig, "threshold")) -> tf.Tensor:
    """Counts of an edge classifier at a score threshold.

    Args:
      logits: [E], or [T, E] (the last step is counted).
      labels: [E] 0/1.
      weights: [E] loss weights (edges of weight 0 are not counted).
      mask: [E] 1 for real edges.
      threshold: an edge is predicted true when ``sigmoid(logit) > threshold`` (0 < threshold < 1).

    Returns:
      [4] float32 in :data:`COUNT_NAMES` order.
    """
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank == 2:
        logits = logits[-1]
    logit_cut = math.log(threshold / (1.0 - threshold))
    valid = tf.cast((tf.convert_to_tensor(mask) > 0) & (tf.convert_to_tensor(weights) > 0), tf.float32)
    return _counts(tf.cast(logits, tf.float32) > logit_cut, labels, valid)


def pair_counts(distance_sq: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor, radius: float) -> tf.Tensor:
    """Counts of the embedding's pair classification: a pair is predicted true when closer than ``radius``.

    Args:
      distance_sq: [P] squared embedding distances.
      labels: [P] 0/1.
      weights: [P] pair weights (0 for padding pairs).
      radius: the distance cut.

    Returns:
      [4] float32 in :data:`COUNT_NAMES` order.
    """
    valid = tf.cast(tf.convert_to_tensor(weights) > 0, tf.float32)
    return _counts(tf.convert_to_tensor(distance_sq) < radius * radius, labels, valid)


class Counts:
    """Sum of count vectors (float64, exact for any realistic number of edges) and the ratios derived from them.

    Args:
      values: initial [4] counts (zeros by default).
    """

    def __init__(self, values: Optional[np.ndarray] = None):
        self.values = np.zeros(len(COUNT_NAMES), np.float64) if values is None else \
            np.asarray(values, np.float64).copy()

    def add(self, counts) -> "Counts":
        """Adds a [4] count vector (tensor or array). Returns self."""
        self.values += np.asarray(counts, np.float64)
        return self

    def reduced(self, backend) -> "Counts":
        """The counts summed over ranks (a collective: every rank must call it)."""
        return Counts(backend.host_sum(self.values))

    def ratios(self) -> dict:
        """Efficiency (recall), purity (precision) and F1; NaN where a denominator is 0.

        Returns:
          ``{"efficiency", "purity", "f1"}`` plus every count by name.
        """
        tp, true, pred, total = self.values
        eff = tp / true if true > 0 else float("nan")
        pur = tp / pred if pred > 0 else float("nan")
        f1 = 2 * tp / (true + pred) if (true + pred) > 0 else float("nan")
        out = {"efficiency": float(eff), "purity": float(pur), "f1": float(f1)}
        out.update({name: float(v) for name, v in zip(COUNT_NAMES, self.values)})
        return out


def ratios_from_counts(counts: Mapping[str, float]) -> dict:
    """Efficiency, purity and F1 of a ``{name: count}`` mapping with the :data:`COUNT_NAMES` keys."""
    return Counts(np.array([counts[n] for n in COUNT_NAMES])).ratios()
