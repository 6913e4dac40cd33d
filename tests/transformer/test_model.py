"""The hit transformer: padding masks, mixed precision, local attention over sectors."""

import numpy as np
import pytest

from trkx_tf.errors import ConfigError
from trkx_tf.transformer.local import local_outputs, sectors
from trkx_tf.transformer.model import HitTransformer


def _event(rng, n, f=5):
    return rng.normal(size=(n, f)).astype(np.float32)


def test_padded_hits_change_nothing():
    """A real hit's output is the same whatever is padded after it (any values, any amount)."""
    rng = np.random.default_rng(0)
    model = HitTransformer(4, hidden=32, num_heads=4, layers=3, ff=48)
    x = _event(rng, 12)
    base = model({"hits": x[None], "mask": np.ones((1, 12), np.float32)}).numpy()[0]
    for pad in (1, 7, 52):
        garbage = 100 * _event(rng, pad)
        hits = np.concatenate([x, garbage])[None]
        mask = np.concatenate([np.ones(12), np.zeros(pad)]).astype(np.float32)[None]
        out = model({"hits": hits, "mask": mask}).numpy()[0]
        np.testing.assert_allclose(out[:12], base, atol=2e-5)
    # ... and a real hit does change the others' outputs (attention is not a no-op)
    hits = np.concatenate([x, _event(rng, 1)])[None]
    out = model({"hits": hits, "mask": np.ones((1, 13), np.float32)}).numpy()[0]
    assert np.abs(out[:12] - base).max() > 1e-3


def test_events_of_a_batch_do_not_see_each_other():
    rng = np.random.default_rng(1)
    model = HitTransformer(3, hidden=16, num_heads=2, layers=2, ff=16)
    a, b = _event(rng, 8), _event(rng, 5)
    hits = np.zeros((2, 8, 5), np.float32)
    hits[0], hits[1, :5] = a, b
    mask = np.zeros((2, 8), np.float32)
    mask[0], mask[1, :5] = 1, 1
    both = model({"hits": hits, "mask": mask}).numpy()
    alone = model({"hits": b[None], "mask": np.ones((1, 5), np.float32)}).numpy()[0]
    np.testing.assert_allclose(both[1, :5], alone, atol=2e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_is_close_to_float32(dtype):
    rng = np.random.default_rng(2)
    ref = HitTransformer(4, hidden=32, num_heads=4, layers=2, ff=32)
    low = HitTransformer(4, hidden=32, num_heads=4, layers=2, ff=32, compute_dtype=dtype)
    batch = {"hits": _event(rng, 20)[None], "mask": np.ones((1, 20), np.float32)}
    ref(batch), low(batch)
    for a, b in zip(ref.variables, low.variables):
        b.assign(a)
    out = low(batch)
    assert out.dtype.name == "float32" and all(v.dtype.name == "float32" for v in low.variables)
    np.testing.assert_allclose(out.numpy(), ref(batch).numpy(), atol=0.1)


def test_width_must_divide_by_heads():
    with pytest.raises(ConfigError, match="multiple"):
        HitTransformer(4, hidden=30, num_heads=4)({"hits": np.zeros((1, 2, 5), np.float32),
                                                   "mask": np.ones((1, 2), np.float32)})


def test_sectors_cover_every_hit_once_with_overlap():
    rng = np.random.default_rng(3)
    phi, eta = rng.uniform(-np.pi, np.pi, 2000), rng.normal(0, 1.5, 2000)
    parts = sectors(phi, eta, 8, 4, 0.1)
    cores = np.concatenate([s.members[s.core] for s in parts])
    assert sorted(cores.tolist()) == list(range(2000))
    assert sum(len(s.members) for s in parts) > 2000  # the halos overlap
    # a hit just across the ±π seam is in the halo of the sector on the other side
    seam = sectors(np.array([-np.pi + 0.01, np.pi - 0.01]), np.zeros(2), 4, 1, 0.05)
    assert all(len(s.members) == 2 for s in seam)


def test_local_attention_with_one_sector_is_dense_attention():
    rng = np.random.default_rng(4)
    model = HitTransformer(4, hidden=16, num_heads=2, layers=2, ff=16)
    x = _event(rng, 50)
    phi, eta = rng.uniform(-np.pi, np.pi, 50), rng.normal(size=50)
    dense = model({"hits": x[None], "mask": np.ones((1, 50), np.float32)}).numpy()[0]
    local, info = local_outputs(lambda b: model(b).numpy(), x, phi, eta, 4, 1, 1, 0.0, quantum=64)
    np.testing.assert_allclose(local, dense, atol=2e-5)
    assert info["sectors"] == 1 and info["member_ratio"] == 1.0
    # several sectors: every hit gets an output from its own core sector
    local, info = local_outputs(lambda b: model(b).numpy(), x, phi, eta, 4, 4, 2, 0.2, sectors_per_batch=3)
    assert info["sectors"] > 1 and np.all(np.abs(local).sum(1) > 0)
