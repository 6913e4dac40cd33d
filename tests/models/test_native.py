"""The native CPU kernels of the IN edge step (trkx_tf/models/native/edge_ln.cc) against the XLA kernels."""

import os

import numpy as np
import pytest
import tensorflow as tf

from trkx_tf.models import kernels, native
from trkx_tf.models.layers import layer_norm


@pytest.fixture(scope="module")
def lib():
    ops = native.ops()
    assert ops is not None, "the native kernels did not build (see the warning above)"
    return ops


def _tensors(dtype, e=300, n=40, h=24, seed=0):
    rng = np.random.default_rng(seed)
    t = lambda *s: tf.cast(rng.normal(size=s).astype(np.float32), dtype)  # noqa: E731
    f = lambda *s: tf.constant(rng.normal(size=s).astype(np.float32))  # noqa: E731
    return dict(z=t(e, h), z0=t(e, h), acc=t(e, h), t_r=t(n, h), t_s=t(n, h), bias=f(h), scale=f(h) + 1.0,
                offset=f(h), rows_r=tf.constant(np.sort(rng.integers(0, n, e)), tf.int32),
                rows_s=tf.constant(rng.integers(0, n, e), tf.int32), d_acc=t(e, h), dh_m=t(e, h), d_sum=t(n + 1, h),
                d_z=t(e, h))


def _close(got, want, dtype, scale=1.0):
    got, want = (tf.cast(x, tf.float32).numpy() for x in (got, want))
    # bfloat16 outputs may differ by one unit in the last place (8 bits) where the float32 maths rounds apart
    tol = 1e-5 if dtype == tf.float32 else 2 ** -7
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
@pytest.mark.parametrize("e,n", [(300, 40), (3000, 1000)])  # runs of equal ids across blocks; inside blocks
def test_forward_and_backward_match_the_xla_kernels(lib, dtype, e, n):
    x = _tensors(dtype, e=e, n=n)
    tables, rows = [x["t_r"], x["t_s"]], [x["rows_r"], x["rows_s"]]
    want = kernels._edge_forward([x["z"], x["z0"], tf.cast(x["bias"], dtype)], tables, rows, x["acc"], x["scale"],
                                 x["offset"], 1e-5, dtype)
    got = lib.trkx_edge_ln_forward(parts=[x["z"], x["z0"]], tables=tables, rows=rows, acc=[x["acc"]],
                                   sum_ids=[x["rows_r"]], num_segments=n, bias=x["bias"], scale=x["scale"],
                                   offset=x["offset"], eps=1e-5)
    for g, w in zip(got[:4], want):
        _close(g, w, dtype, scale=float(tf.reduce_max(tf.abs(tf.cast(w, tf.float32)))))
    h, _, xhat, inv, sums = got
    # the in-kernel sum adds in float32 and rounds once; TensorFlow's adds in the dtype
    want_sums = tf.math.unsorted_segment_sum(tf.cast(h, tf.float32), x["rows_r"], n)
    _close(sums, want_sums, dtype, scale=float(tf.reduce_max(tf.abs(want_sums))))

    dx, dz, dpre, dpre_xhat = kernels._edge_backward(
        x["d_acc"], x["dh_m"], [x["d_sum"]], [x["rows_r"]], x["d_z"], xhat, inv, x["scale"], x["offset"],
        ("float32", dtype.name), dtype, tf.float32)
    dx32, dxt, dz_n, dscale, doffset, dbias, dsum = lib.trkx_edge_ln_backward(
        dense=[x["d_acc"], x["dh_m"]], gsrc=[x["d_sum"]], gids=[x["rows_r"]], dz_next=[x["d_z"]],
        sum_ids=[x["rows_r"]], num_segments=n, xhat=xhat, inv=inv, scale=x["scale"], offset=x["offset"],
        want_dx32=True, want_dxt=True)
    big = float(tf.reduce_max(tf.abs(dx["float32"])))
    np.testing.assert_allclose(dx32.numpy(), dx["float32"].numpy(), rtol=1e-5, atol=1e-5 * big)
    _close(dxt, dx[dtype.name], dtype, big)
    _close(dz_n, dz, dtype, big)
    for got_sum, terms in ((dscale, dpre_xhat), (doffset, dpre), (dbias, dx["float32"])):
        want_sum = tf.reduce_sum(terms, 0).numpy()
        np.testing.assert_allclose(got_sum.numpy(), want_sum, rtol=1e-4, atol=1e-4 * np.abs(want_sum).max())
    want_dsum = tf.math.unsorted_segment_sum(dx32, x["rows_r"], n).numpy()
    assert (want_dsum == 0).all(axis=1).any() or e < 1000  # some segments are empty (gaps in the ids)
    np.testing.assert_allclose(dsum.numpy(), want_dsum, rtol=1e-5, atol=1e-5 * np.abs(want_dsum).max())


