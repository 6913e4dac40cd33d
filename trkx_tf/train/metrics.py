"""Classification metrics kept as counts, turned into ratios only at the end.

Ratios do not average: the efficiency of two ranks is not the mean of their efficiencies. A step returns the
counts (true positives, true, predicted positive, total) of its batch; :class:`Counts` adds them over steps,
a backend sums them over ranks, and only then :meth:`Counts.ratios` divides.

An element is counted when it is real (mask 1) **and** has a positive loss weight: padding and neutral edges
(for example true edges of particles below the pT cut, which the shards give weight 0) are in no count.

Evaluation also counts the edges by score (:func:`score_histogram`), true and fake apart, so that the ratios at
any threshold follow from the summed counts: :func:`working_points` gives the efficiency at a target purity and the
purity at a target efficiency, the figures a filter (kept efficiency) or a GNN (efficiency at the purity the track
building needs) is judged by, where F1 at 0.5 says little.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``E``); ``T`` steps, ``P`` pairs, ``B`` score bins.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from trkx_tf.config import TrainConfig, schema_default

#: Order of the entries of a counts vector.
COUNT_NAMES = ("true_positive", "true", "predicted", "total")

#: Score histograms bin the logit in [-LOGIT_RANGE, LOGIT_RANGE] (scores 6e-6 to 0.999994; beyond, the end bins).
LOGIT_RANGE = 12.0
#: Bins of a score histogram (0.05 in logit: a score threshold of 0.01 is resolved to about 5 %).
SCORE_BINS = 480


def _counts(pred: tf.Tensor, labels: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    pred = tf.cast(pred, tf.float32) * valid
    labels = tf.cast(tf.cast(labels, tf.float32) > 0.5, tf.float32) * valid
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


def score_histogram(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor, mask: tf.Tensor,
                    bins: int = SCORE_BINS) -> tf.Tensor:
    """Counted edges (real, weight > 0) by logit bin, true and fake apart.

    Args:
      logits: [E] (or [T, E]: the last step).
      labels: [E] 0/1 (any numeric dtype).
      weights: [E] loss weights.
      mask: [E] 1 for real edges.
      bins: B, equal bins over [-LOGIT_RANGE, LOGIT_RANGE] (the end bins take what lies beyond).

    Returns:
      [2 B] float32: the true edges' counts by bin, then the fake edges'.
    """
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank == 2:
        logits = logits[-1]
    valid = tf.cast((tf.convert_to_tensor(mask) > 0) & (tf.convert_to_tensor(weights) > 0), tf.float32)
    true = tf.cast(tf.cast(labels, tf.float32) > 0.5, tf.float32) * valid
    width = 2.0 * LOGIT_RANGE / bins
    index = tf.clip_by_value(tf.cast(tf.floor((tf.cast(logits, tf.float32) + LOGIT_RANGE) / width), tf.int32),
                             0, bins - 1)
    return tf.concat([tf.math.unsorted_segment_sum(true, index, bins),
                      tf.math.unsorted_segment_sum(valid - true, index, bins)], axis=0)


def working_points(histogram: np.ndarray, target_purity: float, target_efficiency: float) -> dict:
    """Efficiency at a target purity and purity at a target efficiency, from a :func:`score_histogram` sum.

    The thresholds are the bins' lower edges; a threshold keeps its bin and every bin above it.

    Args:
      histogram: [2 B] counts (true, then fake).
      target_purity: the purity the efficiency is read at (the highest efficiency with at least this purity).
      target_efficiency: the efficiency the purity is read at (the highest purity with at least this efficiency).

    Returns:
      ``{"efficiency_at_purity", "threshold_at_purity", "purity_at_efficiency", "threshold_at_efficiency"}``,
      thresholds as scores; nan where no edge is counted, efficiency 0 (threshold nan) where no threshold reaches
      the purity.
    """
    true, fake = np.asarray(histogram, np.float64).reshape(2, -1)
    bins = true.size
    kept_true = np.cumsum(true[::-1])[::-1]  # at threshold bin k: the counts of bins k..B-1
    kept = kept_true + np.cumsum(fake[::-1])[::-1]
    edges = 1.0 / (1.0 + np.exp(-(-LOGIT_RANGE + 2.0 * LOGIT_RANGE * np.arange(bins) / bins)))
    edges[0] = 0.0  # the first bin also holds everything below the range: its threshold keeps every edge
    nan = float("nan")
    out = {"efficiency_at_purity": nan, "threshold_at_purity": nan,
           "purity_at_efficiency": nan, "threshold_at_efficiency": nan}
    if kept_true[0] <= 0:
        return out
    efficiency = kept_true / kept_true[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(kept > 0, kept_true / kept, nan)
        ok = purity >= target_purity  # nan (nothing kept) is never ok
    if ok.any():
        k = int(np.flatnonzero(ok)[np.argmax(efficiency[ok])])  # the lowest such threshold of the best efficiency
        out.update(efficiency_at_purity=float(efficiency[k]), threshold_at_purity=float(edges[k]))
    else:
        out.update(efficiency_at_purity=0.0)
    ok = efficiency >= target_efficiency
    k = int(np.flatnonzero(ok)[np.argmax(purity[ok])])  # bin 0 is always ok (efficiency 1)
    out.update(purity_at_efficiency=float(purity[k]), threshold_at_efficiency=float(edges[k]))
    return out


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

    A count vector is the [4] counts, optionally followed by a [2 B] :func:`score_histogram`.

    Args:
      values: initial counts (zeros by default; the first :meth:`add` sets the length).
      targets: ``(target_purity, target_efficiency)`` of :func:`working_points`, read when there is a histogram.
    """

    def __init__(self, values: Optional[np.ndarray] = None, targets: Optional[tuple[float, float]] = None):
        self.values = np.zeros(len(COUNT_NAMES), np.float64) if values is None else \
            np.asarray(values, np.float64).copy()
        self.targets = targets

    def add(self, counts) -> "Counts":
        """Adds a count vector (tensor or array). Returns self."""
        counts = np.asarray(counts, np.float64)
        if counts.size != self.values.size and not self.values.any():  # still the zeros: take the vector's length
            self.values = np.zeros_like(counts)
        self.values += counts
        return self

    def reduced(self, backend) -> "Counts":
        """The counts summed over ranks (a collective: every rank must call it)."""
        return Counts(backend.host_sum(self.values), targets=self.targets)

    def ratios(self) -> dict:
        """Efficiency (recall), purity (precision) and F1; NaN where a denominator is 0.

        Returns:
          ``{"efficiency", "purity", "f1"}`` plus every count by name, plus :func:`working_points` when there
          are targets.
        """
        tp, true, pred, total = self.values[:len(COUNT_NAMES)]
        eff = tp / true if true > 0 else float("nan")
        pur = tp / pred if pred > 0 else float("nan")
        f1 = 2 * tp / (true + pred) if (true + pred) > 0 else float("nan")
        out = {"efficiency": float(eff), "purity": float(pur), "f1": float(f1)}
        out.update({name: float(v) for name, v in zip(COUNT_NAMES, self.values)})
        if self.targets is not None:  # nan working points when nothing was counted (no batch, no histogram)
            hist = self.values[len(COUNT_NAMES):]
            out.update(working_points(hist if hist.size else np.zeros(2), *self.targets))
        return out


def ratios_from_counts(counts: Mapping[str, float]) -> dict:
    """Efficiency, purity and F1 of a ``{name: count}`` mapping with the :data:`COUNT_NAMES` keys."""
    return Counts(np.array([counts[n] for n in COUNT_NAMES])).ratios()
