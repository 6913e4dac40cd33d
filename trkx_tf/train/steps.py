"""Step functions compiled once per bucket shape.

The shard reader yields batches whose shapes are fixed by their bucket (:mod:`trkx_tf.graphs.batch`). For each
distinct shape :class:`StepFunctions` builds one ``tf.function`` with that fixed input signature, traced on its
first call and never again; a new bucket gets its own function. :attr:`StepFunctions.trace_counts` counts the
Python traces (a side effect that only runs while tracing), which is how the tests prove there is no retracing.

A train step: forward, loss normalised by the global weight sum (``backend.reduce_sum``), gradients through
``backend.tape``, update through ``backend.apply_gradients``; it returns the loss, its local sums and the
metric counts. With ``float16`` compute a dynamic loss scale guards against underflow (bfloat16 needs none).

A process that runs R > 1 replicas (``backend.local_replicas``) takes stacked batches (``[R] + S``, see
:mod:`trkx_tf.train.replicas`); its outputs are the sums over its replicas of the per-replica loss terms and
counts, i.e. what one rank with all R batches would return, so the loop is the same for any R.
"""

from __future__ import annotations

import collections
from typing import Callable, Mapping, Optional

import numpy as np
import tensorflow as tf

from trkx_tf.train.backend import Backend
from trkx_tf.train.tasks import EdgeTask, tensor_signature


class DynamicLossScale(tf.Module):
    """Loss scaling for float16: halve on a non-finite gradient (and skip the update), double after
    ``growth_interval`` finite steps.

    Args:
      initial: initial scale.
      growth_interval: finite steps between doublings.
    """

    def __init__(self, initial: float = 2.0 ** 15, growth_interval: int = 2000):
        super().__init__(name="loss_scale")
        self.scale = tf.Variable(initial, dtype=tf.float32, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")
        self.growth_interval = int(growth_interval)

    def update(self, finite: tf.Tensor) -> None:
        """Adjusts the scale after a step whose gradients were (not) all finite."""
        grow = finite & (self.good_steps + 1 >= self.growth_interval)
        self.scale.assign(tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale), self.scale * 0.5))
        self.good_steps.assign(tf.where(finite & ~grow, self.good_steps + 1, tf.zeros_like(self.good_steps)))


