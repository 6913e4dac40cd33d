"""Fused kernels with hand-written gradients: LayerNorm+ReLU, and the edge step of the Interaction Network.

TensorFlow runs every element-wise op as its own pass over memory, and its automatic gradient of a LayerNorm
takes about fifteen passes over an ``[E, H]`` tensor; on CPUs, where these tensors are far larger than the
caches, those passes cost as much as the matrix products. Here the element-wise work of a layer runs as one
kernel forward and one backward, in one of two implementations with the same maths:

* **native** (CPUs, the default where it builds): the C++ kernels of ``native/edge_ln.cc``
  (:mod:`trkx_tf.models.native`). They make one pass per row (gathers, LayerNorm statistics, ReLU, running sum
  and stores with the row in cache) and also compute, inside the same pass, the column sums (the gradients of
  scales, offsets and biases) and the segment sums over sorted ids (the receivers' sum of ``h`` forward, the
  receiver table's gradient backward), in float32 and in a fixed order. The IN edge kernels run 1.5-2x faster
  than the XLA ones and a training step 1.2-1.3x (``benchmarks/in_throughput.py``).
* **XLA** (GPUs, ``TRKX_NATIVE_OPS=0``, or no compiler): ``tf.function(jit_compile=True)`` kernels; column sums
  run as ``[1, B] x [B, H]`` products (much faster than XLA's column reductions on CPUs) and every scatter-add
  is a TensorFlow segment sum (XLA's CPU scatter is slow).

The sender-side scatter-adds stay TensorFlow segment sums in both (an in-kernel version, one table per row
partition, measured no faster: TensorFlow's runs beside other ops). Each kernel is checked against its unfused
formulation, and the two implementations against each other, in the tests.

Shape vocabulary: see :mod:`trkx_tf.graphs.batch` (``N``, ``E``); ``B`` rows, ``H`` features.
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from trkx_tf.models import native


#: The ``order`` of a segment (see :func:`edge_step`) whose ids are already non-decreasing.
SORTED = "sorted"


def column_sum(x: tf.Tensor) -> tf.Tensor:
    """``reduce_sum(x, 0)`` of an [B, H] tensor, as a [1, B] x [B, H] product (faster on CPUs).

    Args:
      x: [B, H], float32, float16 (both summed in float32) or bfloat16 (multiplied in bfloat16 with float32
        accumulation, the sum rounded to bfloat16: it is read once, never converted as a whole).

    Returns:
      [H] float32.
    """
    if x.dtype != tf.bfloat16:
        x = tf.cast(x, tf.float32)
    return tf.cast(tf.matmul(tf.ones([1, tf.shape(x)[0]], x.dtype), x)[0], tf.float32)


def _stat_dtype(dtype: tf.DType) -> tf.DType:
    """The dtype of the [B, H] terms whose column sums give the LayerNorm parameters' gradients: bfloat16 for
    bfloat16 layers (half the bytes to write and read again), float32 otherwise (float16 sums may overflow)."""
    return tf.bfloat16 if dtype == tf.bfloat16 else tf.float32


def _normalise(parts, scale, offset, eps):
    x = tf.cast(parts[0], tf.float32)
    for p in parts[1:]:
        x = x + tf.cast(p, tf.float32)
    mean = tf.reduce_mean(x, -1, keepdims=True)
    centred = x - mean
    inv = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), -1, keepdims=True) + eps)
    xhat = centred * inv
    return tf.nn.relu(xhat * scale + offset), xhat, inv


def _normalise_backward(dy, xhat, inv, scale, offset):
    xhat = tf.cast(xhat, tf.float32)
    dpre = tf.where(xhat * scale + offset > 0, dy, tf.zeros_like(dy))
    dxhat = dpre * scale
    dx = inv * (dxhat - tf.reduce_mean(dxhat, -1, keepdims=True)
                - xhat * tf.reduce_mean(dxhat * xhat, -1, keepdims=True))
    return dx, dpre, dpre * xhat


# ---------------------------------------------------------------------------------------- LayerNorm + ReLU
@tf.function(jit_compile=True)
def _ln_relu_forward(parts, scale, offset, eps, out_dtype):
    y, xhat, inv = _normalise(parts, scale, offset, eps)
    return tf.cast(y, out_dtype), tf.cast(xhat, out_dtype), inv


@tf.function(jit_compile=True)
def _ln_relu_backward(dy, xhat, inv, scale, offset, dtypes, stat_dtype):
    dx, dpre, dpre_xhat = _normalise_backward(tf.cast(dy, tf.float32), xhat, inv, scale, offset)
    return {d: tf.cast(dx, d) for d in dtypes}, tf.cast(dpre, stat_dtype), tf.cast(dpre_xhat, stat_dtype)


def _part_grads(parts, dx: dict) -> list:
    """The gradient of each summed part: ``dx`` for [B, H] parts, its column sum for broadcast [H] parts (one
    column sum, shared by all of them)."""
    col = []

    def bias_grad(dtype):
        if not col:
            col.append(column_sum(min(dx.values(), key=lambda t: t.dtype.size)))
        return tf.cast(col[0], dtype)

    return [dx[p.dtype.name] if p.shape.rank == 2 else bias_grad(p.dtype) for p in parts]


def _read(values) -> list:
    """Tensors of ``values``: variables (plain or distributed) become their current value."""
    return [tf.convert_to_tensor(v) if isinstance(v, tf.Variable) else v for v in values]


def _row_dtypes(parts) -> tuple:
    return tuple(sorted({p.dtype.name for p in parts if p.shape.rank == 2}))


def layer_norm_relu(parts: Sequence[tf.Tensor], scale: tf.Tensor, offset: tf.Tensor,
                    eps: float = 1e-5, out_dtype: Optional[tf.DType] = None) -> tf.Tensor:
    """``ReLU(LayerNorm(sum(parts)))`` over the last axis, statistics in float32, with a fused gradient.

    The same function as ``layers.layer_norm(tf.add_n(parts), scale, offset, eps, relu=True)``; summing the
    parts inside the kernel saves materialising their sum.

    Args:
      parts: tensors [B, H], or [H] (a bias, broadcast over rows); at least one of shape [B, H]; any float
        dtypes.
      scale: [H] LayerNorm scale.
      offset: [H] LayerNorm offset.
      eps: added to the variance.
      out_dtype: dtype of the result (default: that of the first part).

    Returns:
      [B, H].
    """
    parts = list(parts)
    out_dtype = parts[0].dtype if out_dtype is None else out_dtype
    lib = _native_lib(parts, out_dtype)  # None: the XLA kernels

    @tf.custom_gradient
    def fused(*args):
        xs, g, b = list(args[:-2]), args[-2], args[-1]
        g32, b32 = tf.cast(g, tf.float32), tf.cast(b, tf.float32)
        # the backward keeps xhat (one [B, H] tensor in the compute dtype) and inv ([B, 1] float32)
        if lib is None:
            y, xhat, inv = _ln_relu_forward(xs, g32, b32, eps, out_dtype)
        else:
            y, _, xhat, inv, _ = lib.trkx_edge_ln_forward(
                parts=[x for x in xs if x.shape.rank == 2], tables=[], rows=[], acc=[], sum_ids=[], num_segments=0,
                bias=_bias_sum(xs, g32.shape[0]), scale=g32, offset=b32, eps=eps)

        def grad(dy):
            if lib is None:
                dx, dpre, dpre_xhat = _ln_relu_backward(dy, xhat, inv, g32, b32, _row_dtypes(xs),
                                                        _stat_dtype(out_dtype))
                return _part_grads(xs, dx) + [tf.cast(column_sum(dpre_xhat), g.dtype),
                                              tf.cast(column_sum(dpre), b.dtype)]
            _, _, dx, dscale, doffset, dbias, _ = lib.trkx_edge_ln_backward(
                dense=[tf.cast(dy, out_dtype)], gsrc=[], gids=[], dz_next=[], sum_ids=[], num_segments=0, xhat=xhat,
                inv=inv, scale=g32, offset=b32, want_dx32=False, want_dxt=False)
            return ([dx if x.shape.rank == 2 else tf.cast(dbias, x.dtype) for x in xs]
                    + [tf.cast(dscale, g.dtype), tf.cast(doffset, b.dtype)])

        return y, grad

    # variables are read here, outside the custom gradient: a tf.distribute variable (one component per device)
    # would otherwise count as a captured variable that ``grad`` does not handle
    return fused(*_read(parts + [scale, offset]))


# ---------------------------------------------------------------------------------------- the IN edge step
@tf.function(jit_compile=True)
def _edge_forward(parts, tables, rows, acc, scale, offset, eps, out_dtype):
    # the tables are gathered inside the kernel: their [E, H] rows are never written to memory
    y, xhat, inv = _normalise(list(parts) + [tf.gather(t, r) for t, r in zip(tables, rows)], scale, offset, eps)
    h = tf.cast(y, out_dtype)
    acc_next = h if acc is None else acc + h
    return h, acc_next, tf.cast(xhat, out_dtype), inv


@tf.function(jit_compile=True)
def _edge_backward(d_acc, dh_m, d_sums, seg_ids, d_z_next, xhat, inv, scale, offset, dtypes, z_dtype, stat_dtype):
    dy = tf.zeros(tf.shape(xhat), tf.float32)
    if d_acc is not None:
        dy = dy + tf.cast(d_acc, tf.float32)
    if dh_m is not None:
        dy = dy + tf.cast(dh_m, tf.float32)
    for d_sum, ids in zip(d_sums, seg_ids):  # the gradient of a segment sum is a gather
        dy = dy + tf.cast(tf.gather(d_sum, ids), tf.float32)
    dx, dpre, dpre_xhat = _normalise_backward(dy, xhat, inv, scale, offset)
    dz = dx if d_z_next is None else dx + tf.cast(d_z_next, tf.float32)
    return ({d: tf.cast(dx, d) for d in dtypes}, tf.cast(dz, z_dtype), tf.cast(dpre, stat_dtype),
            tf.cast(dpre_xhat, stat_dtype))


def _xla_edge_backward(xs, tabs, rows, d_acc, dh_m, seg_pairs, d_z_next, xhat, inv, g32, b32, dx_dtypes):
    """The gradients of the parts, tables, scale and offset (float32) of :func:`edge_step`, by the XLA kernel."""
    dx, dz, dpre, dpre_xhat = _edge_backward(
        d_acc, dh_m, [d for d, _ in seg_pairs], [s for _, s in seg_pairs], d_z_next, xhat, inv, g32, b32,
        dx_dtypes, xs[0].dtype, _stat_dtype(xs[0].dtype))
    grads = [dz] + _part_grads(xs[1:], dx)  # z also flows straight into z_next (residual)
    grads += [tf.cast(tf.math.unsorted_segment_sum(dx["float32"], r, tf.shape(t)[0]), t.dtype)
              for t, r in zip(tabs, rows)]
    return grads + [column_sum(dpre_xhat), column_sum(dpre)]


def _native_edge_backward(lib, xs, tabs, rows, d_acc, dh_m, seg_pairs, d_z_next, xhat, inv, g32, b32, sorted_ids):
    """The same as :func:`_xla_edge_backward`, by the native kernel (column sums included; the gradient of a
    table gathered by ``sorted_ids`` is summed inside the kernel too)."""
    dt = xs[0].dtype
    in_kernel = next((k for k, r in enumerate(rows) if r is sorted_ids), None)
    dx32, dxt, dz, dscale, doffset, dbias, dsum = lib.trkx_edge_ln_backward(
        dense=[tf.cast(d, dt) for d in (d_acc, dh_m) if d is not None],
        gsrc=[tf.cast(d, dt) for d, _ in seg_pairs], gids=[s for _, s in seg_pairs],
        dz_next=[] if d_z_next is None else [tf.cast(d_z_next, dt)],
        sum_ids=[] if in_kernel is None else [sorted_ids],
        num_segments=0 if in_kernel is None else tf.shape(tabs[in_kernel])[0], xhat=xhat, inv=inv, scale=g32,
        offset=b32, want_dx32=len(tabs) > (in_kernel is not None), want_dxt=any(x.shape.rank == 2 for x in xs[1:]))
    grads = [dz] + [tf.cast(dxt if x.shape.rank == 2 else dbias, x.dtype) for x in xs[1:]]
    grads += [tf.cast(dsum if k == in_kernel else tf.math.unsorted_segment_sum(dx32, r, tf.shape(t)[0]), t.dtype)
              for k, (t, r) in enumerate(zip(tabs, rows))]
    return grads + [dscale, doffset]


def _bias_sum(xs, width) -> tf.Tensor:
    """The float32 sum of the broadcast ([H]) parts (zeros if none)."""
    total = tf.zeros([width], tf.float32)
    for x in xs:
        if x.shape.rank == 1:
            total += tf.cast(x, tf.float32)
    return total


def _native_lib(parts, out_dtype):
    """The native kernels' library where they apply (float32 or bfloat16, every [E, H] part in that dtype)."""
    if out_dtype not in (tf.float32, tf.bfloat16) or any(p.dtype != out_dtype for p in parts if p.shape.rank == 2):
        return None
    return native.ops()


