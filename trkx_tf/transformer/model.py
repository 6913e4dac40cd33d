"""The encoder-only hit transformer of the TrackFormers paper, in Sonnet, with padding masks and mixed precision.

Every hit of an event (or of a local-attention sector, :mod:`trkx_tf.transformer.local`) is a token: its
cylindrical input features (:data:`~trkx_tf.transformer.data.INPUT_FEATURES`) are embedded by a linear layer, go
through ``layers`` pre-LayerNorm encoder layers (multi-head self-attention over the event's hits, then a ReLU
feed-forward block, each with a residual connection) and a final LayerNorm, and a linear head gives ``outputs``
numbers per hit (4 regressed parameters for EncReg, one logit per class for EncCla).

Padding: the attention logits of padded keys are set to a large negative number before the softmax, so a real
hit's output does not depend on the padded hits nor on how many there are (tests/transformer). Padded hits'
outputs are garbage and must be masked by the caller (the tasks weigh them 0).

Mixed precision: variables are float32; the embedding layer and the head compute in float32, the encoder layers in
``compute_dtype`` (bfloat16 or float16), with the softmax and the LayerNorm statistics in float32.

Shapes: ``B`` events, ``N`` padded hits, ``F`` features, ``H`` = ``hidden``, ``K`` outputs.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import sonnet as snt
import tensorflow as tf

from trkx_tf.config import TransformerConfig, schema_default
from trkx_tf.errors import ConfigError
from trkx_tf.models.layers import LayerNorm, MultiLinear, as_compute_dtype

#: Added to the attention logits of padded keys.
MASKED_LOGIT = -1e9


class Dense(snt.Module):
    """A linear layer on the last axis of a [B, N, F] tensor (a :class:`MultiLinear` on the flattened rows)."""

    def __init__(self, output_size: int, compute_dtype="float32", with_bias: bool = True, name: Optional[str] = None):
        super().__init__(name=name)
        self.compute_dtype = as_compute_dtype(compute_dtype)
        self.linear = MultiLinear(output_size, with_bias=with_bias, compute_dtype=self.compute_dtype, name="linear")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)
        y = self.linear([tf.reshape(tf.cast(x, self.compute_dtype), [-1, x.shape[-1]])])
        return tf.reshape(y, tf.concat([shape[:-1], [self.linear.output_size]], 0))


def masked_attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Scaled dot-product attention over the hits of each event, padded keys excluded.

    Args:
      q, k, v: [B, heads, N, D].
      mask: [B, N] 1 for real hits, 0 for padding; or [B, N, N] (query, key) 1 where a query may attend a key.

    Returns:
      [B, heads, N, D] in the dtype of ``v``.
    """
    logits = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) / math.sqrt(q.shape[-1])
    mask = tf.cast(mask, tf.float32)
    allowed = mask[:, None, None, :] if mask.shape.rank == 2 else mask[:, None, :, :]
    weights = tf.nn.softmax(logits + (1.0 - allowed) * MASKED_LOGIT, axis=-1)
    return tf.matmul(tf.cast(weights, v.dtype), v)


class EncoderLayer(snt.Module):
    """Pre-LayerNorm transformer encoder layer: ``x + MHA(LN(x))``, then ``+ FFN(LN(.))``.

    The key projection has no bias: adding the same vector to every key shifts all of a query's logits equally,
    which the softmax ignores, so its gradient is zero up to rounding, and Adam would turn that rounding into
    full-size updates (different on every reduction order: 2 ranks would drift from 1).
    """

    def __init__(self, hidden: int, num_heads: int, ff: int, compute_dtype="float32", name: Optional[str] = None):
        super().__init__(name=name)
        if hidden % num_heads:
            raise ConfigError(f"transformer.hidden ({hidden}) must be a multiple of transformer.num_heads "
                              f"({num_heads})")
        self.hidden, self.num_heads = int(hidden), int(num_heads)
        with self.name_scope:
            self.norm_attention = LayerNorm(name="norm_attention")
            self.query = Dense(hidden, compute_dtype, name="query")
            self.key = Dense(hidden, compute_dtype, with_bias=False, name="key")
            self.value = Dense(hidden, compute_dtype, name="value")
            self.out = Dense(hidden, compute_dtype, name="out")
            self.norm_ff = LayerNorm(name="norm_ff")
            self.ff_in = Dense(ff, compute_dtype, name="ff_in")
            self.ff_out = Dense(hidden, compute_dtype, name="ff_out")

    def __call__(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Applies the layer to [B, N, H] activations with a [B, N] (or [B, N, N]) mask."""
        b, n = tf.shape(x)[0], tf.shape(x)[1]
        d = self.hidden // self.num_heads
        y = self.norm_attention(x)
        q, k, v = (tf.transpose(tf.reshape(p(y), [b, n, self.num_heads, d]), [0, 2, 1, 3])
                   for p in (self.query, self.key, self.value))
        att = tf.reshape(tf.transpose(masked_attention(q, k, v, mask), [0, 2, 1, 3]), [b, n, self.hidden])
        x = x + tf.cast(self.out(att), x.dtype)
        h = tf.nn.relu(self.ff_in(self.norm_ff(x)))
        return x + tf.cast(self.ff_out(h), x.dtype)


class HitTransformer(snt.Module):
    """The encoder-only hit transformer (see the module docstring).

    Args:
      outputs: K, numbers per hit.
      hidden: H.
      num_heads: attention heads (H must divide by it).
      layers: encoder layers.
      ff: feed-forward width.
      compute_dtype: ``float32``, ``bfloat16`` or ``float16`` of the encoder layers.
      name: module name.
    """

    def __init__(self, outputs: int, hidden: int = schema_default(TransformerConfig, "hidden"),
                 num_heads: int = schema_default(TransformerConfig, "num_heads"),
                 layers: int = schema_default(TransformerConfig, "layers"), ff: int = schema_default(TransformerConfig, "ff"),
                 compute_dtype="float32", name: str = "hit_transformer"):
        super().__init__(name=name)
        if min(outputs, hidden, num_heads, layers, ff) < 1:
            raise ConfigError("transformer: outputs, hidden, num_heads, layers and ff must all be >= 1")
        self.compute_dtype = as_compute_dtype(compute_dtype)
        with self.name_scope:
            self.embed = Dense(hidden, "float32", name="embed")
            self.layers = [EncoderLayer(hidden, num_heads, ff, self.compute_dtype, name=f"layer_{i}")
                           for i in range(layers)]
            self.norm = LayerNorm(name="norm")
            self.head = Dense(outputs, "float32", name="head")

    def __call__(self, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """The outputs of every hit.

        Args:
          batch: ``hits`` [B, N, F] and ``mask`` [B, N] (or ``attention_mask`` [B, N, N], which wins).

        Returns:
          [B, N, K] float32 (garbage at padded hits).
        """
        mask = batch["attention_mask"] if "attention_mask" in batch else batch["mask"]
        x = tf.cast(self.embed(tf.cast(batch["hits"], tf.float32)), self.compute_dtype)
        for layer in self.layers:
            x = layer(x, mask)
        return self.head(tf.cast(self.norm(x), tf.float32))


def build_transformer(cfg, outputs: int, compute_dtype: str = "float32") -> HitTransformer:
    """The model of the ``transformer`` config section with ``outputs`` numbers per hit."""
    return HitTransformer(outputs, cfg.hidden, cfg.num_heads, cfg.layers, cfg.ff, compute_dtype)
