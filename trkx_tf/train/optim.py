"""Adam as pure maths plus a small stateful wrapper, and the learning-rate schedule.

Why not ``snt.optimizers.Adam``: Sonnet's optimizers refuse to run under a ``tf.distribute`` strategy. Why not
``tf.keras.optimizers.Adam``: under Keras 3 it wants Keras variables and its own distribution layer. This one
is plain ``tf.Variable`` slots, so a backend can run :func:`adam_update` wherever it has to (for example inside
``strategy.extended.update``) and the checkpoint sees every slot.

Nothing here reads the config.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from trkx_tf.errors import ConfigError

LearningRate = Union[float, Callable[[tf.Tensor], tf.Tensor]]


def adam_update(param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, step: tf.Tensor, lr: tf.Tensor,
                beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One Adam step (Kingma & Ba, Algorithm 1), without side effects.

    Args:
      param: current parameter value, any shape S.
      grad: gradient, shape S.
      m: first-moment estimate, shape S.
      v: second-moment estimate, shape S.
      step: the 1-based index of this update (scalar).
      lr: learning rate (scalar).
      beta1: first-moment decay.
      beta2: second-moment decay.
      epsilon: added to the root of the second moment.

    Returns:
      ``(new_param, new_m, new_v)``, each of shape S.
    """
    def as_param_dtype(x):  # a Python float must not pass through float32 on its way to float64
        return tf.cast(x, param.dtype) if isinstance(x, (tf.Tensor, tf.Variable)) else tf.constant(x, param.dtype)

    step, lr = as_param_dtype(step), as_param_dtype(lr)
    m = beta1 * m + (1.0 - beta1) * grad
    v = beta2 * v + (1.0 - beta2) * tf.square(grad)
    m_hat = m / (1.0 - tf.pow(as_param_dtype(beta1), step))
    v_hat = v / (1.0 - tf.pow(as_param_dtype(beta2), step))
    return param - lr * m_hat / (tf.sqrt(v_hat) + epsilon), m, v


class Adam(tf.Module):
    """Adam with ``tf.Variable`` slots, a step counter and a learning rate that may be a schedule.

    Call :meth:`build` with the variables before any checkpoint restore or broadcast (slots are created there,
    never inside a ``tf.function``).

    Args:
      learning_rate: a float, or a callable of the 1-based step (int64 scalar tensor) returning a float tensor.
      beta1: first-moment decay.
      beta2: second-moment decay.
      epsilon: numerical floor.
      name: module name.

    Raises:
      ConfigError: a hyperparameter is out of range.
    """

    def __init__(self, learning_rate: LearningRate = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, name: str = "adam"):
        super().__init__(name=name)
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0 and epsilon > 0):
            raise ConfigError(f"Adam needs 0 <= beta < 1 and epsilon > 0 (got {beta1}, {beta2}, {epsilon})")
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        with self.name_scope:
            self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m: list[tf.Variable] = []
        self.v: list[tf.Variable] = []
        self._ids: Optional[list[int]] = None

    def build(self, variables: Sequence[tf.Variable]) -> None:
        """Creates the zero slots of ``variables`` (once; later calls must pass the same variables).

        Raises:
          ConfigError: called again with other variables.
        """
        ids = [id(v) for v in variables]
        if self._ids is not None:
            if ids != self._ids:
                raise ConfigError("Adam was built for other variables; make one optimizer per model")
            return
        with self.name_scope:
            self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
            self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]
        self._ids = ids

    def lr(self, step: Optional[tf.Tensor] = None) -> tf.Tensor:
        """The learning rate at 1-based ``step`` (default: the next update's step)."""
        step = self.iterations + 1 if step is None else step
        if callable(self.learning_rate):
            return tf.cast(self.learning_rate(step), tf.float32)
        return tf.constant(self.learning_rate, tf.float32)

    def apply(self, grads: Sequence[Optional[tf.Tensor]], variables: Sequence[tf.Variable]) -> tf.Tensor:
        """Applies one update; a None gradient leaves its variable and slots unchanged.

        Args:
          grads: one gradient (or IndexedSlices, or None) per variable.
          variables: the variables given to :meth:`build`.

        Returns:
          The learning rate used (float32 scalar).
        """
        self.build(variables)
        step = self.iterations.assign_add(1)
        lr = self.lr(step)
        for var, grad, m, v in zip(variables, grads, self.m, self.v):
            if grad is None:
                continue
            grad = tf.convert_to_tensor(grad)
            new_p, new_m, new_v = adam_update(var, tf.cast(grad, var.dtype), m, v, step, lr,
                                              self.beta1, self.beta2, self.epsilon)
            m.assign(new_m)
            v.assign(new_v)
            var.assign(new_p)
        return lr


