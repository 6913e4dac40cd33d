"""Dense building blocks shared by the models: a linear layer over several inputs, a LayerNorm, and an MLP.

The models need one thing ordinary MLPs do not give: the first layer of an MLP applied to a *concatenation*
``[a, b, c]`` without building the concatenation. :class:`MultiLinear` keeps one weight block per input part,
so ``[a, b, c] @ W == a @ W_a + b @ W_b + c @ W_c``; a model can then project node features once per node and
gather the projections onto the edges (``(x @ W_s)[senders]``) instead of multiplying a gathered per-edge copy.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N`` padded nodes, ``E`` padded edges, ``F`` node features);
``H`` is a layer width and ``B`` any leading (row) dimension.

Every module keeps its variables in float32 and computes in ``compute_dtype`` (float32, bfloat16 or float16):
weights are cast at use, so gradients reach the float32 variables (mixed precision).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf

from trkx_tf.errors import ConfigError
from trkx_tf.models.kernels import layer_norm_relu

_DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}


def as_compute_dtype(dtype: "str | tf.DType") -> tf.DType:
    """The compute dtype named by ``dtype``.

    Args:
      dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or the matching ``tf.DType``.

    Returns:
      The ``tf.DType``.

    Raises:
      ConfigError: any other dtype.
    """
    if isinstance(dtype, tf.DType):
        dtype = dtype.name
    if dtype not in _DTYPES:
        raise ConfigError(f"compute dtype {dtype!r} is not one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


class MultiLinear(snt.Module):
    """``y = sum_i parts[i] @ W_i + b``: one linear layer over the concatenation of its input parts.

    The weights are initialised exactly like ``snt.Linear`` on the concatenated input (truncated normal with
    stddev ``1/sqrt(sum of part widths)``), so the layer is the same function as ``snt.Linear`` applied to
    ``tf.concat(parts, -1)`` with ``w = tf.concat(weights, 0)``.

    Args:
      output_size: H, the output width.
      with_bias: whether to add a bias.
      compute_dtype: dtype of the computation (variables stay float32).
      name: module name.
    """

    def __init__(self, output_size: int, with_bias: bool = True, compute_dtype: "str | tf.DType" = "float32",
                 name: Optional[str] = None):
        super().__init__(name=name)
        if output_size < 1:
            raise ConfigError(f"MultiLinear output_size must be >= 1 (got {output_size})")
        self.output_size = int(output_size)
        self.with_bias = with_bias
        self.compute_dtype = as_compute_dtype(compute_dtype)
        self.weights: list[tf.Variable] = []
        self.b: Optional[tf.Variable] = None

    @snt.once
    def build(self, part_sizes: Sequence[int]) -> None:
        """Creates the variables for parts of the given widths (done automatically on the first call).

        Args:
          part_sizes: the last-axis width of each input part.

        Raises:
          ConfigError: a width is not a positive int (unknown widths cannot build the layer).
        """
        sizes = [int(s) if s is not None else -1 for s in part_sizes]
        if not sizes or min(sizes) < 1:
            raise ConfigError(f"{self.name}: input part widths must be known and >= 1 (got {list(part_sizes)})")
        init = snt.initializers.TruncatedNormal(stddev=1.0 / math.sqrt(sum(sizes)))
        self.weights = [tf.Variable(init([s, self.output_size], tf.float32), name=f"w{i}")
                        for i, s in enumerate(sizes)]
        if self.with_bias:
            self.b = tf.Variable(tf.zeros([self.output_size], tf.float32), name="b")

    def weight(self, i: int) -> tf.Tensor:
        """The i-th weight block [F_i, H], cast to the compute dtype."""
        return tf.cast(self.weights[i], self.compute_dtype)

    def bias(self) -> tf.Tensor:
        """The bias [H] cast to the compute dtype (zeros when the layer has none)."""
        if self.b is None:
            return tf.zeros([self.output_size], self.compute_dtype)
        return tf.cast(self.b, self.compute_dtype)

    def project(self, i: int, x: tf.Tensor) -> tf.Tensor:
        """``x @ W_i`` without the bias: the contribution of part ``i`` (e.g. per node, to gather onto edges).

        Args:
          i: index of the part.
          x: [B, F_i] in the compute dtype.

        Returns:
          [B, H].
        """
        return tf.matmul(x, self.weight(i))

    def __call__(self, parts: Sequence[tf.Tensor]) -> tf.Tensor:
        """Applies the layer.

        Args:
          parts: tensors [B, F_i] in the compute dtype, one per weight block, same B.

        Returns:
          [B, H].

        Raises:
          ConfigError: the number of parts differs from the one the layer was built with.
        """
        self.build([p.shape[-1] for p in parts])
        if len(parts) != len(self.weights):
            raise ConfigError(f"{self.name}: built for {len(self.weights)} input parts, called with {len(parts)}")
        out = tf.add_n([self.project(i, p) for i, p in enumerate(parts)]) if len(parts) > 1 \
            else self.project(0, parts[0])
        return out + self.bias() if self.with_bias else out


class LayerNorm(snt.Module):
    """Layer normalisation over the last axis with a learned scale and offset, statistics in float32.

    Args:
      eps: added to the variance.
      name: module name.
    """

    def __init__(self, eps: float = 1e-5, name: Optional[str] = None):
        super().__init__(name=name)
        self.eps = float(eps)
        self.scale: Optional[tf.Variable] = None
        self.offset: Optional[tf.Variable] = None

    @snt.once
    def build(self, size: int) -> None:
        """Creates scale (ones) and offset (zeros) of width ``size``."""
        self.scale = tf.Variable(tf.ones([int(size)], tf.float32), name="scale")
        self.offset = tf.Variable(tf.zeros([int(size)], tf.float32), name="offset")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Normalises ``x``.

        Args:
          x: [B, H] in any float dtype.

        Returns:
          [B, H] in the dtype of ``x``.
        """
        self.build(x.shape[-1])
        return layer_norm(x, self.scale, self.offset, self.eps)


