"""EncCla's balanced bins, FitAccuracy and the tasks' exact global loss."""

import numpy as np
import tensorflow as tf

from trkx_tf.transformer.heads import HitTask, ParameterBins, fit_accuracy
from trkx_tf.transformer.model import HitTransformer


def _targets(rng, n):
    phi = rng.uniform(-np.pi, np.pi, n)
    theta = np.arccos(rng.uniform(-0.95, 0.95, n))
    qpt = rng.choice([-1, 1], n) / rng.exponential(0.6, n).clip(0.15)
    return np.stack([np.sin(phi), np.cos(phi), theta, qpt], 1)


def test_bins_are_balanced_and_classes_agree_in_numpy_and_tf():
    rng = np.random.default_rng(0)
    t = _targets(rng, 8000)
    bins = ParameterBins.fit(t, 4, 5, 2)
    assert bins.n_classes == 40 and [len(e) for e in bins.edges] == [3, 4, 1]
    cls = bins.classes(t)
    assert cls.min() >= 0 and cls.max() < 40
    # every parameter's bins hold the same number of particles
    for axis, n in ((0, 4), (1, 5), (2, 2)):
        index = [np.searchsorted(e, v, side="right") for e, v in
                 zip(bins.edges, (np.arctan2(t[:, 0], t[:, 1]), t[:, 2], t[:, 3]))][axis]
        counts = np.bincount(index, minlength=n)
        assert counts.max() - counts.min() <= 2, counts
    tf_cls = bins.classes_tf(tf.constant(t.reshape(80, 100, 4), tf.float32)).numpy().reshape(-1)
    assert (tf_cls == cls).mean() > 0.999  # float32 rounding at a bin edge at most
    # two q/pT bins of a charge-symmetric spectrum: the charge's sign (the edge lies in the gap around 0)
    assert (np.sign(t[:, 3]) == np.where(cls % 2 == 1, 1, -1)).mean() > 0.99


def test_bins_round_trip_and_known_classes(tmp_path):
    bins = ParameterBins([0.0], [1.0, 2.0], [])
    assert bins.n_classes == 2 * 3 * 1
    t = np.array([[np.sin(-1), np.cos(-1), 0.5, 3.0], [np.sin(1), np.cos(1), 2.5, -3.0]])
    assert bins.classes(t).tolist() == [0, 5]
    bins.save(tmp_path / "bins.json")
    assert ParameterBins.load(tmp_path / "bins.json").classes(t).tolist() == [0, 5]
    assert fit_accuracy(bins, np.array([0, 4]), t, np.ones(2)) == 0.5


def _batch(rng, b=4, n=16):
    mask = np.zeros((b, n), np.float32)
    for i, k in enumerate(rng.integers(4, n, b)):
        mask[i, :k] = 1
    return {"hits": rng.normal(size=(b, n, 5)).astype(np.float32), "mask": mask,
            "targets": _targets(rng, b * n).reshape(b, n, 4).astype(np.float32),
            "weights": mask * (rng.uniform(size=(b, n)) > 0.2)}


def test_split_batches_sum_to_the_global_loss_and_gradient():
    """Each part divides by the global weight sum: the parts' losses and gradients add up to the whole's."""
    rng = np.random.default_rng(1)
    bins = ParameterBins.fit(_targets(rng, 500), 3, 3, 2)
    for head in ("reg", "cla"):
        task = HitTask(head, bins)
        model = HitTransformer(task.outputs, hidden=16, num_heads=2, layers=1, ff=16)
        batch = {k: tf.constant(v) for k, v in _batch(rng).items()}
        parts = [{k: v[:1] for k, v in batch.items()}, {k: v[1:] for k, v in batch.items()}]
        total = tf.reduce_sum(batch["weights"] * batch["mask"])
        with tf.GradientTape() as tape:
            whole, *_ = task.forward(model, batch)
        g_whole = tape.gradient(whole, model.trainable_variables)
        losses, grads = [], []
        for p in parts:
            with tf.GradientTape() as tape:
                loss, _, _, counts = task.forward(model, p, weight_sum_fn=lambda w: total)
            losses.append(loss)
            grads.append(tape.gradient(loss, model.trainable_variables))
        np.testing.assert_allclose(float(sum(losses)), float(whole), rtol=1e-5)
        for g, a, b in zip(g_whole, *grads):
            np.testing.assert_allclose(g.numpy(), (a + b).numpy(), atol=1e-5)
        # padding and weight-0 hits are not counted
        assert float(counts[1]) == float(np.sum(parts[1]["weights"].numpy() * parts[1]["mask"].numpy()))


def test_fit_accuracy_counts_of_a_perfect_regression():
    rng = np.random.default_rng(2)
    bins = ParameterBins.fit(_targets(rng, 500), 4, 4, 2)

    class Echo:  # "predicts" the true parameters
        def __call__(self, batch):
            return batch["targets"]

    batch = {k: tf.constant(v) for k, v in _batch(rng).items()}
    _, _, w, counts = HitTask("reg", bins).forward(Echo(), batch)
    assert float(counts[0]) == float(counts[1]) == float(w) > 0
