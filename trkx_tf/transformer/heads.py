"""The two heads of the TrackFormers paper as training tasks, and EncCla's balanced parameter bins.

* **EncReg** regresses the track parameters of every hit's particle, (sin φ, cos φ, θ, q/pT)
  (:data:`~trkx_tf.transformer.data.TARGETS`): loss ``sum_k (out_k - s_k target_k)^2`` per hit, with the scales
  ``s = (1, 1, 1, qpt_scale)`` (q/pT of soft particles reaches ±7/GeV: unscaled it would swamp the angles); the
  parameters predicted are ``out_k / s_k`` (:meth:`HitTask.parameters`).
* **EncCla** classifies every hit into a bin of the track-parameter space: softmax cross-entropy over the classes.

Balanced bins (:class:`ParameterBins`): φ, θ and q/pT are each cut at the quantiles of the training *particles*
(one entry per particle, not per hit), so every bin of one parameter holds the same number of training tracks; a
class is a (φ bin, θ bin, q/pT bin) triple, ``phi_bins * theta_bins * qpt_bins`` classes.

**FitAccuracy** (the paper's per-hit accuracy; docs/trackformers.md): the fraction of a set's hits of particles
whose predicted class is their particle's class. EncCla's predicted class is its arg-max; EncReg's is the class
of its regressed parameters under the same bins, so both heads are measured on one scale. The tasks return it
as the loop's ``efficiency`` count (``true_positive`` = hits in the right class, ``true`` = hits counted).

Both tasks follow the loop's contract (:mod:`trkx_tf.train.tasks`): the loss is the sum over the batch's hits of
particles divided by the **global** count of such hits (``weight_sum_fn``, the backend's all-reduce), so the sum
of the ranks' losses and gradients is exactly the global batch's.
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from trkx_tf.config import TransformerConfig, schema_default
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.files import write_text_atomic
from trkx_tf.train.losses import MIN_WEIGHT_SUM, WeightSumFn

BINS_FILE = "bins.json"


class ParameterBins:
    """Balanced bins of (φ, θ, q/pT) and the class of a parameter vector.

    Args:
      phi_edges, theta_edges, qpt_edges: the inner bin edges of each parameter (increasing; ``n - 1`` each).
    """

    def __init__(self, phi_edges: Sequence[float], theta_edges: Sequence[float], qpt_edges: Sequence[float]):
        self.edges = [np.asarray(e, np.float64) for e in (phi_edges, theta_edges, qpt_edges)]
        for e in self.edges:
            if e.ndim != 1 or np.any(np.diff(e) < 0):
                raise ConfigError("parameter bins: edges must be increasing 1-D lists")
        self.sizes = [len(e) + 1 for e in self.edges]

    @property
    def n_classes(self) -> int:
        return int(np.prod(self.sizes))

    @classmethod
    def fit(cls, targets: np.ndarray, phi_bins: int, theta_bins: int, qpt_bins: int) -> "ParameterBins":
        """Equal-population bins of the parameters of a set of particles.

        Args:
          targets: [n_particles, 4] (sin φ, cos φ, θ, q/pT), one row per particle.
          phi_bins, theta_bins, qpt_bins: bins of each parameter.

        Raises:
          DataError: no particle.
        """
        targets = np.asarray(targets, np.float64)
        if len(targets) == 0:
            raise DataError("parameter bins: no training particle to fit the bins on")
        values = parameters(targets)

        def inner(v, n):
            return np.quantile(v, np.arange(1, n) / n) if n > 1 else np.zeros(0)

        return cls(*(inner(values[:, i], n) for i, n in enumerate((phi_bins, theta_bins, qpt_bins))))

    def classes(self, targets: np.ndarray) -> np.ndarray:
        """The class of every row of [.., 4] parameters (numpy), int64."""
        values = parameters(np.asarray(targets, np.float64))
        index = [np.searchsorted(e, values[..., i], side="right") for i, e in enumerate(self.edges)]
        return (index[0] * self.sizes[1] + index[1]) * self.sizes[2] + index[2]

    def classes_tf(self, targets: tf.Tensor) -> tf.Tensor:
        """:meth:`classes` in TensorFlow on [B, N, 4] (float32), int32 [B, N]."""
        targets = tf.cast(targets, tf.float32)
        shape = tf.shape(targets)[:-1]
        values = tf.reshape(_parameters_tf(targets), [-1, 3])
        index = []
        for i, e in enumerate(self.edges):
            edges = tf.constant(e.astype(np.float32).reshape(1, -1)) if len(e) else tf.zeros([1, 0], tf.float32)
            index.append(tf.searchsorted(edges, values[None, :, i], side="right")[0])
        cls = (index[0] * self.sizes[1] + index[1]) * self.sizes[2] + index[2]
        return tf.reshape(tf.cast(cls, tf.int32), shape)

    def to_json(self) -> dict:
        return {"phi": self.edges[0].tolist(), "theta": self.edges[1].tolist(), "qpt": self.edges[2].tolist()}

    def save(self, path: os.PathLike | str) -> None:
        write_text_atomic(path, json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: os.PathLike | str) -> "ParameterBins":
        """Reads bins written by :meth:`save`.

        Raises:
          DataError: the file is missing or malformed.
        """
        try:
            data = json.loads(open(path).read())
            return cls(data["phi"], data["theta"], data["qpt"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: cannot read the parameter bins ({exc.__class__.__name__})") from None


def parameters(targets: np.ndarray) -> np.ndarray:
    """(φ, θ, q/pT) of [.., 4] (sin φ, cos φ, θ, q/pT) rows."""
    return np.stack([np.arctan2(targets[..., 0], targets[..., 1]), targets[..., 2], targets[..., 3]], -1)


def _parameters_tf(targets: tf.Tensor) -> tf.Tensor:
    return tf.stack([tf.math.atan2(targets[..., 0], targets[..., 1]), targets[..., 2], targets[..., 3]], -1)


def particle_rows(shards: Sequence[dict]) -> np.ndarray:
    """One target row per (event, particle) of hits-only shards (for :meth:`ParameterBins.fit`)."""
    rows = []
    for arrays in shards:
        ev = np.repeat(arrays["event_id"][:, None], arrays["particle_id"].shape[1], 1)
        real = arrays["hit_weights"] > 0
        keys = np.stack([ev[real], arrays["particle_id"][real]], 1)
        _, first = np.unique(keys, axis=0, return_index=True)
        rows.append(arrays["targets"][real][first])
    return np.concatenate(rows) if rows else np.zeros((0, 4))


class HitTask:
    """EncReg or EncCla as a training-loop task (:mod:`trkx_tf.train.tasks` contract).

    Args:
      head: ``reg`` or ``cla``.
      bins: the parameter bins (the classes of EncCla, FitAccuracy of both).
      qpt_scale: EncReg's q/pT output is q/pT times this (see the module docstring).
    """

    kind = "hits"

    def __init__(self, head: str, bins: ParameterBins, qpt_scale: float = schema_default(TransformerConfig, "qpt_scale")):
        if head not in ("reg", "cla"):
            raise ConfigError(f"transformer.head must be 'reg' or 'cla' (got {head!r})")
        if not qpt_scale > 0:
            raise ConfigError(f"transformer.qpt_scale must be > 0 (got {qpt_scale})")
        self.head, self.bins = head, bins
        self.scale = np.array([1.0, 1.0, 1.0, qpt_scale], np.float32)

    def parameters(self, outputs: np.ndarray) -> np.ndarray:
        """EncReg's predicted (sin φ, cos φ, θ, q/pT) from its outputs [.., 4] (numpy)."""
        return np.asarray(outputs, np.float32) / self.scale

    @property
    def outputs(self) -> int:
        """Numbers per hit the model must give."""
        return 4 if self.head == "reg" else self.bins.n_classes

    def prepare(self, batch: dict, forward: Optional[Callable] = None,
                rng: Optional[np.random.Generator] = None) -> dict:
        """The batch's model and loss entries (nothing to mine)."""
        return {k: batch[k] for k in ("hits", "mask", "targets", "weights")}

    def predicted_classes(self, outputs: tf.Tensor) -> tf.Tensor:
        """[B, N] int32 class of each hit's output (EncCla: arg-max; EncReg: the class of the regressed values)."""
        if self.head == "cla":
            return tf.argmax(outputs, -1, output_type=tf.int32)
        return self.bins.classes_tf(outputs / self.scale)

    def forward(self, model, batch: Mapping[str, tf.Tensor], weight_sum_fn: Optional[WeightSumFn] = None,
                training: bool = True):
        """``(loss, loss_sum, weight_sum, counts)`` of one batch (see the module docstring)."""
        out = tf.cast(model(batch), tf.float32)
        w = tf.cast(batch["weights"], tf.float32) * tf.cast(batch["mask"], tf.float32)
        true_cls = self.bins.classes_tf(batch["targets"])
        if self.head == "reg":
            per_hit = tf.reduce_sum(tf.square(out - tf.cast(batch["targets"], tf.float32) * self.scale), -1)
        else:
            per_hit = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=true_cls, logits=out)
        loss_sum = tf.reduce_sum(per_hit * w)
        weight_sum = tf.reduce_sum(w)
        total = weight_sum_fn(weight_sum) if weight_sum_fn is not None else weight_sum
        correct = tf.reduce_sum(w * tf.cast(tf.equal(self.predicted_classes(out), true_cls), tf.float32))
        counts = tf.stack([correct, weight_sum, weight_sum, weight_sum])
        return loss_sum / tf.maximum(total, MIN_WEIGHT_SUM), loss_sum, weight_sum, counts

    @staticmethod
    def throughput(batch: Mapping[str, np.ndarray]) -> tuple[int, int]:
        """``(events, real hits)`` of a batch."""
        mask = np.asarray(batch["mask"])
        return int(np.count_nonzero(mask.sum(-1))), int(mask.sum())


def fit_accuracy(bins: ParameterBins, predicted_classes: np.ndarray, targets: np.ndarray,
                 weights: np.ndarray) -> float:
    """FitAccuracy of some hits (numpy): the weighted share whose predicted class is their particle's class."""
    w = np.asarray(weights, np.float64)
    ok = np.asarray(predicted_classes) == bins.classes(targets)
    return float((w * ok).sum() / w.sum()) if w.sum() > 0 else math.nan