def layer_norm(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, eps: float = 1e-5,
               relu: bool = False) -> tf.Tensor:
    """``(x - mean) / sqrt(var + eps) * scale + offset`` over the last axis, optionally followed by a ReLU.

    The reference (unfused) formulation, differentiated by TensorFlow; statistics in float32.

    Args:
      x: [B, H].
      scale: [H] (any float dtype; cast).
      offset: [H].
      eps: added to the variance.
      relu: apply ``max(0, .)`` to the result.

    Returns:
      [B, H] in the dtype of ``x``.
    """
    dtype = x.dtype
    x32 = tf.cast(x, tf.float32)
    mean, var = tf.nn.moments(x32, axes=[-1], keepdims=True)
    inv = tf.math.rsqrt(var + eps)
    y = (x32 - mean) * inv * tf.cast(scale, tf.float32) + tf.cast(offset, tf.float32)
    if relu:
        y = tf.nn.relu(y)
    return tf.cast(y, dtype)


class MLP(snt.Module):
    """A multilayer perceptron whose first layer may take several input parts.

    Layer ``k < L`` is ``Linear -> [LayerNorm] -> ReLU``; the last layer is a plain ``Linear`` (no activation,
    no normalisation), so ``MLP(parts) == last(hidden(first(parts)))``. The three pieces are public because the
    Interaction Network applies the first and the last layer in a fused way (see
    :mod:`trkx_tf.models.interaction`).

    Args:
      output_sizes: width of each layer, the last one being the output width; at least one.
      layernorm: LayerNorm after every hidden Linear (before the ReLU).
      compute_dtype: dtype of the computation (variables stay float32).
      first_layer_dtype: dtype of the first layer when it differs (an MLP on raw detector features keeps its
        first layer in float32 under mixed precision: bfloat16's 8-bit mantissa would round away the fine
        geometry); hidden activations are in ``compute_dtype`` all the same.
      name: module name.

    Raises:
      ConfigError: ``output_sizes`` is empty or has a width < 1.
    """

    def __init__(self, output_sizes: Sequence[int], layernorm: bool = True,
                 compute_dtype: "str | tf.DType" = "float32", first_layer_dtype: "str | tf.DType | None" = None,
                 name: Optional[str] = None):
        super().__init__(name=name)
        sizes = [int(s) for s in output_sizes]
        if not sizes or min(sizes) < 1:
            raise ConfigError(f"MLP output_sizes must be one or more widths >= 1 (got {list(output_sizes)})")
        self.output_sizes = sizes
        self.layernorm = bool(layernorm)
        self.compute_dtype = as_compute_dtype(compute_dtype)
        with self.name_scope:
            first_dtype = self.compute_dtype if first_layer_dtype is None else as_compute_dtype(first_layer_dtype)
            self.linears = [MultiLinear(s, compute_dtype=first_dtype if i == 0 else self.compute_dtype,
                                        name=f"linear_{i}") for i, s in enumerate(sizes)]
            self.norms = [LayerNorm(name=f"layer_norm_{i}") for i in range(len(sizes) - 1)] if layernorm else []

    def build(self, part_sizes: Sequence[int]) -> None:
        """Creates every variable for first-layer input parts of the given widths (idempotent).

        Args:
          part_sizes: the width of each input part of the first layer.
        """
        self.first.build(part_sizes)
        for k, linear in enumerate(self.linears[1:]):
            linear.build([self.output_sizes[k]])
        for k, norm in enumerate(self.norms):
            norm.build(self.output_sizes[k])

    @property
    def first(self) -> MultiLinear:
        """The first layer (the one that sees the input parts)."""
        return self.linears[0]

    @property
    def last(self) -> MultiLinear:
        """The output layer (a plain linear map of the last hidden activation; the first layer when L=1)."""
        return self.linears[-1]

    def activate(self, pre: "tf.Tensor | Sequence[tf.Tensor]", k: int) -> tf.Tensor:
        """``ReLU(LayerNorm(sum(pre)))`` (or ``ReLU(sum(pre))``) for hidden layer ``k``.

        Args:
          pre: the [B, H_k] pre-activation of layer ``k``, or terms that sum to it ([B, H_k] or [H_k] each);
            passing the terms lets the fused kernel add them.
          k: hidden layer index, ``0 <= k < L-1``.

        Returns:
          [B, H_k] in the compute dtype.
        """
        parts = [pre] if hasattr(pre, "shape") else list(pre)
        if self.layernorm:
            norm = self.norms[k]
            norm.build(parts[0].shape[-1])
            return layer_norm_relu(parts, norm.scale, norm.offset, norm.eps, out_dtype=self.compute_dtype)
        total = tf.cast(parts[0], self.compute_dtype)
        for p in parts[1:]:  # broadcasting sum ([H] bias terms), in the compute dtype
            total = total + tf.cast(p, self.compute_dtype)
        return tf.nn.relu(total)

    def hidden(self, first_pre: "tf.Tensor | Sequence[tf.Tensor]") -> tf.Tensor:
        """From the first layer's pre-activation to the last hidden activation.

        Args:
          first_pre: [B, H_0] output of :attr:`first` (bias included), or terms that sum to it.

        Returns:
          [B, H_{L-2}], the input of :attr:`last`. Only for ``L >= 2``.
        """
        h = self.activate(first_pre, 0)
        for k in range(1, len(self.linears) - 1):
            linear = self.linears[k]
            linear.build([h.shape[-1]])
            h = self.activate([linear.project(0, h), linear.bias()], k)
        return h

    def __call__(self, parts: "tf.Tensor | Sequence[tf.Tensor]") -> tf.Tensor:
        """Applies the MLP to the concatenation of ``parts``.

        Args:
          parts: one [B, F] tensor, or a sequence of [B, F_i] tensors (same B).

        Returns:
          [B, output_sizes[-1]] in the compute dtype.
        """
        if isinstance(parts, (tf.Tensor, tf.Variable)) or hasattr(parts, "shape"):
            parts = [parts]
        first = self.first
        parts = [tf.cast(p, first.compute_dtype) for p in parts]
        if len(self.linears) == 1:
            return tf.cast(first(parts), self.compute_dtype)
        first.build([p.shape[-1] for p in parts])
        terms = [first.project(i, p) for i, p in enumerate(parts)] + [first.bias()]
        return self.last([self.hidden(terms)])