class WarmupSchedule:
    """Linear warm-up from ``peak_lr / warmup_steps`` to ``peak_lr`` over ``warmup_steps`` updates, then flat, or,
    with ``decay_steps``, a cosine decay from ``peak_lr`` down to ``final_ratio * peak_lr`` at update
    ``decay_steps`` (flat after it).

    Works on Python ints (for logging) and on int tensors (inside a step function).

    Args:
      peak_lr: the learning rate after warm-up.
      warmup_steps: updates of warm-up (0: none).
      decay_steps: the update at which the cosine decay ends (0: no decay); must exceed ``warmup_steps``.
      final_ratio: the learning rate at the end of the decay, as a fraction of ``peak_lr``.

    Raises:
      ConfigError: ``peak_lr <= 0``, ``warmup_steps < 0``, ``0 < decay_steps <= warmup_steps`` or
        ``final_ratio`` outside [0, 1].
    """

    def __init__(self, peak_lr: float, warmup_steps: int = 0, decay_steps: int = 0, final_ratio: float = 0.0):
        if peak_lr <= 0 or warmup_steps < 0 or not 0.0 <= final_ratio <= 1.0:
            raise ConfigError(f"WarmupSchedule needs peak_lr > 0, warmup_steps >= 0 and 0 <= final_ratio <= 1 "
                              f"(got {peak_lr}, {warmup_steps}, {final_ratio})")
        if decay_steps and decay_steps <= warmup_steps:
            raise ConfigError(f"WarmupSchedule: the decay must end after the warm-up "
                              f"(decay_steps {decay_steps} <= warmup_steps {warmup_steps})")
        self.peak_lr, self.warmup_steps = float(peak_lr), int(warmup_steps)
        self.decay_steps, self.final_ratio = int(decay_steps), float(final_ratio)

    def __call__(self, step):
        """The learning rate of 1-based update ``step`` (int or int tensor)."""
        eager = isinstance(step, (int, np.integer))
        if eager:
            step, clip, cos = float(step), (lambda x: min(1.0, max(0.0, x))), math.cos
        else:
            step, clip, cos = tf.cast(step, tf.float32), (lambda x: tf.clip_by_value(x, 0.0, 1.0)), tf.cos
        factor = clip(step / self.warmup_steps) if self.warmup_steps else 1.0
        if self.decay_steps:
            t = clip((step - self.warmup_steps) / (self.decay_steps - self.warmup_steps))
            factor = factor * (self.final_ratio + (1.0 - self.final_ratio) * 0.5 * (1.0 + cos(math.pi * t)))
        return self.peak_lr * factor if eager else tf.constant(self.peak_lr, tf.float32) * factor


def scaled_lr(lr: float, size: int, rule: Literal["linear", "sqrt", "none"]) -> float:
    """The learning rate for a global batch ``size`` times larger than the single-process one.

    Args:
      lr: the single-process learning rate.
      size: number of ranks (data-parallel replicas).
      rule: ``"linear"`` (lr*size), ``"sqrt"`` (lr*sqrt(size)) or ``"none"``.

    Returns:
      The scaled learning rate.

    Raises:
      ConfigError: unknown rule or size < 1.
    """
    if size < 1:
        raise ConfigError(f"scaled_lr needs size >= 1 (got {size})")
    factors = {"linear": float(size), "sqrt": math.sqrt(size), "none": 1.0}
    if rule not in factors:
        raise ConfigError(f"lr scaling rule must be one of {sorted(factors)} (got {rule!r})")
    return lr * factors[rule]