def test_optional_inputs_and_outputs(lib):
    x = _tensors(tf.float32, e=50, n=7, h=8)
    h, acc_next, xhat, inv, sums = lib.trkx_edge_ln_forward(parts=[x["z"]], tables=[], rows=[], acc=[], sum_ids=[],
                                                            num_segments=0, bias=x["bias"], scale=x["scale"],
                                                            offset=x["offset"], eps=1e-5)
    assert sums.shape == (0, 8)
    np.testing.assert_array_equal(acc_next.numpy(), h.numpy())  # no acc: acc_next is h
    ref = layer_norm(x["z"] + x["bias"], x["scale"], x["offset"], relu=True)  # the unfused maths
    np.testing.assert_allclose(h.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    dx32, dxt, dz, *_ = lib.trkx_edge_ln_backward(
        dense=[], gsrc=[], gids=[], dz_next=[], sum_ids=[], num_segments=0, xhat=xhat, inv=inv, scale=x["scale"],
        offset=x["offset"], want_dx32=False, want_dxt=False)
    assert dx32.shape == (0, 8) and dxt.shape == (0, 8)
    np.testing.assert_array_equal(dz.numpy(), np.zeros((50, 8), np.float32))  # no gradient reached h


def test_out_of_range_rows_are_rejected(lib):
    x = _tensors(tf.float32, e=20, n=5, h=4)
    bad = tf.constant([0] * 19 + [5], tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"rows\[19\] = 5 is not in \[0, 5\)"):
        lib.trkx_edge_ln_forward(parts=[x["z"]], tables=[x["t_r"]], rows=[bad], acc=[], sum_ids=[], num_segments=0,
                                 bias=x["bias"], scale=x["scale"], offset=x["offset"], eps=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sum_ids must be sorted: sum_ids\[1\] = 0 < 3"):
        lib.trkx_edge_ln_forward(parts=[x["z"]], tables=[], rows=[], acc=[], sum_ids=[tf.constant([3] + [0] * 19)],
                                 num_segments=5, bias=x["bias"], scale=x["scale"], offset=x["offset"], eps=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"num_segments must be a scalar, got \[2\]"):
        lib.trkx_edge_ln_forward(parts=[x["z"]], tables=[], rows=[], acc=[], sum_ids=[], num_segments=[5, 5],
                                 bias=x["bias"], scale=x["scale"], offset=x["offset"], eps=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="parts must be"):
        lib.trkx_edge_ln_forward(parts=[x["z"], x["t_r"]], tables=[], rows=[], acc=[], sum_ids=[], num_segments=0,
                                 bias=x["bias"], scale=x["scale"], offset=x["offset"], eps=1e-5)


def test_build_is_cached_per_key_and_published_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("TRKX_CACHE_DIR", str(tmp_path))
    path = native.build()
    assert path.parent == tmp_path / "ops" and path.exists()
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file left behind
    stamp = path.stat().st_mtime_ns
    assert native.build() == path and path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    # (not loaded: a second library registering the same kernels would clash with the one the tests use)
    assert path.read_bytes()[:4] == b"\x7fELF"


def test_missing_compiler_and_switch(monkeypatch):
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler 'no-such-cxx'"):
        native.build("no-such-cxx")
    monkeypatch.setenv("TRKX_NATIVE_OPS", "0")
    assert native.ops() is None


def test_shape_functions_in_a_graph(lib):
    """Traced with an unknown row count (what tf.function with bucket signatures sees): static shapes follow."""
    h = 8
    spec = tf.TensorSpec([None, h], tf.float32)

    @tf.function(input_signature=[spec, spec, tf.TensorSpec([None], tf.int32)])
    def both(z, d, ids):
        zeros, ones = tf.zeros([h]), tf.ones([h])
        y, acc, xhat, inv, sums = lib.trkx_edge_ln_forward(parts=[z], tables=[], rows=[], acc=[], sum_ids=[ids],
                                                           num_segments=5, bias=zeros, scale=ones, offset=zeros,
                                                           eps=1e-5)
        assert y.shape.as_list() == [None, h] and inv.shape.as_list() == [None, 1] and sums.shape.as_list() == [None, h]
        out = lib.trkx_edge_ln_backward(dense=[d], gsrc=[], gids=[], dz_next=[], sum_ids=[ids], num_segments=5,
                                        xhat=xhat, inv=inv, scale=ones, offset=zeros, want_dx32=True, want_dxt=False)
        assert [o.shape.as_list() for o in out] == [[None, h], [0, h], [None, h], [h], [h], [h], [None, h]]
        return out[2], out[6]

    dz, dsum = both(tf.ones([6, h]), tf.ones([6, h]), tf.constant([0, 0, 1, 3, 3, 4]))
    assert dz.shape == (6, h) and dsum.shape == (5, h)