def edge_step(parts: Sequence[tf.Tensor], scale: tf.Tensor, offset: tf.Tensor, acc: Optional[tf.Tensor],
              m: Optional[tf.Tensor], segments: Sequence[tuple], num_segments: tf.Tensor, residual: bool,
              eps: float = 1e-5, tables: Sequence[tuple] = ()):
    """One edge update of the Interaction Network (see :mod:`trkx_tf.models.interaction`), fused.

    With ``h = ReLU(LayerNorm(sum(parts) + sum_j table_j[rows_j]))`` (the edge core's hidden activation) it
    returns::

        z_next   = z + h @ m   (residual)   or   h @ m   (latent0)        # parts[0] is z
        acc_next = acc + h     (acc given)  or   h
        sums[k]  = unsorted_segment_sum(h, ids_k, num_segments)         # one per (ids_k, order_k)

    and differentiates all of it at once: every gradient that reaches ``h`` (from ``z_next``, ``acc_next`` and
    the sums) is added inside one XLA kernel together with the LayerNorm backward, instead of being gathered
    and accumulated by separate passes. With ``m`` None (the last step) only ``acc_next`` is computed.

    The tables (per-node projections) are gathered inside the forward kernel, so their per-edge rows are never
    written to memory, while their gradients, the scatter-adds of the pre-activation gradient onto the rows,
    are summed in float32 whatever their dtype.

    Args:
      parts: the summed pre-activation terms, ``z`` first; [E, H] (any float dtypes) or [H].
      scale: [H] LayerNorm scale.
      offset: [H] LayerNorm offset.
      acc: [E, H] running sum of ``h`` (residual), or None.
      m: [H, H] in the compute dtype, or None for the last step.
      segments: ``(ids, order)`` pairs: [E] int32 segment ids in ``[0, num_segments)`` and None, an [E]
        permutation sorting them (the sum then runs in order) or :data:`SORTED` (the ids are non-decreasing:
        the native kernels then sum the first such segment inside the forward kernel, and the gradient of a
        table whose rows are that same ids tensor inside the backward kernel).
      num_segments: scalar int32 (N + 1: the last segment collects padded edges).
      residual: ``z_next = z + h @ m`` rather than ``h @ m``.
      eps: LayerNorm epsilon.
      tables: ``(table, rows)`` pairs: [R, H] per-node terms (any float dtype) and the [E] int32 row of each
        edge in ``[0, R)``; ``table[rows]`` is one more summed term.

    Returns:
      ``(z_next, acc_next, sums)``; ``z_next`` is None and ``sums`` empty when ``m`` is None. ``sums[k]`` is
      [num_segments, H] in the dtype of ``h`` (the dtype of ``parts[0]``).
    """
    parts = list(parts)
    out_dtype = parts[0].dtype
    last = m is None
    n_parts, n_tables = len(parts), len(tables)
    has_acc = acc is not None
    ids = [i for i, _ in segments]
    orders = [o for _, o in segments]
    rows = [r for _, r in tables]
    # dtypes in which the backward writes the pre-activation gradient: z (parts[0]) gets its own gradient (with
    # the residual path added), the other [E, H] parts theirs, the tables' scatter-adds float32
    dx_dtypes = tuple(sorted(set(_row_dtypes(parts[1:])) | ({"float32"} if n_tables else set())))
    if not dx_dtypes and any(p.shape.rank != 2 for p in parts):
        dx_dtypes = (out_dtype.name,)  # only broadcast parts besides z: their gradient is a column sum of it
    lib = _native_lib(parts, out_dtype)  # None: the XLA kernels
    # native kernels: the first sorted segment is summed inside the forward kernel, and a table gathered by its
    # ids gets its gradient summed inside the backward kernel
    in_kernel_sums = [k for k, o in enumerate(orders) if o is SORTED][:1] if lib is not None else []
    sorted_ids = ids[in_kernel_sums[0]] if in_kernel_sums else None

    @tf.custom_gradient
    def fused(*args):
        xs = list(args[:n_parts])
        tabs = list(args[n_parts:n_parts + n_tables])
        g, b = args[n_parts + n_tables], args[n_parts + n_tables + 1]
        rest = list(args[n_parts + n_tables + 2:])
        acc_in = rest.pop(0) if has_acc else None
        m_in = None if last else rest.pop(0)
        g32, b32 = tf.cast(g, tf.float32), tf.cast(b, tf.float32)
        in_kernel = [] if last else in_kernel_sums  # the sum the native forward kernel computes, if any
        if lib is None:
            h, acc_next, xhat, inv = _edge_forward(xs, tabs, rows, acc_in, g32, b32, eps, out_dtype)
        else:
            h, acc_next, xhat, inv, kernel_sum = lib.trkx_edge_ln_forward(
                parts=[x for x in xs if x.shape.rank == 2], tables=[tf.cast(t, out_dtype) for t in tabs],
                rows=rows, acc=[] if acc_in is None else [acc_in], sum_ids=[ids[k] for k in in_kernel],
                num_segments=num_segments, bias=_bias_sum(xs, g32.shape[0]), scale=g32, offset=b32, eps=eps)
        outputs = [acc_next]
        if not last:
            zh = tf.matmul(h, m_in)
            z_next = xs[0] + zh if residual else zh
            sums = []
            for k, (seg, order) in enumerate(zip(ids, orders)):
                if k in in_kernel:
                    sums.append(kernel_sum)
                elif isinstance(order, tf.Tensor):
                    sums.append(tf.math.unsorted_segment_sum(tf.gather(h, order), tf.gather(seg, order),
                                                             num_segments))
                else:
                    sums.append(tf.math.unsorted_segment_sum(h, seg, num_segments))
            outputs = [z_next, acc_next] + sums

        def grad(*douts):
            douts = list(douts)
            if last:
                d_z_next, d_acc, d_sums = None, douts[0], []
            else:
                d_z_next, d_acc, d_sums = douts[0], douts[1], douts[2:]
            dh_m = None if d_z_next is None else tf.matmul(d_z_next, m_in, transpose_b=True)
            seg_pairs = [(d, s) for d, s in zip(d_sums, ids) if d is not None]
            if lib is not None:
                grads = _native_edge_backward(lib, xs, tabs, rows, d_acc, dh_m, seg_pairs,
                                              d_z_next if residual else None, xhat, inv, g32, b32, sorted_ids)
            else:
                grads = _xla_edge_backward(xs, tabs, rows, d_acc, dh_m, seg_pairs, d_z_next if residual else None,
                                           xhat, inv, g32, b32, dx_dtypes)
            grads[-2:] = [tf.cast(grads[-2], g.dtype), tf.cast(grads[-1], b.dtype)]  # scale, offset
            if has_acc:
                grads.append(tf.zeros_like(acc_in) if d_acc is None else tf.cast(d_acc, acc_in.dtype))
            if not last:
                d_m = tf.zeros_like(m_in) if d_z_next is None else \
                    tf.matmul(h, tf.cast(d_z_next, h.dtype), transpose_a=True)
                grads.append(tf.cast(d_m, m_in.dtype))
            return grads

        return outputs, grad

    args = parts + [t for t, _ in tables] + [scale, offset] + ([acc] if has_acc else []) + ([] if last else [m])
    outs = fused(*_read(args))  # variables read outside the custom gradient (see layer_norm_relu)
    if last:
        return None, outs[0], []
    return outs[0], outs[1], list(outs[2:])