class StepFunctions:
    """Train / evaluate / forward functions of one model, compiled per bucket shape.

    Args:
      model: a Sonnet module; ``task.forward`` knows how to call it.
      task: an :class:`~trkx_tf.train.tasks.EdgeTask` or :class:`~trkx_tf.train.tasks.EmbeddingTask`.
      optimizer: an :class:`~trkx_tf.train.optim.Adam` (``build``, ``apply``).
      backend: the distributed hooks (:class:`~trkx_tf.train.backend.Backend`).
      loss_scale: a :class:`DynamicLossScale` (float16 training) or None.
      jit_compile: compile the whole step with XLA (off by default: on CPUs XLA's scatter-adds are slow).
      dynamic_shapes: one function per kind for batches of any size (``tf.function`` input signature with a
        ``None`` leading axis: unpadded graphs at their own sizes) instead of one per bucket shape. For comparisons
        with the padded buckets (``benchmarks/distributed_padding.py``); kernels that XLA compiles are still
        compiled once per distinct shape.
    """

    def __init__(self, model, task: EdgeTask, optimizer, backend: Backend,
                 loss_scale: Optional[DynamicLossScale] = None, jit_compile: bool = False,
                 dynamic_shapes: bool = False):
        self.model, self.task, self.optimizer, self.backend = model, task, optimizer, backend
        self.loss_scale = loss_scale
        self.jit_compile = jit_compile
        self.dynamic_shapes = dynamic_shapes
        self.trace_counts: collections.Counter = collections.Counter()
        self._functions: dict = {}

    # ------------------------------------------------------------------------------------------ building
    def build(self, batch: Mapping[str, np.ndarray]) -> None:
        """Creates the model's and the optimizer's variables from one warm-up batch (eagerly, no update).

        Call it on every rank before a checkpoint restore or a broadcast: Sonnet creates variables lazily.

        Args:
          batch: one replica's batch (not stacked).
        """
        tensors = {k: tf.constant(v) for k, v in batch.items()}
        with self.backend.scope():  # tf.distribute: lazily created variables must be mirrored ones
            self.task.forward(self.model, tensors, None, training=False)
            self.optimizer.build(self.model.trainable_variables)

    @property
    def variables(self) -> list:
        """Every variable a broadcast must synchronise: the model's, the optimizer's, the loss scale's."""
        out = list(self.model.variables) + list(self.optimizer.variables)
        if self.loss_scale is not None:
            out += list(self.loss_scale.variables)
        return out

    # ------------------------------------------------------------------------------------------ step bodies
    def _train_body(self, batch: dict) -> dict:
        self.trace_counts["train"] += 1  # runs only while tracing
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, loss_sum, weight_sum, counts = self.task.forward(self.model, batch, self.backend.reduce_sum,
                                                                   training=True)
            scaled = loss * self.loss_scale.scale if self.loss_scale is not None else loss
        tape = self.backend.tape(tape)
        grads = tape.gradient(scaled, variables)
        if self.loss_scale is not None:
            grads = [None if g is None else tf.convert_to_tensor(g) / self.loss_scale.scale for g in grads]
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
            lr = tf.cond(finite, lambda: self.backend.apply_gradients(self.optimizer, grads, variables),
                         lambda: self.optimizer.lr())
            self.loss_scale.update(finite)
        else:
            lr = self.backend.apply_gradients(self.optimizer, grads, variables)
        return {"loss": loss, "loss_sum": loss_sum, "weight_sum": weight_sum, "counts": counts, "lr": lr}

    def _eval_body(self, batch: dict) -> dict:
        self.trace_counts["evaluate"] += 1
        loss, loss_sum, weight_sum, counts = self.task.forward(self.model, batch, self.backend.reduce_sum,
                                                               training=False)
        return {"loss": loss, "loss_sum": loss_sum, "weight_sum": weight_sum, "counts": counts}

    def _forward_body(self, batch: dict) -> tf.Tensor:
        self.trace_counts["forward"] += 1
        return self.model(batch)

    # ------------------------------------------------------------------------------------------ dispatch
    def _function(self, kind: str, batch: Mapping[str, np.ndarray]) -> Callable:
        signature = tensor_signature(batch)
        if self.dynamic_shapes:
            # only the leading (node, edge or graph) axis varies; feature widths stay static
            signature = {k: tf.TensorSpec([None] + s.shape.as_list()[1:] if s.shape.rank else [], s.dtype, name=k)
                         for k, s in signature.items()}
        key = (kind, tuple(sorted((k, tuple(s.shape.as_list()), s.dtype.name) for k, s in signature.items())))
        fn = self._functions.get(key)
        if fn is None:
            body = {"train": self._train_body, "evaluate": self._eval_body, "forward": self._forward_body}[kind]
            if kind != "forward":
                body = _combined(self.backend.wrap_step(body))
            fn = tf.function(body, input_signature=[signature], jit_compile=self.jit_compile or None,
                             reduce_retracing=False)
            self._functions[key] = fn
        return fn

    def train(self, batch: Mapping[str, np.ndarray]) -> dict:
        """One update on a batch; returns numpy ``loss, loss_sum, weight_sum, counts, lr``."""
        out = self._function("train", batch)(dict(batch))
        return {k: v.numpy() for k, v in out.items()}

    def evaluate(self, batch: Mapping[str, np.ndarray]) -> dict:
        """Loss terms and counts of a batch without update; numpy ``loss, loss_sum, weight_sum, counts``."""
        out = self._function("evaluate", batch)(dict(batch))
        return {k: v.numpy() for k, v in out.items()}

    def forward(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's output on a batch (numpy), compiled per bucket."""
        return self._function("forward", batch)(dict(batch)).numpy()

    @property
    def compiled_buckets(self) -> int:
        """Number of (kind, bucket shape) functions built so far."""
        return len(self._functions)


def _combined(step: Callable[[dict], list]) -> Callable[[dict], dict]:
    """A process step from a wrapped step returning its local replicas' outputs: the loss terms and counts are
    summed over the replicas (each replica's loss is already divided by the global weight sum), the learning rate
    is the first replica's (all replicas apply the same update)."""
    def run(batch: dict) -> dict:
        outputs = step(batch)
        if len(outputs) == 1:
            return outputs[0]
        return {k: outputs[0][k] if k == "lr" else tf.add_n([o[k] for o in outputs]) for k in outputs[0]}

    return run
